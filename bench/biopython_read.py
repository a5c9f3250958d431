#!/usr/bin/env python3
"""The Biopython baseline for `cargo bench --bench data_read`.

Reads a FASTA file (plain or .gz) with Bio.SeqIO.parse, upper-cases each record and slices it
into 1024 bp windows every 512 bp, the same work dnatune's benchmark does. Prints one line:
`seconds=… peak_kb=… windows=…`. On first use it creates a virtual environment in
bench/.venv and installs Biopython from PyPI into it.
"""

import gzip
import os
import resource
import subprocess
import sys
import time
import venv

WINDOW_BP = 1024
STRIDE_BP = 512
HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")


def ensure_biopython():
    """Re-runs this script inside bench/.venv, creating it (with Biopython) when needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(VENV_PYTHON):
        venv.EnvBuilder(with_pip=True).create(VENV)
        subprocess.run(
            [VENV_PYTHON, "-m", "pip", "install", "--quiet", "biopython"],
            check=True,
            stdout=sys.stderr,
        )
    os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(__file__), *sys.argv[1:]])


def main(path):
    from Bio import SeqIO

    start = time.perf_counter()
    cpu_start = time.process_time()
    opener = gzip.open if path.endswith(".gz") else open
    windows = 0
    with opener(path, "rt") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            sequence = str(record.seq).upper()
            for begin in range(0, len(sequence) - WINDOW_BP + 1, STRIDE_BP):
                window = sequence[begin : begin + WINDOW_BP]
                windows += 1
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"seconds={seconds} peak_kb={usage.ru_maxrss} windows={windows} "
        f"cpu_seconds={time.process_time() - cpu_start}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: biopython_read.py FASTA")
    ensure_biopython()
    main(sys.argv[1])

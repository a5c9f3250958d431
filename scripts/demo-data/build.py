#!/usr/bin/env python3
"""Builds dnatune's offline demo data set: coding vs non-coding windows of the Chlamydia
trachomatis genome, labelled from its GenBank annotation.

    scripts/demo-data/build.py [CT_GBK_GZ] [--out assets/demo]

CT_GBK_GZ is `ct.gbk.gz` from the Debian package r-cran-seqinr (GenBank CHLTCG, Stephens et al.
1998, 1,042,519 bp, 895 CDS); without it the script fetches the package with `apt-get download`
(no root needed) and reads the file from there. Python 3 standard library only.

Writes `coding.fa` and `noncoding.fa`: non-overlapping 120 bp windows of the forward strand.
A non-coding window overlaps no CDS (on either strand) by a single base; every one of them is
kept. A coding window lies wholly inside one CDS; as many as there are non-coding ones are drawn
(seeded) from all the coding windows, so the classes are balanced. Headers give the position
(1-based, inclusive) and `region=`: the gene, or the intergenic stretch by its first base.
dnatune's demo keeps the windows of one region in one split (`--group-by 'region=(\S+)'`), so
no test window has a neighbour from the same gene in the training set.
"""

import argparse
import gzip
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WINDOW = 120
SEED = 20261122
DEB_PATH = "usr/lib/R/site-library/seqinr/sequences/ct.gbk.gz"


def fetch_ct_gbk(workdir: Path) -> Path:
    subprocess.run(["apt-get", "download", "r-cran-seqinr"], cwd=workdir, check=True)
    deb = next(workdir.glob("r-cran-seqinr_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "x")], check=True)
    return workdir / "x" / DEB_PATH


def parse_genbank(path: Path):
    text = gzip.open(path, "rt").read()
    features, _, origin = text.partition("\nORIGIN")
    sequence = "".join(re.findall(r"[acgtnA-Z]+", re.sub(r"\d", "", origin.split("//")[0])))
    sequence = sequence.upper()
    cds = []
    pattern = re.compile(r"^     CDS\s+(.+?)(?=^     \S|\Z)", re.M | re.S)
    for match in pattern.finditer(features):
        block = match.group(1)
        location = block.split("/")[0].replace("\n", "").replace(" ", "")
        spans = [(int(a), int(b)) for a, b in re.findall(r"<?(\d+)\.\.>?(\d+)", location)]
        name = re.search(r'/(?:gene|locus_tag|note)="([^"]+)"', block)
        label = name.group(1).split()[0] if name else f"CDS{len(cds) + 1}"
        strand = "-" if location.startswith("complement") else "+"
        cds.append((label, strand, spans))
    return sequence, cds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gbk", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, default=Path("assets/demo"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        gbk = args.gbk or fetch_ct_gbk(Path(tmp))
        sequence, cds = parse_genbank(gbk)
    length = len(sequence)
    if length != 1_042_519 or len(cds) != 895:
        print(f"{gbk}: expected the 1,042,519 bp genome with 895 CDS, found {length} bp and "
              f"{len(cds)} CDS", file=sys.stderr)
        return 1

    covered = bytearray(length)
    for _, _, spans in cds:
        for start, end in spans:
            covered[start - 1:end] = b"\x01" * (end - start + 1)

    noncoding = []
    position = 0
    while position < length:
        if covered[position]:
            position += 1
            continue
        run_end = position
        while run_end < length and not covered[run_end]:
            run_end += 1
        for start in range(position, run_end - WINDOW + 1, WINDOW):
            noncoding.append((start, f"region=intergenic_{position + 1}"))
        position = run_end

    coding = []
    for label, strand, spans in cds:
        if len(spans) != 1:
            continue  # joined CDS (over the origin): skipped rather than cut at the join
        start, end = spans[0]
        for window_start in range(start - 1, end - WINDOW + 1, WINDOW):
            coding.append((window_start, f"region={label} strand={strand}"))
    random.Random(SEED).shuffle(coding)
    coding = sorted(coding[: len(noncoding)])

    args.out.mkdir(parents=True, exist_ok=True)
    for name, windows, tag in (("coding.fa", coding, "coding"), ("noncoding.fa", noncoding, "noncoding")):
        target = args.out / name
        temporary = target.with_suffix(".fa.tmp")
        with open(temporary, "w") as handle:
            for start, note in windows:
                window = sequence[start:start + WINDOW]
                handle.write(f">ct_{tag}_{start + 1}_{start + WINDOW} {note}\n{window}\n")
        temporary.replace(target)
        print(f"{target}: {len(windows)} windows of {WINDOW} bp")
    return 0


if __name__ == "__main__":
    sys.exit(main())

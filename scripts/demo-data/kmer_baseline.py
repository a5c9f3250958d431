#!/usr/bin/env python3
"""A yardstick for the demo: logistic regression on k-mer frequencies of the demo windows.

    python scripts/demo-data/kmer_baseline.py [--k 3] [--splits 5]     (needs numpy)

Each split holds out 15 % of the regions (genes and intergenic stretches, the `region=` of the
headers) with all their windows, as the demo's split does; the features are the window's
overlapping k-mer frequencies, standardised; L2-regularised logistic regression by gradient
descent. Prints the test MCC of each split and their mean.
"""

import argparse
import itertools
import random
import re
from pathlib import Path

import numpy as np

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"


def read(path, label):
    records, header = [], None
    for line in open(path):
        line = line.strip()
        if line.startswith(">"):
            header = line
        elif line:
            records.append((line, label, re.search(r"region=(\S+)", header).group(1)))
    return records


def mcc(y, p):
    tp = int(((y == 1) & (p == 1)).sum())
    tn = int(((y == 0) & (p == 0)).sum())
    fp = int(((y == 0) & (p == 1)).sum())
    fn = int(((y == 1) & (p == 0)).sum())
    denominator = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()

    data = read(DEMO / "coding.fa", 1) + read(DEMO / "noncoding.fa", 0)
    kmers = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=args.k))}
    features = np.zeros((len(data), len(kmers)))
    for row, (sequence, _, _) in enumerate(data):
        for i in range(len(sequence) - args.k + 1):
            column = kmers.get(sequence[i:i + args.k])
            if column is not None:
                features[row, column] += 1
        features[row] /= max(1, len(sequence) - args.k + 1)
    features = (features - features.mean(0)) / (features.std(0) + 1e-9)
    features = np.hstack([features, np.ones((len(data), 1))])
    labels = np.array([label for _, label, _ in data])
    regions = np.array([region for _, _, region in data])
    names = sorted(set(regions))

    scores = []
    for seed in range(args.splits):
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        test = np.isin(regions, shuffled[: int(len(shuffled) * 0.15)])
        train = ~test
        weights = np.zeros(features.shape[1])
        for _ in range(3000):
            p = 1 / (1 + np.exp(-features[train] @ weights))
            gradient = features[train].T @ (p - labels[train]) / train.sum() + 1e-2 * weights
            weights -= 0.5 * gradient
        predicted = (features[test] @ weights > 0).astype(int)
        scores.append(mcc(labels[test], predicted))
        print(f"split {seed}: {int(test.sum())} test windows, MCC {scores[-1]:.3f}")
    print(f"{args.k}-mer logistic regression: mean test MCC {np.mean(scores):.3f} over {args.splits} splits")


if __name__ == "__main__":
    main()

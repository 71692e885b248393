#!/usr/bin/env python3
"""Summarise scripts/seed_agreement.sh: per implementation and score, the mean, standard deviation and
range over seeds, and two two-sample tests of "same distribution" (Welch's t-test and the Mann-Whitney
U test, two-sided). Prints the Markdown table of docs/fidelity.md.

    /tmp/venv/bin/python scripts/summarize_fidelity.py results/fidelity       # Twitter -> UCI
    /tmp/venv/bin/python scripts/summarize_fidelity.py results/fidelity-cola  # CoLA
"""

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats


# The scores compared per task: (label, where it is: "dev" or a column name, which score).
SCORES = {
    "twitter-uci": [("dev accuracy", "dev", "accuracy"), ("dev MCC", "dev", "mcc"),
                    ("0 % accuracy", "0%", "accuracy"), ("10 % accuracy", "10%", "accuracy")],
    "cola": [("dev MCC", "dev", "mcc"), ("in-domain MCC", "in_domain_dev", "mcc"),
             ("out-of-domain MCC", "out_of_domain_dev", "mcc"),
             ("in-domain accuracy", "in_domain_dev", "accuracy"),
             ("out-of-domain accuracy", "out_of_domain_dev", "accuracy")],
}


def row(task, seed, dev, columns, elapsed_secs):
    found = {"dev": dev, **columns}
    return {"seed": seed, "minutes": elapsed_secs / 60,
            **{label: found[where][score] for label, where, score in SCORES[task]}}


def sift_tui(task, runs):
    rows = []
    for path in sorted(runs.glob("*/results.json")):
        r = json.loads(path.read_text())
        columns = {c["name"]: c["scores"] for c in r["columns"]}
        rows.append(row(task, r["seed"], r["dev"], columns, r["elapsed_secs"]))
    return rows


def pytorch(task, path):
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows.append(row(task, r["seed"], r["dev"], r["columns"], r["elapsed_secs"]))
    return rows


def describe(values):
    v = np.array(values)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f} ({v.min():.3f}–{v.max():.3f})"


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/fidelity")
    task = "cola" if "cola" in root.name else "twitter-uci"
    ours, theirs = sift_tui(task, root / "sift-tui"), pytorch(task, root / "pytorch.jsonl")
    keys = [label for label, _, _ in SCORES[task]]
    print(f"sift-tui seeds {[r['seed'] for r in ours]}, PyTorch seeds {[r['seed'] for r in theirs]}\n")
    print("| score | sift-tui mean ± sd (range) | PyTorch mean ± sd (range) | Welch p | Mann-Whitney p |")
    print("|---|---|---|---|---|")
    # Identical samples (every seed at the majority share) have no t statistic: shown as "–".
    warnings.simplefilter("ignore", RuntimeWarning)
    p = lambda v: "–" if math.isnan(v) else f"{v:.2f}"
    for key in keys:
        a, b = [r[key] for r in ours], [r[key] for r in theirs]
        welch = stats.ttest_ind(a, b, equal_var=False).pvalue if len(a) > 1 and len(b) > 1 else float("nan")
        mw = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue if a and b else float("nan")
        print(f"| {key} | {describe(a)} | {describe(b)} | {p(welch)} | {p(mw)} |")
    print_learned(ours, theirs)
    print("\nPer seed:\n")
    print(f"| seed | side | {' | '.join(keys)} | wall minutes (loaded machine) |")
    print("|---|---|" + "---|" * (len(keys) + 1))
    for side, rows in [("sift-tui", ours), ("PyTorch", theirs)]:
        for r in sorted(rows, key=lambda r: r["seed"]):
            print(f"| {r['seed']} | {side} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {r['minutes']:.1f} |")


def print_learned(ours, theirs):
    """The threshold effect: did a seed learn the minority class at all (dev MCC above 0)?"""
    learned = [sum(r["dev MCC"] > 0 for r in rows) for rows in (ours, theirs)]
    table = [[learned[0], len(ours) - learned[0]], [learned[1], len(theirs) - learned[1]]]
    fisher = stats.fisher_exact(table).pvalue
    print(f"\nSeeds that learned the minority class (dev MCC > 0): sift-tui {learned[0]}/{len(ours)}, "
          f"PyTorch {learned[1]}/{len(theirs)} (Fisher's exact test p = {fisher:.2f}).")


if __name__ == "__main__":
    main()

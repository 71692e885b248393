#!/usr/bin/env python3
"""Writes tests/fixtures/runs/: a small runs directory for the figure tests (`tests/plot.rs`).

Preset `tiny`, one model, standard / smart / sift × seeds 1 and 2, two stages (source: 20 updates,
dev evaluations at 10 and 20; target-10%: 8 updates, target-test evaluations at 4 and 8), and
results with the columns 0% and 10% on 40 test examples. Standard labels every 0 % example as
class 1, so its 0 % cell is a single-class cell. Deterministic: run it again for the same files.

    python3 scripts/make_runs_fixture.py
"""
import json
import math
import pathlib
import shutil

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "runs"
MODEL = "org/tiny-model"
EXAMPLES = 40
GOLD = [i % 2 for i in range(EXAMPLES)]

CONFIG = """name = "tiny"
description = "figure-test fixture"

[sweep]
models = ["{model}"]
methods = ["{method}"]
seeds = [{seed}]

[source]
metric = "accuracy"

[source.dataset]
kind = "uci-sentiment"
files = ["amazon_cells_labelled.txt"]

[target]
fractions = [0.0, 0.1]
label_map = "identity"

[target.dataset]
kind = "uci-sentiment"
files = ["imdb_labelled.txt"]
"""

# Examples each arm gets right at 0 % and 10 %, per seed; None: labels everything 1.
CORRECT = {
    "standard": {1: (None, 28), 2: (None, 30)},
    "smart": {1: (24, 29), 2: (26, 30)},
    "sift": {1: (30, 33), 2: (32, 34)},
}


def predictions(correct):
    if correct is None:
        return [1] * EXAMPLES
    return [g if i < correct else 1 - g for i, g in enumerate(GOLD)]


def scores(predicted, gold=GOLD):
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    counts = [predicted.count(0), predicted.count(1)]
    # The table recomputes every metric from the predictions; these are what the trainer logged.
    return {"accuracy": accuracy, "macro_f1": accuracy, "mcc": 0.0, "loss": 0.6, "examples": len(gold),
            "predicted_counts": counts}


def step(stage, index, n, method, seed, offset):
    loss = 0.7 * math.exp(-n / 12) + 0.05 * seed + offset + 0.02 * ((n * 7) % 3)
    scale = {"standard": 0.0, "smart": 1.0, "sift": 2.5}[method]
    kl = None if method == "standard" else round(scale * (0.01 + 0.02 * math.exp(-n / 6) + 0.002 * ((n + seed) % 3)), 6)
    return {"kind": "step", "stage_index": index, "stage": stage, "step": n, "epoch": 1, "loss": round(loss, 6),
            "task_loss": round(loss, 6), "adv_kl": kl, "lr": 2e-5, "grad_norm": 1.0, "samples_per_sec": 20.0}


def evaluation(stage, index, n, split, accuracy):
    accuracy = min(accuracy, 1.0)
    predicted = predictions(round(accuracy * EXAMPLES))
    return {"kind": "eval", "stage_index": index, "stage": stage, "step": n, "split": split,
            "scores": scores(predicted)}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for method, seeds in CORRECT.items():
        offset = {"standard": 0.0, "smart": 0.05, "sift": -0.03}[method]
        better = {"standard": 0.0, "smart": 0.025, "sift": 0.05}[method]
        for seed, (zero, ten) in seeds.items():
            run_id = f"tiny__tiny-model__{method}__s{seed}"
            run = OUT / run_id
            run.mkdir(parents=True)
            (run / "config.toml").write_text(CONFIG.format(model=MODEL, method=method, seed=seed))
            lines = []
            for n in range(1, 21):
                lines.append(step("source", 0, n, method, seed, offset))
                if n % 10 == 0:
                    lines.append(evaluation("source", 0, n, "source-dev", 0.6 + 0.01 * n + 0.025 * seed + better))
            lines.append(evaluation("source", 0, 20, "0%", (zero if zero is not None else 20) / EXAMPLES))
            for n in range(1, 9):
                lines.append(step("target-10%", 1, n, method, seed, offset))
                if n % 4 == 0:
                    lines.append(evaluation("target-10%", 1, n, "target-test", 0.6 + 0.02 * n + 0.025 * seed + better))
            lines.append(evaluation("target-10%", 1, 8, "10%", ten / EXAMPLES))
            (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
            columns = []
            for name, correct in (("0%", zero), ("10%", ten)):
                predicted = predictions(correct)
                columns.append({"name": name, "scores": scores(predicted), "gold": GOLD, "predicted": predicted})
            results = {"run_id": run_id, "preset": "tiny", "model": MODEL, "method": method, "seed": seed,
                       "metric": "accuracy", "best_step": 20, "dev": scores(predictions(30)),
                       "columns": columns, "elapsed_secs": 12.5}
            (run / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs `sift-tui bench` and scripts/bench_pytorch.py alternately and prints the medians.

Each round runs every (batch, seq, method) once with sift-tui and, for the methods the PyTorch script
has (standard, sift), once with PyTorch, so that both see the same machine load. Every raw JSON line
goes to stderr with the load average at its start; stdout gets a Markdown table of medians.

Usage (from the repository root, after `cargo build --release`):
  python3 scripts/bench_compare.py --model $SIFT_MODEL_PATH/all-MiniLM-L6-v2 \\
      --python /path/to/venv/bin/python --rounds 3 --methods standard sift --batch 32 --seq 64
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

PYTORCH_METHODS = {"standard", "sift"}


def run(command):
    load = os.getloadavg()[0]
    line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    result = json.loads(line)
    print(json.dumps({"load": round(load, 2), **result}), file=sys.stderr, flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--sift-tui", default="target/release/sift-tui")
    parser.add_argument("--python", default=sys.executable, help="a Python with torch and transformers")
    parser.add_argument("--methods", nargs="+", default=["standard", "sift"])
    parser.add_argument("--batch", nargs="+", type=int, default=[32])
    parser.add_argument("--seq", nargs="+", type=int, default=[64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pytorch", action="store_true")
    parser.add_argument("--mode", choices=["train", "eval"], default="train")
    args = parser.parse_args()

    shape = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
             "--mode", args.mode]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_pytorch.py")
    samples = {}
    for _ in range(args.rounds):
        for batch in args.batch:
            for seq in args.seq:
                for method in args.methods:
                    size = ["--method", method, "--batch", str(batch), "--seq", str(seq)] + shape
                    runs = [("sift-tui", [args.sift_tui, "bench", "--model", args.model] + size)]
                    if method in PYTORCH_METHODS and not args.no_pytorch:
                        runs.append(("pytorch", [args.python, script, "--model", args.model] + size))
                    for name, command in runs:
                        samples.setdefault((name, method, batch, seq), []).append(run(command))

    print("| implementation | method | batch | seq | samples/s | step ms | peak RSS MB | runs |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, method, batch, seq), results in samples.items():
        median = lambda key: statistics.median(r[key] for r in results)  # noqa: E731
        print(
            f"| {name} | {method} | {batch} | {seq} | {median('samples_per_sec'):.2f} | {median('step_ms'):.0f} "
            f"| {median('peak_rss_mb'):.0f} | {len(results)} |"
        )


if __name__ == "__main__":
    main()

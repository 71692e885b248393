#!/usr/bin/env python3
"""Training throughput with the console attached against the same run headless.

Runs one run of a preset (default: presets/quick.toml; the `--set` overrides must narrow its sweep to
one run) alternately with `sift-tui run` (headless) and with the console in a tmux window, each into a
fresh runs directory. The console opens the `config.toml` that the headless run wrote (the fully
resolved preset of that run), is launched with Enter and left with `q` once the run has written
results.json. Every run's metrics.jsonl has the samples/s of each update; the script prints the mean
per run and, per mode, the median of those means and the wall time, so that the two modes see the
same machine load.

Usage (from the repository root, after `cargo build --release`, with SIFT_DATA_DIR and
SIFT_MODEL_PATH set):
  python3 scripts/console_overhead.py --rounds 3 --set 'sweep.methods=["standard"]'
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SESSION = "sift-overhead"


def step_rates(runs_dir):
    """samples/s of every update in the run directories under `runs_dir`."""
    rates = []
    for path in glob.glob(os.path.join(runs_dir, "*", "metrics.jsonl")):
        with open(path) as lines:
            for line in lines:
                record = json.loads(line)
                if record.get("kind") == "step":
                    rates.append(record["samples_per_sec"])
    return rates


def finished(runs_dir):
    return bool(glob.glob(os.path.join(runs_dir, "*", "results.json")))


def headless(binary, preset, overrides, runs_dir):
    """Runs the preset headless; returns the config.toml of its one run."""
    sets = [arg for override in overrides for arg in ("--set", override)]
    subprocess.run([binary, "run", preset, *sets, "--runs-dir", runs_dir], check=True, capture_output=True)
    configs = glob.glob(os.path.join(runs_dir, "*", "config.toml"))
    if len(configs) != 1:
        sys.exit(f"the overrides must narrow the sweep to one run; it had {len(configs)}")
    return configs[0]


def console(binary, preset, runs_dir, timeout):
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    command = f"{binary} --preset {preset} --runs-dir {runs_dir}"
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", command], check=True)
    time.sleep(2)
    subprocess.run(["tmux", "send-keys", "-t", SESSION, "Enter"], check=True)
    deadline = time.monotonic() + timeout
    while not finished(runs_dir):
        if time.monotonic() > deadline:
            subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
            sys.exit(f"the console run did not finish within {timeout} s")
        time.sleep(1)
    subprocess.run(["tmux", "send-keys", "-t", SESSION, "q"], check=True)
    time.sleep(1)
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="presets/quick.toml")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--sift-tui", default="target/release/sift-tui")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=1800)
    args = parser.parse_args()

    binary = os.path.abspath(args.sift_tui)
    work = tempfile.mkdtemp(prefix="sift-overhead-")
    modes = {"headless": [], "console": []}
    for round_index in range(args.rounds):
        for mode in modes:
            runs_dir = os.path.join(work, f"{mode}-{round_index}")
            start = time.monotonic()
            if mode == "headless":
                resolved = headless(binary, args.preset, args.overrides, runs_dir)
            else:
                console(binary, resolved, runs_dir, args.timeout)
            wall = time.monotonic() - start
            rates = step_rates(runs_dir)
            mean = statistics.mean(rates)
            modes[mode].append((mean, wall))
            print(json.dumps({"mode": mode, "round": round_index, "updates": len(rates),
                              "mean_samples_per_sec": round(mean, 3), "wall_s": round(wall, 1)}),
                  file=sys.stderr, flush=True)
    headless_rate = statistics.median(m for m, _ in modes["headless"])
    print("| mode | samples/s (median of run means) | wall s (median) | runs |")
    print("|---|---|---|---|")
    for mode, results in modes.items():
        rate = statistics.median(m for m, _ in results)
        wall = statistics.median(w for _, w in results)
        print(f"| {mode} | {rate:.2f} ({100 * (rate / headless_rate - 1):+.1f} %) | {wall:.0f} | {len(results)} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

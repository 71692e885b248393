#!/usr/bin/env python3
"""Where a training step's time goes: `sift-tui bench` under `perf record`, samples grouped by kernel.

Every sample is charged to the first frame of its call stack (leaf first) that names one of the owners
below, so a memset or a page fault is charged to the kernel that allocated the buffer, and the GEMM
calls made inside attention count as attention; each owner is split into its GEMM time and the rest. Samples before the first timed step (model loading,
warm-up) are included; run enough steps that they are a small share (the `startup` row says how small).

Usage (after `cargo build --release`; needs `perf`):
  python3 scripts/profile_step.py --model $SIFT_MODEL_PATH/all-MiniLM-L6-v2 --method sift --seq 64 --steps 12
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

# (owner, pattern on a frame's symbol): the first frame, from the leaf up, that matches a pattern names
# the kernel that owns the sample; within one frame the first matching pattern wins.
OWNERS = [
    ("startup (loading, not a step)", r"Classifier::load|Checkpoint::load|resolve_model|ModelFiles"),
    ("attention", r"kernels::attention|kernels::softmax"),
    # The pool's workers run a linear layer's row blocks inside `matmul`'s closure, whose stacks do not
    # reach the layer; attention's many small products stay on one thread and never take that closure.
    # Attention's query/key/value projection is a `linear` product called from attention, and the
    # nearer frame counts: it is charged to the linear layers.
    ("linear layers", r"kernels::linear|kernels::feed_forward|kernels::activation|kernels::matmul::\{closure"),
    ("LayerNorm (+ residual, dropout)", r"kernels::layer_norm|nn::LayerNorm"),
    ("dropout masks", r"kernels::dropout"),
    ("AdamW", r"kernels::optim::(adamw|AdamW)|optim::AdamW::step"),
    ("gradient norm and clipping", r"kernels::optim::squares|optim::grad_norm|optim::scale_grads"),
    ("embeddings (lookup, gradient)", r"index_select|index_add|Embedding|embeddings"),
    ("autograd bookkeeping (gradient sums, zeros)", r"candle_core::backprop|GradStore"),
    ("method (noise, divergences, losses)", r"sift_tui::method::"),
]
OWNER_PATTERNS = [(name, re.compile(pattern)) for name, pattern in OWNERS]
GEMM = re.compile(r"gemm_common::|gemm_f32::|kernels::matmul|kernels::gemm_block")


def group_of(frames):
    """`owner: GEMM` when a frame up to the owner's is the GEMM (its inlined parts have bare names),
    `owner: other` otherwise."""
    gemm = False
    for frame in frames:
        gemm = gemm or bool(GEMM.search(frame))
        for name, pattern in OWNER_PATTERNS:
            if pattern.search(frame):
                return name if name.startswith("startup") else f"{name}: {'GEMM' if gemm else 'other'}"
    return f"unattributed: {'GEMM' if gemm else 'other'}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--sift-tui", default="target/release/sift-tui")
    parser.add_argument("--method", default="standard")
    parser.add_argument("--mode", choices=["train", "eval"], default="train")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frequency", type=int, default=199, help="samples per second per thread")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        bench = [args.sift_tui, "bench", "--model", args.model, "--method", args.method, "--batch",
                 str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps), "--warmup", "1",
                 "--threads", str(args.threads), "--mode", args.mode]
        record = ["perf", "record", "-q", "-F", str(args.frequency), "--call-graph", "dwarf,32768", "-o", data]
        result = subprocess.run(record + ["--"] + bench, check=True, capture_output=True, text=True)
        print(result.stdout.strip().splitlines()[-1], file=sys.stderr)
        script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], check=True, capture_output=True,
                                text=True).stdout

    counts = collections.Counter()
    for sample in script.split("\n\n"):
        # Each frame is "address symbol".
        frames = [line.strip().split(" ", 1)[-1] for line in sample.splitlines() if line.strip()]
        if frames:
            counts[group_of(frames)] += 1
    total = sum(counts.values())
    print(f"| {args.mode} {args.method}, batch {args.batch} × seq {args.seq}, {args.threads} threads | share of samples |")
    print("|---|---|")
    for name, count in counts.most_common():
        print(f"| {name} | {100 * count / total:.1f} % |")
    print(f"\n{total} samples", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The PyTorch reference for `sift-tui bench`: the same training step, timed the same way.

BertForSequenceClassification (transformers defaults, dropout on), a fixed synthetic batch (random ids
from a seeded generator, full attention mask, random labels), AdamW (lr 2e-5, weight decay 0.01 except
biases and LayerNorm weights), gradient clipping to 1.0. `--method sift` adds SiFT as microsoft/DeBERTa's
`sift.py` runs it: the input of the embedding LayerNorm is re-normalised by a LayerNorm without affine
parameters (eps 1e-7); clean pass; one ascent pass from sg(u) + delta0 with every parameter frozen
(requires_grad False), whose backward yields only d(loss)/d(delta); the final pass from sg(u) + delta1;
loss = CE + lambda * mean symmetric KL with lambda = 5.

Prints one JSON line: method, batch, seq, steps, samples_per_sec, step_ms, peak_rss_mb.

Usage: python scripts/bench_pytorch.py --model DIR --method sift --batch 32 --seq 64 --steps 10 --threads 2
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification

NUM_LABELS = 2
LEARNING_RATE = 2e-5
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
SIFT_LAMBDA = 5.0
SIFT_STEP = 1e-4
SIFT_SIGMA = 1e-2
LN0_EPS = 1e-7


class SiftPerturbation:
    """A forward pre-hook on the embedding LayerNorm: LN0 in the clean pass, sg(u) + delta otherwise."""

    def __init__(self, hidden_size):
        self.normalize = torch.nn.LayerNorm(hidden_size, LN0_EPS, elementwise_affine=False)
        self.delta = None
        self.clean = None

    def __call__(self, module, inputs):
        if self.delta is None:
            self.clean = self.normalize(inputs[0])
            return (self.clean,)
        return (self.clean.detach() + self.delta,)


def symmetric_kl(perturbed, clean):
    """DeBERTa's symmetric KL per row, written as two cross-entropies with detached targets."""
    log_p = F.log_softmax(perturbed.float(), -1)
    log_q = F.log_softmax(clean.float(), -1)
    return (log_q.exp().detach() * -log_p).sum(-1) + (log_p.exp().detach() * -log_q).sum(-1)


def sift_loss(model, batch, hook):
    logits = model(**batch["inputs"]).logits
    task = F.cross_entropy(logits, batch["labels"])
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(False)
    delta = torch.clamp(torch.randn_like(hook.clean, dtype=torch.float32) * SIFT_SIGMA, -2 * SIFT_SIGMA, 2 * SIFT_SIGMA)
    hook.delta = delta.requires_grad_(True)
    ascent = symmetric_kl(model(**batch["inputs"]).logits, logits.detach()).sum()
    ascent.backward()
    grad = hook.delta.grad
    with torch.no_grad():
        delta = delta + SIFT_STEP * grad / (1e-6 + grad.abs().max(-1, keepdim=True)[0])
    for p in params:
        p.requires_grad_(True)
    hook.delta = delta.detach().requires_grad_(True)
    adversarial = symmetric_kl(model(**batch["inputs"]).logits, logits).mean()
    hook.delta = None
    return task + SIFT_LAMBDA * adversarial


def standard_loss(model, batch, _hook):
    return F.cross_entropy(model(**batch["inputs"]).logits, batch["labels"])


def optimizer_for(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LEARNING_RATE)


def synthetic_batch(generator, batch, seq, vocab):
    ids = torch.randint(0, vocab, (batch, seq), generator=generator)
    labels = torch.randint(0, NUM_LABELS, (batch,), generator=generator)
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }
    return {"inputs": inputs, "labels": labels}


def peak_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint directory (e.g. all-MiniLM-L6-v2)")
    parser.add_argument("--method", choices=["standard", "sift"], default="standard")
    parser.add_argument("--mode", choices=["train", "eval"], default="train",
                        help="eval: forward passes under torch.inference_mode(), model.eval()")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = BertForSequenceClassification.from_pretrained(args.model, num_labels=NUM_LABELS)
    model.train()
    hook = None
    loss_fn = standard_loss
    if args.method == "sift":
        hook = SiftPerturbation(model.config.hidden_size)
        model.bert.embeddings.LayerNorm.register_forward_pre_hook(hook)
        loss_fn = sift_loss
    optimizer = optimizer_for(model)
    generator = torch.Generator().manual_seed(args.seed)
    batch = synthetic_batch(generator, args.batch, args.seq, model.config.vocab_size)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, batch, hook).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()

    def eval_step():
        with torch.inference_mode():
            model(**batch["inputs"]).logits

    if args.mode == "eval":
        model.eval()
    step = eval_step if args.mode == "eval" else train_step

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({
        "mode": args.mode,
        "method": args.method,
        "batch": args.batch,
        "seq": args.seq,
        "steps": args.steps,
        "samples_per_sec": args.batch * args.steps / seconds,
        "step_ms": 1e3 * seconds / args.steps,
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""sift-tui's protocols as a plain PyTorch + transformers loop: Twitter -> UCI, UCI domains, CoLA.

The reference side of docs/fidelity.md and of the README's time-to-result table: standard
fine-tuning (or SiFT with `--method sift`, as `scripts/bench_pytorch.py` runs it), run the way
sift-tui's trainer runs
`presets/twitter-uci.toml` (`--task twitter-uci`), `presets/uci-domains.toml` (`--task uci-domains`) and
`presets/cola.toml` (`--task cola`), so that the score distributions over seeds can be compared.

- Source: the first `--limit` tweets of twitter-hate/train.csv; a stratified 10 % dev split (per
  class, round(0.1 * count), fixed split seed, shared by every seed);
  `--epochs` passes in shuffled batches of `--batch` (last batch partial), dynamic padding,
  truncation at `--max-len`; dev accuracy after every epoch selects the weights (strictly better
  replaces); AdamW (weight decay 0.01 except any name containing `bias` and LayerNorm weights),
  warm-up over ceil(0.1 * T) updates then linear decay, gradient-norm clipping at 1.0, dropout as
  the model config says.
- Target: the 3,000 UCI sentences (amazon, imdb, yelp), labels mapped into the source space with
  `--label-map`: `hate-to-negative` (positive -> not hateful, negative -> hateful) or `identity`
  (0 -> 0, 1 -> 1, as the original study did implicitly); a stratified 10 % trains the
  10 % column, the other 90 % is the test split of both columns. Column 0 %: the selected source
  weights; column 10 %: those weights fine-tuned on the 10 % with a fresh optimizer and schedule for
  the same number of epochs, final weights scored.

UCI domains (`--task uci-domains`, as `presets/uci-domains.toml`): the 2,000 Amazon and Yelp sentences
are the source, the 1,000 IMDB sentences the target pool, labels as they are. Run it with
`--epochs 3 --max-len 128`.

CoLA (`--task cola`): all 8,551 sentences of cola/in_domain_train.tsv, a stratified 10 % dev split,
dev MCC after every epoch selects the weights, which then score cola/in_domain_dev.tsv and
cola/out_of_domain_dev.tsv (columns `in_domain_dev`, `out_of_domain_dev`). Run it with
`--limit 0 --epochs 3 --metric mcc`.

The split membership is drawn with numpy, so it differs from sift-tui's (same sizes, same
stratification); seeds vary data order, dropout and the head initialisation as in sift-tui.

One JSON line per seed on stdout (and appended to --out):

    SIFT_DATA_DIR=../shared/data /tmp/venv/bin/python scripts/pytorch_transfer.py \
        --model ../shared/models/all-MiniLM-L6-v2 --seeds 1 2 3 4 5 --out results/fidelity/pytorch.jsonl
"""

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from bench_pytorch import SiftPerturbation, sift_loss, standard_loss

UCI_FILES = ["amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"]


def read_twitter(path, limit):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows = rows[:limit] if limit else rows
    return [r["tweet"] for r in rows], [int(r["label"]) for r in rows]


def read_cola(path):
    """Raw CoLA: no header, tab-separated source, label, author's mark, sentence."""
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            _, label, _, sentence = line.split("\t", 3)
            texts.append(sentence)
            labels.append(int(label))
    return texts, labels


def read_uci(directory, files=UCI_FILES):
    texts, labels = [], []
    for name in files:
        for line in (directory / name).read_text(encoding="utf-8", errors="replace").split("\n"):
            if not line.strip():
                continue
            sentence, label = line.rsplit("\t", 1)
            texts.append(sentence)
            labels.append(int(label))
    return texts, labels


def stratified_split(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        rng.shuffle(members)
        k = min(max(round(fraction * len(members)), 1), len(members))
        first += members[:k]
        second += members[k:]
    return sorted(first), sorted(second)


def takes_weight_decay(name):
    return not ("bias" in name or "LayerNorm" in name or "layer_norm" in name)


def batches(tokenizer, texts, labels, size, max_len, order):
    for start in range(0, len(order), size):
        idx = order[start:start + size]
        enc = tokenizer([texts[i] for i in idx], padding="longest", truncation=True, max_length=max_len,
                        return_tensors="pt")
        yield enc, torch.tensor([labels[i] for i in idx])


def scores(model, tokenizer, texts, labels, args):
    model.eval()
    predicted = []
    with torch.inference_mode():
        for enc, _ in batches(tokenizer, texts, labels, 64, args.max_len, list(range(len(texts)))):
            predicted += model(**enc).logits.argmax(-1).tolist()
    model.train()
    gold = np.array(labels)
    pred = np.array(predicted)
    tp = int(((pred == 1) & (gold == 1)).sum())
    tn = int(((pred == 0) & (gold == 0)).sum())
    fp = int(((pred == 1) & (gold == 0)).sum())
    fn = int(((pred == 0) & (gold == 1)).sum())
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / denominator if denominator else 0.0
    counts = [int((pred == c).sum()) for c in range(2)]
    return {"accuracy": float((pred == gold).mean()), "mcc": mcc, "predicted_counts": counts}


def attach_method(model, method):
    """The loss function of `method` and its hook: SiFT hooks LN0 and the perturbation into the
    embeddings, in every pass, evaluation included, as sift-tui does."""
    if method == "standard":
        return standard_loss, None
    hook = SiftPerturbation(model.config.hidden_size)
    model.bert.embeddings.LayerNorm.register_forward_pre_hook(hook)
    return sift_loss, hook


def train_stage(model, method, tokenizer, texts, labels, args, seed, dev=None):
    """Fine-tunes in place with `method` (attach_method's pair); with `dev`, keeps the weights of the
    best dev `args.metric` (per epoch)."""
    loss_fn, hook = method
    params = [(n, p) for n, p in model.named_parameters()]
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in params if takes_weight_decay(n)], "weight_decay": 0.01},
        {"params": [p for n, p in params if not takes_weight_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    per_epoch = math.ceil(len(texts) / args.batch)
    total = math.ceil(args.epochs * per_epoch)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(total * 0.1), total)
    gen = np.random.default_rng(seed)
    best, best_state, step = None, None, 0
    model.train()
    while step < total:
        order = gen.permutation(len(texts)).tolist()
        for enc, y in batches(tokenizer, texts, labels, args.batch, args.max_len, order):
            optimizer.zero_grad()
            loss = loss_fn(model, {"inputs": enc, "labels": y}, hook)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step == total:
                break
        if dev is not None:
            result = scores(model, tokenizer, *dev, args)
            if best is None or result[args.metric] > best[args.metric]:
                best = {**result, "step": step}
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return best


def run_cola(seed, args, data):
    texts, labels = read_cola(data / "cola" / "in_domain_train.tsv")
    texts, labels = (texts[:args.limit], labels[:args.limit]) if args.limit else (texts, labels)
    dev_idx, train_idx = stratified_split(labels, 0.1, args.split_seed)
    pick = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    method = attach_method(model, args.method)
    dev = train_stage(model, method, tokenizer, *pick(train_idx), args, seed, dev=pick(dev_idx))
    columns = {name: scores(model, tokenizer, *read_cola(data / "cola" / f"{name}.tsv"), args)
               for name in ["in_domain_dev", "out_of_domain_dev"]}
    return dev, columns


def run_transfer(seed, args, source, pool):
    """Stage 1 on `source` (dev split selects the weights), then the target pool's test split at 0 %
    and after fine-tuning on its 10 %."""
    texts, labels = source
    dev_idx, train_idx = stratified_split(labels, 0.1, args.split_seed)
    pool_texts, pool_labels = pool
    target_train, target_test = stratified_split(pool_labels, 0.1, args.split_seed)
    pick = lambda t, y, idx: ([t[i] for i in idx], [y[i] for i in idx])

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    method = attach_method(model, args.method)
    dev = train_stage(model, method, tokenizer, *pick(texts, labels, train_idx), args, seed,
                      dev=pick(texts, labels, dev_idx))
    test = pick(pool_texts, pool_labels, target_test)
    columns = {"0%": scores(model, tokenizer, *test, args)}
    train_stage(model, method, tokenizer, *pick(pool_texts, pool_labels, target_train), args, seed + 1)
    columns["10%"] = scores(model, tokenizer, *test, args)
    return dev, columns


def run(seed, args):
    started = time.time()
    data = Path(os.environ.get("SIFT_DATA_DIR", "data"))
    uci = data / "uci-sentiment"
    if args.task == "cola":
        dev, columns = run_cola(seed, args, data)
    elif args.task == "uci-domains":
        source = read_uci(uci, ["amazon_cells_labelled.txt", "yelp_labelled.txt"])
        dev, columns = run_transfer(seed, args, source, read_uci(uci, ["imdb_labelled.txt"]))
    else:
        texts, labels = read_uci(uci)
        if args.label_map == "hate-to-negative":
            # positive (1) -> not hateful (0), negative (0) -> hateful (1).
            labels = [1 - y for y in labels]
        source = read_twitter(data / "twitter-hate" / "train.csv", args.limit)
        dev, columns = run_transfer(seed, args, source, (texts, labels))
    return {"task": args.task, "method": args.method, "label_map": args.label_map, "threads": args.threads,
            "seed": seed, "dev": dev, "columns": columns,
            "elapsed_secs": time.time() - started, "torch": torch.__version__,
            "transformers": transformers.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["twitter-uci", "uci-domains", "cola"], default="twitter-uci")
    parser.add_argument("--label-map", choices=["hate-to-negative", "identity"], default="hate-to-negative",
                        help="twitter-uci: how UCI sentiment labels map to the tweet labels")
    parser.add_argument("--model", required=True)
    parser.add_argument("--method", choices=["standard", "sift"], default="standard")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--limit", type=int, default=4000, help="source examples kept; 0 keeps all")
    parser.add_argument("--metric", choices=["accuracy", "mcc"], default="accuracy",
                        help="dev score that selects the weights")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        line = json.dumps(run(seed, args))
        print(line, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()

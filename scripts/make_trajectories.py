#!/usr/bin/env python3
"""Record 20 fine-tuning updates of PyTorch + transformers, for tests/trajectory.rs.

For each model (the tiny BERT, DeBERTa v1 and DeBERTa v3 fixtures, and all-MiniLM-L6-v2), this runs the
loop that a transformers fine-tuning recipe runs, with dropout off so that both sides are deterministic:

- `*ForSequenceClassification` from the checkpoint (a classification head the checkpoint lacks is
  initialised by transformers and stored here, so both sides start from the same weights);
- AdamW (betas 0.9 / 0.999, eps 1e-8) with weight decay on every weight except biases (any name
  containing `bias`, DeBERTa v1's `q_bias` / `v_bias` included) and LayerNorm weights (0.01 for
  MiniLM; 0.5 for the tiny fixtures, so that a wrongly grouped parameter shows);
- linear warm-up over ceil(warmup_ratio * 20) updates, then linear decay to zero
  (`get_linear_schedule_with_warmup`, stepped after each update);
- the global gradient norm clipped at 1.0 (`clip_grad_norm_`);
- 20 updates on fixed random batches (variable lengths, padding, random labels) in a fixed order.

It stores, per update, the batch, the loss and logits of the forward pass before the update, the
pre-clipping gradient norm and the learning rate, and after the last update the loss and logits of
a probe batch. Output: tests/fixtures/trajectories/<name>.safetensors and <name>.json (settings and
versions). Deterministic: fixed seeds, one torch thread.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors
    SIFT_MODEL_PATH=../shared/models /tmp/venv/bin/python scripts/make_trajectories.py
"""

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForSequenceClassification, get_linear_schedule_with_warmup

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "trajectories"

UPDATES = 20
WARMUP_RATIO = 0.12  # ceil(2.4) = 3 warm-up updates; rounding would give 2
# The recipe's 0.01 for MiniLM; the tiny fixtures take a large decay, so that a parameter put in
# the wrong group (DeBERTa v1's q_bias / v_bias decayed, say) shows in their losses and logits.
WEIGHT_DECAY = {"minilm": 0.01}
FIXTURE_WEIGHT_DECAY = 0.5
GRAD_CLIP = 1.0

# name, model dir, label count, learning rate, batch, max length, [CLS] id, [SEP] id
CASES = [
    ("bert-cls", FIXTURES / "models" / "bert-cls", 3, 1e-3, 8, 16, 2, 3),
    ("deberta-cls", FIXTURES / "models" / "deberta-cls", 2, 1e-3, 8, 16, 1, 2),
    ("deberta-v3-cls", FIXTURES / "models" / "deberta-v3-cls", 3, 1e-3, 8, 16, 1, 2),
]
MINILM = ("minilm", None, 2, 5e-5, 8, 32, 101, 102)


def takes_weight_decay(name):
    return not ("bias" in name or "LayerNorm" in name or "layer_norm" in name)


def random_batch(gen, vocab, batch, max_len, cls_id, sep_id, num_labels):
    ids = torch.zeros(batch, max_len, dtype=torch.int64)
    mask = torch.zeros(batch, max_len, dtype=torch.int64)
    for row in range(batch):
        length = int(torch.randint(max_len // 2, max_len + 1, (1,), generator=gen))
        body = torch.randint(5, vocab, (length - 2,), generator=gen)
        ids[row, :length] = torch.cat([torch.tensor([cls_id]), body, torch.tensor([sep_id])])
        mask[row, :length] = 1
    labels = torch.randint(0, num_labels, (batch,), generator=gen)
    return ids, mask, labels


def no_dropout(model_dir):
    config = AutoConfig.from_pretrained(model_dir)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "pooler_dropout"):
        if hasattr(config, key):
            setattr(config, key, 0.0)
    for key in ("classifier_dropout", "cls_dropout"):
        setattr(config, key, 0.0)
    return config


def record(name, model_dir, num_labels, lr, batch, max_len, cls_id, sep_id):
    torch.manual_seed(1234)
    weight_decay = WEIGHT_DECAY.get(name, FIXTURE_WEIGHT_DECAY)
    config = no_dropout(model_dir)
    config.num_labels = num_labels
    model, loading = AutoModelForSequenceClassification.from_pretrained(
        model_dir, config=config, output_loading_info=True
    )
    # The eager attention is transformers' reference path; dropout is 0 in every module.
    model.eval()
    base = model.base_model_prefix + "."
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # What transformers initialised because the checkpoint lacks it (MiniLM's classifier): stored so
    # that both sides start from the same weights. The checkpoint's own weights are never copied.
    missing = set(loading["missing_keys"])
    init = {"init." + (k[len(base):] if k.startswith(base) else k): v.contiguous() for k, v in state.items() if k in missing}

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if takes_weight_decay(n)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if not takes_weight_decay(n)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    warmup = math.ceil(WARMUP_RATIO * UPDATES)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, UPDATES)

    gen = torch.Generator().manual_seed(99)
    vocab = config.vocab_size
    batches = [random_batch(gen, vocab, batch, max_len, cls_id, sep_id, num_labels) for _ in range(UPDATES + 1)]
    losses, logits_all, norms, lrs = [], [], [], []
    for ids, mask, labels in batches[:UPDATES]:
        lrs.append(optimizer.param_groups[0]["lr"])
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in params], GRAD_CLIP)
        optimizer.step()
        schedule.step()
        losses.append(out.loss.item())
        logits_all.append(out.logits.detach())
        norms.append(norm.item())
    ids, mask, labels = batches[UPDATES]
    with torch.no_grad():
        probe = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), labels=labels)

    stack = lambda i: torch.stack([b[i] for b in batches])
    tensors = {
        "input_ids": stack(0).contiguous(),
        "attention_mask": stack(1).contiguous(),
        "labels": stack(2).contiguous(),
        "loss": torch.tensor(losses, dtype=torch.float32),
        "logits": torch.stack(logits_all).contiguous(),
        "grad_norm": torch.tensor(norms, dtype=torch.float32),
        "lr": torch.tensor(lrs, dtype=torch.float64),
        "probe_loss": probe.loss.detach().reshape(1),
        "probe_logits": probe.logits.detach().contiguous(),
        **init,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / f"{name}.safetensors"))
    settings = {
        "updates": UPDATES,
        "num_labels": num_labels,
        "lr": lr,
        "warmup_ratio": WARMUP_RATIO,
        "warmup_steps": warmup,
        "weight_decay": weight_decay,
        "grad_clip": GRAD_CLIP,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    (OUT / f"{name}.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"{name}: loss {losses[0]:.5f} -> {losses[-1]:.5f}, probe {probe.loss.item():.5f}, "
          f"grad norms {min(norms):.3f}..{max(norms):.3f}")


def main():
    torch.set_num_threads(1)
    for case in CASES:
        record(*case)
    models = Path(os.environ.get("SIFT_MODEL_PATH", ROOT.parent / "shared" / "models"))
    minilm = models / "all-MiniLM-L6-v2"
    if minilm.is_dir():
        record(MINILM[0], minilm, *MINILM[2:])
    else:
        print(f"{minilm}: not found; keeping the existing minilm trajectory", file=sys.stderr)


if __name__ == "__main__":
    main()

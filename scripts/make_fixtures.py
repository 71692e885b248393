#!/usr/bin/env python3
"""Generate the reference fixtures under tests/fixtures/.

Creates tiny random-weight checkpoints (BERT, DeBERTa v1, DeBERTa v2/v3) with
tiny tokenizers trained here, and stores Hugging Face transformers' outputs
(tokenization, hidden states, logits, loss, gradients, SiFT P1 perturbation)
so the Rust/Candle code can be checked against them.

Run from the repository root with the fixture virtualenv:

    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/make_fixtures.py

The real all-MiniLM-L6-v2 checkpoint is read from $SIFT_MODEL_PATH
(default: ../shared/models relative to the repository root); its weights are
never copied, only its outputs on the fixture sentences are stored.

Deterministic: fixed seeds, one torch thread, outputs fully rewritten on each run.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import hashlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import transformers
import tokenizers
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
import safetensors
import numpy
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizer,
    BertTokenizerFast,
    DebertaConfig,
    DebertaForSequenceClassification,
    DebertaModel,
    DebertaTokenizer,
    DebertaTokenizerFast,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DebertaV2Model,
    DebertaV2Tokenizer,
    DebertaV2TokenizerFast,
)

transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
MODELS = FIX / "models"
EXPECTED = FIX / "expected"

MAX_LEN = 128
MAX_LEN_SHORT = 16
MODEL_MAX_LENGTH = 64  # = max_position_embeddings of the tiny models

# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

# One per line in sentences.txt. Characters in UNSEEN never occur in the
# tokenizer training corpus, so they exercise the unknown-token paths.
SENTENCES = [
    "Hello world!",
    "The café on 5th Avenue opens at 7:30 a.m. – and closes by noon.",
    "She wrote â€¦ and then nothing else happened ✓",
    "In 2023, THE quick brown fox jumped over 13 lazy dogs; nobody knew why!",
    "Although the committee read more than 250 proposals in the spring, it decided, after a "
    "long debate, to wait for the new chair – Dr. Amélie Dubois.",
    "Don't panic: it's only a test (version 2.0.1) of the 東京 tokenizer.",
]
UNSEEN = ["✓", "東", "京"]

GENERIC = [
    "The weather was pleasant and the children played in the park.",
    "A small dog barked at the mail carrier every morning.",
    "He bought three apples, two oranges and a loaf of bread.",
    "The meeting has been moved to Thursday afternoon.",
    "Please send the report before the end of the week.",
    "Our team won the match by a narrow margin.",
    "The museum opens at nine and closes at five.",
    "She read the book in a single evening.",
    "Scientists found water on a distant planet.",
    "The train was late because of heavy snow.",
    "I think the movie was better than the book.",
    "They planted tomatoes, beans and peppers in the garden.",
    "The price of coffee rose by 12 percent last year.",
    "We walked along the river until the sun went down.",
    "The new phone has a larger screen and a faster chip.",
    "My grandmother makes the best soup in town.",
    "The students asked many questions after the lecture.",
    "It rained all day, so we stayed inside and played cards.",
    "The company hired 40 new engineers this spring.",
    "He forgot his keys at the office again.",
    "The recipe calls for two cups of flour and one egg.",
    "Traffic on the bridge was slow during the morning rush.",
    "She plays the piano and the violin.",
    "The library will be closed on Monday for repairs.",
    "A good night's sleep helps you think clearly.",
    "The river flooded the fields after the storm.",
    "Their flight to Paris was cancelled at the last minute.",
    "The teacher explained the problem with a simple drawing.",
    "Fresh bread smells wonderful in the morning.",
    "The old house at the end of the street is for sale.",
    "He runs five kilometres every Saturday.",
    "The committee will announce its decision next month.",
    "Nobody expected the game to end in a draw.",
    "The cat slept on the warm windowsill all afternoon.",
    "Why did the chicken cross the road?",
    "The results were surprising, to say the least.",
    "Please turn off the lights when you leave the room.",
    "The restaurant serves French and Italian dishes.",
    "A café in the old town sells the best croissants.",
    "The debate went on for hours without a clear winner.",
    "Version 3.1 of the software fixed several bugs.",
    "Dr. Smith will see you at 10:15 tomorrow.",
    "It's not what you said, it's how you said it.",
    "The children built a sandcastle on the beach.",
    "Prices fell sharply after the announcement.",
    "The quick brown fox jumps over the lazy dog.",
    "Every proposal must be sent before the deadline.",
    "The chair of the committee opened the session.",
    "We need more time to finish the project.",
    "The garden looks beautiful in the spring.",
    "Don't forget to bring an umbrella.",
    "The concert ended late at night.",
]


def training_corpus():
    lines = []
    for s in SENTENCES + GENERIC:
        for ch in UNSEEN:
            s = s.replace(ch, "")
        lines.append(s)
    return lines


# --------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------

def train_wordpiece(work: Path) -> Path:
    """BERT WordPiece vocab, lowercase. [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4.

    The `tokenizers` WordPiece trainer is not deterministic (tie-breaking follows
    a HashMap order), so the vocab is built here: BERT normalisation and
    pre-tokenisation from `tokenizers`, then BPE-style merges on words whose
    non-initial symbols carry "##", ties broken by the smallest pair.
    """
    from collections import Counter
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = BertPreTokenizer()
    word_freq = Counter()
    for line in training_corpus():
        for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)):
            word_freq[w] += 1
    words = {w: [w[0]] + ["##" + c for c in w[1:]] for w in word_freq}
    sym_freq = Counter()
    for w, syms in words.items():
        for sy in syms:
            sym_freq[sy] += word_freq[w]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted(sym_freq, key=lambda sy: (-sym_freq[sy], sy))
    seen = set(vocab)
    target = 450
    while len(vocab) < target:
        pairs = Counter()
        for w, syms in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += word_freq[w]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merged = a + b[2:]
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
        if merged not in seen:
            seen.add(merged)
            vocab.append(merged)
    d = work / "wordpiece"
    d.mkdir()
    (d / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    return d / "vocab.txt"


def train_bpe(work: Path):
    """GPT-2 byte-level BPE in the layout of microsoft/deberta-base:
    [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, ..., [MASK] = last id."""
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(
        training_corpus(),
        vocab_size=550,
        min_frequency=2,
        special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
        show_progress=False,
    )
    d = work / "bpe"
    d.mkdir()
    tok.save_model(str(d))
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["[PAD]"] == 0 and vocab["[CLS]"] == 1 and vocab["[SEP]"] == 2 and vocab["[UNK]"] == 3
    vocab["[MASK]"] = len(vocab)
    ordered = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    assert list(ordered.values()) == list(range(len(ordered)))
    (d / "vocab.json").write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")
    return d / "vocab.json", d / "merges.txt"


def train_spm(work: Path) -> Path:
    """SentencePiece unigram in the layout of DeBERTa v3's spm.model:
    [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3; [MASK] is not a piece (added token)."""
    d = work / "spm"
    d.mkdir()
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_corpus()),
        model_writer=buf,
        model_type="unigram",
        vocab_size=450,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0, pad_piece="[PAD]",
        bos_id=1, bos_piece="[CLS]",
        eos_id=2, eos_piece="[SEP]",
        unk_id=3, unk_piece="[UNK]",
        byte_fallback=False,
        split_digits=False,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    # The trainer spec records model_prefix (a temp path when given); keep the proto path-free.
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    proto.trainer_spec.ClearField("model_prefix")
    (d / "spm.model").write_bytes(proto.SerializeToString())
    return d / "spm.model"


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def encode(tok, max_length):
    enc = tok(
        SENTENCES,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
        return_token_type_ids=True,
        return_attention_mask=True,
    )
    return {k: enc[k].to(torch.int64).contiguous() for k in ("input_ids", "attention_mask", "token_type_ids")}


SURPRISES = []


def check_slow_fast(name, slow, fast):
    """Compare slow and fast tokenizers on the fixture sentences and the corpus."""
    texts = SENTENCES + training_corpus()
    bad = []
    for t in texts:
        a = slow(t, truncation=True, max_length=MAX_LEN)
        b = fast(t, truncation=True, max_length=MAX_LEN)
        if a["input_ids"] != b["input_ids"]:
            bad.append((t, a["input_ids"], b["input_ids"]))
    for ml in (MAX_LEN, MAX_LEN_SHORT):
        ea, eb = encode(slow, ml), encode(fast, ml)
        for k in ea:
            if not torch.equal(ea[k], eb[k]):
                bad.append((f"batch max_length={ml} {k}", None, None))
    if bad:
        for t, a, b in bad:
            msg = f"{name}: slow/fast disagree on {t!r}: slow={a} fast={b}"
            print("SURPRISE", msg, file=sys.stderr)
            SURPRISES.append(msg)
    else:
        print(f"  {name}: slow and fast tokenizers agree on {len(texts)} texts")


def randomize_(model, seed):
    """Random init plus non-trivial biases / LayerNorm affines (HF inits them to 0 / 1)."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                if "LayerNorm" in n and n.endswith(("weight", "gamma")):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))


def tiny(cfg_cls, vocab_size, **kw):
    base = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act="gelu",
        initializer_range=0.1,
    )
    base.update(kw)
    return cfg_cls(**base)


def base_of(model):
    for attr in ("bert", "deberta"):
        if hasattr(model, attr):
            return getattr(model, attr)
    return model


def t_contig(d):
    return {k: v.detach().contiguous().clone() for k, v in d.items()}


# --------------------------------------------------------------------------
# Model fixtures
# --------------------------------------------------------------------------

def build_model(spec, vocab_size):
    torch.manual_seed(spec["seed"])
    cfg = tiny(spec["config_cls"], vocab_size, **spec["config"])
    model = spec["model_cls"](cfg)
    randomize_(model, spec["seed"])
    model.eval()
    return model


def run_fixture(spec, tok_slow, tok_fast, out_dir: Path):
    name = spec["name"]
    print(f"[{name}]")
    model = build_model(spec, len(tok_slow))
    out_dir.mkdir(parents=True)

    # ---- save checkpoint
    if spec.get("legacy_bin"):
        sd = {}
        for k, v in model.state_dict().items():
            if "LayerNorm." in k:
                k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            sd[k] = v.detach().clone().contiguous()
        model.config.save_pretrained(out_dir)
        torch.save(sd, out_dir / "pytorch_model.bin")
    else:
        model.save_pretrained(out_dir, safe_serialization=True)

    # ---- save tokenizer
    saver = tok_fast if spec["tokenizer_json"] else tok_slow
    saver.save_pretrained(out_dir)
    if not spec["tokenizer_json"]:
        tj = out_dir / "tokenizer.json"
        if tj.exists():
            tj.unlink()
    assert (out_dir / "tokenizer.json").exists() == spec["tokenizer_json"]

    # ---- tokenizer as the Rust side will see it: load back from the dir
    tok_cls = spec["fast_cls"] if spec["tokenizer_json"] else spec["slow_cls"]
    tok = tok_cls.from_pretrained(out_dir)
    check_slow_fast(name, spec["slow_cls"].from_pretrained(out_dir), spec["fast_cls"].from_pretrained(out_dir))

    enc = encode(tok, MAX_LEN)
    enc16 = encode(tok, MAX_LEN_SHORT)
    N, T = enc["input_ids"].shape
    assert T <= 64, f"{name}: padded length {T} exceeds max_position_embeddings"
    assert enc16["input_ids"].shape[1] == MAX_LEN_SHORT
    sep = tok.sep_token_id
    for row, m in zip(enc16["input_ids"], enc16["attention_mask"]):
        assert row[int(m.sum()) - 1] == sep

    out = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc["token_type_ids"],
        "input_ids_max16": enc16["input_ids"],
        "attention_mask_max16": enc16["attention_mask"],
    }
    inputs = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])

    base = base_of(model)
    with torch.no_grad():
        hs = base(**inputs).last_hidden_state
    out["last_hidden_state"] = hs

    # reload check: the saved dir reproduces the in-memory model exactly
    reloaded = spec["reload_cls"].from_pretrained(out_dir).eval()
    with torch.no_grad():
        hs2 = base_of(reloaded)(**inputs).last_hidden_state
    assert torch.equal(hs, hs2), f"{name}: reloaded checkpoint differs"

    grad_names = []
    if spec.get("labels") is not None:
        H = model.config.hidden_size
        labels = torch.tensor(spec["labels"], dtype=torch.int64)
        assert labels.shape[0] == N
        out["labels"] = labels

        params = dict(model.named_parameters())
        grad_names = spec["grad_params"]
        for g in grad_names:
            assert g in params, f"{name}: no parameter {g}"

        model.zero_grad(set_to_none=True)
        logits = model(**inputs).logits
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            hf_loss = model(**inputs, labels=labels).loss
        assert torch.allclose(loss, hf_loss, atol=1e-6), (loss, hf_loss)
        loss.backward()
        out["logits"] = logits
        out["loss"] = loss.reshape(())
        for g in grad_names:
            out[f"grad.{g}"] = params[g].grad
        model.zero_grad(set_to_none=True)

        # ---- SiFT P1: pre-hook on embeddings.LayerNorm: s -> LN0(s) + delta
        gen = torch.Generator().manual_seed(spec["seed"] + 1000)
        delta = (torch.randn(N, T, H, generator=gen) * 0.1).requires_grad_(True)

        def pre_hook(_module, args):
            s = args[0]
            return (F.layer_norm(s, (H,), eps=1e-7) + delta,) + tuple(args[1:])

        h = base.embeddings.LayerNorm.register_forward_pre_hook(pre_hook)
        try:
            p1_logits = model(**inputs).logits
        finally:
            h.remove()
        p1_loss = F.cross_entropy(p1_logits, labels)
        (g_delta,) = torch.autograd.grad(p1_loss, delta)
        out["p1_delta"] = delta
        out["p1_logits"] = p1_logits
        out["p1_loss"] = p1_loss.reshape(())
        out["grad.p1_delta"] = g_delta
        assert not torch.equal(p1_logits, logits)
        assert g_delta.abs().sum() > 0

    for k, v in out.items():
        assert v.dtype in (torch.int64, torch.float32), (k, v.dtype)
    for g in grad_names:
        assert out[f"grad.{g}"].abs().sum() > 0, f"{name}: zero gradient for {g}"
    out = t_contig(out)
    save_file(out, str(EXPECTED / f"{name}.safetensors"))
    return out, grad_names


def run_minilm(model_root: Path):
    d = model_root / "all-MiniLM-L6-v2"
    if not (d / "config.json").exists():
        print(f"WARNING: {d} not found (set SIFT_MODEL_PATH); minilm.safetensors not regenerated", file=sys.stderr)
        return None
    print("[minilm]")
    tok = BertTokenizerFast.from_pretrained(d)
    enc = encode(tok, MAX_LEN)
    lengths = enc["attention_mask"].sum(1)
    assert enc["input_ids"].shape[1] == int(lengths.max()) < MAX_LEN, "padding to longest not honoured"
    model = BertModel.from_pretrained(d, add_pooling_layer=False).eval()
    with torch.no_grad():
        hs = model(**enc).last_hidden_state
    out = t_contig({
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc["token_type_ids"],
        "last_hidden_state": hs,
    })
    save_file(out, str(EXPECTED / "minilm.safetensors"))
    return out


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------

def dtype_name(t):
    return {torch.int64: "I64", torch.float32: "F32"}[t.dtype]


def write_readme(results, minilm, specs, sizes):
    L = []
    w = L.append
    w("# Reference fixtures (generated)")
    w("")
    w("Generated by `scripts/make_fixtures.py`; **do not edit by hand** (this README is generated too).")
    w("Regenerate from the repository root:")
    w("")
    w("```sh")
    w("python3 -m venv .venv")
    w(".venv/bin/pip install -r scripts/requirements-fixtures.txt")
    w("SIFT_MODEL_PATH=../shared/models .venv/bin/python scripts/make_fixtures.py")
    w("```")
    w("")
    w("The script is deterministic (fixed seeds, one torch thread): two runs give byte-identical files.")
    w("The MiniLM part needs `$SIFT_MODEL_PATH/all-MiniLM-L6-v2` (default `../shared/models`); when it is")
    w("missing the script keeps the existing `expected/minilm.safetensors`.")
    w("")
    w("Versions used: " + ", ".join([
        f"python {sys.version.split()[0]}",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
        f"tokenizers {tokenizers.__version__}",
        f"sentencepiece {spm.__version__}",
        f"safetensors {safetensors.__version__}",
        f"numpy {numpy.__version__}",
    ]) + ".")
    w("")
    w("## Inputs")
    w("")
    w("- `sentences.txt`: the fixture sentences, one per line (split on `\\n` only, trailing newline after the")
    w("  last). Row *i* of every `[N, ...]` tensor is line *i*. They contain mixed case, digits, punctuation,")
    w("  `é`, `–`, the mojibake `â€¦`, and `✓ 東 京`, which never occur in the tokenizer training corpus")
    w("  (unknown-token paths). Sentence 5 is the long one (truncated at max_length 16).")
    w("")
    w("## Models (`models/<name>/`)")
    w("")
    w("All random-weight, float32: hidden 32, 2 layers, 4 heads, intermediate 64, max_position_embeddings 64,")
    w("`hidden_act` gelu, `initializer_range` 0.1; every 1-D parameter (biases, LayerNorm affines, DeBERTa")
    w("`q_bias`/`v_bias`) is then overwritten with random values (LayerNorm weights 1 + 0.1·N(0,1), others")
    w("0.1·N(0,1)) so that no tensor is all-zero or all-one. `vocab_size` = tokenizer length.")
    w("")
    w("| name | class | checkpoint | tokenizer files | notes |")
    w("| --- | --- | --- | --- | --- |")
    for s in specs:
        files = sorted(p.name for p in (MODELS / s["name"]).iterdir())
        w(f"| `{s['name']}` | `{s['model_cls'].__name__}` | {s['ckpt_desc']} | {', '.join('`'+f+'`' for f in files)} | {s['notes']} |")
    w("")
    w("Tokenizers (trained by the script on `SENTENCES` + ~50 generic sentences, minus the unseen characters):")
    w("")
    w(f"- **WordPiece** (`bert-*`): lowercase, strip accents (BERT default), {sizes['wordpiece']} tokens: `[PAD]`=0, `[UNK]`=1,")
    w("  `[CLS]`=2, `[SEP]`=3, `[MASK]`=4. `bert-cls` has `tokenizer.json` (BertTokenizerFast); `bert-legacy`")
    w("  only `vocab.txt` (load with the slow BertTokenizer rules).")
    w("- **Byte-level BPE** (`deberta`, `deberta-cls`): GPT-2 format `vocab.json` + `merges.txt` as in")
    w(f"  microsoft/deberta-base, {sizes['bpe']} ids: `[PAD]`=0, `[CLS]`=1, `[SEP]`=2, `[UNK]`=3, `[MASK]` = last id; no prefix")
    w("  space. No `tokenizer.json`; reference ids come from the slow `DebertaTokenizer`.")
    w(f"- **SentencePiece unigram** (`deberta-v2`, `deberta-v3-cls`): `spm.model` with {sizes['spm']} pieces, `[PAD]`=0, `[CLS]`=1,")
    w("  `[SEP]`=2, `[UNK]`=3, nmt_nfkc normalisation, no byte fallback; `[MASK]` is not a piece but an added")
    w("  token with id = number of pieces (see `added_tokens.json`), like DeBERTa v3. No `tokenizer.json`;")
    w("  reference ids come from the slow `DebertaV2Tokenizer`.")
    w("")
    w("The script checks, for every model dir, that the slow and the fast transformers tokenizer give the same")
    w("ids on all sentences and the training corpus, and that reloading the dir with `from_pretrained`")
    w("reproduces `last_hidden_state` exactly.")
    w("")
    w("Tokenizer behaviours the sentences exercise (all confirmed identical in slow and fast transformers):")
    w("")
    w("- WordPiece: accents stripped (`café` → `cafe`); a word that cannot be split into vocab pieces becomes a")
    w("  single `[UNK]` (`✓`); CJK characters are split one per token (`東 京` → `[UNK] [UNK]`).")
    w("- Byte-level BPE: no `[UNK]` ever; `✓`/`東京`/`â€¦` become byte symbols (`Ã`, `¢`, ...).")
    w("- SentencePiece: NFKC normalisation; consecutive unknown characters collapse into **one** `[UNK]`")
    w("  (`東京` → `▁ [UNK]`).")
    w("- `config.json` of the DeBERTa models stores `pos_att_type` as a list (transformers splits the")
    w("  `\"c2p|p2c\"` string given at construction); dropout probabilities stay 0.1 but all outputs are in eval mode.")
    w("")
    w("## Expected outputs (`expected/<name>.safetensors`)")
    w("")
    w("Computed in `model.eval()` (dropout off), float32. Tokenization: the transformers tokenizer loaded from")
    w("the model dir (fast class when it has `tokenizer.json`, else slow), on all sentences, `padding=True`")
    w("(to the longest), `truncation=True`, `max_length=128` (`*_max16`: `max_length=16`, the long sentence is")
    w("truncated and keeps its final `[SEP]`). `token_type_ids` are all 0 (single sentences).")
    w("")
    w("- `last_hidden_state`: output of the base model (`model.bert` / `model.deberta` for the `*-cls` models)")
    w("  given `input_ids`, `attention_mask`, `token_type_ids`.")
    w("- `*-cls` only: `labels`; `logits` of the full classifier; `loss` = mean cross-entropy of `logits` vs")
    w("  `labels`; `grad.<param>` = d`loss`/d`param`, `<param>` named exactly as in the checkpoint.")
    w("- `*-cls` only, SiFT **P1** check: a forward pre-hook on `<base>.embeddings.LayerNorm` replaces its input")
    w("  `s` by `layer_norm(s, (H,), eps=1e-7, no affine) + p1_delta`; the model's own affine LayerNorm is then")
    w("  applied to that. `p1_delta` = `randn(N,T,H, generator seeded) * 0.1`; `p1_logits`, `p1_loss` (mean")
    w("  CE with `labels`), `grad.p1_delta` = d`p1_loss`/d`p1_delta` (covers padding positions too).")
    w("- `minilm`: the real all-MiniLM-L6-v2 (`BertModel`, no pooler) on the sentences; tokenized with")
    w("  `BertTokenizerFast.from_pretrained(dir)` and `padding=True`, overriding the fixed 128 padding baked")
    w("  into its `tokenizer.json` (rows are padded to the longest).")
    w("")
    allres = [(s["name"], results[s["name"]][0]) for s in specs]
    if minilm is not None:
        allres.append(("minilm", minilm))
    for name, out in allres:
        w(f"### `expected/{name}.safetensors`")
        w("")
        w("| tensor | dtype | shape |")
        w("| --- | --- | --- |")
        for k in sorted(out):
            w(f"| `{k}` | {dtype_name(out[k])} | {list(out[k].shape)} |")
        w("")
    w("## Files")
    w("")
    w("| file | bytes | sha256 |")
    w("| --- | --- | --- |")
    for p in sorted(FIX.rglob("*")):
        if p.is_file() and p.name != "README.md":
            w(f"| `{p.relative_to(FIX)}` | {p.stat().st_size} | `{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}` |")
    w("")
    (FIX / "README.md").write_text("\n".join(L), encoding="utf-8")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main():
    model_root = Path(os.environ.get("SIFT_MODEL_PATH", str(ROOT.parent / "shared" / "models")))

    FIX.mkdir(parents=True, exist_ok=True)
    if MODELS.exists():
        shutil.rmtree(MODELS)
    MODELS.mkdir()
    EXPECTED.mkdir(exist_ok=True)
    for p in EXPECTED.glob("*.safetensors"):
        if p.name != "minilm.safetensors":
            p.unlink()
    (FIX / "sentences.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wp_vocab = train_wordpiece(work)
        bpe_vocab, bpe_merges = train_bpe(work)
        spm_model = train_spm(work)

        special = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
        bert_slow = BertTokenizer(str(wp_vocab), do_lower_case=True, model_max_length=MODEL_MAX_LENGTH, **special)
        bert_fast = BertTokenizerFast(vocab_file=str(wp_vocab), do_lower_case=True, model_max_length=MODEL_MAX_LENGTH, **special)
        bpe_slow = DebertaTokenizer(str(bpe_vocab), str(bpe_merges), model_max_length=MODEL_MAX_LENGTH,
                                    bos_token="[CLS]", eos_token="[SEP]", **special)
        spm_slow = DebertaV2Tokenizer(str(spm_model), do_lower_case=False, split_by_punct=False,
                                      model_max_length=MODEL_MAX_LENGTH, bos_token="[CLS]", eos_token="[SEP]", **special)

        v1_attn = dict(relative_attention=True, pos_att_type="c2p|p2c", max_relative_positions=-1, type_vocab_size=0)
        v2_attn = dict(relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8, max_relative_positions=16,
                       share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0)
        L = "encoder.layer"
        specs = [
            dict(name="bert-cls", seed=1, config_cls=BertConfig, model_cls=BertForSequenceClassification,
                 reload_cls=BertForSequenceClassification, config=dict(num_labels=3, type_vocab_size=2),
                 tok=(bert_slow, bert_fast), slow_cls=BertTokenizer, fast_cls=BertTokenizerFast, tokenizer_json=True,
                 labels=[2, 0, 1, 1, 0, 2],
                 grad_params=["bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                              f"bert.{L}.0.attention.self.query.weight", f"bert.{L}.1.output.dense.weight",
                              "bert.pooler.dense.weight", "classifier.weight"],
                 ckpt_desc="`model.safetensors` (`bert.` prefix, `bert.pooler.*`, `classifier.*`)",
                 notes="num_labels 3, type_vocab_size 2"),
            dict(name="bert-legacy", seed=2, legacy_bin=True, config_cls=BertConfig, model_cls=BertModel, reload_cls=BertModel,
                 config=dict(type_vocab_size=2),
                 tok=(bert_slow, bert_fast), slow_cls=BertTokenizer, fast_cls=BertTokenizerFast, tokenizer_json=False,
                 ckpt_desc="`pytorch_model.bin` (torch.save of the state dict; no prefix; LayerNorm `gamma`/`beta`)",
                 notes="BertModel with pooler; TF-converted-style names"),
            dict(name="deberta", seed=3, config_cls=DebertaConfig, model_cls=DebertaModel, reload_cls=DebertaModel,
                 config=dict(v1_attn, position_biased_input=False),
                 tok=(bpe_slow, None), slow_cls=DebertaTokenizer, fast_cls=DebertaTokenizerFast, tokenizer_json=False,
                 ckpt_desc="`model.safetensors` (no prefix)",
                 notes="c2p\\|p2c, max_relative_positions -1 (→ 64), position_biased_input false, type_vocab_size 0"),
            dict(name="deberta-cls", seed=4, config_cls=DebertaConfig, model_cls=DebertaForSequenceClassification,
                 reload_cls=DebertaForSequenceClassification,
                 config=dict(v1_attn, position_biased_input=True, num_labels=2),
                 tok=(bpe_slow, None), slow_cls=DebertaTokenizer, fast_cls=DebertaTokenizerFast, tokenizer_json=False,
                 labels=[1, 0, 0, 1, 1, 0],
                 grad_params=["deberta.embeddings.word_embeddings.weight", "deberta.embeddings.LayerNorm.weight",
                              f"deberta.{L}.0.attention.self.in_proj.weight", f"deberta.{L}.1.output.dense.weight",
                              "pooler.dense.weight", "classifier.weight", "deberta.encoder.rel_embeddings.weight",
                              f"deberta.{L}.0.attention.self.pos_proj.weight", f"deberta.{L}.0.attention.self.q_bias"],
                 ckpt_desc="`model.safetensors` (`deberta.` prefix, `pooler.*`, `classifier.*`)",
                 notes="as `deberta` but position_biased_input true; num_labels 2; pooler defaults"),
            dict(name="deberta-v2", seed=5, config_cls=DebertaV2Config, model_cls=DebertaV2Model, reload_cls=DebertaV2Model,
                 config=dict(v2_attn),
                 tok=(spm_slow, None), slow_cls=DebertaV2Tokenizer, fast_cls=DebertaV2TokenizerFast, tokenizer_json=False,
                 ckpt_desc="`model.safetensors` (no prefix)",
                 notes="p2c,c2p; position_buckets 8; max_relative_positions 16; share_att_key; norm_rel_ebd layer_norm"),
            dict(name="deberta-v3-cls", seed=6, config_cls=DebertaV2Config, model_cls=DebertaV2ForSequenceClassification,
                 reload_cls=DebertaV2ForSequenceClassification,
                 config=dict(v2_attn, embedding_size=24, num_labels=3),
                 tok=(spm_slow, None), slow_cls=DebertaV2Tokenizer, fast_cls=DebertaV2TokenizerFast, tokenizer_json=False,
                 labels=[0, 2, 1, 0, 1, 2],
                 grad_params=["deberta.embeddings.word_embeddings.weight", "deberta.embeddings.LayerNorm.weight",
                              f"deberta.{L}.0.attention.self.query_proj.weight", f"deberta.{L}.1.output.dense.weight",
                              "pooler.dense.weight", "classifier.weight", "deberta.encoder.rel_embeddings.weight"],
                 ckpt_desc="`model.safetensors` (`deberta.` prefix, `embed_proj`, `pooler.*`, `classifier.*`)",
                 notes="as `deberta-v2` + embedding_size 24 (`embeddings.embed_proj`); num_labels 3"),
        ]

        results = {}
        for s in specs:
            slow, fast = s["tok"]
            results[s["name"]] = run_fixture(s, slow, fast, MODELS / s["name"])

    minilm = run_minilm(model_root)
    if minilm is None and (EXPECTED / "minilm.safetensors").exists():
        from safetensors.torch import load_file
        minilm = load_file(str(EXPECTED / "minilm.safetensors"))
    sizes = {"wordpiece": len(bert_slow), "bpe": len(bpe_slow), "spm": spm_slow.vocab_size}
    write_readme(results, minilm, specs, sizes)

    print("\nGradients stored:")
    for s in specs:
        if results[s["name"]][1]:
            print(f"  {s['name']}: " + ", ".join(results[s["name"]][1]))
    total = 0
    print("\nFiles:")
    for p in sorted(FIX.rglob("*")):
        if p.is_file():
            size = p.stat().st_size
            total += size
            assert size <= 1024 * 1024, f"{p} is over 1 MB"
            print(f"  {size:9d}  {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}  {p.relative_to(ROOT)}")
    print(f"  {total:9d}  total")
    assert total <= 3 * 1024 * 1024, "fixtures over 3 MB"
    if SURPRISES:
        print(f"\n{len(SURPRISES)} slow/fast tokenizer disagreement(s), see above", file=sys.stderr)


if __name__ == "__main__":
    main()

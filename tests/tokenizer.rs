//! Tokenizer loading: hand-made vocabularies, the real all-MiniLM-L6-v2 (with `SIFT_MODEL_PATH`),
//! and transformers' reference ids (`tests/fixtures`, when present).
use std::fs;
use std::path::{Path, PathBuf};

use sift_tui::model::resolve::{resolve_model_in, SearchEnv};
use sift_tui::model::tokenizer::{Encoded, TextTokenizer};
use tempfile::TempDir;

/// A tiny BERT vocabulary: ids are line numbers.
const BERT_VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", ",", ".", "un", "##believ",
    "##able", "a",
];

fn bert_id(token: &str) -> u32 {
    BERT_VOCAB.iter().position(|t| *t == token).unwrap() as u32
}

fn write_vocab_txt(dir: &Path) {
    fs::write(dir.join("vocab.txt"), BERT_VOCAB.join("\n") + "\n").unwrap();
}

/// The `tokenizer.json` transformers saves for [`BERT_VOCAB`], with baked-in truncation and padding
/// (as all-MiniLM-L6-v2 ships) that the loader must replace.
fn write_bert_tokenizer_json(dir: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> =
        BERT_VOCAB.iter().enumerate().map(|(i, t)| (t.to_string(), i.into())).collect();
    let added: Vec<serde_json::Value> = BERT_VOCAB[..5]
        .iter()
        .enumerate()
        .map(|(id, t)| {
            serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                               "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 128, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    fs::write(dir.join("tokenizer.json"), json.to_string()).unwrap();
}

const SAMPLE_TEXTS: &[(&str, Option<&str>)] = &[
    ("The cats sat on the mat.", None),
    ("  THE   Cat,  unbelievable!  ", None),
    ("a cat", Some("the mats sat")),
    ("Thé cät ça", None),
    ("", None),
    ("[MASK] sat", None),
];

#[test]
fn vocab_txt_matches_tokenizer_json() {
    let from_txt = TempDir::new().unwrap();
    let from_json = TempDir::new().unwrap();
    write_vocab_txt(from_txt.path());
    write_bert_tokenizer_json(from_json.path());
    let txt = TextTokenizer::from_dir(from_txt.path(), 32).unwrap();
    let json = TextTokenizer::from_dir(from_json.path(), 32).unwrap();
    for &(text, pair) in SAMPLE_TEXTS {
        assert_eq!(txt.encode(text, pair).unwrap(), json.encode(text, pair).unwrap(), "{text:?} / {pair:?}");
    }
    assert_eq!(txt.vocab_size(), BERT_VOCAB.len());
    assert_eq!(json.vocab_size(), BERT_VOCAB.len());
    assert_eq!(txt.pad_id(), 0);
}

#[test]
fn wordpiece_ids_and_type_ids() {
    let dir = TempDir::new().unwrap();
    write_vocab_txt(dir.path());
    let tok = TextTokenizer::from_dir(dir.path(), 32).unwrap();
    let ids = |tokens: &[&str]| tokens.iter().map(|t| bert_id(t)).collect::<Vec<_>>();

    let single = tok.encode("The cats sat, unbelievable dog", None).unwrap();
    let expected = ids(&["[CLS]", "the", "cat", "##s", "sat", ",", "un", "##believ", "##able", "[UNK]", "[SEP]"]);
    assert_eq!(single.ids, expected);
    assert_eq!(single.type_ids, vec![0; expected.len()]);

    let pair = tok.encode("a cat", Some("the mat")).unwrap();
    assert_eq!(pair.ids, ids(&["[CLS]", "a", "cat", "[SEP]", "the", "mat", "[SEP]"]));
    assert_eq!(pair.type_ids, vec![0, 0, 0, 0, 1, 1, 1]);

    assert_eq!(tok.encode("[MASK] sat", None).unwrap().ids, ids(&["[CLS]", "[MASK]", "sat", "[SEP]"]));
}

#[test]
fn truncation_keeps_the_final_separator() {
    let dir = TempDir::new().unwrap();
    write_bert_tokenizer_json(dir.path());
    let tok = TextTokenizer::from_dir(dir.path(), 6).unwrap();
    assert_eq!(tok.max_len(), 6);

    let long = "the cat sat on the mat ".repeat(20);
    let single = tok.encode(&long, None).unwrap();
    assert_eq!(single.ids.len(), 6);
    assert_eq!(single.ids.first(), Some(&bert_id("[CLS]")));
    assert_eq!(single.ids.last(), Some(&bert_id("[SEP]")));

    // Longest first: the long second text loses tokens, the short first one keeps its own.
    let pair = tok.encode("cat", Some(&long)).unwrap();
    assert_eq!(pair.ids, vec![2, bert_id("cat"), 3, bert_id("the"), bert_id("cat"), 3]);
    assert_eq!(pair.type_ids, vec![0, 0, 0, 1, 1, 1]);

    // No padding, even though the tokenizer.json pads to 128.
    assert_eq!(tok.encode("cat", None).unwrap().ids, vec![2, bert_id("cat"), 3]);
}

#[test]
fn encode_batch_matches_encode() {
    let dir = TempDir::new().unwrap();
    write_vocab_txt(dir.path());
    let tok = TextTokenizer::from_dir(dir.path(), 8).unwrap();
    let batch = tok.encode_batch(SAMPLE_TEXTS).unwrap();
    let one_by_one: Vec<Encoded> = SAMPLE_TEXTS.iter().map(|&(t, p)| tok.encode(t, p).unwrap()).collect();
    assert_eq!(batch, one_by_one);
}

#[test]
fn do_lower_case_false_keeps_case() {
    let dir = TempDir::new().unwrap();
    write_vocab_txt(dir.path());
    fs::write(dir.path().join("tokenizer_config.json"), r#"{"do_lower_case": false}"#).unwrap();
    let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
    assert_eq!(tok.encode("The cat", None).unwrap().ids, vec![2, bert_id("[UNK]"), bert_id("cat"), 3]);
}

#[test]
fn tokenizer_json_is_preferred_over_vocab_txt() {
    let dir = TempDir::new().unwrap();
    // A vocab.txt that would give different ids.
    fs::write(dir.path().join("vocab.txt"), "[UNK]\n[CLS]\n[SEP]\n[PAD]\ncat\n").unwrap();
    write_bert_tokenizer_json(dir.path());
    let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
    assert_eq!(tok.source(), dir.path().join("tokenizer.json"));
    assert_eq!(tok.encode("cat", None).unwrap().ids, vec![2, bert_id("cat"), 3]);
}

/// A byte-level BPE vocabulary laid out as DeBERTa v1's ([PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3).
fn write_byte_level_bpe(dir: &Path) {
    let tokens = [
        "[PAD]", "[CLS]", "[SEP]", "[UNK]", "h", "e", "l", "o", "w", "r", "d", "Ġ", "he", "ll", "hell", "hello", "Ġw",
        "or", "Ġwor", "ld", "Ġworld", "!",
    ];
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i.into())).collect();
    fs::write(dir.join("vocab.json"), serde_json::Value::Object(vocab).to_string()).unwrap();
    let merges = "#version: 0.2\nh e\nl l\nhe ll\nhell o\nĠ w\no r\nĠw or\nl d\nĠwor ld\n";
    fs::write(dir.join("merges.txt"), merges).unwrap();
}

#[test]
fn byte_level_bpe_wraps_in_cls_and_sep() {
    let dir = TempDir::new().unwrap();
    write_byte_level_bpe(dir.path());
    let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
    assert_eq!(tok.encode("hello world!", None).unwrap().ids, vec![1, 15, 20, 21, 2]);
    let pair = tok.encode("hello", Some("world")).unwrap();
    // "world" without a leading space is not "Ġworld".
    assert_eq!(pair.ids, vec![1, 15, 2, 8, 17, 19, 2]);
    assert_eq!(pair.type_ids, vec![0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(tok.pad_id(), 0);
    // [MASK] is not in vocab.json: it is added after it, as transformers does.
    assert_eq!(tok.vocab_size(), 23);
}

#[test]
fn missing_tokenizer_lists_the_files_looked_for() {
    let dir = TempDir::new().unwrap();
    let message = TextTokenizer::from_dir(dir.path(), 16).err().unwrap().to_string();
    for name in ["tokenizer.json", "spm.model", "vocab.json", "merges.txt", "vocab.txt"] {
        assert!(message.contains(name), "{name} not in: {message}");
    }
    assert!(message.contains(&dir.path().display().to_string()), "{message}");
}

#[test]
fn corrupt_files_are_named_in_one_line() {
    for (name, content) in [("tokenizer.json", &b"{ not json"[..]), ("spm.model", &b"\xff\xff\xff"[..])] {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join(name), content).unwrap();
        let message = TextTokenizer::from_dir(dir.path(), 16).err().unwrap().to_string();
        assert!(message.contains(&dir.path().join(name).display().to_string()), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}

#[test]
fn max_len_must_leave_room_for_text() {
    let dir = TempDir::new().unwrap();
    write_vocab_txt(dir.path());
    assert!(TextTokenizer::from_dir(dir.path(), 3).is_err());
    assert!(TextTokenizer::from_dir(dir.path(), 4).is_ok());
}

#[test]
fn check_vocab_names_the_tokenizer_file() {
    let dir = TempDir::new().unwrap();
    write_vocab_txt(dir.path());
    let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
    assert!(tok.check_vocab(BERT_VOCAB.len(), dir.path()).is_ok());
    let message = tok.check_vocab(10, dir.path()).unwrap_err().to_string();
    assert!(message.contains(&dir.path().join("vocab.txt").display().to_string()), "{message}");
}

/// The real all-MiniLM-L6-v2 checkpoint on `SIFT_MODEL_PATH`.
fn minilm_dir() -> Option<PathBuf> {
    let env = SearchEnv { hf_cache: None, offline: true, ..SearchEnv::from_env() };
    if env.model_path.is_empty() {
        eprintln!("skipped: SIFT_MODEL_PATH is not set");
        return None;
    }
    match resolve_model_in("sentence-transformers/all-MiniLM-L6-v2", &env) {
        Ok(dir) => Some(dir),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn minilm_short_text_is_not_padded() {
    let Some(dir) = minilm_dir() else { return };
    let tok = TextTokenizer::from_dir(&dir, 64).unwrap();
    let encoded = tok.encode("Hello world!", None).unwrap();
    assert_eq!(encoded.ids, vec![101, 7592, 2088, 999, 102]);
    assert_eq!(encoded.type_ids, vec![0; 5]);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.vocab_size(), 30522);
    tok.check_vocab(30522, &dir).unwrap();
}

#[test]
fn minilm_long_text_is_truncated_to_max_len() {
    let Some(dir) = minilm_dir() else { return };
    let long: String = (0..300).map(|i| format!("word{i} ")).collect();
    for max_len in [16, 256] {
        let tok = TextTokenizer::from_dir(&dir, max_len).unwrap();
        let encoded = tok.encode(&long, None).unwrap();
        assert_eq!(encoded.ids.len(), max_len);
        assert_eq!(encoded.ids[0], 101);
        assert_eq!(encoded.ids.last(), Some(&102));
    }
}

/// `tests/fixtures`, generated with transformers (see its README), when present.
fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if dir.join("sentences.txt").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: no reference fixtures in {}", dir.display());
        None
    }
}

fn fixture_sentences(fixtures: &Path) -> Vec<String> {
    let text = fs::read_to_string(fixtures.join("sentences.txt")).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).split('\n').map(str::to_string).collect()
}

/// The rows of an `[N, T]` i64 tensor with the padding (`attention_mask` 0) removed.
fn unpadded_rows(expected: &safetensors::SafeTensors, ids: &str, mask: &str) -> Vec<Vec<u32>> {
    let read = |name: &str| {
        let view = expected.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::I64, "{name}");
        let values: Vec<i64> = view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
        (values, view.shape()[1])
    };
    let (ids, width) = read(ids);
    let (mask, _) = read(mask);
    ids.chunks(width)
        .zip(mask.chunks(width))
        .map(|(row, mask)| row.iter().zip(mask).filter(|(_, &m)| m == 1).map(|(&id, _)| id as u32).collect())
        .collect()
}

/// Asserts that the tokenizer of `model_dir` gives transformers' ids for every fixture sentence, at
/// max_length 128 and (when the fixture has them) 16.
fn assert_matches_transformers(fixtures: &Path, name: &str, model_dir: &Path) {
    let bytes = fs::read(fixtures.join("expected").join(format!("{name}.safetensors"))).unwrap();
    let expected = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let sentences = fixture_sentences(fixtures);
    let mut lengths = vec![(128, "input_ids", "attention_mask")];
    if expected.names().contains(&"input_ids_max16") {
        lengths.push((16, "input_ids_max16", "attention_mask_max16"));
    }
    for (max_len, ids, mask) in lengths {
        let tok = TextTokenizer::from_dir(model_dir, max_len).unwrap();
        let rows = unpadded_rows(&expected, ids, mask);
        assert_eq!(rows.len(), sentences.len());
        for (sentence, want) in sentences.iter().zip(rows) {
            let got = tok.encode(sentence, None).unwrap();
            assert_eq!(got.ids, want, "{name}, max_len {max_len}: {sentence:?}");
            assert_eq!(got.type_ids, vec![0; want.len()]);
        }
    }
}

fn assert_fixture_model(name: &str) {
    let Some(fixtures) = fixtures() else { return };
    assert_matches_transformers(&fixtures, name, &fixtures.join("models").join(name));
}

#[test]
fn fixture_bert_cls_tokenizer_json() {
    assert_fixture_model("bert-cls");
}

#[test]
fn fixture_bert_legacy_vocab_txt() {
    assert_fixture_model("bert-legacy");
}

#[test]
fn fixture_deberta_byte_level_bpe() {
    assert_fixture_model("deberta");
}

#[test]
fn fixture_deberta_cls_byte_level_bpe() {
    assert_fixture_model("deberta-cls");
}

#[test]
fn fixture_deberta_v2_spm() {
    assert_fixture_model("deberta-v2");
}

#[test]
fn fixture_deberta_v3_cls_spm() {
    assert_fixture_model("deberta-v3-cls");
}

#[test]
fn fixture_minilm() {
    let (Some(fixtures), Some(dir)) = (fixtures(), minilm_dir()) else {
        return;
    };
    assert_matches_transformers(&fixtures, "minilm", &dir);
}

#[test]
fn fixture_spm_applies_the_nfkc_charsmap() {
    let Some(fixtures) = fixtures() else { return };
    let tok = TextTokenizer::from_dir(&fixtures.join("models/deberta-v2"), 64).unwrap();
    // Full-width letters and the ellipsis are folded by nmt_nfkc before the unigram model runs.
    assert_eq!(tok.encode("Ｈｅｌｌｏ ｗｏｒｌｄ…", None).unwrap(), tok.encode("Hello world...", None).unwrap());
}

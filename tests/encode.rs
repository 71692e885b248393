//! `sift-tui encode` reproduces transformers' `last_hidden_state` and token ids, and bad model files
//! give one clear error naming the file.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use candle_core::{DType, Device};
use common::{expected, fixture_model, fixtures, max_abs_diff, shared_model};

fn encode(model: &Path, out: &Path, kernels: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .args(["encode", "--kernels", kernels, "--model"])
        .arg(model)
        .arg("--texts")
        .arg(fixtures().join("sentences.txt"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// `encode` on the fused CPU kernels, or on the portable ops that CUDA and Metal run.
fn check_encode(model: &Path, fixture: &str, tolerance: f32, kernels: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let output = encode(model, &out, kernels);
    assert!(output.status.success(), "{fixture}: {}", String::from_utf8_lossy(&output.stderr));
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let want = expected(fixture);
    for name in ["input_ids", "attention_mask"] {
        assert_eq!(got[name].dtype(), DType::I64);
        assert_eq!(got[name].to_vec2::<i64>().unwrap(), want[name].to_vec2::<i64>().unwrap(), "{fixture}: {name}");
    }
    let err = max_abs_diff(&got["last_hidden_state"], &want["last_hidden_state"]);
    println!("{fixture} ({kernels}): encode max |Δ| = {err:.2e}");
    assert!(err <= tolerance, "{fixture} ({kernels}): {err}");
}

const FAMILIES: [&str; 5] = ["bert-cls", "bert-legacy", "deberta", "deberta-v2", "deberta-v3-cls"];

#[test]
fn encode_matches_transformers_for_every_family() {
    for fixture in FAMILIES {
        check_encode(&fixture_model(fixture), fixture, 1e-4, "fused");
    }
}

#[test]
fn encode_matches_transformers_on_minilm() {
    let Some(dir) = shared_model("all-MiniLM-L6-v2") else { return };
    check_encode(&dir, "minilm", 2e-4, "fused");
}

#[test]
fn portable_path_encode_matches_transformers_for_every_family_and_minilm() {
    for fixture in FAMILIES {
        check_encode(&fixture_model(fixture), fixture, 1e-4, "portable");
    }
    let Some(dir) = shared_model("all-MiniLM-L6-v2") else { return };
    check_encode(&dir, "minilm", 2e-4, "portable");
}

/// A copy of a fixture model directory that a test may damage.
fn damaged_copy(fixture: &str, damage: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_model(fixture)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    damage(dir.path());
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(path, serde_json::to_vec(&config).unwrap()).unwrap();
}

#[test]
fn bad_model_files_give_one_clear_error() {
    let cases: Vec<(&str, tempfile::TempDir, &str)> = vec![
        (
            "missing config key",
            damaged_copy("bert-cls", |d| edit_config(d, |c| drop(c.as_object_mut().unwrap().remove("hidden_size")))),
            "config.json",
        ),
        (
            "unknown model_type",
            damaged_copy("bert-cls", |d| edit_config(d, |c| c["model_type"] = "gpt2".into())),
            "unknown model_type `gpt2`",
        ),
        (
            "truncated safetensors",
            damaged_copy("bert-cls", |d| {
                let path = d.join("model.safetensors");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "model.safetensors",
        ),
        (
            "tokenizer ids beyond the vocabulary",
            damaged_copy("bert-cls", |d| {
                // A WordPiece vocabulary with 600 more tokens than the model's embedding table.
                std::fs::remove_file(d.join("tokenizer.json")).unwrap();
                let mut vocab = std::fs::read_to_string(d.join("vocab.txt")).unwrap();
                (0..600).for_each(|i| vocab.push_str(&format!("extra{i}\n")));
                std::fs::write(d.join("vocab.txt"), vocab).unwrap();
            }),
            "vocab.txt",
        ),
        (
            "missing weights",
            damaged_copy("bert-cls", |d| std::fs::remove_file(d.join("model.safetensors")).unwrap()),
            "model.safetensors",
        ),
        (
            "missing config",
            damaged_copy("bert-cls", |d| std::fs::remove_file(d.join("config.json")).unwrap()),
            "config.json",
        ),
    ];
    for (case, dir, needle) in cases {
        let out = dir.path().join("out.safetensors");
        let output = encode(dir.path(), &out, "fused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains(needle), "{case}: `{needle}` not in: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{case}: one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        assert!(!out.exists(), "{case}: nothing written");
    }
}

fn encode_with(texts: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .args(["encode", "--model"])
        .arg(fixture_model("bert-cls"))
        .arg("--texts")
        .arg(texts)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Inputs that used to pass: an empty texts file (one empty row was written) and a `--max-len`
/// beyond the model's 64 positions (it failed inside the forward pass, naming neither).
#[test]
fn empty_input_and_too_long_max_len_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let sentences = fixtures().join("sentences.txt");
    let cases = [
        (empty.as_path(), vec![], vec!["empty.txt", "no texts"]),
        (sentences.as_path(), vec!["--max-len", "65"], vec!["--max-len = 65", "64 positions"]),
    ];
    for (texts, extra, needles) in cases {
        let output = encode_with(texts, &out, &extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
        }
        assert!(!out.exists(), "nothing written: {stderr}");
    }
    let fits = encode_with(&sentences, &out, &["--max-len", "64"]);
    assert!(fits.status.success(), "{}", String::from_utf8_lossy(&fits.stderr));
}

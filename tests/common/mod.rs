//! Helpers shared by the integration tests.
#![allow(dead_code)]
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sift_tui::model::Inputs;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture_model(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

pub fn expected(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join("expected").join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture readable")
}

/// The model inputs stored in a fixture (i64 on disk, u32 for the model).
pub fn fixture_inputs(expected: &HashMap<String, Tensor>) -> Inputs {
    let u32_of = |name: &str| expected[name].to_dtype(DType::U32).unwrap();
    Inputs {
        input_ids: u32_of("input_ids"),
        attention_mask: u32_of("attention_mask"),
        token_type_ids: u32_of("token_type_ids"),
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// The shared model directory (`SIFT_MODEL_PATH`), or `None` with a printed reason. CI sets it, so
/// there these tests never skip.
pub fn shared_model(name: &str) -> Option<PathBuf> {
    let Ok(path) = std::env::var("SIFT_MODEL_PATH") else {
        eprintln!("skipped: SIFT_MODEL_PATH is not set (CI sets it to ../shared/models)");
        return None;
    };
    let dir = std::env::split_paths(&path).map(|d| d.join(name)).find(|d| d.is_dir());
    if dir.is_none() {
        panic!("SIFT_MODEL_PATH={path} is set but has no `{name}`");
    }
    dir
}

/// A preset over the tiny BERT fixture and a synthetic table, long enough to be killed mid-way.
pub fn write_tiny_preset(dir: &Path) -> PathBuf {
    let data = dir.join("data.csv");
    let mut rows = String::from("text,label\n");
    for i in 0..64u32 {
        rows.push_str(&format!(
            "sentence number {i} is {},{}\n",
            if i.is_multiple_of(2) { "good" } else { "bad" },
            i % 2
        ));
    }
    std::fs::write(&data, rows).unwrap();
    let preset = format!(
        r#"name = "kill"
[sweep]
models = ["{model}"]
methods = ["standard"]
seeds = [1]
[source]
[source.dataset]
kind = "table"
path = "{data}"
text_column = "text"
label_column = "label"
label_names = ["neg", "pos"]
[train]
batch_size = 4
max_steps = 120
epochs = 10
max_len = 16
checkpoint_every = 5
"#,
        model = fixture_model("bert-cls").display(),
        data = data.display()
    );
    let path = dir.join("kill.toml");
    std::fs::write(&path, preset).unwrap();
    path
}

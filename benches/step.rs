//! Forward + backward of one batch (`Method::step`, no optimizer) for `standard` and `sift`, on the
//! tiny test fixture and, when `SIFT_MODEL_PATH` has it, all-MiniLM-L6-v2 (batch 8, 64 tokens).
//! `cargo bench --bench step`; the full training step with AdamW is `sift-tui bench`.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sift_tui::data::{synthetic_batch, Batch};
use sift_tui::method::{self, MethodName, MethodsConfig, Progress};
use sift_tui::model::{Classifier, Ctx, ModelFiles};
use sift_tui::rng::{self, Rng};

const METHODS: [MethodName; 2] = [MethodName::Standard, MethodName::Sift];
/// Classes of the synthetic task.
const NUM_LABELS: usize = 2;
const AT: Progress = Progress { step: 0, total_steps: 1 };

struct Setup {
    name: &'static str,
    model: Classifier,
    batch: Batch,
    rng: Rng,
}

fn setup(name: &'static str, dir: &Path, batch: usize, seq: usize) -> Setup {
    let files = ModelFiles::in_dir(dir).expect("a model directory");
    let model = Classifier::load(&files, NUM_LABELS, &Device::Cpu, DType::F32, 0).expect("loadable model");
    let mut rng = rng::stream(0, 0);
    let batch =
        synthetic_batch(&mut rng, batch, seq, model.config.vocab_size(), NUM_LABELS, &Device::Cpu).expect("a batch");
    Setup { name, model, batch, rng }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/bert-cls")
}

fn minilm() -> Option<PathBuf> {
    let path = std::env::var_os("SIFT_MODEL_PATH")?;
    std::env::split_paths(&path).map(|d| d.join("all-MiniLM-L6-v2")).find(|d| d.is_dir())
}

fn bench_setup(c: &mut Criterion, mut setup: Setup, samples: usize) {
    let mut group = c.benchmark_group(setup.name);
    group.sample_size(samples);
    for name in METHODS {
        let mut method = method::build(name, &MethodsConfig::default(), &setup.model).expect("a method");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let out = method.step(&setup.model, &setup.batch, &mut Ctx::train(&mut setup.rng), AT);
                out.expect("a step").grads
            })
        });
    }
    group.finish();
}

fn step(c: &mut Criterion) {
    bench_setup(c, setup("bert-cls-fixture", &fixture(), 8, 32), 50);
    match minilm() {
        Some(dir) => bench_setup(c, setup("all-MiniLM-L6-v2", &dir, 8, 64), 10),
        None => eprintln!("all-MiniLM-L6-v2 skipped: SIFT_MODEL_PATH is not set or lacks it"),
    }
}

criterion_group!(benches, step);
criterion_main!(benches);

//! `sift-tui bench`: training-step (or evaluation forward-pass) throughput of one method on a fixed
//! synthetic batch.
//!
//! Each step is the trainer's own update (`train::update::Updater`): the method's passes, the global
//! gradient norm, clipping to 1.0, AdamW and the method's after-update hook. The batch is drawn once from a seeded
//! generator (random ids, full attention mask, random labels), so runs are comparable across builds.
//! The result is one JSON line on stdout.
use std::time::Instant;

use anyhow::Context;
use candle_core::DType;

use super::progress::DownloadBars;
use crate::data::{synthetic_batch, Batch};
use crate::method::{self, MethodName, MethodsConfig, Progress};
use crate::model::config::ModelConfig;
use crate::model::kernels::{on_kernel_pool, use_kernels, Kernels};
use crate::model::resolve::{resolve_model_with, SearchEnv};
use crate::model::{kernel_path, select_device, Classifier, Ctx, ModelFiles, Precision};
use crate::rng::{self, Rng};
use crate::train::optim::AdamWConfig;
use crate::train::update::{Outcome, Updater};
use crate::ui::procstat;

/// The trainer's defaults for the update (`[train]` in a preset).
const LEARNING_RATE: f64 = 2e-5;
const GRAD_CLIP: f64 = 1.0;
/// Classes of the synthetic task.
const NUM_LABELS: usize = 2;

/// What one timed step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// A training update of `--method` (the trainer's own update).
    Train,
    /// A forward pass as evaluation scores a split: an inference pass (no graph), logits of the
    /// first token; `--method` only matters for SiFT, whose LN0 stays in evaluation.
    Eval,
    /// The GEMM of the fused linear layers alone, on the feed-forward block's shape
    /// ((batch · seq) × hidden by hidden × intermediate): the peak a step's FLOP rate is set against.
    Gemm,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model id (`org/name`) or checkpoint directory.
    #[arg(long)]
    model: String,
    /// standard, r3f, smart, alum, sift or freelb (default hyperparameters).
    #[arg(long, default_value = "standard")]
    method: MethodName,
    /// `train` (an update) or `eval` (a forward pass for scoring).
    #[arg(long, value_enum, default_value_t = Mode::Train)]
    mode: Mode,
    /// Examples per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Tokens per example.
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// Timed training steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first (allocator and thread-pool warm-up).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// CPU threads of the fused kernels and matmuls (default: $RAYON_NUM_THREADS, or all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// cpu, cuda (`cuda:N`) or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// `fused` CPU kernels, or the `portable` composed ops that CUDA and Metal run (on any device).
    #[arg(long, value_enum, default_value_t = Kernels::Fused)]
    kernels: Kernels,
    /// Compute precision: f32, or bf16 / f16 with f32 master weights (as `train.dtype`; half precision
    /// takes the portable kernels on the CPU).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    dtype: Precision,
    /// Seed of the synthetic batch, the head initialisation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// What `bench --mode gemm` prints.
#[derive(Debug, serde::Serialize)]
struct GemmResult {
    mode: Mode,
    m: usize,
    k: usize,
    n: usize,
    steps: usize,
    gflops: f64,
}

/// What `bench` prints.
#[derive(Debug, serde::Serialize)]
struct BenchResult {
    mode: Mode,
    method: MethodName,
    dtype: Precision,
    /// The kernels the run took (`--kernels`, or `portable` for half precision on the CPU).
    kernels: Kernels,
    batch: usize,
    seq: usize,
    steps: usize,
    samples_per_sec: f64,
    step_ms: f64,
    /// Peak resident memory of the process (VmHWM); `None` where /proc is not available.
    peak_rss_mb: Option<f64>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0 && args.seq > 0 && args.steps > 0, "--batch, --seq and --steps must be positive");
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be positive");
        super::set_thread_count(threads);
    }
    // As a run's trainer does, so that the kernels are called from a thread of their pool.
    on_kernel_pool(|| measure(args))?
}

fn measure(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = resolve_model_with(&args.model, &SearchEnv::from_env(), &mut DownloadBars::default())?;
    let files = ModelFiles::in_dir(&dir)?;
    if args.mode == Mode::Gemm {
        return gemm_peak(args, &files);
    }
    let device = select_device(&args.device)?;
    let path = kernel_path(&device, args.kernels, args.dtype);
    use_kernels(path.kernels);
    if let Some(note) = &path.note {
        eprintln!("note: {note}");
    }
    let model = Classifier::load(&files, NUM_LABELS, &device, DType::F32, args.seed)
        .with_context(|| format!("loading {}", dir.display()))?
        .with_precision(args.dtype);
    let mut rng = rng::stream(args.seed, 0);
    let batch = synthetic_batch(&mut rng, args.batch, args.seq, model.config.vocab_size(), NUM_LABELS, &device)?;

    let mut bench = StepBench::new(&model, args.method)?;
    let mut step = |rng: &mut Rng| match args.mode {
        Mode::Train => bench.step(&batch, rng),
        Mode::Eval => bench.score(&batch, rng),
        Mode::Gemm => unreachable!("`gemm_peak` times the GEMM mode"),
    };
    for _ in 0..args.warmup {
        step(&mut rng)?;
    }
    device.synchronize()?;
    let started = Instant::now();
    for _ in 0..args.steps {
        step(&mut rng)?;
    }
    device.synchronize()?;
    let seconds = started.elapsed().as_secs_f64();

    let result = BenchResult {
        mode: args.mode,
        method: args.method,
        dtype: args.dtype,
        kernels: path.kernels,
        batch: args.batch,
        seq: args.seq,
        steps: args.steps,
        samples_per_sec: (args.batch * args.steps) as f64 / seconds,
        step_ms: 1e3 * seconds / args.steps as f64,
        peak_rss_mb: procstat::peak_resident_bytes().map(|bytes| bytes as f64 / (1024.0 * 1024.0)),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// `--mode gemm`: the fused linear layers' GEMM on the model's feed-forward shape; it needs the
/// model's config only, not its weights.
fn gemm_peak(args: &BenchArgs, files: &ModelFiles) -> anyhow::Result<()> {
    let config = ModelConfig::from_file(&files.config)?;
    let common = config.common();
    let (m, k, n) = (args.batch * args.seq, common.hidden_size, common.intermediate_size);
    let gflops = crate::model::kernels::gemm_throughput(m, k, n, args.steps)? / 1e9;
    println!("{}", serde_json::to_string(&GemmResult { mode: args.mode, m, k, n, steps: args.steps, gflops })?);
    Ok(())
}

/// One training update as the trainer runs it (`train::update`), late in a long nominal schedule so
/// that ALUM runs its adversarial phase (its first half is standard fine-tuning).
struct StepBench<'a> {
    model: &'a Classifier,
    method: Box<dyn method::Method>,
    updater: Updater,
}

impl<'a> StepBench<'a> {
    const PROGRESS: Progress = Progress { step: 9_000, total_steps: 10_000 };

    fn new(model: &'a Classifier, name: MethodName) -> anyhow::Result<Self> {
        Ok(Self {
            method: method::build(name, &MethodsConfig::default(), model)?,
            updater: Updater::new(model, AdamWConfig::default(), GRAD_CLIP)?,
            model,
        })
    }

    fn step(&mut self, batch: &Batch, rng: &mut Rng) -> anyhow::Result<()> {
        let next_batch = || Ok(batch.clone());
        let outcome =
            self.updater.update(self.method.as_mut(), self.model, 1, next_batch, rng, LEARNING_RATE, Self::PROGRESS)?;
        // An f16 overflow ran the whole step and only lowered the loss scale.
        anyhow::ensure!(outcome != Outcome::NonFinite, "the loss or the gradient norm is not finite");
        Ok(())
    }

    /// The evaluation forward pass (`train::evaluate` runs the same one per batch).
    fn score(&self, batch: &Batch, rng: &mut Rng) -> anyhow::Result<()> {
        let logits = self.method.eval_logits(self.model, &batch.inputs, &mut Ctx::inference(rng))?;
        anyhow::ensure!(!logits.track_op(), "an inference pass built a graph");
        Ok(())
    }
}

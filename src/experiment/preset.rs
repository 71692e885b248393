//! Presets: a TOML file describing a sweep; every combination of its lists is one run.
use serde::{Deserialize, Serialize};

use crate::data::{LabelMap, TableSpec};
use crate::method::{MethodName, MethodsConfig};
use crate::metrics::Metric;
use crate::model::kernels::Kernels;
use crate::model::Precision;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// A short name used in run ids and the results table.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub sweep: Sweep,
    pub source: SourceConfig,
    #[serde(default)]
    pub target: Option<TargetConfig>,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub methods: MethodsConfig,
}

/// The lists whose product is the set of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    pub models: Vec<String>,
    pub methods: Vec<MethodName>,
    pub seeds: Vec<u64>,
}

/// A dataset the project can read, by name (relative to the data directory) or as a generic table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DatasetSpec {
    /// CoLA raw TSV; `split` is `in_domain_train`, `in_domain_dev` or `out_of_domain_dev`.
    Cola { split: String },
    /// Twitter hate speech `train.csv`.
    TwitterHate,
    /// UCI sentiment labelled sentences; `files` defaults to amazon, imdb and yelp.
    UciSentiment {
        #[serde(default)]
        files: Vec<String>,
    },
    /// Any CSV/TSV with a header and named text (or text-pair) and label columns.
    Table {
        /// Relative to the data directory (or absolute).
        path: String,
        #[serde(flatten)]
        table: TableSpec,
    },
}

/// Stage 1: fine-tuning on the source domain, with a dev split for model selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub dataset: DatasetSpec,
    /// Keep only the first `limit` rows (the study used the first 4,000 tweets); 0 keeps all.
    #[serde(default)]
    pub limit: usize,
    /// Stratified share of the source held out as the dev split.
    #[serde(default = "default_dev_fraction")]
    pub dev_fraction: f64,
    /// The dev metric that selects the best checkpoint: `accuracy`, `macro_f1` or `mcc`.
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// Seed of every split (source dev, target pool limit, target train/test), shared by all runs of
    /// a sweep so that every arm sees the same examples.
    #[serde(default)]
    pub split_seed: u64,
    /// Further labelled sets scored with the selected model (CoLA's in- and out-of-domain dev).
    #[serde(default)]
    pub evaluate: Vec<NamedDataset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedDataset {
    pub name: String,
    pub dataset: DatasetSpec,
}

/// Stages 2+: the target domain. Fraction 0 scores the source model; each f > 0 fine-tunes on a
/// stratified f of the pool from the stage-1 weights. Every fraction is scored on one test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub dataset: DatasetSpec,
    pub fractions: Vec<f64>,
    /// Source label → target label, always explicit: `hate-to-negative`, `identity` or a list.
    pub label_map: LabelMap,
    /// Limits the target pool (stratified), 0 keeps all; for quick presets.
    #[serde(default)]
    pub limit: usize,
    /// Epochs of the target fine-tuning stages (defaults to `train.epochs`).
    #[serde(default)]
    pub epochs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub batch_size: usize,
    /// Micro-batches per optimizer update.
    pub accumulate: usize,
    pub lr: f64,
    pub epochs: f64,
    /// Caps the updates of every stage (0: no cap), for quick runs and tests.
    pub max_steps: usize,
    pub warmup_ratio: f64,
    /// Global gradient-norm clip (0: off).
    pub grad_clip: f64,
    pub max_len: usize,
    /// Evaluate on the dev split every N updates (0: once per epoch).
    pub eval_every: usize,
    /// Write a resumable checkpoint every N updates (0: only at stage ends and on request).
    pub checkpoint_every: usize,
    pub eval_batch_size: usize,
    /// Stop the run after this many non-finite updates in a row (each one is skipped).
    pub max_bad_steps: usize,
    pub device: String,
    /// `fused` CPU kernels, or the `portable` composed ops that GPUs run (to check that path on a CPU).
    pub kernels: Kernels,
    /// The compute precision: `f32`, or `bf16` / `f16` with f32 master weights and AdamW state (f16
    /// with dynamic loss scaling). Half precision takes the portable kernels on the CPU.
    pub dtype: Precision,
    /// Batches of examples of similar length (less padding), from length-sorted windows of the
    /// shuffled order, as transformers' `group_by_length`.
    pub group_by_length: bool,
    pub optimizer: AdamWConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            accumulate: 1,
            lr: 2e-5,
            epochs: 3.0,
            max_steps: 0,
            warmup_ratio: 0.1,
            grad_clip: 1.0,
            max_len: 128,
            eval_every: 0,
            checkpoint_every: 0,
            eval_batch_size: 64,
            max_bad_steps: 5,
            device: "cpu".into(),
            kernels: Kernels::Fused,
            dtype: Precision::F32,
            group_by_length: false,
            optimizer: AdamWConfig::default(),
        }
    }
}

/// AdamW's hyperparameters (`[train.optimizer]`); the optimizer itself is the trainer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

fn default_dev_fraction() -> f64 {
    0.1
}

fn default_metric() -> Metric {
    Metric::Accuracy
}

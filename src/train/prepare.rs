//! From a preset to tokenized splits: source train/dev, extra source evaluations, and the target's
//! test split plus one training subset per fraction. Splits use the preset's `split_seed`, not the run
//! seed, so every arm and every seed of a sweep sees the same examples and one shared test set.
use anyhow::Context;

use crate::data::{self, stratified_split, Dataset, LabelMap, TableSpec};
use crate::experiment::preset::{DatasetSpec, Preset};
use crate::metrics::Split;
use crate::model::tokenizer::{Encoded, TextTokenizer};

/// Tokenized examples with their labels (in the model's label space).
#[derive(Debug, Clone)]
pub struct LabeledSet {
    pub name: String,
    pub encoded: Vec<Encoded>,
    pub labels: Vec<u32>,
}

impl LabeledSet {
    fn tokenize(name: &str, dataset: &Dataset, tokenizer: &TextTokenizer) -> anyhow::Result<Self> {
        let rows: Vec<(&str, Option<&str>)> =
            dataset.examples.iter().map(|e| (e.text.as_str(), e.pair.as_deref())).collect();
        let encoded =
            tokenizer.encode_batch(&rows).with_context(|| format!("tokenizing {}", dataset.path.display()))?;
        Ok(Self { name: name.to_string(), encoded, labels: dataset.labels() })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The target domain: one test split shared by every fraction, and a training subset per fraction > 0.
#[derive(Debug, Clone)]
pub struct TargetSets {
    pub test: LabeledSet,
    /// `(fraction, training subset)` in the preset's order, fraction 0 included with an empty set.
    pub train: Vec<(f64, LabeledSet)>,
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub num_labels: usize,
    /// The source's class names, by label id.
    pub label_names: Vec<String>,
    pub train: LabeledSet,
    pub dev: LabeledSet,
    pub evaluations: Vec<LabeledSet>,
    pub target: Option<TargetSets>,
    /// Warnings from the readers (lossily decoded lines and the like).
    pub warnings: Vec<String>,
}

pub fn prepare(preset: &Preset, tokenizer: &TextTokenizer) -> anyhow::Result<Prepared> {
    let source_cfg = &preset.source;
    let seed = source_cfg.split_seed;
    let mut source = read(&source_cfg.dataset)?;
    if source_cfg.limit > 0 {
        source = source.take_first(source_cfg.limit);
    }
    let label_names = source.label_names.clone();
    let num_labels = label_names.len();
    let mut warnings = std::mem::take(&mut source.warnings);
    let (dev_idx, train_idx) = stratified_split(&source.labels(), source_cfg.dev_fraction, seed);
    let train = LabeledSet::tokenize("source-train", &source.select(&train_idx), tokenizer)?;
    let dev = LabeledSet::tokenize(&Split::SourceDev.to_string(), &source.select(&dev_idx), tokenizer)?;

    let evaluations = source_cfg
        .evaluate
        .iter()
        .map(|named| {
            let mut dataset = read(&named.dataset)?;
            warnings.append(&mut dataset.warnings);
            LabeledSet::tokenize(&named.name, &dataset, tokenizer)
        })
        .collect::<anyhow::Result<_>>()?;

    let target = match &preset.target {
        None => None,
        Some(cfg) => {
            let mut pool = read(&cfg.dataset)?;
            warnings.append(&mut pool.warnings);
            if cfg.limit > 0 && cfg.limit < pool.len() {
                let share = cfg.limit as f64 / pool.len() as f64;
                pool = pool.select(&stratified_split(&pool.labels(), share, seed).0);
            }
            to_source_labels(&mut pool, &cfg.label_map, num_labels)?;
            Some(split_target(&pool, &cfg.fractions, seed, tokenizer)?)
        }
    };
    Ok(Prepared { num_labels, label_names, train, dev, evaluations, target, warnings })
}

/// Holds out the largest fraction's share of the pool for training; the rest is the test split. Each
/// smaller fraction trains on a stratified subset of that share, so all sizes are fractions of the pool.
fn split_target(pool: &Dataset, fractions: &[f64], seed: u64, tokenizer: &TextTokenizer) -> anyhow::Result<TargetSets> {
    let largest = fractions.iter().copied().fold(0.0, f64::max);
    let (train_idx, test_idx) = stratified_split(&pool.labels(), largest, seed);
    let train_pool = pool.select(&train_idx);
    let test = LabeledSet::tokenize(&Split::TargetTest.to_string(), &pool.select(&test_idx), tokenizer)?;
    let train = fractions
        .iter()
        .map(|&f| {
            let name = format!("target-{}", Split::Fraction(f));
            let subset = if f <= 0.0 {
                train_pool.select(&[])
            } else if f >= largest {
                train_pool.clone()
            } else {
                train_pool.select(&stratified_split(&train_pool.labels(), f / largest, seed).0)
            };
            Ok((f, LabeledSet::tokenize(&name, &subset, tokenizer)?))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(TargetSets { test, train })
}

/// Rewrites target labels into the source model's label space through the inverse of the explicit
/// map, so the stage-1 head keeps its meaning (a bijection is required).
fn to_source_labels(pool: &mut Dataset, map: &LabelMap, num_labels: usize) -> anyhow::Result<()> {
    let mut inverse = vec![None; num_labels];
    for source in 0..num_labels as u32 {
        let target = map.apply(source)? as usize;
        anyhow::ensure!(
            target < num_labels && inverse[target].is_none(),
            "label map `{map}` is not a one-to-one map of the {num_labels} source labels"
        );
        inverse[target] = Some(source);
    }
    for example in &mut pool.examples {
        example.label =
            inverse.get(example.label as usize).copied().flatten().with_context(|| {
                format!("{}: target label {} has no source label", pool.path.display(), example.label)
            })?;
    }
    Ok(())
}

fn read(spec: &DatasetSpec) -> anyhow::Result<Dataset> {
    let dir = data::data_dir();
    let dataset = match spec {
        DatasetSpec::Cola { split } => data::read_cola(dir.join("cola").join(format!("{split}.tsv")))?,
        DatasetSpec::TwitterHate => data::read_twitter_hate(dir.join(data::TWITTER_HATE_TRAIN_PATH))?,
        DatasetSpec::UciSentiment { files } if files.is_empty() => {
            data::read_uci_sentiment(dir.join(data::UCI_SENTIMENT_PATH))?
        }
        DatasetSpec::UciSentiment { files } => {
            let mut parts = files.iter().map(|f| data::read_uci_sentiment(dir.join(data::UCI_SENTIMENT_PATH).join(f)));
            let mut all = parts.next().context("no UCI files")??;
            for part in parts {
                let mut part = part?;
                all.examples.append(&mut part.examples);
                all.warnings.append(&mut part.warnings);
            }
            all
        }
        DatasetSpec::Table { path, table } => data::read_table(dir.join(path), table)?,
    };
    anyhow::ensure!(!dataset.is_empty(), "{}: no examples", dataset.path.display());
    Ok(dataset)
}

#[allow(unused)]
fn _table_spec_is_serde(_: &TableSpec) {}

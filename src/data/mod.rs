//! Dataset readers, label maps, splits and batching.
//!
//! The data directory (`SIFT_DATA_DIR`, or `data/`) holds the datasets in the layout described in
//! `data/README.md`; the `*_PATH` constants are relative to it.
mod batch;
mod error;
pub mod fetch;
mod labels;
mod readers;
mod sampler;
mod source;
mod split;

use std::path::{Path, PathBuf};

pub use batch::{collate, synthetic_batch, Batch};
pub use error::{DataError, Problem};
pub use labels::LabelMap;
pub use readers::{
    read_cola, read_table, read_twitter_hate, read_uci_sentiment, Delimiter, LabelValues, TableSpec,
    UCI_SENTIMENT_FILES,
};
pub use sampler::{EpochSampler, SAMPLER_STREAM};
pub use split::{stratified_split, SPLIT_STREAM};

/// The environment variable that points at the data directory.
pub const DATA_DIR_ENV: &str = "SIFT_DATA_DIR";
pub const COLA_TRAIN_PATH: &str = "cola/in_domain_train.tsv";
pub const COLA_DEV_PATH: &str = "cola/in_domain_dev.tsv";
pub const COLA_OUT_OF_DOMAIN_DEV_PATH: &str = "cola/out_of_domain_dev.tsv";
pub const TWITTER_HATE_TRAIN_PATH: &str = "twitter-hate/train.csv";
pub const UCI_SENTIMENT_PATH: &str = "uci-sentiment";

/// The data directory: `$SIFT_DATA_DIR`, or `data/` under the working directory.
pub fn data_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV).map_or_else(|| PathBuf::from("data"), PathBuf::from)
}

/// One labelled text, or text pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub pair: Option<String>,
    pub label: u32,
}

impl Example {
    pub fn single(text: String, label: u32) -> Self {
        Self { text, pair: None, label }
    }
}

/// The examples of one file (or directory), in file order, with the names of their classes and the
/// warnings raised while reading them.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub path: PathBuf,
    pub examples: Vec<Example>,
    pub label_names: Vec<String>,
    pub warnings: Vec<String>,
}

impl Dataset {
    pub(crate) fn new(
        name: String,
        path: &Path,
        examples: Vec<Example>,
        label_names: &[&str],
        warnings: Vec<String>,
    ) -> Self {
        Self {
            name,
            path: path.to_path_buf(),
            examples,
            label_names: label_names.iter().map(|&name| name.to_owned()).collect(),
            warnings,
        }
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    pub fn labels(&self) -> Vec<u32> {
        self.examples.iter().map(|example| example.label).collect()
    }

    /// The number of examples of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let max_label = self.examples.iter().map(|e| e.label as usize + 1).max();
        let mut counts = vec![0; max_label.unwrap_or(0).max(self.label_names.len())];
        for example in &self.examples {
            counts[example.label as usize] += 1;
        }
        counts
    }

    /// Keeps the first `n` examples (the study's source set is the first 4,000 tweets).
    pub fn take_first(mut self, n: usize) -> Self {
        self.examples.truncate(n);
        self
    }

    /// A copy holding the examples at `indices`, in that order (e.g. one side of a split).
    /// Indices past the end are skipped.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            name: self.name.clone(),
            path: self.path.clone(),
            examples: indices.iter().filter_map(|&i| self.examples.get(i).cloned()).collect(),
            label_names: self.label_names.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

//! What a sweep needs besides its preset: models and datasets. [`needs`] says where each would come
//! from without touching the network (the console's setup view shows it, and a launch refuses to
//! start offline when something is missing); [`ensure`] downloads what one run lacks, the first
//! phase of that run, with the same code as `sift-tui data fetch` and the same cache as
//! transformers.
use std::fmt;

use anyhow::bail;

use super::preset::{DatasetSpec, Preset};
use crate::data::data_dir;
use crate::data::fetch::{fetch_dataset, manual_steps, missing_files, DatasetId, FetchError, FetchOptions};
use crate::download::Progress;
use crate::model::resolve::{availability, resolve_model_with, split_revision, Availability, SearchEnv};

/// Where models and datasets are looked for and fetched from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub models: SearchEnv,
    pub data: FetchOptions,
}

impl Sources {
    /// The environment's: `SIFT_MODEL_PATH`, the Hugging Face variables, `SIFT_DATA_DIR` and the
    /// dataset URL overrides, and the offline switches.
    pub fn from_env() -> Self {
        Self { models: SearchEnv::from_env(), data: FetchOptions::from_env(data_dir()) }
    }
}

/// A model or a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Model(String),
    Dataset(DatasetId),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Model(id) => write!(f, "model {id}"),
            Self::Dataset(dataset) => write!(f, "dataset {dataset}"),
        }
    }
}

/// One thing a sweep needs, and where it would come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub item: Item,
    pub availability: Availability,
}

/// The models of the sweep and the datasets of the preset that the project can fetch (a `table`
/// dataset is the user's own file), each once, with where it would come from.
pub fn needs(preset: &Preset, sources: &Sources) -> Vec<Need> {
    let models = preset.sweep.models.iter().map(|id| model_need(id, sources));
    models.chain(datasets(preset).into_iter().map(|dataset| dataset_need(dataset, sources))).collect()
}

/// One line per item that is missing while downloads are off, or `None` when nothing is: what is
/// missing, where it was looked for, and how to get it.
pub fn offline_problems(needs: &[Need], sources: &Sources) -> Option<String> {
    let lines: Vec<String> = needs
        .iter()
        .filter(|need| need.availability == Availability::MissingOffline)
        .map(|need| match &need.item {
            Item::Model(id) => model_problem(id, &sources.models),
            Item::Dataset(dataset) => dataset_problem(*dataset, &sources.data),
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Makes the datasets of `preset` and `model` available, downloading what is missing (datasets
/// first: they are small), and returns the model's checkpoint directory. Offline, it fails with
/// [`offline_problems`] before anything else. A cancelled download is an error that downcasts to
/// [`crate::download::Cancelled`].
pub fn ensure(
    preset: &Preset,
    model: &str,
    sources: &Sources,
    progress: &mut dyn Progress,
) -> anyhow::Result<std::path::PathBuf> {
    let mut run_needs: Vec<Need> = datasets(preset).into_iter().map(|dataset| dataset_need(dataset, sources)).collect();
    run_needs.push(model_need(model, sources));
    if let Some(problems) = offline_problems(&run_needs, sources) {
        bail!("{problems}");
    }
    for need in &run_needs {
        if let (Item::Dataset(dataset), Availability::Download) = (&need.item, &need.availability) {
            match fetch_dataset(*dataset, &sources.data, progress) {
                Ok(_) => {}
                Err(FetchError::Cancelled(cancelled)) => return Err(cancelled.into()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    resolve_model_with(model, &sources.models, progress)
}

fn model_need(id: &str, sources: &Sources) -> Need {
    Need { item: Item::Model(id.to_owned()), availability: availability(id, &sources.models) }
}

fn dataset_need(dataset: DatasetId, sources: &Sources) -> Need {
    let availability = if missing_files(dataset, &sources.data.dir).is_empty() {
        Availability::Local(sources.data.dataset_dir(dataset))
    } else if sources.data.offline {
        Availability::MissingOffline
    } else {
        Availability::Download
    };
    Need { item: Item::Dataset(dataset), availability }
}

/// The fetchable datasets a preset reads, in the order of the preset, each once.
fn datasets(preset: &Preset) -> Vec<DatasetId> {
    let source = std::iter::once(&preset.source.dataset);
    let evaluations = preset.source.evaluate.iter().map(|named| &named.dataset);
    let target = preset.target.iter().map(|target| &target.dataset);
    let mut found = Vec::new();
    for spec in source.chain(evaluations).chain(target) {
        let dataset = match spec {
            DatasetSpec::Cola { .. } => DatasetId::Cola,
            DatasetSpec::TwitterHate => DatasetId::TwitterHate,
            DatasetSpec::UciSentiment { .. } => DatasetId::UciSentiment,
            DatasetSpec::Table { .. } => continue,
        };
        if !found.contains(&dataset) {
            found.push(dataset);
        }
    }
    found
}

fn model_problem(id: &str, env: &SearchEnv) -> String {
    let (repo, _) = split_revision(id);
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let path = match env.model_path.as_slice() {
        [] => "SIFT_MODEL_PATH (unset)".to_owned(),
        dirs => {
            let dirs: Vec<String> = dirs.iter().map(|dir| dir.display().to_string()).collect();
            format!("SIFT_MODEL_PATH ({})", dirs.join(":"))
        }
    };
    let cache = env.hf_cache.as_ref().map_or("unset".to_owned(), |cache| cache.display().to_string());
    format!(
        "model {id}: not on {path} nor in the Hugging Face cache ({cache}), and downloads are off (HF_HUB_OFFLINE / \
         SIFT_OFFLINE); download it once on a connected machine into that cache, or copy the checkpoint to \
         <dir>/{name} and add <dir> to SIFT_MODEL_PATH"
    )
}

fn dataset_problem(dataset: DatasetId, options: &FetchOptions) -> String {
    format!(
        "dataset {dataset}: not in {}, and downloads are off (SIFT_OFFLINE / HF_HUB_OFFLINE); run `sift-tui data \
         fetch --only {dataset} --dir {}` on a connected machine, or copy the files by hand: {}",
        options.dataset_dir(dataset).display(),
        options.dir.display(),
        manual_steps(dataset, options)
    )
}

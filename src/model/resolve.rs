//! Finding a checkpoint directory from a model id.
//!
//! `resolve_model("org/name")` looks, in order, at:
//! 1. `org/name` as a directory path;
//! 2. the directories of `SIFT_MODEL_PATH` (colon-separated): `<dir>/name`, then `<dir>/org/name`;
//! 3. the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!    `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`): the snapshot
//!    `models--org--name/snapshots/<rev>` that `refs/main` names, or else the newest one;
//! 4. with the `hub` feature and unless offline (`HF_HUB_OFFLINE` or `SIFT_OFFLINE`), a download
//!    into that cache.
//!
//! A checkpoint directory holds `config.json` and `model.safetensors` or `pytorch_model.bin`.
use std::path::{Path, PathBuf};

use anyhow::bail;

/// The weight files a checkpoint may hold, preferred first.
const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Where models are looked for: the environment, read once, so that tests can pass their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchEnv {
    /// The directories of `SIFT_MODEL_PATH`, in order.
    pub model_path: Vec<PathBuf>,
    /// The Hugging Face hub cache directory, when one can be named.
    pub hf_cache: Option<PathBuf>,
    /// Downloads are disabled.
    pub offline: bool,
}

impl SearchEnv {
    /// Reads `SIFT_MODEL_PATH`, the Hugging Face cache variables and the offline switches.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Builds the search environment from a variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let model_path = set("SIFT_MODEL_PATH")
            .map(|p| p.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        let hf_cache = set("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| set("HF_HOME").map(|home| Path::new(&home).join("hub")))
            .or_else(|| set("XDG_CACHE_HOME").map(|cache| Path::new(&cache).join("huggingface/hub")))
            .or_else(|| set("HOME").map(|home| Path::new(&home).join(".cache/huggingface/hub")));
        let is_true = |name: &str| {
            set(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        };
        let offline = is_true("HF_HUB_OFFLINE") || is_true("SIFT_OFFLINE");
        Self { model_path, hf_cache, offline }
    }
}

/// Finds the checkpoint directory of a model id (see the module docs), downloading it when
/// allowed; the error lists every place that was searched.
pub fn resolve_model(id: &str) -> anyhow::Result<PathBuf> {
    resolve_model_in(id, &SearchEnv::from_env())
}

/// [`resolve_model`] with an explicit environment.
pub fn resolve_model_in(id: &str, env: &SearchEnv) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(id);
    if as_path.is_dir() {
        return match missing_parts(as_path) {
            None => Ok(as_path.to_path_buf()),
            Some(missing) => bail!("{id}: not a checkpoint directory ({missing})"),
        };
    }
    let mut looked = Vec::new();
    for dir in search_path_candidates(id, env) {
        match missing_parts(&dir) {
            None => return Ok(dir),
            Some(missing) => looked.push(format!("{} ({missing})", dir.display())),
        }
    }
    match &env.hf_cache {
        Some(cache) => match cached_snapshot(cache, id) {
            Ok(dir) => return Ok(dir),
            Err(why) => looked.push(why),
        },
        None => looked.push("the Hugging Face cache (HF_HUB_CACHE, HF_HOME and HOME are unset)".into()),
    }
    match download(id, env) {
        Ok(dir) => Ok(dir),
        Err(why) => {
            looked.push(why);
            bail!("{}", not_found_message(id, env, &looked))
        }
    }
}

/// The weights of a checkpoint directory: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> anyhow::Result<PathBuf> {
    match WEIGHT_FILES.iter().map(|name| dir.join(name)).find(|p| p.is_file()) {
        Some(path) => Ok(path),
        None => bail!("{}: no weights (looked for {})", dir.display(), WEIGHT_FILES.join(", ")),
    }
}

/// The checkpoints on `SIFT_MODEL_PATH` and in the Hugging Face cache, as (model id, directory).
pub fn local_models() -> Vec<(String, PathBuf)> {
    local_models_in(&SearchEnv::from_env())
}

/// [`local_models`] with an explicit environment: search-path models first, in path order, then
/// cached ones; each id once (the one [`resolve_model_in`] would pick), sorted within a directory.
pub fn local_models_in(env: &SearchEnv) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut add = |id: String, dir: PathBuf| {
        if !found.iter().any(|(seen, _)| *seen == id) {
            found.push((id, dir));
        }
    };
    for root in &env.model_path {
        for name in sorted_subdirs(root) {
            let dir = root.join(&name);
            if missing_parts(&dir).is_none() {
                add(name, dir);
                continue;
            }
            // An organisation folder: `<root>/org/name`.
            for model in sorted_subdirs(&dir) {
                let model_dir = dir.join(&model);
                if missing_parts(&model_dir).is_none() {
                    add(format!("{name}/{model}"), model_dir);
                }
            }
        }
    }
    if let Some(cache) = &env.hf_cache {
        for entry in sorted_subdirs(cache) {
            let Some(id) = entry.strip_prefix("models--").map(|repo| repo.replace("--", "/")) else {
                continue;
            };
            if let Ok(dir) = cached_snapshot(cache, &id) {
                add(id, dir);
            }
        }
    }
    found
}

/// What keeps `dir` from being a checkpoint directory, or `None` when it is one.
fn missing_parts(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return Some("no such directory".into());
    }
    if !dir.join("config.json").is_file() {
        return Some("no config.json".into());
    }
    if weights_file(dir).is_err() {
        return Some(format!("no {}", WEIGHT_FILES.join(" or ")));
    }
    None
}

/// `<dir>/name` then `<dir>/org/name` for every search-path directory.
fn search_path_candidates(id: &str, env: &SearchEnv) -> Vec<PathBuf> {
    let name = id.rsplit('/').next().unwrap_or(id);
    env.model_path
        .iter()
        .flat_map(|dir| {
            let nested = (name != id).then(|| dir.join(id));
            std::iter::once(dir.join(name)).chain(nested)
        })
        .collect()
}

/// The cached snapshot of a model, or why there is none (naming the paths looked at).
fn cached_snapshot(cache: &Path, id: &str) -> Result<PathBuf, String> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let main_ref = repo.join("refs").join("main");
    if let Ok(revision) = std::fs::read_to_string(&main_ref) {
        let dir = snapshots.join(revision.trim());
        return match missing_parts(&dir) {
            None => Ok(dir),
            Some(missing) => Err(format!("{} (named by {}: {missing})", dir.display(), main_ref.display())),
        };
    }
    newest_complete_snapshot(&snapshots)
        .ok_or_else(|| format!("{} (no refs/main and no snapshot with config.json and weights)", repo.display()))
}

/// The most recently modified snapshot that is a complete checkpoint.
fn newest_complete_snapshot(snapshots: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(snapshots).ok()?;
    entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|dir| missing_parts(dir).is_none())
        .max_by_key(|dir| std::fs::metadata(dir).and_then(|m| m.modified()).ok())
}

/// The names of the sub-directories of `dir`, sorted; none when it cannot be read.
fn sorted_subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn not_found_message(id: &str, env: &SearchEnv, looked: &[String]) -> String {
    let mut message = format!("model `{id}` not found; looked in:\n");
    if env.model_path.is_empty() {
        message.push_str("  - SIFT_MODEL_PATH (not set)\n");
    }
    for place in looked {
        message.push_str(&format!("  - {place}\n"));
    }
    message.push_str(
        "To fix: put the checkpoint (config.json, model.safetensors or pytorch_model.bin, and the tokenizer \
         files) in a directory `<dir>/<name>` and add `<dir>` to SIFT_MODEL_PATH (colon-separated), pass the \
         checkpoint directory itself, or build with `--features hub` and stay online (unset HF_HUB_OFFLINE / \
         SIFT_OFFLINE) to download it into the Hugging Face cache.",
    );
    message
}

/// Downloads a model into the Hugging Face cache; the error says why it was not downloaded.
#[cfg(feature = "hub")]
fn download(id: &str, env: &SearchEnv) -> Result<PathBuf, String> {
    if env.offline {
        return Err("download from the Hugging Face Hub: skipped, offline (HF_HUB_OFFLINE / SIFT_OFFLINE)".into());
    }
    hub::download(id, env.hf_cache.as_deref()).map_err(|e| format!("download from the Hugging Face Hub: {e:#}"))
}

#[cfg(not(feature = "hub"))]
fn download(_id: &str, _env: &SearchEnv) -> Result<PathBuf, String> {
    Err("download from the Hugging Face Hub: not available, sift-tui was built without the `hub` feature".into())
}

#[cfg(feature = "hub")]
mod hub {
    use std::path::{Path, PathBuf};

    use anyhow::Context;
    use hf_hub::api::sync::{ApiBuilder, ApiRepo};

    /// Tokenizer file sets in order of preference; the first complete set is downloaded.
    const TOKENIZER_SETS: [&[&str]; 4] =
        [&["tokenizer.json"], &["spm.model"], &["vocab.json", "merges.txt"], &["vocab.txt"]];

    /// Fetches config, weights and tokenizer files; returns the snapshot directory.
    pub(super) fn download(id: &str, cache: Option<&Path>) -> anyhow::Result<PathBuf> {
        // `from_env` honours HF_ENDPOINT and the saved token; the cache is the one searched above.
        let mut builder = ApiBuilder::from_env().with_progress(false);
        if let Some(cache) = cache {
            builder = builder.with_cache_dir(cache.to_path_buf());
        }
        let repo = builder.build().context("cannot set up the hub client")?.model(id.to_string());
        let config = repo.get("config.json").with_context(|| format!("{id}: cannot fetch config.json"))?;
        first_available(&repo, super::WEIGHT_FILES.iter().map(std::slice::from_ref))
            .with_context(|| format!("{id}: no {} on the hub", super::WEIGHT_FILES.join(" or ")))?;
        first_available(&repo, TOKENIZER_SETS).with_context(|| {
            format!(
                "{id}: no tokenizer files (tokenizer.json, spm.model, vocab.json + merges.txt, vocab.txt) on the hub"
            )
        })?;
        // Optional: only some checkpoints ship it, so a failure is no error.
        repo.get("tokenizer_config.json").ok();
        config
            .parent()
            .map(Path::to_path_buf)
            .with_context(|| format!("{}: downloaded config.json has no parent directory", config.display()))
    }

    /// Downloads the first set whose files all exist; the error is the last failure.
    fn first_available<'a>(repo: &ApiRepo, sets: impl IntoIterator<Item = &'a [&'a str]>) -> anyhow::Result<()> {
        let mut last_error = None;
        for set in sets {
            match set.iter().try_for_each(|file| repo.get(file).map(drop)) {
                Ok(()) => return Ok(()),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.map_or_else(|| anyhow::anyhow!("nothing to download"), anyhow::Error::from))
    }
}

//! Finding a checkpoint directory from a model id.
//!
//! `resolve_model("org/name")` (or `org/name@revision`) looks, in order, at:
//! 1. `org/name` as a directory path;
//! 2. the directories of `SIFT_MODEL_PATH` (colon-separated): `<dir>/name`, then `<dir>/org/name`;
//! 3. the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!    `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`): the snapshot
//!    `models--org--name/snapshots/<commit>` that `refs/<revision>` names (`main` by default), or
//!    else, for `main`, the newest complete one;
//! 4. unless offline (`HF_HUB_OFFLINE` or `SIFT_OFFLINE`), a download from the Hub (`HF_ENDPOINT`)
//!    into that cache ([`super::hub`]).
//!
//! A checkpoint directory holds `config.json` and `model.safetensors` or `pytorch_model.bin`.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::download::{Cancelled, Progress};

/// The weight files a checkpoint may hold, preferred first.
pub(super) const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];
/// The Hub, when `HF_ENDPOINT` names no mirror.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where models are looked for: the environment, read once, so that tests can pass their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchEnv {
    /// The directories of `SIFT_MODEL_PATH`, in order.
    pub model_path: Vec<PathBuf>,
    /// The Hugging Face hub cache directory, when one can be named.
    pub hf_cache: Option<PathBuf>,
    /// Downloads are disabled.
    pub offline: bool,
    /// The Hub or a mirror (`HF_ENDPOINT`); empty means [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// `HF_TOKEN`, which wins over the token file.
    pub token: Option<Token>,
    /// The token file that `huggingface-cli login` writes (`HF_TOKEN_PATH`, else `$HF_HOME/token`,
    /// else `~/.cache/huggingface/token`); read only when a download needs it.
    pub token_file: Option<PathBuf>,
}

/// An access token; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

impl SearchEnv {
    /// Reads `SIFT_MODEL_PATH`, the Hugging Face cache, endpoint and token variables and the
    /// offline switches.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Builds the search environment from a variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let model_path = set("SIFT_MODEL_PATH")
            .map(|p| p.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        // `$HF_HOME`, else the XDG cache's or the home directory's `huggingface` folder.
        let hf_home = set("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| set("XDG_CACHE_HOME").map(|cache| Path::new(&cache).join("huggingface")))
            .or_else(|| set("HOME").map(|home| Path::new(&home).join(".cache/huggingface")));
        let hf_cache = set("HF_HUB_CACHE").map(PathBuf::from).or_else(|| hf_home.as_ref().map(|home| home.join("hub")));
        let is_true = |name: &str| {
            set(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        };
        let offline = is_true("HF_HUB_OFFLINE") || is_true("SIFT_OFFLINE");
        Self {
            model_path,
            hf_cache,
            offline,
            endpoint: set("HF_ENDPOINT").unwrap_or_default(),
            token: set("HF_TOKEN").map(|token| Token(token.trim().to_owned())),
            token_file: set("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| hf_home.map(|home| home.join("token"))),
        }
    }

    /// The Hub's base URL, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        match self.endpoint.trim_end_matches('/') {
            "" => DEFAULT_ENDPOINT,
            endpoint => endpoint,
        }
    }
}

/// Where a model (or, for `experiment::assets`, a dataset) would come from, without downloading
/// anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// A directory path, or a directory on `SIFT_MODEL_PATH`.
    Local(PathBuf),
    /// A snapshot in the Hugging Face cache.
    Cached(PathBuf),
    /// Not here; it will be downloaded.
    Download,
    /// Not here, and downloads are off.
    MissingOffline,
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "local {}", dir.display()),
            Self::Cached(_) => f.write_str("cached"),
            Self::Download => f.write_str("download"),
            Self::MissingOffline => f.write_str("missing (offline)"),
        }
    }
}

/// Where `id` would be found ([`resolve_model_with`] without the download).
pub fn availability(id: &str, env: &SearchEnv) -> Availability {
    match locate(id, env) {
        Ok((dir, Found::Local)) => Availability::Local(dir),
        Ok((dir, Found::Cached)) => Availability::Cached(dir),
        Err(_) if env.offline => Availability::MissingOffline,
        Err(_) => Availability::Download,
    }
}

/// Finds the checkpoint directory of a model id (see the module docs), downloading it when
/// allowed; the error lists every place that was searched.
pub fn resolve_model(id: &str) -> anyhow::Result<PathBuf> {
    resolve_model_with(id, &SearchEnv::from_env(), &mut ())
}

/// [`resolve_model`] with an explicit environment.
pub fn resolve_model_in(id: &str, env: &SearchEnv) -> anyhow::Result<PathBuf> {
    resolve_model_with(id, env, &mut ())
}

/// [`resolve_model_in`], reporting a download's progress. A cancelled download is an error that
/// downcasts to [`Cancelled`].
pub fn resolve_model_with(id: &str, env: &SearchEnv, progress: &mut dyn Progress) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(id);
    if as_path.is_dir() {
        return match missing_parts(as_path) {
            None => Ok(as_path.to_path_buf()),
            Some(missing) => bail!("{id}: not a checkpoint directory ({missing})"),
        };
    }
    let mut looked = match locate(id, env) {
        Ok((dir, _)) => return Ok(dir),
        Err(looked) => looked,
    };
    let Some(cache) = env.hf_cache.as_deref().filter(|_| !env.offline) else {
        let why = if env.offline {
            "skipped, offline (HF_HUB_OFFLINE / SIFT_OFFLINE)"
        } else {
            "no cache directory to download into"
        };
        looked.push(format!("download from the Hub ({}): {why}", env.endpoint()));
        bail!("{}", not_found_message(id, env, &looked))
    };
    let (repo, revision) = split_revision(id);
    match super::hub::download(repo, revision.unwrap_or("main"), cache, env, progress) {
        Ok(dir) => Ok(dir),
        Err(e) if e.is::<Cancelled>() => Err(e),
        Err(e) => {
            looked.push(format!("download from the Hub ({}): {}", env.endpoint(), crate::report::report(&e)));
            bail!("{}", not_found_message(id, env, &looked))
        }
    }
}

/// `org/name@revision` as the repository and the revision.
pub fn split_revision(id: &str) -> (&str, Option<&str>) {
    match id.rsplit_once('@') {
        Some((repo, revision)) if !repo.is_empty() && !revision.is_empty() => (repo, Some(revision)),
        _ => (id, None),
    }
}

/// Where a found checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Local,
    Cached,
}

/// The checkpoint directory of `id` on disk, or the places looked at.
fn locate(id: &str, env: &SearchEnv) -> Result<(PathBuf, Found), Vec<String>> {
    let as_path = Path::new(id);
    if as_path.is_dir() && missing_parts(as_path).is_none() {
        return Ok((as_path.to_path_buf(), Found::Local));
    }
    let (repo, revision) = split_revision(id);
    let mut looked = Vec::new();
    // A pinned revision only comes from the cache, where revisions are recorded.
    if revision.is_none() {
        for dir in search_path_candidates(repo, env) {
            match missing_parts(&dir) {
                None => return Ok((dir, Found::Local)),
                Some(missing) => looked.push(format!("{} ({missing})", dir.display())),
            }
        }
    }
    match &env.hf_cache {
        Some(cache) => match cached_snapshot(cache, repo, revision.unwrap_or("main")) {
            Ok(dir) => return Ok((dir, Found::Cached)),
            Err(why) => looked.push(why),
        },
        None => looked.push("the Hugging Face cache (HF_HUB_CACHE, HF_HOME and HOME are unset)".into()),
    }
    Err(looked)
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
            if let Ok(dir) = cached_snapshot(cache, &id, "main") {
                add(id, dir);
            }
        }
    }
    found
}

/// What keeps `dir` from being a checkpoint directory, or `None` when it is one.
pub(super) fn missing_parts(dir: &Path) -> Option<String> {
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

/// The cached snapshot of a model at `revision` (a branch or tag that `refs/` names, or a commit),
/// or why there is none (naming the paths looked at).
fn cached_snapshot(cache: &Path, id: &str, revision: &str) -> Result<PathBuf, String> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let named_ref = repo.join("refs").join(revision);
    if let Ok(commit) = std::fs::read_to_string(&named_ref) {
        let dir = snapshots.join(commit.trim());
        return match missing_parts(&dir) {
            None => Ok(dir),
            Some(missing) => Err(format!("{} (named by {}: {missing})", dir.display(), named_ref.display())),
        };
    }
    if revision != "main" {
        let dir = snapshots.join(revision);
        return match missing_parts(&dir) {
            None => Ok(dir),
            Some(missing) => Err(format!("{} (revision {revision}: {missing})", dir.display())),
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
         checkpoint directory itself, or stay online (unset HF_HUB_OFFLINE / SIFT_OFFLINE) to download it into \
         the Hugging Face cache.",
    );
    message
}

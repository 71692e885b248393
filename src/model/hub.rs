//! Downloading a model from the Hugging Face Hub (or the mirror `HF_ENDPOINT` names) into the
//! cache layout of Python's `huggingface_hub`, so that transformers and sift-tui share one cache:
//!
//! ```text
//! models--org--name/
//!   blobs/<etag>                 the bytes of each file
//!   snapshots/<commit>/<file>    a link to ../../blobs/<etag> (a copy where links are unavailable)
//!   refs/<revision>              the commit a branch or tag pointed at
//! ```
//!
//! Each file is streamed into `blobs/<etag>.incomplete`, renamed when all its bytes are in, and
//! only then linked into the snapshot, so an interrupted download leaves nothing that looks
//! complete; the next attempt starts that file again. Processes sharing the cache take turns on a
//! file through a lock on its `.incomplete` file. The weights come last, so a snapshot that
//! has weights has everything. The Hub's metadata (`X-Repo-Commit`, `X-Linked-Etag` or `ETag`,
//! `X-Linked-Size`) is on its first answer, before the redirect to the file store, so redirects
//! are followed here rather than by the HTTP client.
use std::fs::{self, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::resolve::{missing_parts, SearchEnv, WEIGHT_FILES};
use crate::download::{self, BodyError, Progress};

/// Tokenizer files, fetched when the repository has them (each family has a different set).
const TOKENIZER_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spm.model",
];
const MAX_REDIRECTS: usize = 5;
const INCOMPLETE_SUFFIX: &str = ".incomplete";
/// How often a process waiting for another one's download looks again (and checks for a cancel).
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Downloads `repo` at `revision` into `cache` and returns the snapshot directory.
pub(super) fn download(
    repo: &str,
    revision: &str,
    cache: &Path,
    env: &SearchEnv,
    progress: &mut dyn Progress,
) -> anyhow::Result<PathBuf> {
    let mut hub = Hub::new(repo, revision, cache, env)?;
    let config = hub.fetch("config.json", progress)?.ok_or_else(|| {
        anyhow!("{repo}: the Hub has no config.json at revision `{revision}` (HTTP 404); check the model id")
    })?;
    let snapshot = config.parent().context("a snapshot file has a parent")?.to_path_buf();
    // The rest comes from the commit config.json came from, even if the branch moves meanwhile.
    let commit = snapshot.file_name().context("a snapshot has a name")?.to_string_lossy().into_owned();
    hub.revision = commit.clone();
    for file in TOKENIZER_FILES {
        hub.fetch(file, progress)?;
    }
    let mut weights = None;
    for file in WEIGHT_FILES {
        weights = hub.fetch(file, progress)?;
        if weights.is_some() {
            break;
        }
    }
    if weights.is_none() {
        bail!("{repo}: the Hub has no {} at commit {commit}", WEIGHT_FILES.join(" or "));
    }
    if let Some(missing) = missing_parts(&snapshot) {
        bail!("{}: incomplete after the download ({missing})", snapshot.display());
    }
    if revision != commit {
        let named = hub.repo_dir.join("refs").join(revision);
        crate::atomic::write(&named, commit.as_bytes())?;
    }
    Ok(snapshot)
}

struct Hub<'a> {
    agent: ureq::Agent,
    endpoint: &'a str,
    repo: &'a str,
    /// The branch, tag or commit the files are fetched at.
    revision: String,
    repo_dir: PathBuf,
    token: Option<String>,
}

/// What the Hub says about a file on its first answer.
struct Metadata {
    commit: String,
    etag: String,
    size: Option<u64>,
}

impl<'a> Hub<'a> {
    fn new(repo: &'a str, revision: &str, cache: &Path, env: &'a SearchEnv) -> anyhow::Result<Self> {
        let parts: Vec<&str> = repo.split('/').collect();
        let valid_part = |part: &&str| !part.is_empty() && *part != "." && *part != "..";
        if parts.len() > 2 || !parts.iter().all(valid_part) {
            bail!("`{repo}` is not a Hub model id (`name` or `org/name`)");
        }
        let token = match &env.token {
            Some(token) => Some(token.0.clone()),
            // Absent or unreadable: public models need no token.
            None => env.token_file.as_deref().and_then(|path| fs::read_to_string(path).ok()),
        };
        Ok(Self {
            agent: download::agent(false),
            endpoint: env.endpoint(),
            repo,
            revision: revision.to_owned(),
            repo_dir: cache.join(format!("models--{}", repo.replace('/', "--"))),
            token: token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        })
    }

    /// Fetches `file` into the cache and returns its snapshot path; `None` when the repository
    /// has no such file (HTTP 404).
    fn fetch(&self, file: &str, progress: &mut dyn Progress) -> anyhow::Result<Option<PathBuf>> {
        let revision = self.revision.replace('/', "%2F");
        let mut url = format!("{}/{}/resolve/{revision}/{file}", self.endpoint, self.repo);
        let mut metadata = None;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(&url);
            // The token goes to the Hub only, never to the file store it redirects to.
            if let Some(token) = self.token.as_ref().filter(|_| origin(&url) == origin(self.endpoint)) {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let response = match request.call() {
                Ok(response) => response,
                Err(ureq::Error::StatusCode(404)) => return Ok(None),
                Err(ureq::Error::StatusCode(401)) => bail!(
                    "{url}: HTTP 401: `{}` is gated or private, or does not exist; log in with `huggingface-cli \
                     login` or set HF_TOKEN to a token that may read it",
                    self.repo
                ),
                Err(ureq::Error::StatusCode(403)) => bail!(
                    "{url}: HTTP 403: `{}` is gated; accept its conditions on {}/{} with the account of your \
                     token (HF_TOKEN or `huggingface-cli login`)",
                    self.repo,
                    self.endpoint,
                    self.repo
                ),
                Err(e) => bail!("{url}: {}", download::describe(&e)),
            };
            if metadata.is_none() {
                metadata = read_metadata(&response)?;
            }
            if response.status().is_redirection() {
                let location =
                    header(&response, "location").with_context(|| format!("{url}: redirect without Location"))?;
                url = redirect_target(&url, location).with_context(|| format!("{url}: cannot follow `{location}`"))?;
                continue;
            }
            let metadata = metadata.with_context(|| {
                format!(
                    "{url}: no X-Repo-Commit and ETag headers; is HF_ENDPOINT a Hugging Face Hub or a mirror of it?"
                )
            })?;
            return self.store(file, &url, metadata, response, progress).map(Some);
        }
        bail!("{url}: more than {MAX_REDIRECTS} redirects")
    }

    /// Writes the body into the blob store (unless it is there already) and links it into the
    /// snapshot of its commit.
    fn store(
        &self,
        file: &str,
        url: &str,
        metadata: Metadata,
        response: ureq::http::Response<ureq::Body>,
        progress: &mut dyn Progress,
    ) -> anyhow::Result<PathBuf> {
        let blob = self.repo_dir.join("blobs").join(&metadata.etag);
        let pointer = self.repo_dir.join("snapshots").join(&metadata.commit).join(file);
        if pointer.is_file() {
            return Ok(pointer);
        }
        if !blob.is_file() {
            // ureq gives no length for a body it decompresses.
            let size = metadata.size.or(response.body().content_length());
            let label = format!("{}/{file}", self.repo);
            download_blob(response, &blob, &label, size, progress).map_err(|e| {
                if e.is::<download::Cancelled>() {
                    e
                } else {
                    e.context(url.to_owned())
                }
            })?;
        }
        link(&blob, &pointer).with_context(|| format!("{}: cannot link the file", pointer.display()))?;
        Ok(pointer)
    }
}

/// Streams the body into `<blob>.incomplete` and renames it to `blob` when every byte is in.
///
/// Processes sharing the cache (a job array) may fetch the same file at once: the partial file's
/// lock lets one write it while the others wait and then take its blob. A failed or cancelled
/// download truncates the partial file rather than removing it, as a waiting process holds it
/// open; the next attempt reuses it.
fn download_blob(
    response: ureq::http::Response<ureq::Body>,
    blob: &Path,
    label: &str,
    size: Option<u64>,
    progress: &mut dyn Progress,
) -> anyhow::Result<()> {
    let dir = blob.parent().context("a blob has a folder")?;
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let name = blob.file_name().context("a blob has a name")?.to_string_lossy();
    let partial = dir.join(format!("{name}{INCOMPLETE_SUFFIX}"));
    let cannot = |what: &str| format!("{}: cannot {what}", partial.display());
    let mut out =
        OpenOptions::new().write(true).create(true).truncate(false).open(&partial).with_context(|| cannot("open"))?;
    loop {
        match out.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if progress.cancelled() => return Err(download::Cancelled.into()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(LOCK_POLL),
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| cannot("lock")),
        }
    }
    if blob.is_file() {
        // Another process wrote it while this one waited; this file is a new, empty one.
        let _ = fs::remove_file(&partial);
        return Ok(());
    }
    out.set_len(0).with_context(|| cannot("truncate"))?;
    let mut body = response.into_body().into_reader();
    let copied = match download::copy_body(&mut body, &mut out, label, size, u64::MAX, progress) {
        Ok(_) => out.sync_all().with_context(|| cannot("write")),
        Err(BodyError::Cancelled(cancelled)) => Err(cancelled.into()),
        Err(e) => Err(anyhow!(e)),
    };
    if copied.is_err() {
        let _ = out.set_len(0);
        return copied;
    }
    fs::rename(&partial, blob).with_context(|| format!("{}: cannot write", blob.display()))
}

/// The commit and etag of the first answer that names them.
fn read_metadata(response: &ureq::http::Response<ureq::Body>) -> anyhow::Result<Option<Metadata>> {
    let Some(commit) = header(response, "x-repo-commit") else { return Ok(None) };
    let etag = header(response, "x-linked-etag").or_else(|| header(response, "etag")).unwrap_or_default();
    // `W/"abc"` and `"abc"` name the blob `abc`.
    let etag = etag.trim_start_matches("W/").trim_matches('"');
    let safe = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !safe(commit) || !safe(etag) || etag.ends_with(INCOMPLETE_SUFFIX) {
        bail!("the Hub's answer names an unusable commit `{commit}` or ETag `{etag}`");
    }
    let size = header(response, "x-linked-size").and_then(|size| size.parse().ok());
    Ok(Some(Metadata { commit: commit.to_owned(), etag: etag.to_owned(), size }))
}

fn header<'r>(response: &'r ureq::http::Response<ureq::Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

/// An absolute `location`, or one relative to the origin of `url` (the Hub's redirects of renamed
/// repositories are `/new-org/name/resolve/…`).
fn redirect_target(url: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let path = location.strip_prefix('/')?;
    Some(format!("{}/{path}", origin(url)))
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Puts the blob at the snapshot path, replacing a dangling link of an interrupted attempt; a
/// link another process made meanwhile is as good.
fn link(blob: &Path, pointer: &Path) -> std::io::Result<()> {
    fs::create_dir_all(pointer.parent().unwrap_or(Path::new(".")))?;
    let _ = fs::remove_file(pointer);
    match place(blob, pointer) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && pointer.is_file() => Ok(()),
        placed => placed,
    }
}

/// A relative link, as Python makes it.
#[cfg(unix)]
fn place(blob: &Path, pointer: &Path) -> std::io::Result<()> {
    let name = blob.file_name().unwrap_or_default();
    std::os::unix::fs::symlink(Path::new("../../blobs").join(name), pointer)
}

/// A copy, where links need privileges.
#[cfg(not(unix))]
fn place(blob: &Path, pointer: &Path) -> std::io::Result<()> {
    fs::copy(blob, pointer).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_origin() {
        let url = "http://127.0.0.1:8/org/m/resolve/main/config.json";
        assert_eq!(redirect_target(url, "https://cdn.example/x").as_deref(), Some("https://cdn.example/x"));
        assert_eq!(
            redirect_target(url, "/new/m/resolve/main/config.json").as_deref(),
            Some("http://127.0.0.1:8/new/m/resolve/main/config.json")
        );
        assert_eq!(redirect_target(url, "relative"), None);
        assert_eq!(origin(url), "http://127.0.0.1:8");
        assert_ne!(origin("http://127.0.0.1:8080/x"), origin("http://127.0.0.1:80"));
    }
}

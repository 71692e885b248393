//! Downloading models from a Hub lookalike on 127.0.0.1 (no external network) into a temporary
//! Hugging Face cache: the layout Python shares, interrupted downloads, the weights fallback, gated
//! models, revisions and offline mode.
mod common;
mod http_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_common::{serve_repo, sha256, Reply, Server, COMMIT};
use sift_tui::download::{Cancelled, Progress, Transfer};
use sift_tui::model::resolve::{availability, resolve_model_with, Availability, SearchEnv, Token};
use sift_tui::model::tokenizer::TextTokenizer;
use sift_tui::model::ModelFiles;
use tempfile::TempDir;

const REPO: &str = "fixture/bert-cls";

/// Online, against `server`, caching into `cache`, with no local models.
fn hub_env(server: &Server, cache: &Path) -> SearchEnv {
    SearchEnv { hf_cache: Some(cache.to_path_buf()), endpoint: server.base.clone(), ..SearchEnv::default() }
}

/// Records every report; cancels once a file ending in `cancel` has started.
#[derive(Default)]
struct Recorder {
    reports: Vec<Transfer>,
    cancel: Option<&'static str>,
}

impl Progress for Recorder {
    fn report(&mut self, transfer: &Transfer) {
        self.reports.push(transfer.clone());
    }
    fn cancelled(&mut self) -> bool {
        self.cancel.is_some_and(|name| self.reports.last().is_some_and(|t| t.file.ends_with(name)))
    }
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--fixture--bert-cls")
}

#[test]
fn a_clean_download_fills_the_cache_in_the_layout_python_shares() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    let stores = serve_repo(&server, REPO, "main", &fixture);
    let cache = TempDir::new().unwrap();
    let token_file = cache.path().join("token");
    fs::write(&token_file, "hf_secret\n").unwrap();
    let env = SearchEnv { token_file: Some(token_file), ..hub_env(&server, cache.path()) };
    assert_eq!(availability(REPO, &env), Availability::Download);

    let mut recorder = Recorder::default();
    let dir = resolve_model_with(REPO, &env, &mut recorder).unwrap();

    let repo = repo_dir(cache.path());
    assert_eq!(dir, repo.join("snapshots").join(COMMIT));
    for file in ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "special_tokens_map.json"] {
        assert_eq!(fs::read(dir.join(file)).unwrap(), fs::read(fixture.join(file)).unwrap(), "{file}");
    }
    let weights = fs::read(fixture.join("model.safetensors")).unwrap();
    if cfg!(unix) {
        let blob = format!("../../blobs/{}", sha256(&weights));
        assert_eq!(fs::read_link(dir.join("model.safetensors")).unwrap(), PathBuf::from(blob));
    }
    assert_eq!(fs::read_to_string(repo.join("refs/main")).unwrap(), COMMIT);
    assert!(!tree(&repo).iter().any(|f| f.ends_with(".incomplete")), "{:?}", tree(&repo));
    // The snapshot is a usable checkpoint.
    ModelFiles::in_dir(&dir).unwrap();
    TextTokenizer::from_dir(&dir, 16).unwrap();

    // Progress: the weights' size came from the Hub, and the last report is the whole file.
    let label = format!("{REPO}/model.safetensors");
    let last = recorder.reports.iter().rev().find(|t| t.file == label).unwrap();
    assert_eq!((last.done, last.total, last.finished), (weights.len() as u64, Some(weights.len() as u64), true));
    // The token went to the Hub's routes, and the first request asked for the branch.
    let requests = server.requests();
    assert_eq!(requests[0].path, format!("/{REPO}/resolve/main/config.json"));
    assert!(requests
        .iter()
        .filter(|r| r.path.contains("/resolve/"))
        .all(|r| r.authorization.as_deref() == Some("Bearer hf_secret")));
    assert!(requests.iter().any(|r| r.path == stores[0].1));

    // Found in the cache next time: nothing more is requested.
    let asked = requests.len();
    assert_eq!(availability(REPO, &env), Availability::Cached(dir.clone()));
    assert_eq!(resolve_model_with(REPO, &env, &mut ()).unwrap(), dir);
    assert_eq!(server.requests().len(), asked);
}

#[test]
fn a_dropped_connection_leaves_no_complete_looking_file_and_a_retry_succeeds() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    let stores = serve_repo(&server, REPO, "main", &fixture);
    let weights = fs::read(fixture.join("model.safetensors")).unwrap();
    let (_, store) = stores.iter().find(|(file, _)| file == "model.safetensors").unwrap();
    server.route(store, vec![Reply::ok(weights.clone()).cut_at(weights.len() / 2), Reply::ok(weights.clone())]);
    let cache = TempDir::new().unwrap();
    let env = hub_env(&server, cache.path());

    let error = format!("{:#}", resolve_model_with(REPO, &env, &mut ()).unwrap_err());

    assert!(error.contains(store.as_str()), "{error}");
    assert_nothing_looks_complete(cache.path(), &weights);
    assert_eq!(availability(REPO, &env), Availability::Download);

    let dir = resolve_model_with(REPO, &env, &mut ()).unwrap();
    assert_eq!(fs::read(dir.join("model.safetensors")).unwrap(), weights);
}

#[test]
fn a_killed_download_is_started_again() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    serve_repo(&server, REPO, "main", &fixture);
    let weights = fs::read(fixture.join("model.safetensors")).unwrap();
    let cache = TempDir::new().unwrap();
    // What a process killed mid-file leaves: a partial blob and a snapshot without weights.
    let repo = repo_dir(cache.path());
    fs::create_dir_all(repo.join("blobs")).unwrap();
    fs::write(repo.join(format!("blobs/{}.incomplete", sha256(&weights))), &weights[..100]).unwrap();
    fs::create_dir_all(repo.join("snapshots").join(COMMIT)).unwrap();
    fs::copy(fixture.join("config.json"), repo.join("snapshots").join(COMMIT).join("config.json")).unwrap();
    let env = hub_env(&server, cache.path());
    assert_eq!(availability(REPO, &env), Availability::Download);

    let dir = resolve_model_with(REPO, &env, &mut ()).unwrap();

    assert_eq!(fs::read(dir.join("model.safetensors")).unwrap(), weights);
    assert!(!tree(&repo).iter().any(|f| f.ends_with(".incomplete")), "{:?}", tree(&repo));
}

#[test]
fn a_cancelled_download_stops_between_chunks_and_leaves_no_file() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    serve_repo(&server, REPO, "main", &fixture);
    let cache = TempDir::new().unwrap();
    let env = hub_env(&server, cache.path());
    let mut recorder = Recorder { cancel: Some("model.safetensors"), ..Recorder::default() };

    let error = resolve_model_with(REPO, &env, &mut recorder).unwrap_err();

    assert!(error.is::<Cancelled>(), "{error:#}");
    let weights = fs::read(common::fixture_model("bert-cls").join("model.safetensors")).unwrap();
    assert_nothing_looks_complete(cache.path(), &weights);
}

/// No snapshot file and no blob of the weights, and a partial file (kept for a process that may be
/// waiting on it) is empty.
fn assert_nothing_looks_complete(cache: &Path, weights: &[u8]) {
    let repo = repo_dir(cache);
    let files = tree(&repo);
    assert!(!files.iter().any(|f| f.starts_with("snapshots/") && f.ends_with("model.safetensors")), "{files:?}");
    let blob = repo.join("blobs").join(sha256(weights));
    assert!(!blob.exists(), "{files:?}");
    let partial = blob.with_extension("incomplete");
    assert!(!partial.exists() || fs::metadata(&partial).unwrap().len() == 0, "{files:?}");
}

#[test]
fn processes_sharing_the_cache_take_turns_on_a_file() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    let stores = serve_repo(&server, REPO, "main", &fixture);
    let weights = fs::read(fixture.join("model.safetensors")).unwrap();
    let (_, store) = stores.iter().find(|(file, _)| file == "model.safetensors").unwrap();
    // Slow enough that the second download starts while the first one writes.
    server.route(store, vec![Reply::ok(weights.clone()).delayed(Duration::from_millis(300))]);
    let cache = TempDir::new().unwrap();
    let env = hub_env(&server, cache.path());

    let dirs: Vec<PathBuf> = std::thread::scope(|scope| {
        let downloads: Vec<_> =
            (0..2).map(|_| scope.spawn(|| resolve_model_with(REPO, &env, &mut ()).unwrap())).collect();
        downloads.into_iter().map(|download| download.join().unwrap()).collect()
    });

    assert_eq!(dirs[0], dirs[1]);
    assert_eq!(fs::read(dirs[0].join("model.safetensors")).unwrap(), weights);
    assert!(!tree(&repo_dir(cache.path())).iter().any(|f| f.ends_with(".incomplete")));
}

#[test]
fn without_safetensors_the_weights_come_from_pytorch_model_bin() {
    let server = Server::start(100);
    serve_repo(&server, "fixture/bert-legacy", "main", &common::fixture_model("bert-legacy"));
    let cache = TempDir::new().unwrap();

    let dir = resolve_model_with("fixture/bert-legacy", &hub_env(&server, cache.path()), &mut ()).unwrap();

    assert!(dir.join("pytorch_model.bin").is_file());
    assert!(!dir.join("model.safetensors").exists());
    let paths = server.paths();
    let safetensors = paths.iter().position(|p| p.ends_with("/model.safetensors")).expect("asked for safetensors");
    let bin = paths.iter().position(|p| p.ends_with("/pytorch_model.bin")).expect("then for the .bin");
    assert!(safetensors < bin, "{paths:?}");
    ModelFiles::in_dir(&dir).unwrap();
}

#[test]
fn a_gated_model_says_to_log_in_or_set_hf_token() {
    let server = Server::start(10);
    server.route("/org/gated/resolve/main/config.json", vec![Reply::status(401)]);
    let cache = TempDir::new().unwrap();
    let env = SearchEnv { token: Some(Token("hf_wrong".into())), ..hub_env(&server, cache.path()) };

    let message = resolve_model_with("org/gated", &env, &mut ()).unwrap_err().to_string();

    assert!(message.contains("HTTP 401"), "{message}");
    assert!(message.contains("huggingface-cli login") && message.contains("HF_TOKEN"), "{message}");
    assert!(tree(cache.path()).is_empty(), "{:?}", tree(cache.path()));
}

#[test]
fn a_revision_is_fetched_recorded_and_found_again_offline() {
    let server = Server::start(100);
    serve_repo(&server, REPO, "v1", &common::fixture_model("bert-cls"));
    let cache = TempDir::new().unwrap();
    let env = hub_env(&server, cache.path());
    let id = format!("{REPO}@v1");

    let dir = resolve_model_with(&id, &env, &mut ()).unwrap();

    assert_eq!(server.paths()[0], format!("/{REPO}/resolve/v1/config.json"));
    assert_eq!(fs::read_to_string(repo_dir(cache.path()).join("refs/v1")).unwrap(), COMMIT);
    let offline = SearchEnv { offline: true, ..env };
    assert_eq!(availability(&id, &offline), Availability::Cached(dir.clone()));
    assert_eq!(resolve_model_with(&id, &offline, &mut ()).unwrap(), dir);
}

#[test]
fn offline_nothing_is_requested_and_the_error_says_so() {
    let server = Server::start(10);
    serve_repo(&server, REPO, "main", &common::fixture_model("bert-cls"));
    let cache = TempDir::new().unwrap();
    let env = SearchEnv { offline: true, ..hub_env(&server, cache.path()) };
    assert_eq!(availability(REPO, &env), Availability::MissingOffline);

    let message = resolve_model_with(REPO, &env, &mut ()).unwrap_err().to_string();

    assert!(message.contains("skipped, offline (HF_HUB_OFFLINE / SIFT_OFFLINE)"), "{message}");
    assert!(server.requests().is_empty());
    assert!(tree(cache.path()).is_empty());
}

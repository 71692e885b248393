//! A first run on a fresh machine: empty home, cache, data and model directories, the Hub and the
//! dataset mirrors imitated on 127.0.0.1. `sift-tui run presets/quick.toml` downloads the model and
//! the datasets with progress and finishes; offline, it names everything missing and exits 2
//! without a request.
mod common;
mod http_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use http_common::{serve_datasets, serve_repo, Reply, Server, COMMIT};
use tempfile::TempDir;

const MODEL: &str = "fixture/bert-cls";

/// Empty home, Hugging Face home, data, model and runs directories.
struct Fresh {
    root: TempDir,
}

impl Fresh {
    fn new() -> Self {
        let root = TempDir::new().unwrap();
        for dir in ["home", "hf", "data", "models", "runs"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        Self { root }
    }

    fn path(&self, dir: &str) -> std::path::PathBuf {
        self.root.path().join(dir)
    }

    /// `sift-tui run presets/quick.toml`, shrunk, on the fixture model, with the environment of a
    /// fresh machine pointed at `server`.
    fn run_quick(&self, server: &Server, extra_env: &[(&str, &str)]) -> Output {
        self.quick_command(server, extra_env).output().unwrap()
    }

    fn quick_command(&self, server: &Server, extra_env: &[(&str, &str)]) -> Command {
        let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/quick.toml");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sift-tui"));
        command.arg("run").arg(preset).arg("--runs-dir").arg(self.path("runs"));
        for set in [
            &format!("sweep.models=[\"{MODEL}\"]"),
            "sweep.methods=[\"standard\"]",
            "source.limit=40",
            "train.max_steps=2",
            "train.batch_size=8",
            "train.max_len=16",
            "train.eval_every=0",
        ] {
            command.args(["--set", set]);
        }
        for name in [
            "HF_HUB_CACHE",
            "XDG_CACHE_HOME",
            "HF_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_OFFLINE",
            "SIFT_OFFLINE",
            "SIFT_RUNS_DIR",
        ] {
            command.env_remove(name);
        }
        command
            .env("HOME", self.path("home"))
            .env("HF_HOME", self.path("hf"))
            .env("SIFT_DATA_DIR", self.path("data"))
            .env("SIFT_MODEL_PATH", self.path("models"))
            .env("HF_ENDPOINT", &server.base)
            .env("SIFT_FETCH_URL_TWITTER_HATE", format!("{}/twitter", server.base))
            .env("SIFT_FETCH_URL_UCI_SENTIMENT", format!("{}/uci", server.base))
            .env("RAYON_NUM_THREADS", "1")
            .envs(extra_env.iter().copied());
        command
    }
}

#[test]
fn the_quick_preset_downloads_what_it_needs_and_finishes() {
    let server = Server::start(100);
    serve_repo(&server, MODEL, "main", &common::fixture_model("bert-cls"));
    serve_datasets(&server);
    let fresh = Fresh::new();

    let output = fresh.run_quick(&server, &[]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(fresh.path("runs/quick__bert-cls__standard__s1/results.json").is_file(), "{stderr}");
    // Plain progress lines: stderr is not a terminal here.
    assert!(stderr.contains("downloading fixture/bert-cls/model.safetensors (143.6 kB)"), "{stderr}");
    assert!(stderr.contains("downloaded fixture/bert-cls/model.safetensors (143.6 kB)"), "{stderr}");
    assert!(stderr.contains("downloading twitter-hate/train_tweet.csv"), "{stderr}");
    assert!(stderr.contains("downloaded uci-sentiment/sentiment+labelled+sentences.zip"), "{stderr}");
    let snapshot = fresh.path("hf/hub/models--fixture--bert-cls/snapshots").join(COMMIT);
    assert!(snapshot.join("model.safetensors").is_file());
    assert!(fresh.path("data/twitter-hate/train.csv").is_file());
    assert!(fresh.path("data/uci-sentiment/yelp_labelled.txt").is_file());
}

#[test]
fn offline_every_missing_item_is_one_line_and_nothing_is_requested() {
    let server = Server::start(100);
    serve_repo(&server, MODEL, "main", &common::fixture_model("bert-cls"));
    serve_datasets(&server);
    let fresh = Fresh::new();

    let output = fresh.run_quick(&server, &[("HF_HUB_OFFLINE", "1")]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with(&format!("error: model {MODEL}: not on SIFT_MODEL_PATH")), "{stderr}");
    assert!(lines[0].contains(&fresh.path("hf/hub").display().to_string()), "{stderr}");
    for (line, dataset) in lines[1..].iter().zip(["twitter-hate", "uci-sentiment"]) {
        assert!(line.starts_with(&format!("dataset {dataset}: not in ")), "{line}");
        assert!(line.contains(&format!("sift-tui data fetch --only {dataset} --dir ")), "{line}");
        assert!(line.contains(&server.base), "the source URL: {line}");
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert!(!fresh.path("runs").join("quick__bert-cls__standard__s1").exists());
}

#[cfg(unix)]
#[test]
fn an_interrupt_during_the_download_stops_the_run_and_leaves_no_file() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    serve_repo(&server, MODEL, "main", &fixture);
    // The Hub is slow to answer: the interrupt arrives while the run waits for config.json.
    let config = std::fs::read(fixture.join("config.json")).unwrap();
    let slow =
        Reply::ok(config).header("X-Repo-Commit", COMMIT).header("ETag", "\"c0\"").delayed(Duration::from_secs(2));
    server.route(&format!("/{MODEL}/resolve/main/config.json"), vec![slow]);
    serve_datasets(&server);
    let fresh = Fresh::new();
    let child = fresh.quick_command(&server, &[]).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.paths().iter().any(|path| path.ends_with("/config.json")) {
        assert!(Instant::now() < deadline, "no request for config.json: {:?}", server.paths());
        std::thread::sleep(Duration::from_millis(20));
    }

    // SIGINT, as Ctrl-C would send it.
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "128 + SIGINT: {stderr}");
    assert!(stderr.contains("stopped before training began"), "{stderr}");
    let snapshots = fresh.path("hf/hub/models--fixture--bert-cls/snapshots");
    assert!(!snapshots.exists() || std::fs::read_dir(&snapshots).unwrap().next().is_none(), "{stderr}");
    assert!(!fresh.path("runs/quick__bert-cls__standard__s1/results.json").exists());
}

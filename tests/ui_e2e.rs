//! The real binary in a pseudo-terminal, on the real tiny data and model: launch with Enter, see
//! the charts, pause, checkpoint (a file appears), quit with `q` `y` (exit status 0). The screen
//! is read back through a terminal emulator (`vt100`).
//!
//! The launch test needs `SIFT_DATA_DIR` and `SIFT_MODEL_PATH` (CI sets them) and skips with a
//! reason otherwise; the signal tests train the tiny fixture model. A first run on a fresh machine
//! needs neither: it downloads the fixture model and small datasets from a Hub and mirror lookalike
//! on 127.0.0.1, showing the download, then trains.
mod common;
mod http_common;
mod ui_common;

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_common::{serve_datasets, serve_repo, Reply, Server};
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

const ROWS: u16 = 45;
const COLS: u16 = 150;

/// `presets/quick.toml` cut down to one short run of `model`.
fn write_preset(dir: &Path, model: &str) -> PathBuf {
    let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/quick.toml");
    let mut preset: toml::Table = std::fs::read_to_string(quick).unwrap().parse().unwrap();
    let mut set = |table: &str, key: &str, value: toml::Value| {
        preset[table].as_table_mut().unwrap().insert(key.into(), value);
    };
    set("sweep", "models", toml::Value::Array(vec![model.into()]));
    set("sweep", "methods", toml::Value::Array(vec!["standard".into()]));
    set("source", "limit", 64.into());
    set("target", "limit", 64.into());
    for (key, value) in
        [("max_steps", 6), ("batch_size", 8), ("max_len", 32), ("checkpoint_every", 0), ("eval_every", 2)]
    {
        set("train", key, value.into());
    }
    let path = dir.join("e2e.toml");
    std::fs::write(&path, toml::to_string(&preset).unwrap()).unwrap();
    path
}

/// The console in a pseudo-terminal, with its screen kept up to date by a reader thread.
struct Console {
    screen: Arc<Mutex<vt100::Parser>>,
    keys: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    _master: Box<dyn MasterPty + Send>,
}

impl Console {
    /// The console on `preset`, in `dir`, with `env` added to the environment.
    fn start(dir: &Path, preset: &Path, runs_dir: &Path, env: &[(&str, String)]) -> Console {
        let pair = native_pty_system()
            .openpty(PtySize { rows: ROWS, cols: COLS, pixel_width: 0, pixel_height: 0 })
            .expect("a pseudo-terminal");
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_sift-tui"));
        command.arg("--preset");
        command.arg(preset);
        command.arg("--runs-dir");
        command.arg(runs_dir);
        command.cwd(dir);
        command.env("TERM", "xterm-256color");
        // No user key bindings.
        command.env("XDG_CONFIG_HOME", dir);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = pair.slave.spawn_command(command).expect("the binary starts");
        drop(pair.slave);
        let mut output = pair.master.try_clone_reader().expect("pty reader");
        let keys = pair.master.take_writer().expect("pty writer");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(nonzero(ROWS), nonzero(COLS), 0)));
        let parser = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = output.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buffer[..n]);
            }
        });
        Console { screen, keys, child, _master: pair.master }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn press(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }

    /// Waits until `ready` holds for the screen, or fails showing it.
    fn wait_for(&mut self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let screen = self.contents();
            if ready(&screen) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the console exited ({status:?}) while waiting for {what}; screen:\n{screen}");
            }
            assert!(start.elapsed() < timeout, "no {what} after {timeout:?}; screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
    }
}

fn nonzero(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("a terminal size is not zero")
}

fn checkpoints(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("checkpoints")) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ckpt-")))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect()
}

fn has_braille(screen: &str) -> bool {
    screen.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
}

#[test]
fn launch_chart_pause_checkpoint_and_quit_in_a_terminal() {
    for var in ["SIFT_DATA_DIR", "SIFT_MODEL_PATH"] {
        if std::env::var_os(var).is_none() {
            eprintln!("skipped: {var} is not set (the real tiny data and model are needed)");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let preset = write_preset(dir.path(), "sentence-transformers/all-MiniLM-L6-v2");
    let runs_dir = dir.path().join("runs");
    let run_dir = runs_dir.join("quick__all-MiniLM-L6-v2__standard__s1");
    let minute = Duration::from_secs(60);
    let mut console = Console::start(dir.path(), &preset, &runs_dir, &[]);

    console.wait_for("setup view", minute, |s| s.contains("Enter launches 1 run"));
    console.press("\r");
    console.wait_for("a loss chart", 3 * minute, |s| s.contains("training loss") && has_braille(s));
    assert!(console.contents().contains("stage source"), "{}", console.contents());

    console.press("p");
    console.wait_for("the paused state", 2 * minute, |s| s.contains(" paused "));
    console.press("c");
    console.wait_for("the checkpoint in the log", minute, |s| s.contains("checkpoint ckpt-"));
    assert!(!checkpoints(&run_dir).is_empty(), "a checkpoint file under {}", run_dir.display());

    console.press("q");
    console.wait_for("the quit question", minute, |s| s.contains("Quit?"));
    console.press("y");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = console.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < 2 * minute, "still running after y; screen:\n{}", console.contents());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().any(|l| l.contains("\"kind\":\"step\"")), "{metrics}");
}

#[test]
fn a_first_run_in_the_console_downloads_what_it_needs_then_trains() {
    let server = Server::start(100);
    let fixture = common::fixture_model("bert-cls");
    let stores = serve_repo(&server, "fixture/bert-cls", "main", &fixture);
    // A slow file store, so that the download phase stays on screen for a while.
    let weights = std::fs::read(fixture.join("model.safetensors")).unwrap();
    let (_, store) = stores.iter().find(|(file, _)| file == "model.safetensors").unwrap();
    server.route(store, vec![Reply::ok(weights).delayed(Duration::from_millis(1500))]);
    serve_datasets(&server);
    let dir = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        path.display().to_string()
    };
    let env = [
        ("HOME", fresh("home")),
        ("HF_HOME", fresh("hf")),
        ("SIFT_DATA_DIR", fresh("data")),
        ("SIFT_MODEL_PATH", fresh("models")),
        ("HF_HUB_CACHE", String::new()),
        ("XDG_CACHE_HOME", String::new()),
        ("HF_HUB_OFFLINE", String::new()),
        ("SIFT_OFFLINE", String::new()),
        ("HF_TOKEN", String::new()),
        ("HF_ENDPOINT", server.base.clone()),
        ("SIFT_FETCH_URL_TWITTER_HATE", format!("{}/twitter", server.base)),
        ("SIFT_FETCH_URL_UCI_SENTIMENT", format!("{}/uci", server.base)),
    ];
    let preset = write_preset(dir.path(), "fixture/bert-cls");
    let minute = Duration::from_secs(60);
    let mut console = Console::start(dir.path(), &preset, &dir.path().join("runs"), &env);

    console.wait_for("the setup view's plan", minute, |s| {
        s.contains("Enter launches 1 run") && s.contains("dataset twitter-hate: download")
    });
    console.press("\r");
    console.wait_for("the download phase", minute, |s| {
        s.contains(" download ") && s.contains("fixture/bert-cls/model.safetensors: 0 B / 143.6 kB (0 %)")
    });
    console.wait_for("the end of the run", 3 * minute, |s| s.contains("finished: "));
    assert!(dir.path().join("data/twitter-hate/train.csv").is_file());

    console.press("q");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = console.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < minute, "still running after q; screen:\n{}", console.contents());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
}

/// SIGTERM or SIGHUP to the console while it trains: the trainer checkpoints (the preset writes
/// none on its own), the terminal leaves the alternate screen, and the exit status is the shell's
/// for the signal, 143 or 129.
#[test]
fn sigterm_and_sighup_checkpoint_restore_the_terminal_and_exit_128_plus_the_signal() {
    for (signal, status) in [("-TERM", 143), ("-HUP", 129)] {
        let dir = tempfile::tempdir().unwrap();
        let preset = ui_common::write_fixture_preset(dir.path(), "[1]", 100_000, 0);
        let runs_dir = dir.path().join("runs");
        let run_dir = runs_dir.join("same__bert-cls__standard__s1");
        let minute = Duration::from_secs(60);
        let mut console = Console::start(dir.path(), &preset, &runs_dir, &[]);
        console.wait_for("setup view", minute, |s| s.contains("Enter launches 1 run"));
        console.press("\r");
        console.wait_for("a loss chart", 3 * minute, |s| s.contains("training loss") && has_braille(s));
        assert!(
            console.screen.lock().unwrap().screen().alternate_screen(),
            "the console draws on the alternate screen"
        );

        let pid = console.child.process_id().expect("the console's pid").to_string();
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let start = Instant::now();
        let exit = loop {
            if let Some(exit) = console.child.try_wait().unwrap() {
                break exit;
            }
            assert!(start.elapsed() < 2 * minute, "{signal}: still running; screen:\n{}", console.contents());
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(exit.exit_code(), status, "{signal}");
        assert!(!checkpoints(&run_dir).is_empty(), "{signal}: a checkpoint under {}", run_dir.display());
        // The reader thread may still be taking in the last bytes the console wrote.
        let restored = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !console.screen.lock().unwrap().screen().alternate_screen()
        });
        assert!(restored, "{signal}: the terminal is back on the main screen");
    }
}

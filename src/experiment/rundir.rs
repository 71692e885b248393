//! A run's directory: `<runs-dir>/<run-id>/` holding `config.toml`, `metrics.jsonl`, `results.json`,
//! `checkpoints/` and `lock`.
//!
//! The lock is an OS advisory lock (flock) on `lock`, so a killed process releases it with no stale
//! file to clean up; the file holds the pid of the last holder for the error message. Writing
//! metrics or results needs the lock, so two processes never write the same run.
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};

use super::preset::Preset;
use super::results::RunResults;
use super::sweep::RunSpec;

const CONFIG: &str = "config.toml";
const METRICS: &str = "metrics.jsonl";
const RESULTS: &str = "results.json";
const CHECKPOINTS: &str = "checkpoints";
const LOCK: &str = "lock";

/// `$SIFT_RUNS_DIR`, or `runs/` in the working directory.
pub fn runs_dir_default() -> PathBuf {
    std::env::var_os("SIFT_RUNS_DIR").filter(|dir| !dir.is_empty()).map(PathBuf::from).unwrap_or_else(|| "runs".into())
}

#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// The open lock file while this process holds the run's lock.
    lock: Option<File>,
}

/// Another process holds the run's lock: it is training that run right now.
#[derive(Debug, thiserror::Error)]
#[error("run {run_id} is already running in {holder} (lock {})", lock.display())]
pub struct RunBusy {
    pub run_id: String,
    pub holder: String,
    pub lock: PathBuf,
}

impl RunDir {
    /// Creates (or re-enters) the directory of `spec` under `runs_dir`, takes its lock and writes
    /// `config.toml`. Re-entering a directory whose config differs is an error, so a changed preset
    /// never continues another run's checkpoints.
    pub fn create(runs_dir: &Path, spec: &RunSpec) -> anyhow::Result<RunDir> {
        let path = runs_dir.join(&spec.run_id);
        fs::create_dir_all(path.join(CHECKPOINTS))
            .with_context(|| format!("{}: cannot create the run directory", path.display()))?;
        let mut dir = RunDir { path, lock: None };
        dir.lock()?;
        let config = spec.preset.to_toml_string()?;
        match fs::read_to_string(dir.config_path()) {
            Ok(existing) if existing == config => {}
            Ok(_) => bail!(
                "{}: holds a run with a different config; remove it or use another runs directory",
                dir.config_path().display()
            ),
            Err(e) if e.kind() == ErrorKind::NotFound => crate::atomic::write(&dir.config_path(), config.as_bytes())?,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", dir.config_path().display())),
        }
        Ok(dir)
    }

    /// An existing run directory, unlocked (for resume, table and watch).
    pub fn open(path: &Path) -> anyhow::Result<RunDir> {
        ensure!(path.is_dir(), "{}: no such run directory", path.display());
        Ok(RunDir { path: path.to_path_buf(), lock: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory name, which is the run id.
    pub fn run_id(&self) -> String {
        self.path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG)
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.path.join(METRICS)
    }

    pub fn results_path(&self) -> PathBuf {
        self.path.join(RESULTS)
    }

    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join(CHECKPOINTS)
    }

    /// The resolved preset this run was started with.
    pub fn read_config(&self) -> anyhow::Result<Preset> {
        Preset::load(&self.config_path(), &[])
    }

    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Takes the run's exclusive lock (a no-op when this `RunDir` holds it already); it is released
    /// when the `RunDir` is dropped or the process dies.
    pub fn lock(&mut self) -> anyhow::Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let path = self.path.join(LOCK);
        let cannot = || format!("{}: cannot open the lock file", path.display());
        // Not truncated on open: while another process holds the lock, the file names its pid.
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).with_context(cannot)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                return Err(RunBusy { run_id: self.run_id(), holder, lock: path }.into());
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("{}: cannot lock", path.display())),
        }
        let record_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())
        };
        record_pid(&mut file).with_context(|| format!("{}: cannot write", path.display()))?;
        self.lock = Some(file);
        Ok(())
    }

    fn ensure_locked(&self, what: &str) -> anyhow::Result<()> {
        ensure!(self.lock.is_some(), "run {}: {what} needs the run's lock", self.run_id());
        Ok(())
    }

    /// Appends one JSON line to `metrics.jsonl` (the trainer writes `metrics::MetricsLine`s).
    pub fn append_metrics(&self, line: &impl serde::Serialize) -> anyhow::Result<()> {
        self.ensure_locked("writing metrics")?;
        let path = self.metrics_path();
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        // One write per line: a crash leaves at most a torn last line, which resuming drops.
        file.write_all(text.as_bytes())
            .and_then(|()| file.flush())
            .with_context(|| format!("{}: cannot write", path.display()))
    }

    /// Keeps only the metrics lines at or before `(stage_index, step)`, the position of the
    /// checkpoint a run resumes from, so the resumed run neither loses nor repeats lines. A torn
    /// last line (a crash mid-write) is dropped.
    pub fn truncate_metrics_after(&self, stage_index: usize, step: usize) -> anyhow::Result<()> {
        self.ensure_locked("truncating metrics")?;
        let path = self.metrics_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut kept = String::with_capacity(text.len());
        for (i, line) in lines.iter().enumerate() {
            let at = || format!("{}:{}", path.display(), i + 1);
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(value) => value,
                Err(_) if i + 1 == lines.len() => break,
                Err(e) => return Err(e).with_context(|| format!("{}: not a JSON line", at())),
            };
            let position =
                |field: &str| value[field].as_u64().with_context(|| format!("{}: no integer `{field}` field", at()));
            if (position("stage_index")?, position("step")?) <= (stage_index as u64, step as u64) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        crate::atomic::write(&path, kept.as_bytes())
    }

    pub fn write_results(&self, results: &RunResults) -> anyhow::Result<()> {
        self.ensure_locked("writing results")?;
        let json = serde_json::to_vec_pretty(results)?;
        crate::atomic::write(&self.results_path(), &json)
    }

    /// The run's results; `None` while it runs or after it crashed.
    pub fn read_results(&self) -> anyhow::Result<Option<RunResults>> {
        let path = self.results_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        };
        let results =
            serde_json::from_slice(&bytes).with_context(|| format!("{}: not a valid results file", path.display()))?;
        Ok(Some(results))
    }
}

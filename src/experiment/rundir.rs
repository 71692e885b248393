//! A run's directory: `<runs-dir>/<run-id>/` holding `config.toml`, `metrics.jsonl`, `results.json`,
//! `checkpoints/` (with `best.safetensors`) and `lock`. This module owns those names, and the one
//! decision of what starting a run means ([`RunDir::launch`]) that `run`, `resume` and the console
//! share.
//!
//! The lock is an OS advisory lock (flock) on `lock`, so a killed process releases it with no stale
//! file to clean up; the file holds the pid of the last holder for the error message. Writing
//! metrics or results needs the lock, so two processes never write the same run.
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context};

use super::preset::Preset;
use super::results::RunResults;
use super::sweep::RunSpec;

const CONFIG: &str = "config.toml";
const METRICS: &str = "metrics.jsonl";
const RESULTS: &str = "results.json";
const CHECKPOINTS: &str = "checkpoints";
/// The selected stage-1 weights, inside `checkpoints/`.
const BEST: &str = "best.safetensors";
const LOCK: &str = "lock";

/// The directories directly under a runs directory, sorted by path: the candidates for runs.
pub fn subdirectories(runs_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cannot_list = || format!("{}: cannot list the runs directory", runs_dir.display());
    let mut dirs = Vec::new();
    for entry in fs::read_dir(runs_dir).with_context(cannot_list)? {
        let path = entry.with_context(cannot_list)?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

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

/// What starting a run finds in its directory: the one decision `run`, `resume` and the console share.
#[derive(Debug)]
pub enum Launch {
    /// `results.json` exists: nothing to do.
    Finished { results: PathBuf },
    /// Another process holds the run's lock and is training it.
    Held(RunBusy),
    /// An earlier attempt wrote metrics or checkpoints: continue from the newest valid checkpoint, or
    /// from the start with `metrics.jsonl` trimmed to match. The directory is locked.
    Resume(RunDir),
    /// Nothing of the run was written yet (at most its `config.toml`): start from the beginning. The
    /// directory is locked.
    Fresh(RunDir),
}

/// Tries (20 ms apart) to take a lock that this very process recorded, before calling it busy.
const OWN_LOCK_PATIENCE: u32 = 100;

impl RunDir {
    /// Decides how `spec` starts in its directory under `runs_dir`, creating and locking it unless
    /// the run is finished or held by another process.
    pub fn launch(runs_dir: &Path, spec: &RunSpec) -> anyhow::Result<Launch> {
        let path = runs_dir.join(&spec.run_id);
        if path.join(RESULTS).is_file() {
            return Ok(Launch::Finished { results: path.join(RESULTS) });
        }
        let dir = match RunDir::create(runs_dir, spec) {
            Ok(dir) => dir,
            Err(e) => return e.downcast::<RunBusy>().map(Launch::Held),
        };
        Ok(if dir.results_path().is_file() {
            // Finished by another process between the first look and taking the lock.
            Launch::Finished { results: dir.results_path() }
        } else if dir.was_started() {
            Launch::Resume(dir)
        } else {
            Launch::Fresh(dir)
        })
    }

    /// Creates (or re-enters) the directory of `spec` under `runs_dir`, takes its lock, removes
    /// temporary files that a killed writer left, and writes `config.toml`. Re-entering a directory
    /// whose config differs is an error once the run has written anything, so a changed preset never
    /// continues another run's checkpoints; before that (a start that failed before its first
    /// update, e.g. on a bad device) the new config replaces the old one.
    pub fn create(runs_dir: &Path, spec: &RunSpec) -> anyhow::Result<RunDir> {
        let path = runs_dir.join(&spec.run_id);
        fs::create_dir_all(path.join(CHECKPOINTS))
            .with_context(|| format!("{}: cannot create the run directory", path.display()))?;
        let mut dir = RunDir { path, lock: None };
        dir.lock()?;
        dir.remove_temporary_files()?;
        let config = spec.preset.to_toml_string()?;
        match fs::read_to_string(dir.config_path()) {
            Ok(existing) if existing == config => {}
            Ok(_) if dir.was_started() => bail!(
                "{}: holds a run with a different config; remove it or use another runs directory",
                dir.config_path().display()
            ),
            Ok(_) => crate::atomic::write(&dir.config_path(), config.as_bytes())?,
            Err(e) if e.kind() == ErrorKind::NotFound => crate::atomic::write(&dir.config_path(), config.as_bytes())?,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", dir.config_path().display())),
        }
        Ok(dir)
    }

    /// Whether an earlier attempt wrote metrics or checkpoints (anything a restart must account for).
    fn was_started(&self) -> bool {
        let written = |entries: fs::ReadDir| {
            entries.filter_map(Result::ok).any(|e| !crate::atomic::is_temporary(&e.file_name().to_string_lossy()))
        };
        self.metrics_path().exists() || fs::read_dir(self.checkpoints_dir()).is_ok_and(written)
    }

    /// Deletes the temporary files of atomic writes that never completed (a kill mid-write leaves
    /// them; a checkpoint's can be gigabytes). Only the lock holder may, since a live writer's
    /// temporary file looks the same.
    fn remove_temporary_files(&self) -> anyhow::Result<()> {
        self.ensure_locked("cleaning up")?;
        for dir in [self.path.clone(), self.checkpoints_dir()] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.filter_map(Result::ok) {
                if crate::atomic::is_temporary(&entry.file_name().to_string_lossy()) {
                    let path = entry.path();
                    fs::remove_file(&path).with_context(|| format!("{}: cannot remove", path.display()))?;
                }
            }
        }
        Ok(())
    }

    /// Whether `path` is a run directory (it has a `config.toml`).
    pub fn is_run_dir(path: &Path) -> bool {
        path.join(CONFIG).is_file()
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

    /// The selected stage-1 weights, which target stages start from.
    pub fn best_weights_path(&self) -> PathBuf {
        self.checkpoints_dir().join(BEST)
    }

    /// The resolved preset this run was started with.
    pub fn read_config(&self) -> anyhow::Result<Preset> {
        Preset::load(&self.config_path(), &[])
    }

    /// The run this directory holds, from its fully resolved config, under the directory's name.
    pub fn read_spec(&self) -> anyhow::Result<RunSpec> {
        let preset = self.read_config()?;
        let mut spec = preset
            .runs()
            .into_iter()
            .next()
            .with_context(|| format!("{}: names no run (a sweep list is empty)", self.config_path().display()))?;
        spec.run_id = self.run_id();
        Ok(spec)
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
        let mut patience = OWN_LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    file.rewind().with_context(cannot)?;
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim().to_string();
                    // This process recorded the lock and has released it, but a child forked meanwhile
                    // by another thread keeps the descriptor (and so the lock) until it execs: wait.
                    if holder == std::process::id().to_string() && patience > 0 {
                        patience -= 1;
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let holder =
                        if holder.is_empty() { "another process".to_string() } else { format!("process {holder}") };
                    return Err(RunBusy { run_id: self.run_id(), holder, lock: path }.into());
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("{}: cannot lock", path.display()))
                }
            }
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
    /// checkpoint a run resumes from, so the resumed run neither loses nor repeats lines. Damaged
    /// lines (a torn last line from a crash or a full disk mid-write) and lines that repeat an earlier
    /// position are dropped; each kind of repair comes back as a warning.
    pub fn truncate_metrics_after(&self, stage_index: usize, step: usize) -> anyhow::Result<Vec<String>> {
        self.ensure_locked("truncating metrics")?;
        let path = self.metrics_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        };
        let restored = restore_metrics(&bytes, (stage_index as u64, step as u64));
        crate::atomic::write(&path, restored.text.as_bytes())?;
        let file = path.display();
        let mut warnings = Vec::new();
        if let Some(line) = restored.torn {
            warnings.push(format!("{file}:{line}: dropped a torn last line (the previous run ended mid-write)"));
        }
        if let Some((first, count)) = restored.damaged {
            warnings.push(format!("{file}:{first}: dropped {count} damaged line(s)"));
        }
        if let Some((first, count)) = restored.repeated {
            warnings.push(format!("{file}:{first}: dropped {count} line(s) that repeat an earlier update"));
        }
        Ok(warnings)
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

/// `metrics.jsonl` restored to a checkpoint position.
#[derive(Debug, Default, PartialEq)]
pub struct RestoredMetrics {
    /// The lines kept, each ending in a newline.
    pub text: String,
    /// The line number of a torn (unterminated and unparsable) last line that was dropped.
    pub torn: Option<usize>,
    /// The first damaged line dropped, and how many.
    pub damaged: Option<(usize, usize)>,
    /// The first line dropped for repeating an earlier position, and how many.
    pub repeated: Option<(usize, usize)>,
}

/// Keeps the lines of a metrics file at or before `until` (`(stage_index, step)`), in order and
/// each position once: a step (or skipped-update) line opens its position and evaluation lines
/// follow it, one per split. Never fails: whatever cannot be read is dropped and counted.
pub fn restore_metrics(bytes: &[u8], until: (u64, u64)) -> RestoredMetrics {
    let mut restored = RestoredMetrics::default();
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields an empty piece after a final newline.
    let count = if complete { lines.len() - 1 } else { lines.len() };
    let mut last: Option<(u64, u64)> = None;
    let mut splits_at_last: Vec<String> = Vec::new();
    let count_in = |slot: &mut Option<(usize, usize)>, number: usize| match slot {
        Some((_, n)) => *n += 1,
        None => *slot = Some((number, 1)),
    };
    for (i, line) in lines[..count].iter().enumerate() {
        let number = i + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Some((position, split)) = position_of(line) else {
            if number == count && !complete {
                restored.torn = Some(number);
            } else {
                count_in(&mut restored.damaged, number);
            }
            continue;
        };
        if position > until {
            continue;
        }
        let new_position = last.is_none_or(|last| position > last);
        let repeated = match (&split, new_position) {
            (_, true) => false,
            // A step line opens its position, so a second one repeats it.
            (None, false) => true,
            (Some(split), false) => last != Some(position) || splits_at_last.contains(split),
        };
        if repeated {
            count_in(&mut restored.repeated, number);
            continue;
        }
        if new_position {
            last = Some(position);
            splits_at_last.clear();
        }
        if let Some(split) = split {
            splits_at_last.push(split);
        }
        // Valid JSON is valid UTF-8.
        restored.text.push_str(std::str::from_utf8(line).unwrap_or_default());
        restored.text.push('\n');
    }
    restored
}

/// `(stage_index, step)` of a metrics line, and its split when it is an evaluation; `None` when the
/// line is not a JSON object with both positions.
fn position_of(line: &[u8]) -> Option<((u64, u64), Option<String>)> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let position = (value.get("stage_index")?.as_u64()?, value.get("step")?.as_u64()?);
    Some((position, value.get("split").and_then(|s| s.as_str()).map(str::to_string)))
}

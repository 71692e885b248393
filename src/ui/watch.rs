//! `sift-tui watch`: runs written by other processes (headless runs, cluster job arrays sharing a
//! runs directory), followed through their `metrics.jsonl` and shown with the run view.
//!
//! Each file is tailed from where the last read stopped; a line is used once it ends in a newline,
//! so a partial last line (a write in progress, or a crash mid-write) waits or is ignored. A file
//! that got shorter was rewritten by a resume, which drops the lines after its checkpoint: the run
//! is read again from the start.
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::app::{App, Msg};
use crate::experiment::rundir::RunDir;
use crate::metrics::MetricsLine;
use crate::train::events::Event;

/// A run that wrote nothing for this long and has no results is shown as idle.
pub const QUIET_AFTER: Duration = Duration::from_secs(300);

/// The read position in one run's metrics file.
#[derive(Debug, Default)]
struct Tail {
    offset: u64,
    /// Bytes after the last newline, kept until the line is complete.
    partial: Vec<u8>,
    stage_index: Option<usize>,
    finished: bool,
    line_number: usize,
}

impl Tail {
    /// The complete lines appended since the last read; `None` when the file was rewritten.
    fn read_new_lines(&mut self, path: &Path) -> std::io::Result<Option<Vec<String>>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
            Err(e) => return Err(e),
        };
        let length = file.metadata()?.len();
        if length < self.offset {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.take(length - self.offset).read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else { return Ok(Some(Vec::new())) };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        Ok(Some(String::from_utf8_lossy(&complete).lines().map(str::to_string).collect()))
    }

    /// The events a line of the metrics file at `path` stands for.
    fn events_of(&mut self, path: &Path, line: &str) -> Vec<Event> {
        self.line_number += 1;
        if line.trim().is_empty() {
            return Vec::new();
        }
        let parsed: MetricsLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                return vec![Event::Warning(format!("{}:{}: unreadable line: {e}", path.display(), self.line_number))]
            }
        };
        let (stage, stage_index) = match &parsed {
            MetricsLine::Step { stage_index, metrics } => (metrics.stage.clone(), *stage_index),
            MetricsLine::Eval { stage_index, metrics } => (metrics.stage.clone(), *stage_index),
            MetricsLine::Skipped { stage, stage_index, .. } => (stage.clone(), *stage_index),
        };
        let mut events = Vec::new();
        if self.stage_index != Some(stage_index) {
            self.stage_index = Some(stage_index);
            // The stage count and length are not in the metrics; 0 shows them as unknown.
            events.push(Event::Stage { name: stage, index: stage_index, count: 0, total_steps: 0 });
        }
        events.push(match parsed {
            MetricsLine::Step { metrics, .. } => Event::Step(metrics),
            MetricsLine::Eval { metrics, .. } => Event::Eval(metrics),
            MetricsLine::Skipped { stage, step, .. } => {
                Event::Warning(format!("{stage}: non-finite update {step} skipped"))
            }
        });
        events
    }
}

/// Follows every run directory under a runs directory.
pub struct Watcher {
    runs_dir: PathBuf,
    tails: HashMap<String, Tail>,
}

impl Watcher {
    pub fn new(runs_dir: PathBuf) -> Self {
        Self { runs_dir, tails: HashMap::new() }
    }

    /// Reads what every run wrote since the last poll into the app. Returns whether anything
    /// changed, and whether a run finished (so the results table should be read again).
    pub fn poll(&mut self, app: &mut App) -> anyhow::Result<(bool, bool)> {
        let mut changed = false;
        let mut finished = false;
        let now = Instant::now();
        for dir in run_dirs(&self.runs_dir)? {
            let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let run = app.watched_run(&id);
            let tail = self.tails.entry(id).or_default();
            let run_dir = RunDir::open(&dir)?;
            let metrics = run_dir.metrics_path();
            let lines = match tail.read_new_lines(&metrics) {
                Ok(Some(lines)) => lines,
                Ok(None) => {
                    *tail = Tail::default();
                    app.update(Msg::Reset { run });
                    changed = true;
                    tail.read_new_lines(&metrics)?.unwrap_or_default()
                }
                Err(e) => {
                    let warning = Event::Warning(format!("{}: {e}", metrics.display()));
                    app.update(Msg::Trainer { run, event: warning, at: now });
                    continue;
                }
            };
            for line in &lines {
                for event in tail.events_of(&metrics, line) {
                    app.update(Msg::Trainer { run, event, at: now });
                    changed = true;
                }
            }
            let results = run_dir.results_path();
            if !tail.finished && results.is_file() {
                tail.finished = true;
                app.update(Msg::Trainer { run, event: Event::Finished { results }, at: now });
                (changed, finished) = (true, true);
            } else if !tail.finished && lines.is_empty() {
                if let Some(quiet) = quiet_for(&metrics).filter(|q| *q >= QUIET_AFTER) {
                    app.update(Msg::Quiet { run, quiet });
                }
            }
        }
        Ok((changed, finished))
    }
}

/// Run directories (those with a `config.toml`), sorted.
fn run_dirs(runs_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !runs_dir.is_dir() {
        anyhow::bail!("{}: no such runs directory", runs_dir.display());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| RunDir::is_run_dir(path))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// How long ago a file was last written.
fn quiet_for(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    SystemTime::now().duration_since(modified).ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::metrics::Split;

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.jsonl");
        let mut file = File::create(&path).unwrap();
        let mut tail = Tail::default();
        assert_eq!(tail.read_new_lines(&path).unwrap(), Some(vec![]));
        write!(file, "{{\"a\":1}}\n{{\"b\":").unwrap();
        assert_eq!(tail.read_new_lines(&path).unwrap(), Some(vec!["{\"a\":1}".to_string()]));
        writeln!(file, "2}}").unwrap();
        assert_eq!(tail.read_new_lines(&path).unwrap(), Some(vec!["{\"b\":2}".to_string()]));
        std::fs::write(&path, "{}\n").unwrap();
        assert_eq!(tail.read_new_lines(&path).unwrap(), None, "a shorter file was rewritten");
    }

    #[test]
    fn lines_become_events_with_stage_changes() {
        let mut tail = Tail::default();
        let step = r#"{"kind":"step","stage":"source","stage_index":0,"step":1,"epoch":1,"loss":0.7,
            "task_loss":0.7,"adv_kl":null,"lr":1e-5,"grad_norm":1.0,"samples_per_sec":10.0}"#
            .replace('\n', "");
        let path = Path::new("lines.jsonl");
        let events = tail.events_of(path, &step);
        assert!(matches!(&events[..], [Event::Stage { index: 0, .. }, Event::Step(m)] if m.step == 1));
        let eval = r#"{"kind":"eval","stage":"target-10%","stage_index":1,"step":3,"split":"target-test",
            "scores":{"accuracy":0.5,"macro_f1":0.4,"mcc":0.1,"loss":0.69,"examples":8}}"#
            .replace('\n', "");
        let events = tail.events_of(path, &eval);
        assert!(matches!(&events[..], [Event::Stage { index: 1, .. }, Event::Eval(e)] if e.split == Split::TargetTest));
        let skipped = r#"{"kind":"skipped","stage":"target-10%","stage_index":1,"step":4}"#;
        assert!(matches!(&tail.events_of(path, skipped)[..], [Event::Warning(_)]));
        assert!(matches!(&tail.events_of(path, "{not json")[..], [Event::Warning(w)] if w.contains("lines.jsonl:4:")));
    }
}

//! One run as the console knows it: its status, stage, curves, evaluations and log, built up
//! from the trainer's events (or, in watch mode, from its metrics file).
use std::time::{Duration, Instant};

use crate::download::{self, Transfer};
use crate::experiment::sweep::RunSpec;
use crate::metrics::{EvalMetrics, Metric, Scores, Split, StepMetrics};
use crate::train::events::Event;

#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    Queued,
    Running,
    Paused,
    Finished,
    /// Stopped on request, its checkpoint kept.
    Stopped,
    Failed(String),
    /// Left in the queue when the sweep was stopped.
    Cancelled,
    /// Not started: another process is training it.
    Skipped,
    /// Watch mode: no new metrics for a while and no results (crashed, stopped, or very slow).
    Idle,
}

impl RunStatus {
    pub fn word(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::Stopped => "stopped",
            Self::Failed(_) => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
            Self::Idle => "idle",
        }
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self, Self::Finished | Self::Stopped | Self::Failed(_) | Self::Cancelled | Self::Skipped)
    }
}

/// The stage a run is in, with timing for its ETA.
#[derive(Debug, Clone, PartialEq)]
pub struct StageState {
    pub name: String,
    pub index: usize,
    /// Stages of the run; 0 when unknown (watch mode).
    pub count: usize,
    /// Updates of the stage; 0 when unknown (watch mode).
    pub total_steps: usize,
    /// The first and the latest step seen in this stage, with when they arrived.
    first: Option<(Instant, usize)>,
    latest: Option<(Instant, usize)>,
}

impl StageState {
    pub fn step(&self) -> usize {
        self.latest.map_or(0, |(_, step)| step)
    }

    /// Time to the end of the stage at the pace of the steps seen so far.
    pub fn eta(&self) -> Option<Duration> {
        let ((t0, s0), (t1, s1)) = (self.first?, self.latest?);
        if s1 <= s0 || self.total_steps == 0 {
            return None;
        }
        let per_step = t1.duration_since(t0).as_secs_f64() / (s1 - s0) as f64;
        Some(Duration::from_secs_f64(per_step * self.total_steps.saturating_sub(s1) as f64))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Good,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
}

/// A scored split at an x position (updates since the run began).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPoint {
    pub x: f64,
    pub split: Split,
    pub scores: Scores,
}

/// Everything known about one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub id: String,
    /// What to launch (console runs); watched runs belong to other processes.
    pub spec: Option<RunSpec>,
    pub status: RunStatus,
    pub stage: Option<StageState>,
    /// The latest download report, before the first stage.
    pub download: Option<Transfer>,
    pub last_step: Option<StepMetrics>,
    /// Updates of the stages before the current one, so x grows across stages.
    x_offset: f64,
    pub loss: Vec<(f64, f64)>,
    pub adv_kl: Vec<(f64, f64)>,
    pub evals: Vec<EvalPoint>,
    pub log: Vec<LogLine>,
    pub overlaid: bool,
    pub stop_requested: bool,
}

impl RunState {
    pub fn new(id: String, spec: Option<RunSpec>) -> Self {
        Self {
            id,
            spec,
            status: RunStatus::Queued,
            stage: None,
            download: None,
            last_step: None,
            x_offset: 0.0,
            loss: Vec::new(),
            adv_kl: Vec::new(),
            evals: Vec::new(),
            log: Vec::new(),
            overlaid: false,
            stop_requested: false,
        }
    }

    /// The same run starting over (relaunched, or its metrics rewritten), still overlaid if it was.
    pub fn restarted(&self, spec: Option<RunSpec>) -> Self {
        Self { overlaid: self.overlaid, ..Self::new(self.id.clone(), spec) }
    }

    /// `model method seed` from a run id `preset__model__method__sN`, else the id.
    pub fn label(&self) -> String {
        let parts: Vec<&str> = self.id.split("__").collect();
        match parts.as_slice() {
            [_, model, method, seed] => format!("{model} {method} {seed}"),
            _ => self.id.clone(),
        }
    }

    /// The label without the model when every run shares it: `sift s1`.
    pub fn short_label(&self) -> String {
        let parts: Vec<&str> = self.id.split("__").collect();
        match parts.as_slice() {
            [_, _, method, seed] => format!("{method} {seed}"),
            _ => self.id.clone(),
        }
    }

    pub(super) fn say(&mut self, level: Level, text: impl Into<String>) {
        self.log.push(LogLine { level, text: text.into() });
    }

    /// The run's values of one metric on the splits `wanted` accepts, as chart points.
    pub fn eval_points(&self, wanted: impl Fn(&Split) -> bool, metric: Metric) -> Vec<(f64, f64)> {
        self.evals.iter().filter(|e| wanted(&e.split)).map(|e| (e.x, e.scores.value(metric))).collect()
    }

    pub(super) fn on_event(&mut self, event: Event, at: Instant) {
        match event {
            Event::Download(transfer) => self.on_download(transfer),
            Event::Stage { name, index, count, total_steps } => self.enter_stage(name, index, count, total_steps),
            Event::Step(metrics) => self.on_step(metrics, at),
            Event::Eval(eval) => self.on_eval(eval),
            Event::Checkpoint { path, step } => {
                let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
                self.say(Level::Good, format!("checkpoint {name} at update {step}"));
            }
            Event::Paused => {
                self.status = RunStatus::Paused;
                self.say(Level::Info, "paused");
            }
            Event::Resumed => {
                self.status = RunStatus::Running;
                self.say(Level::Info, "resumed");
            }
            Event::Warning(warning) => self.say(Level::Warn, warning),
            Event::Finished { results } => {
                self.status = RunStatus::Finished;
                self.say(Level::Good, format!("finished: {}", results.display()));
            }
            Event::Stopped { checkpoint } => {
                self.status = RunStatus::Stopped;
                let kept = checkpoint.map_or("no checkpoint yet".into(), |p| format!("checkpoint {}", p.display()));
                self.say(Level::Info, format!("stopped; {kept}"));
            }
            Event::Failed(message) => {
                self.say(Level::Error, format!("failed: {message}"));
                self.status = RunStatus::Failed(message);
            }
        }
    }

    fn on_download(&mut self, transfer: Transfer) {
        if transfer.finished {
            self.say(Level::Good, format!("downloaded {} ({})", transfer.file, download::bytes(transfer.done)));
        } else if transfer.done == 0 {
            let size = transfer.total.map(|total| format!(" ({})", download::bytes(total))).unwrap_or_default();
            self.say(Level::Info, format!("downloading {}{size}", transfer.file));
        }
        self.download = Some(transfer);
    }

    fn enter_stage(&mut self, name: String, index: usize, count: usize, total_steps: usize) {
        if let Some(previous) = self.stage.as_ref().filter(|s| s.index < index) {
            self.x_offset += previous.step().max(previous.total_steps) as f64;
        }
        let of = if count > 0 { format!(" ({}/{count})", index + 1) } else { String::new() };
        let updates = if total_steps > 0 { format!(": {total_steps} updates") } else { String::new() };
        self.say(Level::Info, format!("stage {name}{of}{updates}"));
        self.stage = Some(StageState { name, index, count, total_steps, first: None, latest: None });
    }

    fn on_step(&mut self, metrics: StepMetrics, at: Instant) {
        if matches!(self.status, RunStatus::Queued | RunStatus::Idle) {
            self.status = RunStatus::Running;
        }
        let x = self.x_offset + metrics.step as f64;
        self.loss.push((x, metrics.loss as f64));
        if let Some(kl) = metrics.adv_kl {
            self.adv_kl.push((x, kl as f64));
        }
        if let Some(stage) = &mut self.stage {
            stage.first.get_or_insert((at, metrics.step));
            stage.latest = Some((at, metrics.step));
        }
        self.last_step = Some(metrics);
    }

    fn on_eval(&mut self, eval: EvalMetrics) {
        let s = &eval.scores;
        let line = format!(
            "eval {} @{} {}: acc {:.3} f1 {:.3} mcc {:.3} (n={})",
            eval.stage, eval.step, eval.split, s.accuracy, s.macro_f1, s.mcc, s.examples
        );
        // A model that labels (nearly) everything alike scores the class balance: say so.
        if s.predicts_one_class() {
            self.say(Level::Warn, format!("{line}; predicts one class {:?}", s.predicted_counts));
        } else {
            self.say(Level::Info, line);
        }
        self.evals.push(EvalPoint { x: self.x_offset + eval.step as f64, split: eval.split, scores: eval.scores });
    }
}

/// `1:02:03` or `2:03`.
pub fn clock(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(predicted_counts: Vec<u64>) -> Event {
        let scores = Scores { accuracy: 0.5, examples: 64, predicted_counts, ..Scores::default() };
        Event::Eval(EvalMetrics { stage: "source".into(), step: 3, split: Split::Fraction(0.0), scores })
    }

    #[test]
    fn a_single_class_evaluation_is_logged_as_a_warning() {
        let mut run = RunState::new("p__m__sift__s1".into(), None);
        run.on_event(eval(vec![30, 34]), Instant::now());
        assert_eq!(run.log[0].level, Level::Info);
        run.on_event(eval(vec![0, 64]), Instant::now());
        assert_eq!(run.log[1].level, Level::Warn);
        assert!(
            run.log[1].text.ends_with("0%: acc 0.500 f1 0.000 mcc 0.000 (n=64); predicts one class [0, 64]"),
            "{}",
            run.log[1].text
        );
    }
}

//! The console's state and how it changes. [`App::update`] takes a message (a key, a trainer
//! event, a results table, the process's usage) and returns what the session should do; it
//! touches no channel and no terminal, so tests drive it directly.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use super::charts::SMOOTHING_STEPS;
use super::form::SetupForm;
use super::keys::{Action, KeyMap};
use super::procstat::ProcessUsage;
use crate::experiment::preset::Metric;
use crate::experiment::sweep::RunSpec;
use crate::experiment::table::Format;
use crate::train::events::{Command, EvalMetrics, Event, Scores, StepMetrics};

/// Console: launches runs of its own. Watch: shows runs other processes write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Console,
    Watch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Setup,
    Run,
    Results,
}

impl View {
    pub fn title(self) -> &'static str {
        match self {
            Self::Setup => "Setup",
            Self::Run => "Run",
            Self::Results => "Results",
        }
    }
}

/// The charts of the run view, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Loss,
    AdvKl,
    SourceDev,
    Target,
}

impl ChartKind {
    pub const ALL: [ChartKind; 4] = [Self::Loss, Self::AdvKl, Self::SourceDev, Self::Target];
}

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
            Self::Idle => "idle",
        }
    }

    fn is_done(&self) -> bool {
        matches!(self, Self::Finished | Self::Stopped | Self::Failed(_) | Self::Cancelled)
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
    pub split: String,
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

    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.log.push(LogLine { level, text: text.into() });
    }

    /// The run's values of one metric on the splits `wanted` accepts, as chart points.
    pub fn eval_points(&self, wanted: impl Fn(&str) -> bool, metric: Metric) -> Vec<(f64, f64)> {
        self.evals.iter().filter(|e| wanted(&e.split)).map(|e| (e.x, e.scores.value(metric))).collect()
    }

    fn on_event(&mut self, event: Event, at: Instant) {
        match event {
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
        self.say(
            Level::Info,
            format!(
                "eval {} @{} {}: acc {:.3} f1 {:.3} mcc {:.3} (n={})",
                eval.stage, eval.step, eval.split, s.accuracy, s.macro_f1, s.mcc, s.examples
            ),
        );
        self.evals.push(EvalPoint { x: self.x_offset + eval.step as f64, split: eval.split, scores: eval.scores });
    }
}

/// Whether a split belongs on the target chart: the live `target-test` scores and the table's
/// fraction columns (`0%`, `10%`).
pub fn is_target_split(split: &str) -> bool {
    split == "target-test" || split.ends_with('%')
}

/// The results table as shown: the Markdown that `e` exports, split into cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultsTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The explanation and notes under the table.
    pub notes: Vec<String>,
}

impl ResultsTable {
    pub fn from_markdown(markdown: &str) -> Self {
        let cells = |line: &str| line.trim().trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect();
        let mut table = ResultsTable::default();
        for line in markdown.lines() {
            if !line.starts_with('|') {
                if !line.trim().is_empty() {
                    table.notes.push(line.trim().to_string());
                }
            } else if table.header.is_empty() {
                table.header = cells(line);
            } else if !line.starts_with("| ---") {
                table.rows.push(cells(line));
            }
        }
        table
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help,
    ConfirmQuit,
    Failure { run: String, message: String },
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

/// What the app hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    /// An event of run `run` (an index into `runs`), received at `at`.
    Trainer {
        run: usize,
        event: Event,
        at: Instant,
    },
    /// The session started run `run`.
    Started {
        run: usize,
    },
    /// Watch mode: run `run` wrote nothing for `quiet` and has no results.
    Quiet {
        run: usize,
        quiet: Duration,
    },
    /// Watch mode: run `run`'s metrics were rewritten (a resume truncated them); start over.
    Reset {
        run: usize,
    },
    Results(Result<ResultsTable, String>),
    Usage(ProcessUsage),
    Notice(Notice),
}

/// What the app asks of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// For the active trainer.
    Command(Command),
    RefreshResults,
    Export(Format),
}

/// How the run view shows its charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartSettings {
    pub focus: ChartKind,
    pub zoomed: bool,
    pub log_y: bool,
    /// Index into [`SMOOTHING_STEPS`].
    pub smoothing: usize,
    /// The metric of overlaid eval charts (one run shows accuracy and MCC).
    pub metric: Metric,
}

impl ChartSettings {
    pub fn smoothing_weight(&self) -> f64 {
        SMOOTHING_STEPS[self.smoothing]
    }
}

pub struct App {
    pub mode: Mode,
    pub view: View,
    pub keys: KeyMap,
    /// The key bindings file, for the help popup.
    pub keys_file: Option<PathBuf>,
    pub setup: SetupForm,
    pub runs: Vec<RunState>,
    /// The run the run view shows.
    pub selected: usize,
    /// The run a trainer is working on.
    pub active: Option<usize>,
    pub charts: ChartSettings,
    pub popup: Option<Popup>,
    pub results: Result<ResultsTable, String>,
    pub usage: ProcessUsage,
    pub notice: Option<Notice>,
    /// Where exports go, shown in the header.
    pub runs_dir: String,
    /// Quit was confirmed; waiting for the trainer to checkpoint and stop.
    pub quitting: bool,
    pub quit: bool,
}

impl App {
    pub fn new(mode: Mode, setup: SetupForm, keys: KeyMap, runs_dir: &Path) -> Self {
        Self {
            mode,
            view: if mode == Mode::Watch { View::Run } else { View::Setup },
            keys,
            keys_file: None,
            setup,
            runs: Vec::new(),
            selected: 0,
            active: None,
            charts: ChartSettings {
                focus: ChartKind::Loss,
                zoomed: false,
                log_y: false,
                smoothing: 0,
                metric: Metric::Accuracy,
            },
            popup: None,
            results: Err("no finished runs yet".into()),
            usage: ProcessUsage::default(),
            notice: None,
            runs_dir: runs_dir.display().to_string(),
            quitting: false,
            quit: false,
        }
    }

    pub fn views(&self) -> &'static [View] {
        match self.mode {
            Mode::Console => &[View::Setup, View::Run, View::Results],
            Mode::Watch => &[View::Run, View::Results],
        }
    }

    /// The next run waiting in the queue, unless the app is on its way out.
    pub fn next_queued(&self) -> Option<usize> {
        if self.quitting || self.quit {
            return None;
        }
        self.runs.iter().position(|r| r.status == RunStatus::Queued && r.spec.is_some())
    }

    /// Watch mode: the index of run `id`, added when new.
    pub fn watched_run(&mut self, id: &str) -> usize {
        if let Some(index) = self.runs.iter().position(|r| r.id == id) {
            return index;
        }
        self.runs.push(RunState::new(id.to_string(), None));
        self.runs.len() - 1
    }

    /// Runs that ended (finished, stopped, failed, cancelled) and all runs, for the sweep gauge.
    pub fn sweep_progress(&self) -> (usize, usize) {
        (self.runs.iter().filter(|r| r.status.is_done()).count(), self.runs.len())
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Request> {
        match msg {
            Msg::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            Msg::Key(_) => Vec::new(),
            Msg::Trainer { run, event, at } => self.on_trainer(run, event, at),
            Msg::Started { run } => {
                if let Some(state) = self.runs.get_mut(run) {
                    state.status = RunStatus::Running;
                    self.active = Some(run);
                }
                Vec::new()
            }
            Msg::Quiet { run, quiet } => {
                if let Some(state) = self.runs.get_mut(run).filter(|r| r.status == RunStatus::Running) {
                    state.status = RunStatus::Idle;
                    state.say(Level::Warn, format!("no new metrics for {}: crashed or stopped?", clock(quiet)));
                }
                Vec::new()
            }
            Msg::Reset { run } => {
                if let Some(state) = self.runs.get_mut(run) {
                    *state = RunState { overlaid: state.overlaid, ..RunState::new(state.id.clone(), None) };
                }
                Vec::new()
            }
            Msg::Results(table) => {
                self.results = table;
                Vec::new()
            }
            Msg::Usage(usage) => {
                self.usage = usage;
                Vec::new()
            }
            Msg::Notice(notice) => {
                self.notice = Some(notice);
                Vec::new()
            }
        }
    }

    fn on_trainer(&mut self, run: usize, event: Event, at: Instant) -> Vec<Request> {
        let Some(state) = self.runs.get_mut(run) else { return Vec::new() };
        let ended = matches!(event, Event::Finished { .. } | Event::Stopped { .. } | Event::Failed(_));
        let mut requests = Vec::new();
        match &event {
            Event::Finished { .. } => requests.push(Request::RefreshResults),
            Event::Failed(message) => {
                self.popup = Some(Popup::Failure { run: state.id.clone(), message: message.clone() })
            }
            _ => {}
        }
        let stopped_early = matches!(event, Event::Stopped { .. } | Event::Failed(_));
        state.on_event(event, at);
        if ended && self.active == Some(run) {
            self.active = None;
            if stopped_early {
                self.cancel_queue();
            }
            if self.quitting {
                self.quit = true;
            }
        }
        requests
    }

    fn cancel_queue(&mut self) {
        for run in self.runs.iter_mut().filter(|r| r.status == RunStatus::Queued) {
            run.status = RunStatus::Cancelled;
            run.say(Level::Info, "not started: the sweep was stopped");
        }
    }

    fn notify(&mut self, level: Level, text: impl Into<String>) {
        self.notice = Some(Notice { level, text: text.into() });
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        // A notice stays until the next key, which has seen it.
        self.notice = None;
        if self.setup.editing.is_some() {
            self.edit(key);
            return Vec::new();
        }
        let Some(action) = self.keys.action(key) else { return Vec::new() };
        if let Some(popup) = self.popup.clone() {
            return self.on_popup_key(popup, action);
        }
        match action {
            Action::Quit => self.ask_to_quit(),
            Action::Help => self.popup = Some(Popup::Help),
            Action::NextView | Action::PrevView => self.switch_view(action == Action::NextView),
            Action::PauseResume | Action::Checkpoint | Action::Stop => return self.control(action),
            _ => {
                return match self.view {
                    View::Setup => self.on_setup_key(action),
                    View::Run => self.on_run_key(action),
                    View::Results => self.on_results_key(action),
                }
            }
        }
        Vec::new()
    }

    fn on_popup_key(&mut self, popup: Popup, action: Action) -> Vec<Request> {
        match (popup, action) {
            (Popup::ConfirmQuit, Action::Confirm) => {
                self.popup = None;
                return self.begin_quitting();
            }
            (Popup::ConfirmQuit, Action::Cancel | Action::Quit) => self.popup = None,
            (Popup::Help, Action::Cancel | Action::Help | Action::Quit | Action::Launch) => self.popup = None,
            (Popup::Failure { .. }, Action::Cancel | Action::Launch | Action::Confirm) => self.popup = None,
            _ => {}
        }
        Vec::new()
    }

    fn ask_to_quit(&mut self) {
        if self.active.is_some() && !self.quitting {
            self.popup = Some(Popup::ConfirmQuit);
        } else if self.active.is_none() {
            self.quit = true;
        }
    }

    /// Asks the trainer to checkpoint and stop; the app quits when it has.
    fn begin_quitting(&mut self) -> Vec<Request> {
        self.quitting = true;
        self.cancel_queue();
        match self.active.and_then(|run| self.runs.get_mut(run)) {
            Some(run) => {
                run.stop_requested = true;
                self.notify(Level::Info, "quitting: the trainer is writing a checkpoint…");
                vec![Request::Command(Command::Stop)]
            }
            None => {
                self.quit = true;
                Vec::new()
            }
        }
    }

    fn switch_view(&mut self, forward: bool) {
        let views = self.views();
        let at = views.iter().position(|v| *v == self.view).unwrap_or(0);
        let next = if forward { (at + 1) % views.len() } else { (at + views.len() - 1) % views.len() };
        self.view = views[next];
    }

    /// Pause, checkpoint and stop: for the active trainer, from any view.
    fn control(&mut self, action: Action) -> Vec<Request> {
        if self.mode == Mode::Watch {
            self.notify(Level::Warn, "watch mode shows runs of other processes; it cannot control them");
            return Vec::new();
        }
        let Some(run) = self.active.and_then(|i| self.runs.get_mut(i)) else {
            self.notify(Level::Warn, "no run is training");
            return Vec::new();
        };
        let command = match action {
            Action::PauseResume if run.status == RunStatus::Paused => Command::Resume,
            Action::PauseResume => Command::Pause,
            Action::Checkpoint => {
                run.say(Level::Info, "checkpoint requested");
                Command::Checkpoint
            }
            _ => {
                run.stop_requested = true;
                run.say(Level::Info, "stop requested: checkpointing…");
                self.cancel_queue();
                Command::Stop
            }
        };
        vec![Request::Command(command)]
    }

    fn edit(&mut self, key: KeyEvent) {
        let Some(text) = self.setup.editing.as_mut() else { return };
        match key.code {
            KeyCode::Enter => self.setup.finish_editing(),
            KeyCode::Esc => self.setup.editing = None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
    }

    fn on_setup_key(&mut self, action: Action) -> Vec<Request> {
        match action {
            Action::Up | Action::Down => self.setup.move_focus(action == Action::Down),
            Action::Left | Action::Right => self.setup.cycle(action == Action::Right),
            Action::Edit if !self.setup.start_editing() => self.notify(Level::Info, "choose with ← and →"),
            Action::Launch => self.launch(),
            _ => {}
        }
        Vec::new()
    }

    /// Queues the form's runs; the session starts them one after another.
    fn launch(&mut self) {
        if self.active.is_some() {
            self.notify(Level::Warn, "a run is training; stop it first (s) or wait for it");
            return;
        }
        let specs = match self.setup.runs() {
            Ok(specs) => specs,
            Err(why) => return self.notify(Level::Error, why),
        };
        let count = specs.len();
        let mut first = None;
        for spec in specs {
            let fresh = RunState::new(spec.run_id.clone(), Some(spec));
            let index = match self.runs.iter().position(|r| r.id == fresh.id) {
                Some(index) => {
                    self.runs[index] = RunState { overlaid: self.runs[index].overlaid, ..fresh };
                    index
                }
                None => {
                    self.runs.push(fresh);
                    self.runs.len() - 1
                }
            };
            first.get_or_insert(index);
        }
        self.selected = first.unwrap_or(self.selected);
        self.view = View::Run;
        self.notify(Level::Info, format!("queued {count} run{}", if count == 1 { "" } else { "s" }));
    }

    fn on_run_key(&mut self, action: Action) -> Vec<Request> {
        let charts = &mut self.charts;
        let focus = ChartKind::ALL.iter().position(|c| *c == charts.focus).unwrap_or(0);
        let count = ChartKind::ALL.len();
        match action {
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(self.runs.len().saturating_sub(1)),
            Action::Left => charts.focus = ChartKind::ALL[(focus + count - 1) % count],
            Action::Right => charts.focus = ChartKind::ALL[(focus + 1) % count],
            Action::Zoom => charts.zoomed = !charts.zoomed,
            Action::LogScale => charts.log_y = !charts.log_y,
            Action::SmoothMore => charts.smoothing = (charts.smoothing + 1).min(SMOOTHING_STEPS.len() - 1),
            Action::SmoothLess => charts.smoothing = charts.smoothing.saturating_sub(1),
            Action::Metric => {
                charts.metric = match charts.metric {
                    Metric::Accuracy => Metric::MacroF1,
                    Metric::MacroF1 => Metric::Mcc,
                    Metric::Mcc => Metric::Accuracy,
                }
            }
            Action::Overlay => {
                if let Some(run) = self.runs.get_mut(self.selected) {
                    run.overlaid = !run.overlaid;
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_results_key(&mut self, action: Action) -> Vec<Request> {
        match action {
            Action::ExportMarkdown => vec![Request::Export(Format::Md)],
            Action::ExportCsv => vec![Request::Export(Format::Csv)],
            Action::Refresh => vec![Request::RefreshResults],
            _ => Vec::new(),
        }
    }

    /// The runs the charts show: the selected one, then the overlaid ones.
    pub fn charted_runs(&self) -> Vec<usize> {
        let overlaid = (0..self.runs.len()).filter(|&i| self.runs[i].overlaid && i != self.selected);
        std::iter::once(self.selected).filter(|&i| i < self.runs.len()).chain(overlaid).collect()
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

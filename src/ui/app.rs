//! The console's state and how it changes. [`App::update`] takes a message (a key, a trainer
//! event, a results table, the process's usage) and returns what the session should do; it
//! touches no channel and no terminal, so tests drive it directly.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use super::form::SetupForm;
use super::keys::{Action, KeyMap};
use super::procstat::ProcessUsage;
use super::runs::{clock, Level, RunState, RunStatus};
use crate::experiment::table::{Format, Summary};
use crate::metrics::Metric;
use crate::plot::scale::SMOOTHING_STEPS;
use crate::train::events::{Command, Event};

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
    /// Run `run` was not started: another process holds it (and is training it).
    Held {
        run: usize,
        reason: String,
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
    /// The results table of the runs directory (its footnotes include the collection's warnings),
    /// or why there is none.
    Results(Result<Summary, String>),
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
    /// Write the SVG figures of the runs directory.
    WriteFigures,
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
    pub results: Result<Summary, String>,
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
            Msg::Held { run, reason } => {
                if let Some(state) = self.runs.get_mut(run) {
                    state.status = RunStatus::Skipped;
                    state.say(Level::Warn, reason);
                }
                if self.active == Some(run) {
                    self.active = None;
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
                    *state = state.restarted(None);
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
        if self.view == View::Setup {
            self.setup.refresh_needs();
        }
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
            Action::PauseResume => {
                // The trainer pauses between updates; an evaluation in progress finishes first.
                run.say(Level::Info, "pause requested: after the current update or evaluation");
                Command::Pause
            }
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
        if let Some(problems) = self.setup.offline_problems() {
            let count = problems.lines().count();
            let first = problems.lines().next().unwrap_or_default();
            let more = if count > 1 { format!(" (and {} more in the Launch pane)", count - 1) } else { String::new() };
            return self.notify(Level::Error, format!("cannot launch offline: {first}{more}"));
        }
        let count = specs.len();
        let mut first = None;
        for spec in specs {
            // A run launched before (stopped, failed) starts over in its old place.
            let index = match self.runs.iter().position(|r| r.id == spec.run_id) {
                Some(index) => {
                    self.runs[index] = self.runs[index].restarted(Some(spec));
                    index
                }
                None => {
                    self.runs.push(RunState::new(spec.run_id.clone(), Some(spec)));
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
            Action::Metric => charts.metric = charts.metric.next(),
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
            Action::WriteFigures => vec![Request::WriteFigures],
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

//! The console's side effects: it owns the trainer of the active run and the runs directory, and
//! is the only part of the UI that talks to channels. The queue itself is the app's runs list;
//! the session starts the next queued run whenever no trainer is active.
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use super::app::{App, Msg, Notice, Request};
use super::runs::Level;
use crate::experiment::rundir::{Launch, RunDir};
use crate::experiment::sweep::RunSpec;
use crate::experiment::table::{collect, render, summarize, Format, Summary};
use crate::plot::scale::Scale;
use crate::plot::{write_figures, FIGURES_DIR};
use crate::report::report;
use crate::train::events::{Command, Event};
use crate::train::trainer;

/// The ends of a trainer's channels that the console holds.
pub struct TrainerChannels {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    /// The trainer's thread, joined when it has reported its end (none for a fake trainer).
    pub thread: Option<JoinHandle<()>>,
}

/// Starts trainers: the real one, or a fake in tests.
pub trait Launcher {
    fn launch(&mut self, spec: RunSpec, run_dir: RunDir, resume: bool) -> TrainerChannels;
}

/// Launches the real trainer thread.
pub struct SpawnTrainer;

impl Launcher for SpawnTrainer {
    fn launch(&mut self, spec: RunSpec, run_dir: RunDir, resume: bool) -> TrainerChannels {
        let handle = trainer::spawn(spec, run_dir, resume);
        TrainerChannels { commands: handle.commands, events: handle.events, thread: Some(handle.thread) }
    }
}

struct Active {
    run: usize,
    channels: TrainerChannels,
}

pub struct Session {
    launcher: Box<dyn Launcher>,
    runs_dir: PathBuf,
    active: Option<Active>,
}

impl Session {
    pub fn new(launcher: Box<dyn Launcher>, runs_dir: PathBuf) -> Self {
        Self { launcher, runs_dir, active: None }
    }

    pub fn runs_dir(&self) -> &Path {
        &self.runs_dir
    }

    /// Whether a trainer is running (including one on its way to stop).
    pub fn is_training(&self) -> bool {
        self.active.is_some()
    }

    /// Carries out the app's requests, and whatever those lead to.
    pub fn perform(&mut self, app: &mut App, requests: Vec<Request>) {
        for request in requests {
            match request {
                Request::Command(command) => self.send(app, command),
                Request::RefreshResults => self.refresh_results(app),
                Request::Export(format) => self.export(app, format),
                Request::WriteFigures => self.write_figures(app),
            }
        }
    }

    /// Updates the app with every event the trainer has sent since the last call, then starts the
    /// next queued run if the trainer is done. Returns whether anything happened.
    pub fn pump(&mut self, app: &mut App) -> bool {
        let mut changed = false;
        let now = Instant::now();
        while let Some(active) = &self.active {
            let (run, event) = match active.channels.events.try_recv() {
                Ok(event) => (active.run, event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    (active.run, Event::Failed("the trainer ended without reporting why".into()))
                }
            };
            let ended = matches!(event, Event::Finished { .. } | Event::Stopped { .. } | Event::Failed(_));
            let requests = app.update(Msg::Trainer { run, event, at: now });
            if ended {
                self.finish_active();
            }
            self.perform(app, requests);
            changed = true;
        }
        // A run that is skipped (already finished) or cannot start lets the next one go.
        while self.active.is_none() {
            let Some(run) = app.next_queued() else { break };
            self.start(app, run);
            changed = true;
        }
        changed
    }

    fn finish_active(&mut self) {
        if let Some(thread) = self.active.take().and_then(|a| a.channels.thread) {
            // The trainer has sent its last event, so its thread is returning.
            let _ = thread.join();
        }
    }

    /// Starts `run` as `RunDir::launch` decides, the decision `sift-tui run` makes too.
    fn start(&mut self, app: &mut App, run: usize) {
        let Some(spec) = app.runs[run].spec.clone() else { return };
        app.update(Msg::Started { run });
        let at = Instant::now();
        let (dir, resume) = match RunDir::launch(&self.runs_dir, &spec) {
            Ok(Launch::Finished { results }) => {
                let note = Event::Warning("already finished; skipped".into());
                app.update(Msg::Trainer { run, event: note, at });
                let requests = app.update(Msg::Trainer { run, event: Event::Finished { results }, at });
                self.perform(app, requests);
                return;
            }
            Ok(Launch::Held(busy)) => {
                app.update(Msg::Held { run, reason: format!("skipped: {busy}") });
                return;
            }
            Ok(Launch::Resume(dir)) => (dir, true),
            Ok(Launch::Fresh(dir)) => (dir, false),
            Err(e) => {
                app.update(Msg::Trainer { run, event: Event::Failed(report(&e)), at });
                return;
            }
        };
        if resume {
            let note = Event::Warning("started before: resuming from the newest checkpoint".into());
            app.update(Msg::Trainer { run, event: note, at });
        }
        self.active = Some(Active { run, channels: self.launcher.launch(spec, dir, resume) });
    }

    fn send(&mut self, app: &mut App, command: Command) {
        let Some(active) = &self.active else { return };
        match active.channels.commands.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => notice(app, Level::Warn, "the trainer is busy; try again"),
            Err(TrySendError::Disconnected(_)) => notice(app, Level::Warn, "the trainer has ended"),
        }
    }

    /// Reads the runs directory's results into the results view.
    pub fn refresh_results(&mut self, app: &mut App) {
        let table = load_table(&self.runs_dir);
        app.update(Msg::Results(table));
    }

    fn export(&mut self, app: &mut App, format: Format) {
        let (name, what) = match format {
            Format::Csv => ("results.csv", "CSV"),
            _ => ("results.md", "Markdown"),
        };
        let path = self.runs_dir.join(name);
        let written = collect(&self.runs_dir).and_then(|collected| {
            crate::atomic::write(&path, render(&collected, format).as_bytes())?;
            Ok(collected.runs.len())
        });
        match written {
            Ok(runs) => notice(app, Level::Good, format!("{what} table of {runs} runs written to {}", path.display())),
            Err(e) => notice(app, Level::Error, format!("export failed: {}", report(&e))),
        }
    }

    /// Writes the SVG figures into `<runs dir>/figures`, smoothed and scaled as the run view is.
    fn write_figures(&mut self, app: &mut App) {
        let out = self.runs_dir.join(FIGURES_DIR);
        let scale = Scale { log_y: app.charts.log_y, smoothing: app.charts.smoothing_weight() };
        match write_figures(&self.runs_dir, &out, scale) {
            Ok(written) => {
                let skipped = match written.warnings.len() {
                    0 => String::new(),
                    n => format!(" ({n} run(s) skipped: {})", written.warnings.join("; ")),
                };
                let count = written.files.len();
                notice(app, Level::Good, format!("{count} figure(s) written to {}{skipped}", out.display()))
            }
            Err(e) => notice(app, Level::Error, format!("figures failed: {}", crate::report::report(&e))),
        }
    }

    /// Asks a still running trainer to checkpoint and stop, and waits for it (on quit after an
    /// error, so that no run is left without its checkpoint).
    pub fn shut_down(&mut self) {
        if let Some(active) = self.active.take() {
            let _ = active.channels.commands.send(Command::Stop);
            while let Ok(event) = active.channels.events.recv() {
                if matches!(event, Event::Finished { .. } | Event::Stopped { .. } | Event::Failed(_)) {
                    break;
                }
            }
            if let Some(thread) = active.channels.thread {
                let _ = thread.join();
            }
        }
    }
}

/// The results table of a runs directory as the results view shows it.
pub fn load_table(runs_dir: &Path) -> Result<Summary, String> {
    if !runs_dir.is_dir() {
        return Err(format!("{}: no runs yet", runs_dir.display()));
    }
    let collected = collect(runs_dir).map_err(|e| report(&e))?;
    if collected.runs.is_empty() {
        let running = collected.without_results.len();
        return Err(format!("no finished runs yet ({running} without results)"));
    }
    let mut summary = summarize(&collected);
    summary.footnotes.extend(collected.warnings.iter().map(|w| format!("warning: {w}")));
    Ok(summary)
}

fn notice(app: &mut App, level: Level, text: impl Into<String>) {
    app.update(Msg::Notice(Notice { level, text: text.into() }));
}

//! The ratatui console. It talks to the trainer through the session's channels only, redraws at
//! most [`FRAME`] apart, and drains every pending trainer event between frames, so a slow
//! terminal never slows training.
//!
//! - [`app`]: state and `update` (pure); [`runs`]: one run's curves and log; [`form`]: the setup form;
//! - [`session`]: the trainer of the active run, the queue's launches, results and exports;
//! - [`watch`]: runs of other processes, followed through their `metrics.jsonl`;
//! - [`views`] and [`charts`]: rendering; [`keys`]: bindings and `keys.toml`.
pub mod app;
pub mod charts;
pub mod form;
pub mod keys;
pub mod palette;
pub mod procstat;
pub mod runs;
pub mod session;
pub mod views;
pub mod watch;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Receiver;
use ratatui::crossterm::event::{self, Event as TermEvent};
use ratatui::DefaultTerminal;

use app::{App, Mode, Msg, Notice};
use form::SetupForm;
use keys::KeyMap;
use procstat::UsageSampler;
use runs::Level;
use session::{Session, SpawnTrainer};
use watch::Watcher;

use crate::signals::{Interrupted, Signal};

/// The shortest time between two redraws (at most 10 frames a second).
pub const FRAME: Duration = Duration::from_millis(100);
/// How long to wait for a key before looking at the trainer's events again.
const POLL: Duration = Duration::from_millis(50);
/// How often the process's CPU and memory use is read (also refreshes the ETA).
const USAGE_EVERY: Duration = Duration::from_secs(1);
/// How often watch mode reads the runs directory.
const WATCH_EVERY: Duration = Duration::from_millis(500);

pub struct ConsoleOptions {
    /// A preset to open with; the presets in `./presets` are offered too.
    pub preset: Option<PathBuf>,
    pub runs_dir: PathBuf,
}

/// The interactive console: set up, launch and follow runs, and read the results table.
pub fn run_console(options: ConsoleOptions) -> anyhow::Result<()> {
    if let Some(preset) = &options.preset {
        anyhow::ensure!(preset.is_file(), "{}: no such preset file", preset.display());
    }
    let presets = preset_files(options.preset.as_deref());
    let models = crate::model::resolve::local_models().into_iter().map(|(id, _)| id).collect();
    let mut app = new_app(Mode::Console, SetupForm::new(presets, models), &options.runs_dir);
    let mut session = Session::new(Box::new(SpawnTrainer), options.runs_dir);
    session.refresh_results(&mut app);
    let signals = crate::signals::channel()?;
    let outcome = with_terminal(|terminal| event_loop(terminal, &mut app, &mut session, None, &signals));
    // After an error or a signal the trainer may still be running: let it checkpoint before the
    // process ends. Not `eprintln!`: after a hang-up there is no terminal to write to.
    if session.is_training() {
        let _ = writeln!(std::io::stderr(), "stopping the trainer: writing a checkpoint…");
        session.shut_down();
    }
    interrupted(outcome?)
}

/// A signal that ended the event loop becomes the process's error (and exit status).
fn interrupted(signal: Option<Signal>) -> anyhow::Result<()> {
    match signal {
        Some(signal) => Err(Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// Follows the runs under `runs_dir` that other processes write.
pub fn run_watch(runs_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(runs_dir.is_dir(), "{}: no such runs directory", runs_dir.display());
    let mut app = new_app(Mode::Watch, SetupForm::new(Vec::new(), Vec::new()), runs_dir);
    let mut session = Session::new(Box::new(SpawnTrainer), runs_dir.to_path_buf());
    session.refresh_results(&mut app);
    let mut watcher = Watcher::new(runs_dir.to_path_buf());
    let signals = crate::signals::channel()?;
    interrupted(with_terminal(|terminal| event_loop(terminal, &mut app, &mut session, Some(&mut watcher), &signals))?)
}

fn new_app(mode: Mode, form: SetupForm, runs_dir: &Path) -> App {
    let (keys, problem) = KeyMap::load();
    let mut app = App::new(mode, form, keys, runs_dir);
    app.keys_file = keys::config_path();
    if let Some(text) = problem {
        app.update(Msg::Notice(Notice { level: Level::Warn, text }));
    }
    app
}

/// The given preset first, then `presets/*.toml` of the working directory.
fn preset_files(given: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = given.map(Path::to_path_buf).into_iter().collect();
    let mut found: Vec<PathBuf> = std::fs::read_dir("presets")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let same = |a: &Path, b: &Path| a.canonicalize().ok().is_some_and(|a| b.canonicalize().is_ok_and(|b| a == b));
    files.extend(found.into_iter().filter(|p| given.is_none_or(|g| !same(g, p))));
    files
}

/// Runs `body` on the terminal in raw mode and the alternate screen, restoring it afterwards,
/// whether `body` returns or fails; a panic restores it through the hook `try_init` installs.
fn with_terminal<T>(body: impl FnOnce(&mut DefaultTerminal) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let outcome = body(&mut terminal);
    // A terminal that hung up cannot be restored, and there is nowhere to say so.
    let _ = ratatui::try_restore();
    outcome
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    session: &mut Session,
    mut watcher: Option<&mut Watcher>,
    signals: &Receiver<Signal>,
) -> anyhow::Result<Option<Signal>> {
    let mut sampler = UsageSampler::default();
    let mut last_draw: Option<Instant> = None;
    let mut last_usage: Option<Instant> = None;
    let mut last_watch: Option<Instant> = None;
    let mut dirty = true;
    let due = |last: Option<Instant>, every: Duration| last.is_none_or(|t| t.elapsed() >= every);
    while !app.quit {
        if let Ok(signal) = signals.try_recv() {
            return Ok(Some(signal));
        }
        if dirty && due(last_draw, FRAME) {
            terminal.draw(|frame| views::draw(frame, app)).context("cannot draw")?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        if event::poll(POLL).context("cannot read the terminal")? {
            match event::read().context("cannot read the terminal")? {
                TermEvent::Key(key) => {
                    let requests = app.update(Msg::Key(key));
                    session.perform(app, requests);
                    dirty = true;
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
        dirty |= session.pump(app);
        if let Some(watcher) = watcher.as_deref_mut().filter(|_| due(last_watch, WATCH_EVERY)) {
            last_watch = Some(Instant::now());
            let (changed, finished) = watcher.poll(app)?;
            if finished {
                session.refresh_results(app);
            }
            dirty |= changed;
        }
        if due(last_usage, USAGE_EVERY) {
            last_usage = Some(Instant::now());
            app.update(Msg::Usage(sampler.sample()));
            dirty = true;
        }
    }
    Ok(None)
}

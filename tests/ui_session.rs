//! The console against a fake trainer: a pair of channels the test drives. Keys go in through
//! `App::update`, the session carries out what the app asks, and the test checks the commands the
//! trainer receives and what the console shows.
mod ui_common;

use std::path::{Path, PathBuf};

use crossbeam_channel::{bounded, Receiver, Sender};
use ratatui::crossterm::event::KeyCode;
use sift_tui::experiment::preset::Preset;
use sift_tui::experiment::results::{ColumnResult, RunResults};
use sift_tui::experiment::rundir::RunDir;
use sift_tui::experiment::sweep::RunSpec;
use sift_tui::metrics::{Metric, Scores, Split};
use sift_tui::train::events::{Command, Event};
use sift_tui::ui::app::{App, Msg, Popup, View};
use sift_tui::ui::runs::RunStatus;
use sift_tui::ui::session::{Launcher, Session, TrainerChannels};
use ui_common::{code, console_app, key, render, step, write_fixture_preset, write_preset};

/// The other ends of a launched fake trainer's channels.
struct FakeTrainer {
    spec: RunSpec,
    resume: bool,
    commands: Receiver<Command>,
    events: Sender<Event>,
}

struct FakeLauncher {
    launched: Sender<FakeTrainer>,
}

impl Launcher for FakeLauncher {
    fn launch(&mut self, spec: RunSpec, _run_dir: RunDir, resume: bool) -> TrainerChannels {
        let (command_tx, command_rx) = bounded(64);
        let (event_tx, event_rx) = bounded(64);
        let fake = FakeTrainer { spec, resume, commands: command_rx, events: event_tx };
        self.launched.send(fake).expect("the test holds the receiver");
        TrainerChannels { commands: command_tx, events: event_rx, thread: None }
    }
}

struct Harness {
    app: App,
    session: Session,
    launched: Receiver<FakeTrainer>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let preset = write_preset(dir.path());
        let runs_dir = dir.path().join("runs");
        Self::over(preset, runs_dir, dir)
    }

    /// The console on `preset`, launching into `runs_dir`; `dir` lives as long as the harness.
    fn over(preset: PathBuf, runs_dir: PathBuf, dir: tempfile::TempDir) -> Self {
        let (launched_tx, launched) = bounded(8);
        let session = Session::new(Box::new(FakeLauncher { launched: launched_tx }), runs_dir.clone());
        Self { app: console_app(vec![preset], &runs_dir), session, launched, _dir: dir }
    }

    fn runs_dir(&self) -> &Path {
        self.session.runs_dir()
    }

    /// A message through the app, its requests through the session, then the trainer's events.
    fn send(&mut self, msg: Msg) {
        let requests = self.app.update(msg);
        self.session.perform(&mut self.app, requests);
        self.session.pump(&mut self.app);
    }

    fn press(&mut self, c: char) {
        self.send(key(c));
    }

    fn pump(&mut self) {
        self.session.pump(&mut self.app);
    }

    /// Presses Enter in the setup view and returns the first trainer started.
    fn launch(&mut self) -> FakeTrainer {
        self.send(code(KeyCode::Enter));
        self.launched.try_recv().expect("Enter starts a trainer")
    }
}

fn emit(trainer: &FakeTrainer, event: Event) {
    trainer.events.send(event).expect("the session holds the receiver");
}

fn training(trainer: &FakeTrainer) {
    emit(trainer, Event::Stage { name: "source".into(), index: 0, count: 2, total_steps: 30 });
    for s in 1..=3 {
        emit(trainer, step("source", s, 0.7 - 0.1 * s as f32, Some(0.01)));
    }
}

#[test]
fn enter_queues_the_sweep_and_starts_its_first_run() {
    let mut h = Harness::new();
    let trainer = h.launch();
    assert_eq!(trainer.spec.run_id, "tiny__all-MiniLM-L6-v2__standard__s1");
    assert!(!trainer.resume, "a new run starts from the beginning");
    assert!(h.runs_dir().join(&trainer.spec.run_id).join("config.toml").is_file());
    assert_eq!(h.app.view, View::Run);
    let statuses: Vec<&RunStatus> = h.app.runs.iter().map(|r| &r.status).collect();
    assert_eq!(statuses, [&RunStatus::Running, &RunStatus::Queued]);

    training(&trainer);
    h.pump();
    let run = &h.app.runs[0];
    assert_eq!(run.loss.len(), 3);
    assert_eq!(run.adv_kl.len(), 3);
    assert_eq!(run.stage.as_ref().map(|s| s.step()), Some(3));
    let screen = render(&h.app, 120, 40);
    assert!(screen.contains("3/30 updates") && screen.contains("42.5 samples/s"), "{screen}");
}

#[test]
fn runs_of_a_sweep_execute_one_after_another() {
    let mut h = Harness::new();
    let first = h.launch();
    training(&first);
    h.pump();
    assert!(h.launched.try_recv().is_err(), "the second run waits for the first");
    emit(&first, Event::Finished { results: h.runs_dir().join("results.json") });
    h.pump();
    let second = h.launched.try_recv().expect("the next run starts when the first finishes");
    assert_eq!(second.spec.run_id, "tiny__all-MiniLM-L6-v2__sift__s1");
    assert_eq!(h.app.runs[0].status, RunStatus::Finished);
    assert_eq!(h.app.runs[1].status, RunStatus::Running);
    assert_eq!(h.app.sweep_progress(), (1, 2));
}

#[test]
fn pause_resume_and_checkpoint_reach_the_trainer() {
    let mut h = Harness::new();
    let trainer = h.launch();
    training(&trainer);
    h.press('p');
    assert_eq!(trainer.commands.try_recv(), Ok(Command::Pause));
    assert_eq!(h.app.runs[0].status, RunStatus::Running, "paused only once the trainer says so");
    assert!(render(&h.app, 120, 40).contains("pause requested"), "the key is acknowledged at once");
    emit(&trainer, Event::Paused);
    h.pump();
    assert_eq!(h.app.runs[0].status, RunStatus::Paused);
    assert!(render(&h.app, 120, 40).contains(" paused "));

    h.press(' ');
    assert_eq!(trainer.commands.try_recv(), Ok(Command::Resume));
    emit(&trainer, Event::Resumed);
    h.pump();
    assert_eq!(h.app.runs[0].status, RunStatus::Running);

    h.press('c');
    assert_eq!(trainer.commands.try_recv(), Ok(Command::Checkpoint));
    emit(&trainer, Event::Checkpoint { path: "runs/x/checkpoints/ckpt-00-0000003.safetensors".into(), step: 3 });
    h.pump();
    let screen = render(&h.app, 120, 40);
    assert!(screen.contains("checkpoint ckpt-00-0000003.safetensors at update 3"), "{screen}");
    assert!(trainer.commands.try_recv().is_err(), "one command per key");
}

#[test]
fn stop_keeps_the_checkpoint_and_ends_the_sweep() {
    let mut h = Harness::new();
    let trainer = h.launch();
    training(&trainer);
    h.press('s');
    assert_eq!(trainer.commands.try_recv(), Ok(Command::Stop));
    assert_eq!(h.app.runs[1].status, RunStatus::Cancelled);
    emit(&trainer, Event::Checkpoint { path: "ckpt-00-0000003.safetensors".into(), step: 3 });
    emit(&trainer, Event::Stopped { checkpoint: Some("ckpt-00-0000003.safetensors".into()) });
    h.pump();
    assert_eq!(h.app.runs[0].status, RunStatus::Stopped);
    assert!(h.app.active.is_none());
    assert!(h.launched.try_recv().is_err(), "no further run starts");
    assert!(!h.app.quit, "stop is not quit");

    // Launching again resumes the stopped run from its checkpoint.
    std::fs::write(h.runs_dir().join(&trainer.spec.run_id).join("metrics.jsonl"), "").unwrap();
    h.send(code(KeyCode::BackTab));
    assert_eq!(h.app.view, View::Setup);
    let again = h.launch();
    assert_eq!(again.spec.run_id, trainer.spec.run_id);
    assert!(again.resume);
}

#[test]
fn quit_asks_while_training_and_waits_for_the_trainer_to_stop() {
    let mut h = Harness::new();
    let trainer = h.launch();
    training(&trainer);

    h.press('q');
    assert_eq!(h.app.popup, Some(Popup::ConfirmQuit));
    assert!(render(&h.app, 120, 40).contains("A run is training. Quit?"));
    h.press('n');
    assert_eq!(h.app.popup, None);
    assert!(trainer.commands.try_recv().is_err(), "`n` keeps training");

    h.press('q');
    h.press('y');
    assert_eq!(trainer.commands.try_recv(), Ok(Command::Stop));
    assert!(h.app.quitting && !h.app.quit, "waits for the checkpoint");
    h.press('q');
    assert!(trainer.commands.try_recv().is_err() && !h.app.quit);

    emit(&trainer, Event::Stopped { checkpoint: Some("ckpt-00-0000003.safetensors".into()) });
    h.pump();
    assert!(h.app.quit);
    assert!(h.launched.try_recv().is_err(), "the queued run does not start on the way out");
}

#[test]
fn quit_without_a_trainer_is_immediate() {
    let mut h = Harness::new();
    h.press('q');
    assert!(h.app.quit);
    assert_eq!(h.app.popup, None);
}

#[test]
fn a_failure_shows_its_cause_and_the_run_stays_open() {
    let mut h = Harness::new();
    let trainer = h.launch();
    training(&trainer);
    emit(&trainer, Event::Failed("source: 5 non-finite updates in a row; try a lower learning rate".into()));
    h.pump();
    let screen = render(&h.app, 120, 40);
    assert!(screen.contains("Training failed") && screen.contains("5 non-finite updates in a row"), "{screen}");
    assert_eq!(h.app.runs[1].status, RunStatus::Cancelled);

    h.send(code(KeyCode::Esc));
    assert_eq!(h.app.popup, None);
    assert_eq!(h.app.view, View::Run);
    let screen = render(&h.app, 120, 40);
    assert!(screen.contains("✗ all-MiniLM-L6-v2 standard s1 failed: source: 5 non-finite"), "{screen}");
    assert!(screen.contains("training loss"), "the charts stay: {screen}");
    assert_eq!(h.app.runs[0].loss.len(), 3);
}

#[test]
fn a_trainer_that_vanishes_counts_as_failed() {
    let mut h = Harness::new();
    let trainer = h.launch();
    drop(trainer);
    h.pump();
    assert!(matches!(&h.app.runs[0].status, RunStatus::Failed(m) if m.contains("without reporting")));
    assert!(matches!(h.app.popup, Some(Popup::Failure { .. })));
}

#[test]
fn controls_without_a_trainer_only_explain() {
    let mut h = Harness::new();
    h.press('p');
    assert!(h.app.notice.as_ref().is_some_and(|n| n.text.contains("no run is training")));
    assert!(h.launched.try_recv().is_err());
}

#[test]
fn the_form_validates_before_launching() {
    let mut h = Harness::new();
    // Focus "batch size" (preset, model, method, seeds, batch size), type a bad value.
    for _ in 0..4 {
        h.press('j');
    }
    h.press('i');
    h.send(code(KeyCode::Backspace));
    h.press('x');
    h.send(code(KeyCode::Enter));
    let field = &h.app.setup.fields[4];
    assert!(field.error.as_deref().is_some_and(|e| e.contains("`x` is not a whole number")), "{field:?}");
    h.send(code(KeyCode::Enter));
    assert!(h.launched.try_recv().is_err(), "no launch with a bad field");
    assert_eq!(h.app.view, View::Setup);

    // A syntactically fine value the preset rules reject is pinned to its field too.
    h.press('i');
    h.send(code(KeyCode::Backspace));
    h.press('0');
    h.send(code(KeyCode::Enter));
    let field = &h.app.setup.fields[4];
    assert!(field.error.as_deref().is_some_and(|e| e.contains("at least 1")), "{field:?}");

    // Fixed, and one method picked: a single run.
    h.press('i');
    h.send(code(KeyCode::Backspace));
    h.press('4');
    h.send(code(KeyCode::Enter));
    h.press('k');
    h.press('k');
    h.press('l');
    h.press('l');
    let trainer = h.launch();
    assert_eq!(trainer.spec.method.as_str(), "r3f");
    assert_eq!(trainer.spec.preset.train.batch_size, 4);
    assert_eq!(h.app.runs.len(), 1);
}

fn finished_run(runs_dir: &Path, spec: &RunSpec, correct: usize) {
    let mut dir = RunDir::create(runs_dir, spec).unwrap();
    dir.lock().unwrap();
    let gold = vec![0u32, 1, 0, 1, 0, 1, 0, 1];
    let predicted: Vec<u32> = gold.iter().enumerate().map(|(i, &g)| if i < correct { g } else { 1 - g }).collect();
    let scores = Scores { accuracy: correct as f64 / 8.0, ..Scores::default() };
    dir.write_results(&RunResults {
        run_id: spec.run_id.clone(),
        preset: "tiny".into(),
        model: spec.model.clone(),
        method: spec.method,
        seed: spec.seed,
        metric: Metric::Accuracy,
        best_step: 10,
        dev: scores.clone(),
        columns: vec![ColumnResult { name: "0%".into(), scores, gold, predicted }],
        elapsed_secs: 1.0,
    })
    .unwrap();
}

#[test]
fn finished_runs_fill_the_table_and_export() {
    let mut h = Harness::new();
    let first = h.launch();
    let second_spec = h.app.runs[1].spec.clone().unwrap();
    finished_run(h.runs_dir(), &first.spec, 6);
    emit(&first, Event::Finished { results: h.runs_dir().join("results.json") });
    h.pump();
    let table = h.app.results.as_ref().expect("a table after the first run");
    assert_eq!(table.rows().count(), 1);

    let second = h.launched.try_recv().unwrap();
    finished_run(h.runs_dir(), &second_spec, 8);
    emit(&second, Event::Finished { results: h.runs_dir().join("results.json") });
    h.pump();
    let table = h.app.results.as_ref().unwrap();
    assert_eq!(table.rows().count(), 2);
    assert_eq!(table.columns, [Split::Fraction(0.0)]);

    h.send(code(KeyCode::Tab));
    assert_eq!(h.app.view, View::Results);
    h.press('e');
    h.press('E');
    let markdown = std::fs::read_to_string(h.runs_dir().join("results.md")).unwrap();
    assert!(markdown.contains("| sentence-transformers/all-MiniLM-L6-v2 | sift |"), "{markdown}");
    let csv = std::fs::read_to_string(h.runs_dir().join("results.csv")).unwrap();
    assert!(csv.starts_with("preset,model,method,column"), "{csv}");
    assert!(h.app.notice.as_ref().is_some_and(|n| n.text.contains("results.csv")));

    // `P` writes the figures of the runs directory; these runs have results but no curves yet.
    h.press('P');
    let figures = h.runs_dir().join("figures");
    let notice = h.app.notice.clone().unwrap();
    assert!(notice.text.contains("1 figure(s) written") && notice.text.contains("figures"), "{notice:?}");
    assert!(figures.join("tiny__all-MiniLM-L6-v2__forest.svg").is_file());
    // The figures folder is not a run: the table still has its two rows.
    h.press('r');
    assert_eq!(h.app.results.as_ref().unwrap().rows().count(), 2);
}

#[test]
fn a_finished_run_is_skipped_on_relaunch() {
    let mut h = Harness::new();
    let spec = h.app.setup.runs().unwrap().remove(0);
    finished_run(h.runs_dir(), &spec, 8);
    let trainer = h.launch();
    assert_eq!(trainer.spec.run_id, "tiny__all-MiniLM-L6-v2__sift__s1", "the finished standard run is skipped");
    assert_eq!(h.app.runs[0].status, RunStatus::Finished);
}

/// `sift-tui run` and the console make the same decision over a finished, a held, a checkpointed
/// and an empty run directory: skip; skip and say so; resume; start from the beginning.
#[test]
fn the_console_and_run_decide_alike_on_every_kind_of_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let preset = write_fixture_preset(dir.path(), "[1, 2, 3, 4]", 4, 2);
    let runs_dir = dir.path().join("runs");
    let specs = Preset::load(&preset, &[]).unwrap().runs();
    let sift = || std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui"));
    for only in ["1", "3"] {
        let output =
            sift().arg("run").arg(&preset).args(["--only", only, "--runs-dir"]).arg(&runs_dir).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let run = |i: usize| runs_dir.join(&specs[i].run_id);
    // Run 3 keeps its checkpoint and metrics but not its results: it was started and not finished.
    std::fs::remove_file(run(2).join("results.json")).unwrap();
    drop(RunDir::create(&runs_dir, &specs[3]).unwrap());
    let _held = RunDir::create(&runs_dir, &specs[1]).unwrap();
    let expected = ["finished", "held", "resume", "fresh"];

    let mut h = Harness::over(preset.clone(), runs_dir.clone(), tempfile::tempdir().unwrap());
    h.send(code(KeyCode::Enter));
    let third = h.launched.try_recv().expect("the checkpointed run starts");
    emit(&third, Event::Finished { results: run(2).join("results.json") });
    h.pump();
    let fourth = h.launched.try_recv().expect("the empty run starts");
    assert!(h.launched.try_recv().is_err());
    let console: Vec<&str> = vec![
        if h.app.runs[0].status == RunStatus::Finished { "finished" } else { "?" },
        if h.app.runs[1].status == RunStatus::Skipped { "held" } else { "?" },
        if third.spec.run_id == specs[2].run_id && third.resume { "resume" } else { "?" },
        if fourth.spec.run_id == specs[3].run_id && !fourth.resume { "fresh" } else { "?" },
    ];
    assert_eq!(console, expected);
    assert!(h.app.runs[1].log.iter().any(|l| l.text.contains("already running")), "the held run says why");

    let output = sift().arg("run").arg(&preset).arg("--runs-dir").arg(&runs_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let headless: Vec<&str> = specs
        .iter()
        .map(|spec| {
            let line = stderr.lines().find(|l| l.contains(&format!("] {}", spec.run_id))).unwrap_or_default();
            if line.contains("already finished") {
                "finished"
            } else if line.contains("already running") {
                "held"
            } else if line.contains("(resuming)") {
                "resume"
            } else if line.ends_with(&spec.run_id) {
                "fresh"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(headless, expected, "{stderr}");
}

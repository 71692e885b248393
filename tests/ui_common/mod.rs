//! Helpers shared by the console's tests: a small preset, key presses, scripted training events
//! and rendering into a `TestBackend`.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use sift_tui::data::fetch::FetchOptions;
use sift_tui::experiment::assets::Sources;
use sift_tui::metrics::{EvalMetrics, Scores, StepMetrics};
use sift_tui::model::resolve::SearchEnv;
use sift_tui::train::events::Event;
use sift_tui::ui::app::{App, Mode, Msg};
use sift_tui::ui::form::SetupForm;
use sift_tui::ui::keys::KeyMap;

/// A preset of two runs (standard and sift, seed 1) with a target stage. The fake trainer never
/// reads its data.
pub fn write_preset(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    let text = r#"
name = "tiny"
description = "two methods on small data"

[sweep]
models = ["sentence-transformers/all-MiniLM-L6-v2"]
methods = ["standard", "sift"]
seeds = [1]

[source]
limit = 64
[source.dataset]
kind = "twitter-hate"

[target]
fractions = [0.0, 0.1]
label_map = "hate-to-negative"
limit = 64
[target.dataset]
kind = "uci-sentiment"

[train]
batch_size = 8
max_steps = 30
max_len = 32
eval_every = 10
"#;
    std::fs::write(&path, text).expect("preset written");
    path
}

/// A console app over `presets`, showing `runs_dir` in its header.
pub fn console_app(presets: Vec<PathBuf>, runs_dir: &Path) -> App {
    console_app_with(presets, runs_dir, sources(false))
}

/// [`console_app`] with given model and data sources.
pub fn console_app_with(presets: Vec<PathBuf>, runs_dir: &Path, sources: Sources) -> App {
    let form = SetupForm::with_sources(presets, vec!["local-model".into()], sources);
    App::new(Mode::Console, form, KeyMap::default(), runs_dir)
}

/// Sources that hold nothing, whatever the machine has: every model and dataset is to be
/// downloaded, or is missing when `offline`.
pub fn sources(offline: bool) -> Sources {
    let models = SearchEnv { offline, ..SearchEnv::default() };
    Sources { models, data: FetchOptions { offline, ..FetchOptions::new("no-such-data-dir") } }
}

pub fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

pub fn code(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn step(stage: &str, step: usize, loss: f32, adv_kl: Option<f32>) -> Event {
    Event::Step(StepMetrics {
        stage: stage.into(),
        step,
        epoch: 1,
        loss,
        task_loss: loss,
        adv_kl,
        lr: 5e-5 * (1.0 - step as f64 / 40.0),
        grad_norm: 1.0,
        samples_per_sec: 42.5,
    })
}

pub fn eval(stage: &str, step: usize, split: &str, accuracy: f64, mcc: f64) -> Event {
    let scores =
        Scores { accuracy, macro_f1: accuracy - 0.05, mcc, loss: 0.5, examples: 64, predicted_counts: vec![30, 34] };
    Event::Eval(EvalMetrics { stage: stage.into(), step, split: split.into(), scores })
}

/// A source stage of 30 updates (of which `steps` happened, one a second) with dev evaluations
/// every 10, for run `run`; `shift` makes a second run's curves differ.
pub fn scripted_source_stage(steps: usize, shift: f32, adversarial: bool) -> Vec<(Event, Duration)> {
    let mut events =
        vec![(Event::Stage { name: "source".into(), index: 0, count: 2, total_steps: 30 }, Duration::ZERO)];
    for s in 1..=steps {
        let loss = 0.7 * (-(s as f32) / (12.0 + shift)).exp() + 0.05 + 0.02 * ((s as f32) * 1.7).sin();
        let kl = adversarial.then(|| 0.02 + 0.01 * (s as f32 / 5.0).cos().abs());
        events.push((step("source", s, loss, kl), Duration::from_secs(s as u64)));
        if s % 10 == 0 {
            let accuracy = 0.6 + 0.01 * s as f64 + shift as f64 / 100.0;
            events.push((eval("source", s, "source-dev", accuracy, accuracy - 0.4), Duration::from_secs(s as u64)));
        }
    }
    events
}

/// Feeds events to run `run` at times `start + offset`.
pub fn feed(app: &mut App, run: usize, start: Instant, events: Vec<(Event, Duration)>) {
    for (event, offset) in events {
        app.update(Msg::Trainer { run, event, at: start + offset });
    }
}

pub fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| sift_tui::ui::views::draw(frame, app)).expect("drawn");
    terminal.backend().to_string()
}

/// A sweep (`seeds`, a TOML list) over the tiny BERT fixture and a synthetic table, for the real
/// binary: `max_steps` updates, a checkpoint every `checkpoint_every` (0: none but on request).
pub fn write_fixture_preset(dir: &Path, seeds: &str, max_steps: usize, checkpoint_every: usize) -> PathBuf {
    let data = dir.join("data.csv");
    let rows: String = (0..32).map(|i| format!("sentence {i} is {},{}\n", ["good", "bad"][i % 2], i % 2)).collect();
    std::fs::write(&data, format!("text,label\n{rows}")).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/bert-cls");
    let preset = format!(
        r#"name = "same"
[sweep]
models = ["{}"]
methods = ["standard"]
seeds = {}
[source]
[source.dataset]
kind = "table"
path = "{}"
text_column = "text"
label_column = "label"
label_names = ["neg", "pos"]
[train]
epochs = 1000
batch_size = 4
max_steps = {}
max_len = 16
checkpoint_every = {}
"#,
        model.display(),
        seeds,
        data.display(),
        max_steps,
        checkpoint_every
    );
    let path = dir.join("same.toml");
    std::fs::write(&path, preset).unwrap();
    path
}

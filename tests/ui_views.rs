//! Snapshots of the views, rendered into a `TestBackend` from scripted events (text only; colours
//! are not part of a snapshot).
mod ui_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;
use sift_tui::data::fetch::DatasetId;
use sift_tui::download::Transfer;
use sift_tui::experiment::assets::Item;
use sift_tui::experiment::results::{ColumnResult, RunResults};
use sift_tui::experiment::table::{summarize, Collected, Summary};
use sift_tui::method::MethodName;
use sift_tui::metrics::{Metric, Scores, Split};
use sift_tui::model::resolve::Availability;
use sift_tui::train::events::Event;
use sift_tui::ui::app::{App, Mode, Msg, View};
use sift_tui::ui::form::SetupForm;
use sift_tui::ui::keys::KeyMap;
use sift_tui::ui::procstat::ProcessUsage;
use sift_tui::ui::runs::Level;
use sift_tui::ui::runs::RunState;
use ui_common::{code, console_app, console_app_with, eval, feed, key, render, scripted_source_stage, sources, step};

const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

/// The repository's quick preset, by a relative path so that the snapshot does not hold a
/// machine's directories.
fn quick_preset() -> PathBuf {
    let path = PathBuf::from("presets/quick.toml");
    assert!(path.is_file(), "tests run in the package root");
    path
}

/// An app with runs fed by scripted events, as the session would.
fn app_with_runs(ids: &[&str]) -> App {
    let mut app = console_app(vec![quick_preset()], Path::new("runs"));
    for id in ids {
        app.runs.push(RunState::new(id.to_string(), None));
    }
    app.update(Msg::Usage(ProcessUsage {
        cpu_percent: Some(187.0),
        resident_bytes: Some(812 << 20),
        threads: Some(5),
    }));
    app.view = View::Run;
    app
}

fn standard_and_sift() -> App {
    let mut app = app_with_runs(&["quick__all-MiniLM-L6-v2__standard__s1", "quick__all-MiniLM-L6-v2__sift__s1"]);
    let start = Instant::now();
    feed(&mut app, 0, start, scripted_source_stage(24, 0.0, false));
    feed(&mut app, 1, start, scripted_source_stage(17, 6.0, true));
    app.update(Msg::Started { run: 1 });
    app
}

#[test]
fn setup_view_with_a_preset() {
    let app = console_app(vec![quick_preset()], Path::new("runs"));
    assert_snapshot!(render(&app, WIDTH, 30));
}

#[test]
fn setup_view_marks_a_bad_field() {
    let mut app = console_app(vec![quick_preset()], Path::new("runs"));
    for c in ['j', 'j', 'j', 'i'] {
        app.update(key(c));
    }
    for c in [',', ' ', 'x'] {
        app.update(key(c));
    }
    app.update(code(KeyCode::Enter));
    assert_snapshot!(render(&app, WIDTH, 30));
}

#[test]
fn setup_view_offline_says_what_is_missing_and_launch_starts_nothing() {
    let mut app = console_app_with(vec![quick_preset()], Path::new("runs"), sources(true));
    app.update(code(KeyCode::Enter));
    assert!(app.runs.is_empty());
    let notice = app.notice.clone().expect("a notice");
    assert_eq!(notice.level, Level::Error);
    assert!(notice.text.starts_with("cannot launch offline: model sentence-transformers/all-MiniLM-L6-v2: not on"));
    assert!(notice.text.ends_with("(and 2 more in the Launch pane)"), "{}", notice.text);
    assert_snapshot!(render(&app, WIDTH, 30));
}

#[test]
fn the_setup_view_looks_again_when_it_is_shown() {
    let data = tempfile::tempdir().unwrap();
    let mut sources = sources(false);
    sources.data.dir = data.path().to_path_buf();
    let mut app = console_app_with(vec![quick_preset()], Path::new("runs"), sources);
    let twitter = |app: &App| app.setup.needs.iter().find(|n| n.item == Item::Dataset(DatasetId::TwitterHate)).cloned();
    assert_eq!(twitter(&app).unwrap().availability, Availability::Download);

    // A run downloads the dataset meanwhile.
    std::fs::create_dir(data.path().join("twitter-hate")).unwrap();
    std::fs::write(data.path().join("twitter-hate/train.csv"), "id,label,tweet\n1,0,hi\n").unwrap();
    for _ in 0..app.views().len() {
        app.update(code(KeyCode::Tab));
    }

    assert_eq!(app.view, View::Setup);
    assert_eq!(twitter(&app).unwrap().availability, Availability::Local(data.path().join("twitter-hate")));
}

#[test]
fn setup_view_without_presets() {
    let app = App::new(Mode::Console, SetupForm::new(Vec::new(), Vec::new()), KeyMap::default(), Path::new("runs"));
    assert_snapshot!(render(&app, 80, 16));
}

#[test]
fn run_view_while_training() {
    let mut app = app_with_runs(&["quick__all-MiniLM-L6-v2__sift__s1"]);
    app.update(Msg::Started { run: 0 });
    feed(&mut app, 0, Instant::now(), scripted_source_stage(22, 0.0, true));
    app.update(Msg::Trainer {
        run: 0,
        event: Event::Warning("dev split has 3 examples of class 1".into()),
        at: Instant::now(),
    });
    assert_snapshot!(render(&app, WIDTH, HEIGHT));
}

#[test]
fn run_view_shows_the_download_as_the_first_phase() {
    let mut app = app_with_runs(&["quick__bert-cls__standard__s1"]);
    app.update(Msg::Started { run: 0 });
    let at = Instant::now();
    let transfer = |file: &str, done: u64, total: u64, finished: bool| {
        Event::Download(Transfer { file: file.into(), done, total: Some(total), finished })
    };
    for event in [
        transfer("fixture/bert-cls/config.json", 0, 742, false),
        transfer("fixture/bert-cls/config.json", 742, 742, true),
        transfer("fixture/bert-cls/model.safetensors", 0, 143_628, false),
        transfer("fixture/bert-cls/model.safetensors", 50_000, 143_628, false),
    ] {
        app.update(Msg::Trainer { run: 0, event, at });
    }
    assert_snapshot!(render(&app, WIDTH, HEIGHT));
}

#[test]
fn run_view_across_stages() {
    let mut app = app_with_runs(&["quick__all-MiniLM-L6-v2__sift__s1"]);
    let start = Instant::now();
    feed(&mut app, 0, start, scripted_source_stage(30, 0.0, true));
    let later = start + Duration::from_secs(40);
    let mut target = vec![
        (eval("source", 30, "0%", 0.62, 0.25), Duration::ZERO),
        (Event::Stage { name: "target-10%".into(), index: 1, count: 2, total_steps: 8 }, Duration::ZERO),
    ];
    for s in 1..=8usize {
        target.push((step("target-10%", s, 0.4 - 0.03 * s as f32, Some(0.02)), Duration::from_secs(s as u64)));
    }
    target.push((eval("target-10%", 8, "target-test", 0.71, 0.42), Duration::from_secs(8)));
    target.push((eval("target-10%", 8, "10%", 0.71, 0.42), Duration::from_secs(8)));
    target.push((
        Event::Finished { results: "runs/quick__all-MiniLM-L6-v2__sift__s1/results.json".into() },
        Duration::from_secs(9),
    ));
    feed(&mut app, 0, later, target);
    assert_snapshot!(render(&app, WIDTH, HEIGHT));
}

#[test]
fn run_view_overlays_two_runs_on_log_scale() {
    let mut app = standard_and_sift();
    app.update(key('j'));
    app.update(key('o'));
    app.update(key('k'));
    app.update(key('L'));
    app.update(key(']'));
    app.update(key('m'));
    app.update(key('m'));
    assert_snapshot!(render(&app, WIDTH, HEIGHT));
}

#[test]
fn run_view_zooms_the_focused_chart() {
    let mut app = standard_and_sift();
    app.update(key('l'));
    app.update(key('l'));
    app.update(key('z'));
    assert_snapshot!(render(&app, 100, 36));
}

#[test]
fn run_view_shows_a_failure() {
    let mut app = app_with_runs(&["quick__all-MiniLM-L6-v2__sift__s1"]);
    app.update(Msg::Started { run: 0 });
    feed(&mut app, 0, Instant::now(), scripted_source_stage(5, 0.0, true));
    let failure = Event::Failed("source: 5 non-finite updates in a row (loss or gradient NaN/inf) at update 6".into());
    app.update(Msg::Trainer { run: 0, event: failure, at: Instant::now() });
    assert_snapshot!("failure_popup", render(&app, WIDTH, HEIGHT));
    app.update(code(KeyCode::Esc));
    assert_snapshot!("failure_banner", render(&app, WIDTH, HEIGHT));
}

/// A failure whose message is longer than the screen (a data file's megabyte header line): the
/// popup fits the screen and keeps its close hint.
#[test]
fn a_huge_failure_message_keeps_the_close_hint() {
    let mut app = app_with_runs(&["quick__all-MiniLM-L6-v2__sift__s1"]);
    app.update(Msg::Started { run: 0 });
    let failure =
        Event::Failed(format!("data.csv:1: the header has no column \"text\" (columns: {})", "x,".repeat(20_000)));
    app.update(Msg::Trainer { run: 0, event: failure, at: Instant::now() });
    let screen = render(&app, WIDTH, HEIGHT);
    assert!(screen.contains("close; the run's log and charts stay in the run view"), "{screen}");
    assert!(screen.contains("Training failed") && screen.contains("the header has no column"), "{screen}");
}

#[test]
fn quit_confirmation() {
    let mut app = app_with_runs(&["quick__all-MiniLM-L6-v2__sift__s1"]);
    app.update(Msg::Started { run: 0 });
    feed(&mut app, 0, Instant::now(), scripted_source_stage(3, 0.0, true));
    app.update(key('q'));
    assert_snapshot!(render(&app, 100, 30));
}

#[test]
fn help_lists_every_key() {
    let mut app = console_app(vec![quick_preset()], Path::new("runs"));
    app.update(key('?'));
    assert_snapshot!(render(&app, 100, 34));
}

/// A results table summarised from runs: standard and SiFT over three seeds (SiFT right on more
/// examples at 0 %), and a SMART run that labels every 0 % example alike.
fn results_summary() -> Summary {
    const EXAMPLES: usize = 40;
    let run = |method: MethodName, seed: u64, correct: [usize; 2], constant: Option<u32>| {
        let gold: Vec<u32> = (0..EXAMPLES as u32).map(|i| i % 2).collect();
        let column = |split: Split, correct: usize, constant: Option<u32>| {
            let predicted: Vec<u32> = match constant {
                Some(label) => vec![label; EXAMPLES],
                None => gold.iter().enumerate().map(|(i, &g)| if i < correct { g } else { 1 - g }).collect(),
            };
            ColumnResult { name: split, scores: Scores::default(), gold: gold.clone(), predicted }
        };
        RunResults {
            run_id: format!("quick__all-MiniLM-L6-v2__{method}__s{seed}"),
            preset: "quick".into(),
            model: "all-MiniLM-L6-v2".into(),
            method,
            seed,
            metric: Metric::Accuracy,
            best_step: 10,
            dev: Scores::default(),
            columns: vec![
                column(Split::Fraction(0.0), correct[0], constant),
                column(Split::Fraction(0.1), correct[1], None),
            ],
            elapsed_secs: 60.0,
        }
    };
    // Sorted by method and seed, as `collect` leaves them.
    let seeds = [(1, 0), (2, 1), (3, 2)];
    let mut runs: Vec<RunResults> =
        seeds.iter().map(|&(seed, k)| run(MethodName::Standard, seed, [24 + k, 28 + k], None)).collect();
    runs.extend(seeds.iter().map(|&(seed, k)| run(MethodName::Smart, seed, [0, 27 + k], Some(1))));
    runs.extend(seeds.iter().map(|&(seed, k)| run(MethodName::Sift, seed, [32 + k, 29 + k], None)));
    let collected =
        Collected { runs, without_results: vec!["quick__all-MiniLM-L6-v2__alum__s1".into()], warnings: Vec::new() };
    summarize(&collected)
}

#[test]
fn results_view_with_the_forest_plot() {
    let mut app = console_app(vec![quick_preset()], Path::new("runs"));
    app.update(Msg::Results(Ok(results_summary())));
    app.update(code(KeyCode::BackTab));
    assert_snapshot!(render(&app, WIDTH, 26));
}

#[test]
fn watch_view_before_any_run() {
    let app = App::new(Mode::Watch, SetupForm::new(Vec::new(), Vec::new()), KeyMap::default(), Path::new("runs"));
    assert_snapshot!(render(&app, 80, 12));
}

#[test]
fn small_terminals_still_render() {
    let mut app = standard_and_sift();
    app.update(Msg::Results(Ok(results_summary())));
    for (width, height) in [(80, 24), (40, 12), (10, 4), (1, 1)] {
        for view in [View::Setup, View::Run, View::Results] {
            app.view = view;
            render(&app, width, height);
        }
        app.popup = Some(sift_tui::ui::app::Popup::Help);
        render(&app, width, height);
        app.popup = None;
    }
}

//! `watch`: runs that other processes write, followed through their metrics files and shown with
//! the run view.
mod ui_common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sift_tui::ui::app::{App, Mode};
use sift_tui::ui::form::SetupForm;
use sift_tui::ui::keys::KeyMap;
use sift_tui::ui::runs::RunStatus;
use sift_tui::ui::watch::Watcher;
use ui_common::render;

fn step_line(stage_index: usize, step: usize, loss: f32) -> String {
    let stage = if stage_index == 0 { "source" } else { "target-10%" };
    format!(
        r#"{{"kind":"step","stage":"{stage}","stage_index":{stage_index},"step":{step},"epoch":1,"loss":{loss},"task_loss":{loss},"adv_kl":0.01,"lr":2e-5,"grad_norm":1.0,"samples_per_sec":30.0}}"#
    )
}

fn eval_line(step: usize, accuracy: f64) -> String {
    format!(
        r#"{{"kind":"eval","stage":"source","stage_index":0,"step":{step},"split":"source-dev","scores":{{"accuracy":{accuracy},"macro_f1":0.5,"mcc":0.2,"loss":0.6,"examples":20}}}}"#
    )
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn watch_app(runs_dir: &Path) -> App {
    App::new(Mode::Watch, SetupForm::new(Vec::new(), Vec::new()), KeyMap::default(), runs_dir)
}

#[test]
fn runs_are_followed_as_their_metrics_grow() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("quick__all-MiniLM-L6-v2__sift__s1");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("config.toml"), "name = \"quick\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("slurm-logs")).unwrap();
    let metrics = run_dir.join("metrics.jsonl");
    let mut app = watch_app(dir.path());
    let mut watcher = Watcher::new(dir.path().to_path_buf());

    // Two lines and half of a third, as a writer caught mid-line leaves them.
    let third = step_line(0, 3, 0.5);
    let (head, rest) = third.split_at(40);
    append(&metrics, &format!("{}\n{}\n{head}", step_line(0, 1, 0.7), step_line(0, 2, 0.6)));
    let (changed, finished) = watcher.poll(&mut app).unwrap();
    assert!(changed && !finished);
    assert_eq!(app.runs.len(), 1, "only directories with a config.toml are runs");
    assert_eq!(app.runs[0].loss, vec![(1.0, 0.7f32 as f64), (2.0, 0.6f32 as f64)]);
    assert_eq!(app.runs[0].status, RunStatus::Running);

    append(&metrics, &format!("{rest}\n{}\n{}\n", eval_line(3, 0.8), step_line(1, 1, 0.4)));
    watcher.poll(&mut app).unwrap();
    let run = &app.runs[0];
    assert_eq!(run.loss.len(), 4);
    assert_eq!(run.loss[3].0, 4.0, "the target stage continues after the source stage's 3 updates");
    assert_eq!(run.evals.len(), 1);
    assert_eq!(run.stage.as_ref().map(|s| s.name.as_str()), Some("target-10%"));
    let screen = render(&app, 120, 40);
    assert!(screen.contains("sift-tui watch") && screen.contains("update 1"), "{screen}");
    assert!(screen.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)), "braille charts: {screen}");

    std::fs::write(run_dir.join("results.json"), "{}").unwrap();
    let (_, finished) = watcher.poll(&mut app).unwrap();
    assert!(finished);
    assert_eq!(app.runs[0].status, RunStatus::Finished);
    let (changed, finished) = watcher.poll(&mut app).unwrap();
    assert!(!changed && !finished, "nothing new");
}

#[test]
fn a_rewritten_file_is_read_again_and_a_silent_run_turns_idle() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("quick__all-MiniLM-L6-v2__standard__s1");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("config.toml"), "").unwrap();
    let metrics = run_dir.join("metrics.jsonl");
    let lines: Vec<String> = (1..=5).map(|s| step_line(0, s, 0.7)).collect();
    std::fs::write(&metrics, lines.join("\n") + "\n").unwrap();
    let mut app = watch_app(dir.path());
    let mut watcher = Watcher::new(dir.path().to_path_buf());
    watcher.poll(&mut app).unwrap();
    assert_eq!(app.runs[0].loss.len(), 5);

    // A resume drops the lines after its checkpoint (update 2).
    std::fs::write(&metrics, lines[..2].join("\n") + "\n").unwrap();
    watcher.poll(&mut app).unwrap();
    assert_eq!(app.runs[0].loss.len(), 2);

    // A crashed run: no results, nothing written for a long time, a torn last line.
    append(&metrics, "{\"kind\":\"st");
    let file = OpenOptions::new().append(true).open(&metrics).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    watcher.poll(&mut app).unwrap();
    assert_eq!(app.runs[0].status, RunStatus::Idle);
    assert!(app.runs[0].log.iter().any(|l| l.text.contains("crashed or stopped?")));
    assert_eq!(app.runs[0].loss.len(), 2, "the torn line is not read");
}

#[test]
fn a_missing_runs_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = watch_app(dir.path());
    let mut watcher = Watcher::new(dir.path().join("nope"));
    assert!(watcher.poll(&mut app).is_err());
}

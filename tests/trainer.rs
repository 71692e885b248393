//! The trainer through its public interface: a run finishes and writes its results; an interrupted
//! and resumed run writes exactly what an uninterrupted one does; non-finite updates are skipped and
//! then stop the run with a clear error.
mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use sift_tui::experiment::preset::Preset;
use sift_tui::experiment::results::RunResults;
use sift_tui::experiment::rundir::RunDir;
use sift_tui::metrics::Split;
use sift_tui::train::events::{Command, Event};
use sift_tui::train::trainer::spawn;

/// A small learnable sentiment table: `positive` words → 1, `negative` words → 0.
fn write_table(path: &Path, rows: usize, offset: usize) {
    let good = ["good", "great", "lovely", "fine", "nice"];
    let bad = ["bad", "awful", "poor", "sad", "ugly"];
    let mut text = String::from("text,label\n");
    for i in 0..rows {
        let k = i + offset;
        let (words, label) = if k.is_multiple_of(2) { (&good, 1) } else { (&bad, 0) };
        text.push_str(&format!("the movie was {} and {},{label}\n", words[k % 5], words[(k / 2) % 5]));
    }
    std::fs::write(path, text).unwrap();
}

fn table(path: &Path) -> String {
    format!(
        "kind = \"table\"\npath = \"{}\"\ntext_column = \"text\"\nlabel_column = \"label\"\nlabel_names = [\"neg\", \"pos\"]\n",
        path.display()
    )
}

/// A preset over the tiny BERT fixture and two synthetic tables, with checkpoints every 2 updates.
fn preset(dir: &Path, method: &str, extra: &str) -> Preset {
    let (source, target) = (dir.join("source.csv"), dir.join("target.csv"));
    write_table(&source, 48, 0);
    write_table(&target, 40, 1);
    let model = common::fixture_model("bert-cls");
    let text = format!(
        r#"name = "t"
[sweep]
models = ["{model}"]
methods = ["{method}"]
seeds = [3]
[source]
dev_fraction = 0.25
[source.dataset]
{source}
[target]
fractions = [0.0, 0.5]
label_map = "identity"
[target.dataset]
{target}
[train]
batch_size = 8
lr = 1e-3
max_steps = 6
max_len = 24
eval_every = 2
checkpoint_every = 2
{extra}
"#,
        model = model.display(),
        source = table(&source),
        target = table(&target),
    );
    let path = dir.join("preset.toml");
    std::fs::write(&path, text).unwrap();
    Preset::load(&path, &[]).unwrap()
}

/// Runs to the end (or until `stop_at` = (stage index, step), where it asks the trainer to stop);
/// returns the final event.
fn drive(preset: &Preset, runs: &Path, resume: bool, stop_at: Option<(usize, usize)>) -> Event {
    let spec = preset.runs().remove(0);
    let run_dir = RunDir::create(runs, &spec).unwrap();
    let handle = spawn(spec, run_dir, resume);
    let mut stage = 0;
    let end = loop {
        match handle.events.recv().expect("the trainer reports its end") {
            Event::Stage { index, .. } => stage = index,
            Event::Step(m) if Some((stage, m.step)) == stop_at => handle.commands.send(Command::Stop).unwrap(),
            e @ (Event::Finished { .. } | Event::Stopped { .. } | Event::Failed(_)) => break e,
            _ => {}
        }
    };
    handle.thread.join().unwrap();
    end
}

fn run_path(runs: &Path, preset: &Preset) -> PathBuf {
    runs.join(&preset.runs()[0].run_id)
}

/// metrics.jsonl without the wall-clock field.
fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("samples_per_sec");
            v
        })
        .collect()
}

fn results(run: &Path) -> RunResults {
    let mut r: RunResults = serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    r.elapsed_secs = 0.0;
    r
}

#[test]
fn a_run_writes_every_column_and_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let preset = preset(dir.path(), "standard", "");
    let runs = dir.path().join("runs");
    assert!(matches!(drive(&preset, &runs, false, None), Event::Finished { .. }));
    let run = run_path(&runs, &preset);
    let results = results(&run);
    let columns: Vec<&Split> = results.columns.iter().map(|c| &c.name).collect();
    assert_eq!(columns, [&Split::Fraction(0.0), &Split::Fraction(0.5)]);
    // The target pool of 40 keeps half for training at 50 %: both columns score the other 20.
    assert!(results.columns.iter().all(|c| c.scores.examples == 20 && c.gold.len() == 20));
    for column in &results.columns {
        let mut counts = vec![0u64; column.scores.predicted_counts.len()];
        column.predicted.iter().for_each(|&p| counts[p as usize] += 1);
        assert_eq!(column.scores.predicted_counts, counts, "results.json counts the predicted classes");
    }
    let lines = metrics(&run);
    let evals: Vec<_> = lines.iter().filter(|l| l["kind"] == "eval").collect();
    assert!(!evals.is_empty());
    for eval in evals {
        let counts: u64 =
            eval["scores"]["predicted_counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(counts, eval["scores"]["examples"].as_u64().unwrap(), "every evaluation counts its predictions");
    }
    let steps = lines.iter().filter(|l| l["kind"] == "step").count();
    assert_eq!(steps, 6 + 6, "max_steps caps both stages at 6 updates");
    assert!(lines.iter().all(|l| l["loss"].as_f64().is_none_or(f64::is_finite)));
}

/// Runs `method` (with `extra` train keys) once whole and once stopped at `stop_at` and resumed;
/// metrics.jsonl and results.json must be the same.
fn assert_resume_equals_uninterrupted(method: &str, extra: &str, stop_at: (usize, usize)) {
    let what = format!("{method} {extra:?} stopped at {stop_at:?}");
    let dir = tempfile::tempdir().unwrap();
    let preset = preset(dir.path(), method, extra);
    let (whole, split) = (dir.path().join("whole"), dir.path().join("split"));
    assert!(matches!(drive(&preset, &whole, false, None), Event::Finished { .. }), "{what}");
    assert!(matches!(drive(&preset, &split, false, Some(stop_at)), Event::Stopped { .. }), "{what}");
    assert!(matches!(drive(&preset, &split, true, None), Event::Finished { .. }), "{what}");
    let (a, b) = (run_path(&whole, &preset), run_path(&split, &preset));
    assert_eq!(metrics(&a), metrics(&b), "{what}: metrics.jsonl differs after resuming");
    assert_eq!(results(&a), results(&b), "{what}: results differ after resuming");
}

#[test]
fn an_interrupted_and_resumed_run_equals_an_uninterrupted_one() {
    for (method, stop_at) in [("sift", (0, 3)), ("smart", (1, 1)), ("freelb", (0, 5))] {
        assert_resume_equals_uninterrupted(method, "", stop_at);
    }
}

/// The portable path (the composed ops that CUDA and Metal run, here on the CPU) resumes exactly too.
#[test]
fn a_resumed_run_on_the_portable_path_equals_an_uninterrupted_one() {
    assert_resume_equals_uninterrupted("sift", "kernels = \"portable\"\n", (0, 3));
}

/// Half precision resumes exactly too: f16 with its loss scale in the checkpoint, and bf16.
#[test]
fn a_resumed_half_precision_run_equals_an_uninterrupted_one() {
    assert_resume_equals_uninterrupted("sift", "dtype = \"f16\"\n", (0, 3));
    assert_resume_equals_uninterrupted("smart", "dtype = \"bf16\"\n", (1, 1));
}

#[test]
fn non_finite_updates_are_skipped_then_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // An infinite ascent step makes every SiFT perturbation, and so every loss, non-finite.
    let preset = preset(dir.path(), "sift", "max_bad_steps = 3\n[methods.sift]\nlearning_rate = inf\n");
    let runs = dir.path().join("runs");
    let Event::Failed(message) = drive(&preset, &runs, false, None) else { panic!("the run should fail") };
    assert!(message.contains("3 non-finite updates in a row"), "{message}");
    let lines = metrics(&run_path(&runs, &preset));
    assert_eq!(lines.iter().filter(|l| l["kind"] == "skipped").count(), 3);
}

#[test]
fn a_skipped_update_still_reaches_its_scheduled_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    // Every update is non-finite and skipped, the last one included; the run goes on (the limit is
    // above the stage length) and every scheduled evaluation happens, the stage's last among them.
    let preset = preset(dir.path(), "sift", "max_bad_steps = 100\n[methods.sift]\nlearning_rate = inf\n");
    let runs = dir.path().join("runs");
    assert!(matches!(drive(&preset, &runs, false, None), Event::Finished { .. }));
    let lines = metrics(&run_path(&runs, &preset));
    let dev_steps: Vec<u64> = lines
        .iter()
        .filter(|l| l["kind"] == "eval" && l["split"] == "source-dev")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(dev_steps, [2, 4, 6]);
    assert_eq!(lines.iter().filter(|l| l["kind"] == "skipped").count(), 12);
}

/// Length-grouped batches resume mid-epoch exactly: the lengths come back from the data.
#[test]
fn a_resumed_length_grouped_run_equals_an_uninterrupted_one() {
    assert_resume_equals_uninterrupted("standard", "group_by_length = true\n", (0, 3));
}

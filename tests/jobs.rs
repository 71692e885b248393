//! `sift-tui run --jobs N`: a sweep's runs in N worker processes write what a sequential sweep
//! writes, a signal to the command checkpoints every worker, and bad arguments or failing workers end
//! in one-line errors.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn sift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sift-tui"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Four runs: two methods (one of them adversarial, with its own random draws) × two seeds.
const SWEEP: [&str; 4] = ["--set", r#"sweep.methods=["standard","sift"]"#, "--set", "sweep.seeds=[1,2]"];

/// Per run: results.json and the lines of metrics.jsonl, without their wall-clock fields.
fn numbers(runs: &Path) -> BTreeMap<String, (Value, Vec<Value>)> {
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut numbers = BTreeMap::new();
    for entry in std::fs::read_dir(runs).unwrap() {
        let run = entry.unwrap().path();
        let mut results: Value = serde_json::from_str(&read(&run.join("results.json"))).unwrap();
        results.as_object_mut().unwrap().remove("elapsed_secs").expect("results name their duration");
        let metrics = read(&run.join("metrics.jsonl"))
            .lines()
            .map(|line| {
                let mut line: Value = serde_json::from_str(line).unwrap();
                line.as_object_mut().unwrap().remove("samples_per_sec");
                line
            })
            .collect();
        numbers.insert(run.file_name().unwrap().to_string_lossy().into_owned(), (results, metrics));
    }
    numbers
}

/// The process that last held each run's lock (the lock file names it).
fn holders(runs: &Path) -> BTreeSet<String> {
    std::fs::read_dir(runs)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path().join("lock")).unwrap().trim().to_string())
        .collect()
}

/// Runs the sweep of `configure` sequentially on one thread and with `--jobs 2` on two (one per run),
/// checks that every run wrote the same numbers, and returns the `--jobs` sweep's output.
fn jobs_match_a_sequential_sweep(dir: &Path, configure: impl Fn(&mut Command), runs: usize) -> String {
    let sweep = |name: &str, threads: &str, jobs: &[&str]| {
        let mut command = sift();
        command.arg("run");
        configure(&mut command);
        command.args(jobs).arg("--runs-dir").arg(dir.join(name)).env("RAYON_NUM_THREADS", threads);
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    sweep("sequential", "1", &[]);
    let out = sweep("parallel", "2", &["--jobs", "2"]);
    assert!(out.contains(&format!("{runs} runs to train, 2 at a time with 1 thread(s) each (2 in all)")), "{out}");
    assert_eq!(out.matches("results: sift-tui table").count(), 1, "one summary line, the command's: {out}");
    let expected = numbers(&dir.join("sequential"));
    assert_eq!(expected.len(), runs);
    let got = numbers(&dir.join("parallel"));
    for (run, numbers) in &expected {
        assert!(got.get(run) == Some(numbers), "{run}: --jobs 2 differs from the sequential sweep");
    }
    assert_eq!(got.len(), runs);
    assert_eq!(holders(&dir.join("parallel")).len(), 2, "both workers trained runs: {out}");
    assert_eq!(holders(&dir.join("sequential")).len(), 1);
    out
}

/// Both sweeps give each run one thread (`RAYON_NUM_THREADS` 1, and 2 divided between 2 jobs): a run's
/// last bits depend on its thread count (the MiniLM test below).
#[test]
fn two_jobs_write_the_results_and_metrics_of_a_sequential_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let out = jobs_match_a_sequential_sweep(
        dir.path(),
        |command| {
            command.arg(&preset).args(SWEEP).args(["--set", "train.max_steps=30", "--set", "train.eval_every=10"]);
        },
        4,
    );
    assert!(out.contains("[job 1] [1/4] kill__bert-cls__"), "{out}");
    assert!(out.contains("[job 2] [1/4] kill__bert-cls__"), "{out}");
}

/// The tiny fixture's tensors are too small to be split over threads; MiniLM's are, and there one and
/// two threads give a run different last bits (SiFT's `grad_norm` and `adv_kl` from its third update),
/// so this fails unless each worker really runs on its share of the threads.
#[test]
fn two_jobs_on_minilm_run_each_run_on_its_share_of_the_threads() {
    let (Ok(_), Some(_)) = (std::env::var("SIFT_DATA_DIR"), common::shared_model("all-MiniLM-L6-v2")) else {
        eprintln!("skipped: SIFT_DATA_DIR or SIFT_MODEL_PATH is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    jobs_match_a_sequential_sweep(
        dir.path(),
        |command| {
            command.args(["presets/quick.toml", "--set", r#"sweep.methods=["sift"]"#, "--set", "sweep.seeds=[1,2]"]);
            command.args(["--set", "source.limit=96", "--set", "target.limit=40", "--set", "target.fractions=[0.0]"]);
            command.args(["--set", "train.max_steps=3", "--set", "train.max_len=32", "--set", "train.eval_every=3"]);
        },
        2,
    );
}

fn has_checkpoint(run: &Path) -> bool {
    std::fs::read_dir(run.join("checkpoints"))
        .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))))
}

/// SIGTERM to the command alone (not to its process group, as `kill PID` or a scheduler sends it)
/// reaches the workers: each checkpoints its run, and the command exits 143 without a success line;
/// the same command continues both runs.
#[test]
fn a_signal_to_the_command_checkpoints_every_job_and_the_same_command_continues() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let runs = dir.path().join("runs");
    let command = || {
        let mut command = sift();
        command.arg("run").arg(&preset).args(["--set", "sweep.seeds=[1,2]", "--jobs", "2", "--runs-dir"]).arg(&runs);
        command.env("RAYON_NUM_THREADS", "2");
        command
    };
    let child = command().stderr(Stdio::piped()).spawn().unwrap();
    let run = |seed: u32| runs.join(format!("kill__bert-cls__standard__s{seed}"));
    let started = Instant::now();
    while !(has_checkpoint(&run(1)) && has_checkpoint(&run(2))) {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoints appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(143), "{out}");
    assert!(out.trim_end().ends_with("interrupted by SIGTERM"), "{out}");
    assert!(!out.contains("results: sift-tui table"), "{out}");
    for job in 1..=2 {
        assert!(out.contains(&format!("[job {job}] the run is checkpointed")), "{out}");
    }
    assert!(!run(1).join("results.json").exists() && !run(2).join("results.json").exists(), "{out}");

    let output = command().output().unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert_eq!(out.matches("(resuming)").count(), 2, "{out}");
    assert!(run(1).join("results.json").is_file() && run(2).join("results.json").is_file());
}

#[test]
fn bad_jobs_arguments_are_rejected_with_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    for (args, says) in [
        (&["--jobs", "0"][..], "at least 1"),
        (&["--jobs", "two"], "whole number"),
        (&["--jobs", "2", "--only", "1"], "--only"),
        (&["--jobs", "2", "--list"], "--list"),
    ] {
        let output = sift().arg("run").arg(&preset).args(args).arg("--runs-dir").arg(dir.path()).output().unwrap();
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {out}");
        assert!(
            out.lines().next().is_some_and(|line| line.starts_with("error:") && line.contains(says)),
            "{args:?}: {out}"
        );
        assert!(!out.contains("panicked"), "{args:?}: {out}");
    }
}

/// Workers that fail (a device this build cannot open) make the command fail with one line naming
/// them, after their own errors.
#[test]
fn failing_jobs_fail_the_command_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let output = sift()
        .arg("run")
        .arg(&preset)
        .args(["--set", "sweep.seeds=[1,2]", "--set", "train.device=cuda", "--jobs", "2", "--runs-dir"])
        .arg(dir.path().join("runs"))
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("[job 1] error:") && out.contains("[job 2] error:") && out.contains("CUDA"), "{out}");
    let last = out.trim_end().lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "error: 2 of 2 jobs failed (job 1: exit status: 2, job 2: exit status: 2); their errors are above, prefixed [job K]"
    );
    assert!(!out.contains("results: sift-tui table") && !out.contains("panicked"), "{out}");
}

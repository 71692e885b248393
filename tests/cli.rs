//! The `sift-tui` binary end to end: a preset sweep with overrides and its table, bad input, and a run
//! killed with SIGKILL that resumes to a complete metrics file.
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn sift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sift-tui"))
}

fn shared_data() -> Option<String> {
    match std::env::var("SIFT_DATA_DIR") {
        Ok(dir) => Some(dir),
        Err(_) => {
            eprintln!("skipped: SIFT_DATA_DIR is not set (CI sets it to ../shared/data)");
            None
        }
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn quick_preset_with_overrides_runs_and_tabulates() {
    let (Some(_), Some(_)) = (shared_data(), common::shared_model("all-MiniLM-L6-v2")) else { return };
    let runs = tempfile::tempdir().unwrap();
    let output = sift()
        .args(["run", "presets/quick.toml", "--runs-dir"])
        .arg(runs.path())
        .args(["--set", r#"sweep.models=["sentence-transformers/all-MiniLM-L6-v2"]"#])
        .args(["--set", r#"sweep.methods=["standard","sift"]"#])
        .args(["--set", "sweep.seeds=[7]", "--set", "source.limit=128", "--set", "target.limit=100"])
        .args(["--set", "train.max_steps=2", "--set", "train.batch_size=16", "--set", "train.max_len=32"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let table = sift().arg("table").arg(runs.path()).output().unwrap();
    let table = text(&table);
    for needle in ["standard", "sift", "0%", "10%", "all-MiniLM-L6-v2"] {
        assert!(table.contains(needle), "`{needle}` missing from:\n{table}");
    }
}

#[test]
fn malformed_training_files_fail_with_the_file_and_line() {
    let Some(data) = shared_data() else { return };
    let cases: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("header only", b"id,label,tweet\n"),
        ("unbalanced quote", b"id,label,tweet\n1,0,\"never closed\n2,1,ok\n"),
        ("wrong columns", b"id,label,tweet\n1,0,a,b\n"),
        ("unknown label", b"id,label,tweet\n1,0,fine\n2,hate,bad\n"),
        ("binary", b"id,label,tweet\n\x00\x01\x02\xff\xfe\n"),
    ];
    for (case, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new(&data), dir.path());
        // The shared files may be read-only: replace the copy rather than write through it.
        let train = dir.path().join("twitter-hate/train.csv");
        std::fs::remove_file(&train).unwrap();
        std::fs::write(&train, bytes).unwrap();
        let output = sift()
            .args(["run", "presets/quick.toml", "--runs-dir"])
            .arg(dir.path().join("runs"))
            .env("SIFT_DATA_DIR", dir.path())
            .output()
            .unwrap();
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{case}: {out}");
        assert!(out.contains("train.csv:"), "{case}: the message names the file and line: {out}");
        assert!(!out.contains("panicked"), "{case}: {out}");
    }
}

#[test]
fn bad_presets_exit_2_naming_the_key() {
    for (set, key) in [("train.batch_size=0", "train.batch_size"), ("sweep.methods=[\"magic\"]", "magic")] {
        let output = sift().args(["run", "presets/quick.toml", "--list", "--set", set]).output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(text(&output).contains(key), "{}", text(&output));
    }
}

#[test]
fn a_killed_run_resumes_to_a_complete_metrics_file() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let runs = dir.path().join("runs");
    let mut child = sift()
        .args(["run"])
        .arg(&preset)
        .arg("--runs-dir")
        .arg(&runs)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = runs.join("kill__bert-cls__standard__s1");
    let started = Instant::now();
    while !has_checkpoint(&run.join("checkpoints")) {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!run.join("results.json").exists(), "the run should have been killed before finishing");

    let output = sift().arg("resume").arg(&run).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["kind"] == "step")
        .map(|l| (l["stage_index"].as_u64().unwrap(), l["step"].as_u64().unwrap()))
        .collect();
    let source: Vec<u64> = steps.iter().filter(|s| s.0 == 0).map(|s| s.1).collect();
    assert_eq!(source, (1..=120).collect::<Vec<_>>(), "every source update once, in order");
    assert!(run.join("results.json").is_file());
}

/// SIGINT, SIGTERM or SIGHUP: a checkpoint, then the shell's status for the signal (128 + its
/// number), so `&&` chains and schedulers see an unfinished run; the same command continues it.
#[test]
fn signals_checkpoint_exit_128_plus_the_signal_and_the_same_command_continues() {
    for (signal, name, status) in [("-INT", "SIGINT", 130), ("-TERM", "SIGTERM", 143), ("-HUP", "SIGHUP", 129)] {
        let dir = tempfile::tempdir().unwrap();
        let preset = common::write_tiny_preset(dir.path());
        let runs = dir.path().join("runs");
        let run_command = || {
            let mut command = sift();
            command.arg("run").arg(&preset).arg("--runs-dir").arg(&runs);
            command
        };
        let child = run_command().stderr(std::process::Stdio::piped()).spawn().unwrap();
        let run = runs.join("kill__bert-cls__standard__s1");
        let started = Instant::now();
        while !has_checkpoint(&run.join("checkpoints")) {
            assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "checkpointed, then exit {status} after {name}: {stderr}");
        assert!(stderr.contains(&format!("interrupted by {name}")), "{stderr}");
        assert!(!run.join("results.json").exists());

        let output = run_command().output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert!(text(&output).contains("resuming"), "{}", text(&output));
        assert!(run.join("results.json").is_file());
    }
}

/// The lines of a run's metrics.jsonl without the wall-clock field.
fn metrics_lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
            value.as_object_mut().unwrap().remove("samples_per_sec");
            value
        })
        .collect()
}

fn step_count(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .map_or(0, |text| text.lines().filter(|l| l.contains(r#""kind":"step""#)).count())
}

/// SIGKILL ten times at random moments, the first before any checkpoint exists (a restart used to
/// append to the killed attempt's lines), then the run completes: metrics.jsonl is exactly what an
/// uninterrupted run writes, each update once and in order, and no temporary file is left.
#[test]
fn ten_kills_then_a_complete_run_write_the_uninterrupted_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let command = |runs: &Path| {
        let mut command = sift();
        command.arg("run").arg(&preset).args(["--set", "train.checkpoint_every=30", "--runs-dir"]).arg(runs);
        command.stderr(std::process::Stdio::null());
        command
    };
    let reference = dir.path().join("reference");
    assert!(command(&reference).status().unwrap().success());
    let runs = dir.path().join("runs");
    let run = runs.join("kill__bert-cls__standard__s1");
    // A fixed xorshift sequence: random moments that repeat from one test run to the next.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for kill in 0..10 {
        let mut child = command(&runs).spawn().unwrap();
        let started = Instant::now();
        // The first kill comes after the first update, before the first checkpoint (at update
        // 30); odd ones during start-up and restore; the others after a random number of updates
        // more, before or after a checkpoint.
        let target = match kill {
            0 => Some(1),
            k if k % 2 == 1 => None,
            _ => Some(step_count(&run) + 1 + random(20) as usize),
        };
        match target {
            Some(target) => {
                while step_count(&run) < target && !run.join("results.json").exists() {
                    assert!(started.elapsed() < Duration::from_secs(120), "no update written");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            None => std::thread::sleep(Duration::from_millis(random(80))),
        }
        if kill == 0 {
            assert!(!has_checkpoint(&run.join("checkpoints")), "killed before the first checkpoint");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(!run.join("results.json").exists(), "every kill came before the run finished");
    let output = command(&runs).stderr(std::process::Stdio::piped()).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));

    let lines = metrics_lines(&run);
    let steps: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["kind"] == "step")
        .map(|l| (l["stage_index"].as_u64().unwrap(), l["step"].as_u64().unwrap()))
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "strictly increasing, unique: {steps:?}");
    assert_eq!(lines, metrics_lines(&reference.join("kill__bert-cls__standard__s1")));
    let leftovers: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A crash mid-write leaves metrics.jsonl without its final newline; the next start drops the
/// fragment with a warning instead of gluing the next line onto it.
#[test]
fn a_torn_last_line_is_repaired_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let runs = dir.path().join("runs");
    let run = runs.join("kill__bert-cls__standard__s1");
    let mut child = sift()
        .arg("run")
        .arg(&preset)
        .arg("--runs-dir")
        .arg(&runs)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while step_count(&run) < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "no updates written");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(run.join("metrics.jsonl")).unwrap();
    std::io::Write::write_all(&mut file, br#"{"kind":"step","stage":"source","stage_in"#).unwrap();
    drop(file);

    let output = sift().arg("run").arg(&preset).arg("--runs-dir").arg(&runs).output().unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("metrics.jsonl:") && out.contains("torn last line"), "a warning names it: {out}");
    let steps: Vec<u64> =
        metrics_lines(&run).iter().filter(|l| l["kind"] == "step").map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=120).collect::<Vec<_>>());
    // And the repaired file reads back with `resume` of the finished run, which changes nothing.
    let before = (std::fs::read(run.join("metrics.jsonl")).unwrap(), std::fs::read(run.join("results.json")).unwrap());
    let output = sift().arg("resume").arg(&run).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("already finished"), "{}", text(&output));
    let after = (std::fs::read(run.join("metrics.jsonl")).unwrap(), std::fs::read(run.join("results.json")).unwrap());
    assert!(before == after, "resume of a finished run changes nothing");
}

/// A start that fails before its first update (a device this build cannot open) leaves a run
/// directory that the corrected command takes over, instead of "a different config".
#[test]
fn a_corrected_command_runs_where_a_failed_start_was() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let runs = dir.path().join("runs");
    let run = |extra: &[&str], runs: &Path| {
        let mut command = sift();
        command.arg("run").arg(&preset).args(["--set", "train.max_steps=4"]).args(extra);
        command.arg("--runs-dir").arg(runs).output().unwrap()
    };
    let failed = run(&["--set", "train.device=cuda"], &runs);
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    assert!(text(&failed).contains("CUDA"), "{}", text(&failed));
    let corrected = run(&[], &runs);
    assert!(corrected.status.success(), "{}", text(&corrected));
    assert!(runs.join("kill__bert-cls__standard__s1/results.json").is_file());
    // max_len beyond the fixture's 64 positions fails when the model loads, naming the key.
    let too_long = run(&["--set", "train.max_len=65"], &dir.path().join("other"));
    let out = text(&too_long);
    assert_eq!(too_long.status.code(), Some(2), "{out}");
    assert!(out.contains("train.max_len = 65") && out.contains("64 positions"), "{out}");
}

/// Two processes running one sweep into one runs directory share it: each run is trained once.
#[test]
fn two_processes_share_a_sweep_without_clobbering() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let runs = dir.path().join("runs");
    let spawn = || {
        sift()
            .arg("run")
            .arg(&preset)
            .args(["--set", "sweep.seeds=[1,2,3]", "--runs-dir"])
            .arg(&runs)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    for seed in 1..=3 {
        let run = runs.join(format!("kill__bert-cls__standard__s{seed}"));
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let steps = metrics.lines().filter(|l| l.contains(r#""kind":"step""#)).count();
        assert_eq!(steps, 120, "seed {seed}: every update exactly once");
        assert!(run.join("results.json").is_file());
    }
}

/// A disk that fills up mid-run: the run fails with the cause, exit status 2, and the last complete
/// checkpoint stays loadable with no temporary files left behind.
#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let preset = common::write_tiny_preset(dir.path());
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=700k", "tmpfs"]).arg(&disk).output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let output = sift().arg("run").arg(&preset).arg("--runs-dir").arg(&disk).output().unwrap();
    let checkpoints = disk.join("kill__bert-cls__standard__s1/checkpoints");
    let names: Vec<String> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let loadable = names.iter().filter(|n| n.ends_with(".json")).all(|json| {
        let tensors = checkpoints.join(json.replace(".json", ".safetensors"));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(checkpoints.join(json)).unwrap()).is_ok()
            && candle_core::safetensors::load(&tensors, &candle_core::Device::Cpu).is_ok()
    });
    let _ = Command::new("umount").arg(&disk).status();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(names.iter().any(|n| n.ends_with(".json")), "a checkpoint was written before the disk filled: {names:?}");
    assert!(loadable, "every checkpoint present loads: {names:?}");
    assert!(!names.iter().any(|n| n.contains(".tmp")), "no temporary files left: {names:?}");
}

fn has_checkpoint(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))))
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `bench` times a training update or, with `--mode eval`, the scoring forward pass; both print one
/// JSON line naming the mode, on either kernel path.
#[test]
fn bench_times_training_and_evaluation_steps() {
    let model = common::fixture_model("bert-cls");
    for (mode, kernels) in [("train", "fused"), ("eval", "fused"), ("eval", "portable")] {
        let output = sift()
            .args(["bench", "--method", "sift", "--batch", "2", "--seq", "8", "--steps", "1", "--warmup", "0"])
            .args(["--mode", mode, "--kernels", kernels, "--model"])
            .arg(&model)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(line["mode"], mode);
        assert_eq!(line["method"], "sift");
        assert!(line["samples_per_sec"].as_f64().unwrap() > 0.0, "{line}");
    }
}

/// `bench --mode gemm` times the linear layers' GEMM on the model's feed-forward shape:
/// (batch · seq) × hidden by hidden × intermediate, read from the model's config.
#[test]
fn bench_times_the_feed_forward_gemm() {
    let model = common::fixture_model("bert-cls");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let output = sift()
        .args(["bench", "--mode", "gemm", "--batch", "2", "--seq", "8", "--steps", "3", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["mode"], "gemm");
    assert_eq!(
        (&line["m"], &line["k"], &line["n"]),
        (&serde_json::json!(16), &config["hidden_size"], &config["intermediate_size"])
    );
    assert!(line["gflops"].as_f64().unwrap() > 0.0, "{line}");
}

/// `bench --dtype bf16` (and `f16`) times a mixed-precision update: the fused kernels give way to the
/// portable path, which the JSON line names and stderr explains.
#[test]
fn bench_times_a_mixed_precision_update() {
    let model = common::fixture_model("bert-cls");
    for dtype in ["bf16", "f16"] {
        let output = sift()
            .args(["bench", "--method", "smart", "--batch", "2", "--seq", "8", "--steps", "1", "--warmup", "0"])
            .args(["--dtype", dtype, "--model"])
            .arg(&model)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!((line["dtype"].as_str(), line["kernels"].as_str()), (Some(dtype), Some("portable")), "{line}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("train.dtype = \"{dtype}\": the fused CPU kernels are f32-only")), "{stderr}");
    }
}

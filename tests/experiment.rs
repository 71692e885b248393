//! Presets (loading, overrides, validation), sweeps and run directories.
use std::path::{Path, PathBuf};

use serde_json::json;
use sift_tui::data::DATA_DIR_ENV;
use sift_tui::experiment::preset::{DatasetSpec, Preset};
use sift_tui::experiment::results::RunResults;
use sift_tui::experiment::rundir::{Launch, RunDir};
use sift_tui::experiment::sweep::{list_runs, select};
use sift_tui::method::MethodName;
use sift_tui::metrics::{Metric, Scores};
use sift_tui::model::tokenizer::TextTokenizer;
use sift_tui::train::prepare::prepare;

/// A valid preset that does not depend on the label map's form.
const BASE: &str = r#"
name = "t"

[sweep]
models = ["org/alpha", "beta"]
methods = ["standard", "sift"]
seeds = [1, 2]

[source]
limit = 100

[source.dataset]
kind = "twitter-hate"

[target]
fractions = [0.0, 0.1]
label_map = "hate-to-negative"

[target.dataset]
kind = "uci-sentiment"

[train]
batch_size = 8
max_len = 32
"#;

fn presets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("presets")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The error of loading `text` (written as `bad.toml`) with `overrides`, as one line.
fn load_error(text: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", text);
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let error = format!("{:#}", Preset::load(&path, &overrides).expect_err("the preset should be rejected"));
    assert!(!error.contains('\n'), "not one line: {error}");
    assert!(error.contains("bad.toml"), "no file name: {error}");
    error
}

fn assert_names(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
}

#[test]
fn every_preset_loads_and_round_trips() {
    let mut count = 0;
    for entry in std::fs::read_dir(presets_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let preset = Preset::load(&path, &[]).unwrap_or_else(|e| panic!("{e:#}"));
            let dir = tempfile::tempdir().unwrap();
            let resolved = write(dir.path(), "config.toml", &preset.to_toml_string().unwrap());
            assert_eq!(Preset::load(&resolved, &[]).unwrap(), preset, "{}", path.display());
            count += 1;
        }
    }
    assert_eq!(count, 4);
}

#[test]
fn study_presets_have_the_documented_sweeps() {
    let twitter = Preset::load(&presets_dir().join("twitter-uci.toml"), &[]).unwrap();
    assert_eq!(twitter.sweep.models, ["bert-base-uncased", "microsoft/deberta-base"]);
    assert_eq!(twitter.sweep.methods, [MethodName::Standard, MethodName::Smart, MethodName::Sift]);
    assert_eq!(twitter.runs().len(), 18);
    assert_eq!(twitter.source.limit, 4000);
    assert_eq!(twitter.target.as_ref().unwrap().fractions, [0.0, 0.1]);
    let cola = Preset::load(&presets_dir().join("cola.toml"), &[]).unwrap();
    assert_eq!(cola.source.metric, Metric::Mcc);
    assert!(cola.target.is_none());
    let columns: Vec<&str> = cola.source.evaluate.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(columns, ["in_domain_dev", "out_of_domain_dev"]);
}

#[test]
fn overrides_apply_to_quick() {
    let overrides = [
        r#"sweep.models=["sentence-transformers/all-MiniLM-L6-v2"]"#,
        "sweep.seeds=[7]",
        "source.limit=256",
        "train.max_steps=16",
        "train.batch_size=16",
        "train.max_len=48",
        "train.lr=3e-5",
    ]
    .map(String::from);
    let preset = Preset::load(&presets_dir().join("quick.toml"), &overrides).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(preset.sweep.models, ["sentence-transformers/all-MiniLM-L6-v2"]);
    assert_eq!(preset.sweep.seeds, [7]);
    assert_eq!(preset.source.limit, 256);
    assert_eq!((preset.train.max_steps, preset.train.batch_size, preset.train.max_len), (16, 16, 48));
    assert_eq!(preset.train.lr, 3e-5);
    assert_eq!(preset.runs()[0].run_id, "quick__all-MiniLM-L6-v2__standard__s7");
}

#[test]
fn overrides_create_sections_and_take_bare_words_as_strings() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace("[train]\nbatch_size = 8\nmax_len = 32\n", "");
    let path = write(dir.path(), "p.toml", &text);
    let overrides = ["train.device=cuda", "train.optimizer.weight_decay=0.0", "name=other-name"].map(String::from);
    let preset = Preset::load(&path, &overrides).unwrap();
    assert_eq!(preset.train.device, "cuda");
    assert_eq!(preset.train.optimizer.weight_decay, 0.0);
    assert_eq!(preset.name, "other-name");
}

#[test]
fn unknown_keys_name_the_key_and_their_origin() {
    let text = BASE.replace("max_len = 32", "max_len = 32\nmax_lenn = 3");
    let line = text.lines().position(|l| l.starts_with("max_lenn")).unwrap() + 1;
    let in_file = load_error(&text, &[]);
    assert_names(&in_file, &[&format!("bad.toml:{line}: `train.max_lenn`"), "unknown field"]);
    let from_set = load_error(BASE, &["train.batch_sizee=1"]);
    assert_names(&from_set, &["`train.batch_sizee`", "--set", "unknown field"]);
}

#[test]
fn malformed_overrides_are_rejected() {
    assert_names(&load_error(BASE, &["train.lr"]), &["--set `train.lr`", "KEY=VALUE"]);
    assert_names(&load_error(BASE, &["sweep.models=[bert"]), &["--set", "not a TOML value"]);
}

#[test]
fn syntax_errors_name_the_line() {
    let error = load_error("name = \"t\"\n[sweep\n", &[]);
    assert!(error.contains("bad.toml:2:"), "{error}");
}

#[test]
fn bad_values_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("batch_size = 8", "batch_size = \"eight\"", "`train.batch_size`"),
        ("batch_size = 8", "batch_size = 0", "`train.batch_size`"),
        ("methods = [\"standard\", \"sift\"]", "methods = [\"standard\", \"sifty\"]", "`sweep.methods[1]`"),
        ("fractions = [0.0, 0.1]", "fractions = [0.0, 1.5]", "`target.fractions[1]`"),
        ("fractions = [0.0, 0.1]", "fractions = [0.1, 0.1]", "`target.fractions[1]`"),
        ("models = [\"org/alpha\", \"beta\"]", "models = []", "`sweep.models`"),
        ("models = [\"org/alpha\", \"beta\"]", "models = [\"org/beta\", \"beta\"]", "`sweep.models[1]`"),
        ("methods = [\"standard\", \"sift\"]", "methods = []", "`sweep.methods`"),
        ("seeds = [1, 2]", "seeds = []", "`sweep.seeds`"),
        ("seeds = [1, 2]", "seeds = [1, 2, 1]", "`sweep.seeds[2]`"),
        ("max_len = 32", "max_len = 32\nlr = 0.0", "`train.lr`"),
        ("max_len = 32", "max_len = 32\nlr = -1e-5", "`train.lr`"),
        ("max_len = 32", "max_len = 32\nepochs = 0", "`train.epochs`"),
        ("max_len = 32", "max_len = 32\nwarmup_ratio = 1.5", "`train.warmup_ratio`"),
        ("max_len = 32", "max_len = 4", "`train.max_len`"),
        ("limit = 100", "limit = 100\ndev_fraction = 1.0", "`source.dev_fraction`"),
        ("limit = 100", "limit = 100\ndev_fraction = 0", "`source.dev_fraction`"),
        ("max_len = 32", "max_len = 32\ndevice = \"gpu\"", "`train.device`"),
        ("max_len = 32", "max_len = 32\ndevice = \"cuda:x\"", "`train.device`"),
        ("name = \"t\"", "name = \"t\\n#SBATCH --wrap=x\"", "`name`"),
        ("name = \"t\"", "name = \"t\\u0007\"", "control characters"),
        ("methods = [\"standard\", \"sift\"]", "methods = [\"sift\", \"sift\"]", "duplicate entry `sift`"),
    ];
    for (from, to, key) in cases {
        assert!(BASE.contains(from), "{from}");
        let error = load_error(&BASE.replacen(from, to, 1), &[]);
        assert_names(&error, &[key]);
        assert!(error.contains("bad.toml:") && !error.contains("--set"), "{error}");
    }
    // The same checks apply to values from --set, which have no line.
    let error = load_error(BASE, &["train.batch_size=0"]);
    assert_names(&error, &["`train.batch_size` (--set)", "at least 1"]);
    // Evaluation names share a namespace with the splits they are written beside.
    for name in ["source-dev", "target-test", "10%"] {
        let evaluate = format!(r#"source.evaluate=[{{name = "{name}", dataset = {{kind = "twitter-hate"}}}}]"#);
        let error = load_error(BASE, &[&evaluate]);
        assert_names(&error, &["`source.evaluate[0]`", name, "split of its own"]);
    }
    let fine = r#"source.evaluate=[{name = "in_domain_dev", dataset = {kind = "twitter-hate"}}]"#;
    let dir = tempfile::tempdir().unwrap();
    assert!(Preset::load(&write(dir.path(), "p.toml", BASE), &[fine.to_string()]).is_ok());
}

#[test]
fn zero_epochs_are_fine_with_a_step_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.toml", BASE);
    let overrides = ["train.epochs=0", "train.max_steps=5"].map(String::from);
    assert!(Preset::load(&path, &overrides).is_ok());
}

fn base_preset(dir: &Path) -> Preset {
    Preset::load(&write(dir, "p.toml", BASE), &[]).unwrap()
}

#[test]
fn sweeps_expand_in_a_fixed_order_with_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let runs = base_preset(dir.path()).runs();
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "t__alpha__standard__s1",
            "t__alpha__standard__s2",
            "t__alpha__sift__s1",
            "t__alpha__sift__s2",
            "t__beta__standard__s1",
            "t__beta__standard__s2",
            "t__beta__sift__s1",
            "t__beta__sift__s2",
        ]
    );
    assert_eq!(runs.iter().map(|r| r.index).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    let third = &runs[2];
    assert_eq!((third.model.as_str(), third.method, third.seed), ("org/alpha", MethodName::Sift, 1));
    assert_eq!(third.preset.sweep.models, ["org/alpha"]);
    assert_eq!(third.preset.sweep.methods, [MethodName::Sift]);
    assert_eq!(third.preset.sweep.seeds, [1]);
}

#[test]
fn runs_are_listed_and_selected_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let runs = base_preset(dir.path()).runs();
    let listing = list_runs(&runs);
    assert_eq!(listing.lines().count(), 9);
    assert!(listing.lines().nth(3).unwrap().starts_with("3  t__alpha__sift__s1"), "{listing}");
    assert_eq!(select(&runs, 1).unwrap(), runs[0]);
    assert_eq!(select(&runs, 8).unwrap(), runs[7]);
    for out_of_range in [0, 9] {
        let error = select(&runs, out_of_range).unwrap_err().to_string();
        assert!(error.contains("8 runs"), "{error}");
    }
}

#[test]
fn a_run_directory_holds_its_resolved_config() {
    let dir = tempfile::tempdir().unwrap();
    let spec = &base_preset(dir.path()).runs()[0];
    let run = RunDir::create(&dir.path().join("runs"), spec).unwrap();
    assert_eq!(run.path(), dir.path().join("runs").join(&spec.run_id));
    assert!(run.checkpoints_dir().is_dir());
    assert_eq!(run.read_config().unwrap(), spec.preset);
    assert_eq!(run.run_id(), spec.run_id);
}

#[test]
fn a_run_is_locked_by_one_holder_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let spec = &base_preset(dir.path()).runs()[0];
    let first = RunDir::create(&runs_dir, spec).unwrap();
    let mut second = RunDir::open(first.path()).unwrap();
    let error = second.lock().unwrap_err().to_string();
    assert_names(&error, &[&spec.run_id, &std::process::id().to_string()]);
    assert!(RunDir::create(&runs_dir, spec).is_err());
    drop(first);
    second.lock().unwrap();
    assert!(second.is_locked());
}

#[test]
fn a_changed_config_does_not_reenter_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let mut spec = base_preset(dir.path()).runs()[0].clone();
    let run = RunDir::create(&runs_dir, &spec).unwrap();
    run.append_metrics(&json!({"stage_index": 0, "step": 1})).unwrap();
    drop(run);
    drop(RunDir::create(&runs_dir, &spec).expect("same config re-enters"));
    spec.preset.train.lr = 1e-3;
    let error = RunDir::create(&runs_dir, &spec).unwrap_err().to_string();
    assert_names(&error, &["config.toml", "different config"]);
}

/// The launch decision over each state a run directory can be in.
#[test]
fn launching_decides_by_what_the_run_directory_holds() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let spec = &base_preset(dir.path()).runs()[0];
    let decide = || match RunDir::launch(&runs_dir, spec).unwrap() {
        Launch::Finished { .. } => "finished",
        Launch::Held(_) => "held",
        Launch::Resume(_) => "resume",
        Launch::Fresh(_) => "fresh",
    };
    assert_eq!(decide(), "fresh", "no directory yet");
    assert_eq!(decide(), "fresh", "a directory with only its config");
    let held = RunDir::create(&runs_dir, spec).unwrap();
    assert_eq!(decide(), "held");
    // Anything written makes it a restart: metrics without a checkpoint (a kill before the first
    // one), or a checkpoint.
    held.append_metrics(&json!({"stage_index": 0, "step": 1})).unwrap();
    drop(held);
    assert_eq!(decide(), "resume", "metrics without a checkpoint");
    let run = runs_dir.join(&spec.run_id);
    std::fs::remove_file(run.join("metrics.jsonl")).unwrap();
    std::fs::write(run.join("checkpoints/ckpt-00-0000002.json"), "{}").unwrap();
    assert_eq!(decide(), "resume", "a checkpoint");
    std::fs::write(run.join("results.json"), "{}").unwrap();
    assert_eq!(decide(), "finished");
}

/// A start that fails before its first update (a device that cannot be opened) writes only the
/// config; the corrected command takes the directory over instead of calling it another run.
#[test]
fn a_run_that_wrote_nothing_takes_a_corrected_config() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let mut spec = base_preset(dir.path()).runs()[0].clone();
    spec.preset.train.device = "cuda".into();
    drop(RunDir::create(&runs_dir, &spec).unwrap());
    spec.preset.train.device = "cpu".into();
    let run = RunDir::create(&runs_dir, &spec).expect("nothing was written: the corrected config replaces it");
    assert_eq!(run.read_config().unwrap().train.device, "cpu");
    run.append_metrics(&json!({"stage_index": 0, "step": 1})).unwrap();
    drop(run);
    spec.preset.train.device = "cuda".into();
    let error = RunDir::create(&runs_dir, &spec).unwrap_err().to_string();
    assert_names(&error, &["config.toml", "different config"]);
}

/// Temporary files of writes that a kill interrupted are deleted when the run is entered again.
#[test]
fn stale_temporary_files_are_removed_on_entry() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let spec = &base_preset(dir.path()).runs()[0];
    let path = RunDir::create(&runs_dir, spec).unwrap().path().to_path_buf();
    let stale = [path.join("checkpoints/.ckpt-00-0000005.safetensors.tmp-4242"), path.join(".metrics.jsonl.tmp-17")];
    let kept = [path.join("checkpoints/notes.tmp-1"), path.join("checkpoints/.hidden")];
    for file in stale.iter().chain(&kept) {
        std::fs::write(file, "x").unwrap();
    }
    let _run = RunDir::create(&runs_dir, spec).unwrap();
    for file in &stale {
        assert!(!file.exists(), "{} removed", file.display());
    }
    for file in &kept {
        assert!(file.exists(), "{} kept", file.display());
    }
}

#[test]
fn metrics_are_truncated_to_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let spec = &base_preset(dir.path()).runs()[0];
    let run = RunDir::create(dir.path(), spec).unwrap();
    for (stage_index, steps) in [(0, 1..=5), (1, 1..=3)] {
        for step in steps {
            run.append_metrics(&json!({"stage_index": stage_index, "step": step, "loss": 0.5})).unwrap();
        }
    }
    run.append_metrics(&json!({"stage_index": 1, "step": 1, "split": "dev"})).unwrap();
    // A crash in the middle of a write leaves a torn last line.
    let mut text = std::fs::read_to_string(run.metrics_path()).unwrap();
    text.push_str("{\"stage_index\": 1, \"st");
    std::fs::write(run.metrics_path(), text).unwrap();

    let warnings = run.truncate_metrics_after(1, 1).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_names(&warnings[0], &["metrics.jsonl:10:", "torn"]);
    let kept: Vec<(u64, u64)> = std::fs::read_to_string(run.metrics_path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|v| (v["stage_index"].as_u64().unwrap(), v["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(kept, [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 1), (1, 1)]);
    run.append_metrics(&json!({"stage_index": 1, "step": 2})).unwrap();
    assert_eq!(std::fs::read_to_string(run.metrics_path()).unwrap().lines().count(), 8);
}

#[test]
fn writing_needs_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let spec = &base_preset(dir.path()).runs()[0];
    let path = RunDir::create(dir.path(), spec).unwrap().path().to_path_buf();
    let reader = RunDir::open(&path).unwrap();
    assert!(reader.append_metrics(&json!({"stage_index": 0, "step": 1})).is_err());
    assert!(reader.truncate_metrics_after(0, 0).is_err());
}

fn results(run_id: &str) -> RunResults {
    let scores =
        Scores { accuracy: 0.5, macro_f1: 0.5, mcc: 0.0, loss: 0.7, examples: 2, predicted_counts: vec![1, 1] };
    RunResults {
        run_id: run_id.into(),
        preset: "t".into(),
        model: "org/alpha".into(),
        method: MethodName::Standard,
        seed: 1,
        metric: Metric::Accuracy,
        best_step: 3,
        dev: scores,
        columns: Vec::new(),
        elapsed_secs: 1.0,
    }
}

#[test]
fn results_are_read_tolerantly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = &base_preset(dir.path()).runs()[0];
    let run = RunDir::create(dir.path(), spec).unwrap();
    assert_eq!(run.read_results().unwrap(), None);
    let written = results(&spec.run_id);
    run.write_results(&written).unwrap();
    assert_eq!(run.read_results().unwrap(), Some(written));
    std::fs::write(run.results_path(), "{\"run_id\": ").unwrap();
    let error = format!("{:#}", run.read_results().unwrap_err());
    assert!(error.contains("results.json"), "{error}");
}

#[test]
fn the_slurm_command_prints_a_job_array_over_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .arg("slurm")
        .arg(presets_dir().join("quick.toml"))
        .args(["--set", "sweep.seeds=[1, 2]", "--set", "train.lr=3e-5", "--partition", "gpu", "--runs-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.starts_with("#!/bin/bash\n"));
    assert!(script.contains("#SBATCH --array=1-12\n") && script.contains("#SBATCH --partition=gpu\n"), "{script}");
    let exec = script.lines().find(|line| line.starts_with("exec ")).unwrap();
    assert!(exec.contains(" run ") && exec.contains("quick.toml"), "{exec}");
    assert!(exec.contains("--set 'sweep.seeds=[1, 2]' --set train.lr=3e-5 --runs-dir "), "{exec}");
    assert!(exec.ends_with("--only \"$SLURM_ARRAY_TASK_ID\""), "{exec}");
    let syntax = std::process::Command::new("bash").arg("-n").arg("-c").arg(&script).status().unwrap();
    assert!(syntax.success());
}

/// A shared preset cannot add lines to the job script: a name with a newline is refused, and
/// every value the script interpolates is quoted.
#[test]
fn the_slurm_script_takes_no_lines_from_the_preset() {
    let dir = tempfile::tempdir().unwrap();
    let slurm = |name: &str| {
        let preset = write(dir.path(), "p.toml", &BASE.replacen("name = \"t\"", &format!("name = {name}"), 1));
        std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui")).arg("slurm").arg(preset).output().unwrap()
    };
    let injected = slurm(r#""t\n#SBATCH --wrap=evil\nrm -rf ~""#);
    assert_eq!(injected.status.code(), Some(2));
    assert_names(&String::from_utf8_lossy(&injected.stderr), &["`name`", "control characters"]);
    assert!(injected.stdout.is_empty());

    let output = slurm(r#""it's $(whoami) `x`""#);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains(r#"#SBATCH --job-name='sift-it'\''s $(whoami) `x`'"#), "{script}");
    let directives = script.lines().filter(|l| l.starts_with("#SBATCH")).count();
    assert_eq!(directives, 5, "job-name, array, time, cpus-per-task, mem: {script}");
    let syntax = std::process::Command::new("bash").arg("-n").arg("-c").arg(&script).status().unwrap();
    assert!(syntax.success());
}

#[test]
fn uci_domains_fine_tunes_on_amazon_and_yelp_and_scores_on_imdb() {
    let preset = Preset::load(&presets_dir().join("uci-domains.toml"), &[]).unwrap();
    assert_eq!(preset.sweep.models, ["sentence-transformers/all-MiniLM-L6-v2"]);
    assert_eq!(preset.sweep.methods, [MethodName::Standard, MethodName::Smart, MethodName::Sift]);
    assert_eq!(preset.runs().len(), 9);
    let target = preset.target.as_ref().unwrap();
    assert_eq!(target.fractions, [0.0, 0.1]);
    let files = |spec: &DatasetSpec| match spec {
        DatasetSpec::UciSentiment { files } => files.clone(),
        other => panic!("not UCI: {other:?}"),
    };
    assert_eq!(files(&preset.source.dataset), ["amazon_cells_labelled.txt", "yelp_labelled.txt"]);
    assert_eq!(files(&target.dataset), ["imdb_labelled.txt"]);

    if std::env::var_os(DATA_DIR_ENV).is_none() {
        eprintln!("skipped the data half: set {DATA_DIR_ENV} to the data directory");
        return;
    }
    let tokenizer =
        TextTokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/bert-cls"), 32)
            .unwrap();
    let data = prepare(&preset, &tokenizer).unwrap();
    // 1,000 sentences per file: the source is Amazon + Yelp, the target pool IMDB alone.
    assert_eq!((data.train.len() + data.dev.len(), data.dev.len()), (2000, 200));
    let target = data.target.unwrap();
    assert_eq!(target.test.len(), 900);
    assert_eq!(target.train.iter().map(|(f, set)| (*f, set.len())).collect::<Vec<_>>(), [(0.0, 0), (0.1, 100)]);
}

//! The results table over a hand-written runs directory: standard and SiFT with three seeds each,
//! SMART with one, a crashed run without results and a corrupt results file.
use std::path::Path;

use sift_tui::experiment::results::{ColumnResult, RunResults};
use sift_tui::experiment::table::{collect, render, summarize, Collected, Format};
use sift_tui::method::MethodName;
use sift_tui::metrics::{Metric, Scores, Split};

const EXAMPLES: usize = 20;

/// Alternating gold labels; the first `correct` predictions are right, the others wrong.
fn column(name: &str, correct: usize) -> ColumnResult {
    let gold: Vec<u32> = (0..EXAMPLES as u32).map(|i| i % 2).collect();
    let predicted = gold.iter().enumerate().map(|(i, &g)| if i < correct { g } else { 1 - g }).collect();
    let accuracy = correct as f64 / EXAMPLES as f64;
    // Stored scores are deliberately off: the table recomputes the metric from the predictions.
    let scores = Scores {
        accuracy: accuracy / 2.0,
        macro_f1: 0.0,
        mcc: 0.0,
        loss: 0.5,
        examples: EXAMPLES,
        ..Scores::default()
    };
    ColumnResult { name: name.into(), scores, gold, predicted }
}

fn write_run(runs_dir: &Path, method: MethodName, seed: u64, correct: [usize; 2]) {
    let run_id = format!("p__m__{method}__s{seed}");
    let results = RunResults {
        run_id: run_id.clone(),
        preset: "p".into(),
        model: "org/m".into(),
        method,
        seed,
        metric: Metric::Accuracy,
        best_step: 10,
        dev: column("dev", 10).scores,
        columns: vec![column("0%", correct[0]), column("10%", correct[1])],
        elapsed_secs: 60.0,
    };
    let dir = runs_dir.join(run_id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "name = \"p\"\n").unwrap();
    std::fs::write(dir.join("results.json"), serde_json::to_string(&results).unwrap()).unwrap();
}

/// Standard: 0.5/0.6/0.7 at 0 % and 0.7/0.8/0.9 at 10 %. SiFT: 0.8/0.9/1.0 at 0 %, the same
/// predictions as standard at 10 %. SMART: one seed.
fn runs_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (seed, k) in [(1, 0), (2, 2), (3, 4)] {
        write_run(dir.path(), MethodName::Standard, seed, [10 + k, 14 + k]);
        write_run(dir.path(), MethodName::Sift, seed, [16 + k, 14 + k]);
    }
    write_run(dir.path(), MethodName::Smart, 1, [12, 12]);
    let crashed = dir.path().join("p__m__sift__s4");
    std::fs::create_dir_all(crashed.join("checkpoints")).unwrap();
    std::fs::write(crashed.join("config.toml"), "name = \"p\"\n").unwrap();
    let corrupt = dir.path().join("p__m__smart__s2");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("config.toml"), "name = \"p\"\n").unwrap();
    std::fs::write(corrupt.join("results.json"), "{\"run_id\": \"p__m__smart__s2\", ").unwrap();
    dir
}

fn collected() -> (tempfile::TempDir, Collected) {
    let dir = runs_dir();
    let collected = collect(dir.path()).unwrap();
    (dir, collected)
}

#[test]
fn collect_skips_unfinished_and_corrupt_runs() {
    let (_dir, collected) = collected();
    assert_eq!(collected.runs.len(), 7);
    assert_eq!(collected.without_results, ["p__m__sift__s4"]);
    assert_eq!(collected.warnings.len(), 1);
    assert!(collected.warnings[0].contains("p__m__smart__s2") && collected.warnings[0].contains("results.json"));
}

#[test]
fn a_missing_runs_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = collect(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn markdown_has_cells_differences_and_a_key() {
    let (_dir, collected) = collected();
    let md = render(&collected, Format::Md);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "| model | method | 0% | Δ 0% | 10% | Δ 10% |");
    assert!(lines[2].starts_with("| org/m | standard | 0.600 ± 0.100 (3) | — | 0.800 ± 0.100 (3) | — |"), "{md}");
    assert!(lines[3].starts_with("| org/m | smart | 0.600 (1) | "), "{md}");
    let sift = lines[4];
    assert!(sift.starts_with("| org/m | sift | 0.900 ± 0.100 (3) | +0.300 ["), "{md}");
    let cells: Vec<&str> = sift.split(" | ").collect();
    assert!(cells[3].ends_with(" *"), "SiFT is better on every example at 0 %: {sift}");
    assert_eq!(cells[5].trim_end_matches(" |"), "+0.000 [+0.000, +0.000]", "identical predictions at 10 %");
    assert!(md.contains("of accuracy") && md.contains("2000 resamples") && md.contains("95 %"), "{md}");
    assert!(md.contains("p__m__sift__s4") && md.contains("Skipped 1 unusable"), "{md}");
}

#[test]
fn csv_has_one_line_per_cell() {
    let (_dir, collected) = collected();
    let csv = render(&collected, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(header.iter().take(4).collect::<Vec<_>>(), ["preset", "model", "method", "column"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 6);
    let field =
        |record: &csv::StringRecord, name: &str| record[header.iter().position(|h| h == name).unwrap()].to_string();
    let sift_zero = records.iter().find(|r| &r[2] == "sift" && &r[3] == "0%").unwrap();
    assert_eq!(field(sift_zero, "n"), "3");
    assert_eq!(field(sift_zero, "seeds"), "1 2 3");
    assert!((field(sift_zero, "mean").parse::<f64>().unwrap() - 0.9).abs() < 1e-12);
    assert!((field(sift_zero, "diff").parse::<f64>().unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(field(sift_zero, "significant"), "true");
    let smart = records.iter().find(|r| &r[2] == "smart").unwrap();
    assert_eq!(field(smart, "std"), "");
}

#[test]
fn json_carries_cells_and_what_was_skipped() {
    let (_dir, collected) = collected();
    let json: serde_json::Value = serde_json::from_str(&render(&collected, Format::Json)).unwrap();
    assert_eq!(json["bootstrap_resamples"], 2000);
    assert_eq!(json["columns"], serde_json::json!(["0%", "10%"]));
    assert_eq!(json["without_results"], serde_json::json!(["p__m__sift__s4"]));
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6);
    let standard_ten = cells.iter().find(|c| c["method"] == "standard" && c["column"] == "10%").unwrap();
    assert!((standard_ten["mean"].as_f64().unwrap() - 0.8).abs() < 1e-12);
    assert!((standard_ten["std"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    assert!(standard_ten["vs_standard"].is_null());
    let sift_ten = cells.iter().find(|c| c["method"] == "sift" && c["column"] == "10%").unwrap();
    assert_eq!(sift_ten["vs_standard"]["significant"], false);
    assert_eq!(sift_ten["vs_standard"]["shared_seeds"], 3);
}

#[test]
fn rendering_is_deterministic() {
    let (_dir, collected) = collected();
    assert_eq!(render(&collected, Format::Md), render(&collected, Format::Md));
}

#[test]
fn the_table_command_prints_the_table_and_warns_on_stderr() {
    let dir = runs_dir();
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui")).arg("table").arg(dir.path()).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("| model | method |"), "{stdout}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("warning:") && stderr.contains("p__m__smart__s2"), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .args(["table", "--format", "csv"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("no finished runs"));
}

/// A runs directory where SMART labels every 0 % example as class 1 on all three seeds, and one
/// of its seeds does the same at 10 %.
fn single_class_runs_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for seed in 1..=3 {
        write_run(dir.path(), MethodName::Standard, seed, [14, 16]);
        let run_id = format!("p__m__smart__s{seed}");
        let gold: Vec<u32> = (0..EXAMPLES as u32).map(|i| i % 2).collect();
        let constant = |name: &str| ColumnResult {
            name: name.into(),
            scores: Scores::default(),
            gold: gold.clone(),
            predicted: vec![1; EXAMPLES],
        };
        let ten = if seed == 1 { constant("10%") } else { column("10%", 15) };
        let results = RunResults {
            run_id: run_id.clone(),
            preset: "p".into(),
            model: "org/m".into(),
            method: MethodName::Smart,
            seed,
            metric: Metric::Accuracy,
            best_step: 10,
            dev: Scores::default(),
            columns: vec![constant("0%"), ten],
            elapsed_secs: 60.0,
        };
        let run = dir.path().join(run_id);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("config.toml"), "name = \"p\"\n").unwrap();
        std::fs::write(run.join("results.json"), serde_json::to_string(&results).unwrap()).unwrap();
    }
    dir
}

#[test]
fn a_single_class_cell_is_marked_in_every_format() {
    let dir = single_class_runs_dir();
    let collected = collect(dir.path()).unwrap();

    let summary = summarize(&collected);
    let smart = |column: f64| {
        summary.cells.iter().find(|c| c.method == MethodName::Smart && c.column == Split::Fraction(column)).unwrap()
    };
    assert_eq!((smart(0.0).single_class_runs, smart(0.1).single_class_runs), (3, 1));
    assert!(summary.cells.iter().filter(|c| c.method == MethodName::Standard).all(|c| c.single_class_runs == 0));
    assert_eq!(smart(0.0).format_value(), "0.500 ± 0.000 (3) †");
    assert!(smart(0.1).format_value().ends_with(" †1/3"), "{}", smart(0.1).format_value());

    let md = render(&collected, Format::Md);
    let smart_line = md.lines().find(|l| l.starts_with("| org/m | smart |")).unwrap();
    assert!(smart_line.contains("0.500 ± 0.000 (3) †") && smart_line.contains("†1/3"), "{md}");
    let standard_line = md.lines().find(|l| l.starts_with("| org/m | standard |")).unwrap();
    assert!(!standard_line.contains('†'), "{md}");
    assert!(md.contains("†: every run of the cell") && md.contains("95 %"), "{md}");
    assert!(md.contains("Majority-class baseline") && md.contains("0% 0.500, 10% 0.500"), "{md}");

    let csv = render(&collected, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let smart_zero = records.iter().find(|r| &r[at("method")] == "smart" && &r[at("column")] == "0%").unwrap();
    assert_eq!(&smart_zero[at("single_class_runs")], "3");
    assert_eq!(&smart_zero[at("majority_baseline")], "0.5");
    let standard_zero = records.iter().find(|r| &r[at("method")] == "standard" && &r[at("column")] == "0%").unwrap();
    assert_eq!(&standard_zero[at("single_class_runs")], "0");

    let json: serde_json::Value = serde_json::from_str(&render(&collected, Format::Json)).unwrap();
    let cells = json["cells"].as_array().unwrap();
    let cell = |method: &str, column: &str| {
        cells.iter().find(|c| c["method"] == method && c["column"] == column).unwrap()["single_class_runs"].clone()
    };
    assert_eq!((cell("smart", "0%"), cell("smart", "10%"), cell("standard", "0%")), (3.into(), 1.into(), 0.into()));
    assert_eq!(json["single_class_share"], 0.95);
    let baselines = json["baselines"].as_array().unwrap();
    assert_eq!(baselines.len(), 2);
    assert_eq!((baselines[0]["column"].clone(), baselines[0]["value"].clone()), ("0%".into(), 0.5.into()));
}

#[test]
fn the_majority_baseline_follows_the_metric_and_the_class_balance() {
    // 15 of 20 gold labels are 1: labelling everything 1 scores 0.75 accuracy and 0 MCC.
    let dir = tempfile::tempdir().unwrap();
    for (method, metric) in [(MethodName::Standard, Metric::Accuracy), (MethodName::Standard, Metric::Mcc)] {
        let preset = metric.key().to_string();
        let gold: Vec<u32> = (0..EXAMPLES as u32).map(|i| (i >= 5) as u32).collect();
        let results = RunResults {
            run_id: format!("{preset}__m__{method}__s1"),
            preset: preset.clone(),
            model: "org/m".into(),
            method,
            seed: 1,
            metric,
            best_step: 1,
            dev: Scores::default(),
            columns: vec![ColumnResult {
                name: "0%".into(),
                scores: Scores::default(),
                gold: gold.clone(),
                predicted: gold,
            }],
            elapsed_secs: 1.0,
        };
        let run = dir.path().join(&results.run_id);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("config.toml"), "name = \"p\"\n").unwrap();
        std::fs::write(run.join("results.json"), serde_json::to_string(&results).unwrap()).unwrap();
    }
    let summary = summarize(&collect(dir.path()).unwrap());
    let value = |preset: &str| summary.baseline(preset, &Split::Fraction(0.0)).unwrap();
    assert_eq!((value("accuracy").class, value("accuracy").share, value("accuracy").value), (1, 0.75, 0.75));
    assert_eq!(value("mcc").value, 0.0);
    assert!(
        summary.footnotes.iter().any(|f| f.contains("accuracy 0% 0.750") && f.contains("mcc 0% 0.000")),
        "{:?}",
        summary.footnotes
    );
}

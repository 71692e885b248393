//! The results table: every finished run of a runs directory, as mean ± std over seeds per model ×
//! method and column, with each method's difference from `standard` and a bootstrap interval.
//!
//! Metrics are recomputed from the stored gold labels and predictions, so the bootstrap and the
//! cells agree. The interval resamples both sources of variance: seeds (paired, from the seeds
//! both arms have) and test examples (the same indices for every run, as they share one test set).
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use rand::Rng;
use serde::Serialize;

use super::results::RunResults;
use super::rundir::{subdirectories, RunDir};
use crate::method::MethodName;
use crate::metrics::{predicts_one_class, Confusion, Metric, Split, SINGLE_CLASS_SHARE};

/// Bootstrap resamples per difference.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Coverage of the percentile interval.
const CONFIDENCE: f64 = 0.95;
/// Fixed, so the table is reproducible.
const BOOTSTRAP_SEED: u64 = 0x5eed_7ab1e;

/// The results found in a runs directory.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Sorted by preset, model, method and seed.
    pub runs: Vec<RunResults>,
    /// Run directories without `results.json` (still running, or crashed).
    pub without_results: Vec<String>,
    /// Results that could not be used (corrupt, inconsistent, duplicated), one line each.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Csv,
    Json,
}

/// Reads every `*/results.json` under `runs_dir`. A run that cannot be used becomes a warning; only
/// an unreadable runs directory fails.
pub fn collect(runs_dir: &Path) -> anyhow::Result<Collected> {
    let dirs = subdirectories(runs_dir)?;
    let mut collected = Collected::default();
    for dir in dirs {
        let run = RunDir::open(&dir)?;
        match run.read_results() {
            Ok(Some(results)) => match inconsistency(&results) {
                None => collected.runs.push(results),
                Some(problem) => {
                    collected.warnings.push(format!("{}: {problem}; skipped", run.results_path().display()))
                }
            },
            // A directory without a config is not a run (e.g. a job-array log folder).
            Ok(None) if run.config_path().is_file() => collected.without_results.push(run.run_id()),
            Ok(None) => {}
            Err(e) => collected.warnings.push(format!("{e:#}; skipped")),
        }
    }
    collected.runs.sort_by(|a, b| row_key(a).cmp(&row_key(b)).then(a.seed.cmp(&b.seed)));
    drop_conflicting_runs(&mut collected);
    Ok(collected)
}

fn row_key(run: &RunResults) -> (&str, &str, MethodName) {
    (&run.preset, &run.model, run.method)
}

fn inconsistency(results: &RunResults) -> Option<String> {
    results
        .columns
        .iter()
        .find(|c| c.gold.len() != c.predicted.len())
        .map(|c| format!("column `{}` has {} gold labels but {} predictions", c.name, c.gold.len(), c.predicted.len()))
}

/// Keeps one run per (preset, model, method, seed) and one metric per preset.
fn drop_conflicting_runs(collected: &mut Collected) {
    let mut metric_of_preset: HashMap<String, Metric> = HashMap::new();
    let mut kept: Vec<RunResults> = Vec::with_capacity(collected.runs.len());
    for run in std::mem::take(&mut collected.runs) {
        let metric = *metric_of_preset.entry(run.preset.clone()).or_insert(run.metric);
        let duplicate = kept.last().filter(|last| row_key(last) == row_key(&run) && last.seed == run.seed);
        if let Some(first) = duplicate {
            collected.warnings.push(format!("run {} repeats run {} (same seed); skipped", run.run_id, first.run_id));
        } else if run.metric != metric {
            let (preset, id) = (&run.preset, &run.run_id);
            collected
                .warnings
                .push(format!("run {id} reports {:?}, other runs of preset {preset} {metric:?}; skipped", run.metric));
        } else {
            kept.push(run);
        }
    }
    collected.runs = kept;
}

/// One row × column of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub preset: String,
    pub model: String,
    pub method: MethodName,
    pub column: Split,
    pub metric: Metric,
    pub seeds: Vec<u64>,
    pub mean: f64,
    /// Sample standard deviation over seeds; absent for a single seed.
    pub std: Option<f64>,
    pub vs_standard: Option<Difference>,
    /// Runs of the cell that put (nearly) every test example into one class
    /// ([`crate::metrics::SINGLE_CLASS_SHARE`]).
    pub single_class_runs: usize,
}

impl Cell {
    /// `0.612 ± 0.020 (3)`, flagged ` †` when every run predicts one class (` †1/3` when some do).
    pub fn format_value(&self) -> String {
        let n = self.seeds.len();
        let value = match self.std {
            Some(std) => format!("{:.3} ± {std:.3} ({n})", self.mean),
            None => format!("{:.3} ({n})", self.mean),
        };
        match self.single_class_runs {
            0 => value,
            k if k == n => format!("{value} {SINGLE_CLASS_MARK}"),
            k => format!("{value} {SINGLE_CLASS_MARK}{k}/{n}"),
        }
    }

    /// `+0.043 [+0.012, +0.071] *`, `—` for standard itself, empty without a difference.
    pub fn format_difference(&self) -> String {
        match (&self.vs_standard, self.method) {
            (_, MethodName::Standard) => "—".into(),
            (Some(d), _) => {
                format!("{:+.3} [{:+.3}, {:+.3}]{}", d.diff, d.lo, d.hi, if d.significant { " *" } else { "" })
            }
            (None, _) => String::new(),
        }
    }

    pub fn is_significant(&self) -> bool {
        self.vs_standard.is_some_and(|d| d.significant)
    }

    fn row_key(&self) -> (&str, &str, MethodName) {
        (&self.preset, &self.model, self.method)
    }
}

/// Marks a cell whose runs predict a single class.
pub const SINGLE_CLASS_MARK: &str = "†";

/// A method's mean minus standard's over the seeds both have, with a bootstrap percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
    pub shared_seeds: usize,
    /// The interval excludes 0.
    pub significant: bool,
}

/// What labelling every test example with the column's most frequent gold class scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baseline {
    pub preset: String,
    pub column: Split,
    pub metric: Metric,
    /// The most frequent gold label and its share of the test examples.
    pub class: u32,
    pub share: f64,
    pub value: f64,
}

/// The table's content, typed: what every output format and the console render.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Columns in the order the runs report them.
    pub columns: Vec<Split>,
    /// Sorted by preset, model and method, then by column.
    pub cells: Vec<Cell>,
    /// The majority-class baseline of each preset's columns.
    pub baselines: Vec<Baseline>,
    /// The explanation of the cells and every note, one paragraph each, as the Markdown prints them.
    pub footnotes: Vec<String>,
    /// Why some differences have no interval.
    notes: Vec<String>,
}

impl Summary {
    /// The cells of each (preset, model, method) row.
    pub fn rows(&self) -> impl Iterator<Item = &[Cell]> {
        self.cells.chunk_by(|a, b| a.row_key() == b.row_key())
    }

    pub fn several_presets(&self) -> bool {
        self.cells.iter().any(|c| c.preset != self.cells[0].preset)
    }

    /// The baseline of `column` in `preset`.
    pub fn baseline(&self, preset: &str, column: &Split) -> Option<&Baseline> {
        self.baselines.iter().find(|b| b.preset == preset && &b.column == column)
    }
}

/// One run's labels on one column.
#[derive(Clone, Copy)]
struct Scored<'a> {
    seed: u64,
    gold: &'a [u32],
    predicted: &'a [u32],
}

/// The runs of one (preset, model, method) row, never empty.
struct Row<'a> {
    runs: &'a [RunResults],
}

impl Row<'_> {
    fn first(&self) -> &RunResults {
        &self.runs[0]
    }

    /// Every run of the row that has `column`.
    fn column(&self, column: &Split) -> Vec<Scored<'_>> {
        self.runs
            .iter()
            .filter_map(|run| {
                let c = run.columns.iter().find(|c| &c.name == column)?;
                Some(Scored { seed: run.seed, gold: &c.gold, predicted: &c.predicted })
            })
            .collect()
    }
}

/// The typed table of the collected runs.
pub fn summarize(collected: &Collected) -> Summary {
    let rows: Vec<Row> = collected.runs.chunk_by(|a, b| row_key(a) == row_key(b)).map(|runs| Row { runs }).collect();
    let mut columns: Vec<Split> = Vec::new();
    for column in collected.runs.iter().flat_map(|run| &run.columns) {
        if !columns.contains(&column.name) {
            columns.push(column.name.clone());
        }
    }
    let mut summary = Summary { columns, ..Summary::default() };
    for row in &rows {
        let standard = rows.iter().find(|other| {
            let (a, b) = (other.first(), row.first());
            (&a.preset, &a.model, a.method) == (&b.preset, &b.model, MethodName::Standard)
        });
        for column in &summary.columns {
            let runs = row.column(column);
            if runs.is_empty() {
                continue;
            }
            let first = row.first();
            let classes = class_count(collected.runs.iter().filter(|r| r.preset == first.preset), column);
            let values: Vec<f64> =
                runs.iter().map(|run| score(first.metric, classes, run.gold, run.predicted, None)).collect();
            let (mean, std) = mean_and_std(&values);
            let vs_standard = match standard {
                Some(standard) if first.method != MethodName::Standard => {
                    compare(first.metric, classes, &runs, &standard.column(column)).unwrap_or_else(|why| {
                        summary.notes.push(format!(
                            "{} / {} / {column}: no difference from standard: {why}",
                            first.model, first.method
                        ));
                        None
                    })
                }
                _ => None,
            };
            let single_class_runs =
                runs.iter().filter(|run| predicts_one_class(&counts(classes, run.predicted))).count();
            if summary.baseline(&first.preset, column).is_none() {
                summary.baselines.push(baseline(&first.preset, column, first.metric, classes, runs[0].gold));
            }
            summary.cells.push(Cell {
                preset: first.preset.clone(),
                model: first.model.clone(),
                method: first.method,
                column: column.clone(),
                metric: first.metric,
                seeds: runs.iter().map(|run| run.seed).collect(),
                mean,
                std,
                vs_standard,
                single_class_runs,
            });
        }
    }
    summary.footnotes = footnotes(collected, &summary);
    summary
}

/// How many of `labels` fall in each of `classes` classes.
fn counts(classes: usize, labels: &[u32]) -> Vec<u64> {
    let mut counts = vec![0; classes];
    labels.iter().for_each(|&label| counts[label as usize] += 1);
    counts
}

/// The score of labelling every example of `gold` with its most frequent class (the lowest such
/// label on a tie).
fn baseline(preset: &str, column: &Split, metric: Metric, classes: usize, gold: &[u32]) -> Baseline {
    let gold_counts = counts(classes, gold);
    let most = gold_counts.iter().copied().max().unwrap_or(0);
    let class = gold_counts.iter().position(|&c| c == most).unwrap_or(0) as u32;
    let constant = vec![class; gold.len()];
    Baseline {
        preset: preset.to_string(),
        column: column.clone(),
        metric,
        class,
        share: if gold.is_empty() { 0.0 } else { most as f64 / gold.len() as f64 },
        value: score(metric, classes, gold, &constant, None),
    }
}

/// Labels in a column, over every run of a preset, so all its cells count classes alike.
fn class_count<'a>(runs: impl Iterator<Item = &'a RunResults>, column: &Split) -> usize {
    let labels = runs
        .flat_map(|r| r.columns.iter().filter(|c| &c.name == column))
        .flat_map(|c| c.gold.iter().chain(&c.predicted));
    labels.max().map_or(0, |&max| max as usize + 1)
}

/// The metric on the examples `indices` (all examples when `None`).
fn score(metric: Metric, classes: usize, gold: &[u32], predicted: &[u32], indices: Option<&[usize]>) -> f64 {
    let mut confusion = Confusion::new(classes);
    match indices {
        Some(indices) => indices.iter().for_each(|&i| confusion.add(gold[i] as usize, predicted[i] as usize)),
        None => gold.iter().zip(predicted).for_each(|(&g, &p)| confusion.add(g as usize, p as usize)),
    }
    confusion.value(metric)
}

/// Mean and sample standard deviation (`None` for fewer than two values).
fn mean_and_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, std)
}

/// Pairs the method's runs with standard's by seed and bootstraps their difference.
fn compare(
    metric: Metric,
    classes: usize,
    method: &[Scored],
    standard: &[Scored],
) -> Result<Option<Difference>, String> {
    if standard.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<(&[u32], &[u32])> = method
        .iter()
        .filter_map(|m| standard.iter().find(|s| s.seed == m.seed).map(|s| (m.predicted, s.predicted)))
        .collect();
    if pairs.is_empty() {
        return Err("no seed in common".into());
    }
    let gold = method[0].gold;
    if method.iter().chain(standard).any(|run| run.gold != gold) {
        return Err("the runs were scored on different test sets".into());
    }
    let mut rng = crate::rng::stream(BOOTSTRAP_SEED, 0);
    Ok(Some(bootstrap_difference(metric, classes, gold, &pairs, BOOTSTRAP_RESAMPLES, &mut rng)))
}

/// `pairs` holds (method, standard) predictions of one seed each, on the test set `gold`. Each
/// resample draws seeds and test examples with replacement and takes mean(method) − mean(standard).
fn bootstrap_difference(
    metric: Metric,
    classes: usize,
    gold: &[u32],
    pairs: &[(&[u32], &[u32])],
    resamples: usize,
    rng: &mut crate::rng::Rng,
) -> Difference {
    let pair_difference = |(method, standard): &(&[u32], &[u32]), indices: Option<&[usize]>| {
        score(metric, classes, gold, method, indices) - score(metric, classes, gold, standard, indices)
    };
    let diff = pairs.iter().map(|pair| pair_difference(pair, None)).sum::<f64>() / pairs.len() as f64;
    let mut examples = vec![0; gold.len()];
    let mut differences: Vec<f64> = (0..resamples)
        .map(|_| {
            examples.iter_mut().for_each(|i| *i = rng.random_range(0..gold.len()));
            let per_pair: Vec<f64> = pairs.iter().map(|pair| pair_difference(pair, Some(&examples))).collect();
            let drawn = (0..pairs.len()).map(|_| per_pair[rng.random_range(0..pairs.len())]);
            drawn.sum::<f64>() / pairs.len() as f64
        })
        .collect();
    differences.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let (lo, hi) = (percentile(&differences, tail), percentile(&differences, 1.0 - tail));
    Difference { diff, lo, hi, shared_seeds: pairs.len(), significant: lo > 0.0 || hi < 0.0 }
}

/// The `q` quantile of sorted values (nearest rank), 0 for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    sorted.get((q * last as f64).round() as usize).copied().unwrap_or(0.0)
}

/// The table as Markdown, CSV (one line per cell) or JSON.
pub fn render(collected: &Collected, format: Format) -> String {
    let summary = summarize(collected);
    match format {
        Format::Md => markdown(&summary),
        Format::Csv => csv(&summary),
        Format::Json => json(collected, &summary),
    }
}

/// The header of the Markdown table and of the console's.
pub fn header(summary: &Summary) -> Vec<String> {
    let mut header: Vec<String> = Vec::new();
    if summary.several_presets() {
        header.push("preset".into());
    }
    header.extend(["model".into(), "method".into()]);
    for column in &summary.columns {
        header.extend([column.to_string(), format!("Δ {column}")]);
    }
    header
}

/// The text of each cell of a row, in [`header`]'s order.
pub fn row_texts(summary: &Summary, row: &[Cell]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    if summary.several_presets() {
        texts.push(row[0].preset.clone());
    }
    texts.extend([row[0].model.clone(), row[0].method.to_string()]);
    for column in &summary.columns {
        let cell = row.iter().find(|c| &c.column == column);
        texts.push(cell.map(Cell::format_value).unwrap_or_default());
        texts.push(cell.map(Cell::format_difference).unwrap_or_default());
    }
    texts
}

fn markdown(summary: &Summary) -> String {
    let header = header(summary);
    let mut lines = vec![table_line(&header), table_line(&vec!["---".to_string(); header.len()])];
    lines.extend(summary.rows().map(|row| table_line(&row_texts(summary, row))));
    let mut out = lines.join("\n");
    out.push('\n');
    for footnote in &summary.footnotes {
        let _ = write!(out, "\n{footnote}\n");
    }
    out
}

fn table_line(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// `accuracy`, or `accuracy (quick), mcc (cola)` when presets differ.
fn metric_names(summary: &Summary) -> String {
    let mut per_preset: Vec<(&str, Metric)> = Vec::new();
    for cell in &summary.cells {
        if !per_preset.iter().any(|(preset, _)| *preset == cell.preset) {
            per_preset.push((&cell.preset, cell.metric));
        }
    }
    match per_preset.as_slice() {
        [(_, metric)] => metric.key().into(),
        _ => per_preset.iter().map(|(preset, m)| format!("{} ({preset})", m.key())).collect::<Vec<_>>().join(", "),
    }
}

/// The paragraphs under the table: what a cell says, the flags, the baselines and the notes.
fn footnotes(collected: &Collected, summary: &Summary) -> Vec<String> {
    let mut notes = vec![format!(
        "Each cell: mean ± sample std over seeds (n seeds) of {}; ± is omitted for one seed. \
         Δ: difference from standard (same model and column) over the seeds both have, with a {:.0} % \
         bootstrap percentile interval over seeds and test examples ({BOOTSTRAP_RESAMPLES} resamples); \
         * marks an interval that excludes 0.",
        metric_names(summary),
        CONFIDENCE * 100.0
    )];
    if summary.cells.iter().any(|c| c.single_class_runs > 0) {
        notes.push(format!(
            "{SINGLE_CLASS_MARK}: every run of the cell ({SINGLE_CLASS_MARK}k/n: k of its n runs) labels at least \
             {:.0} % of the test examples with one class, so its score reflects the class balance rather than \
             what the model learned.",
            SINGLE_CLASS_SHARE * 100.0
        ));
    }
    if !summary.baselines.is_empty() {
        let several = summary.several_presets();
        let values: Vec<String> = summary
            .baselines
            .iter()
            .map(|b| {
                let preset = if several { format!("{} ", b.preset) } else { String::new() };
                format!("{preset}{} {:.3}", b.column, b.value)
            })
            .collect();
        notes.push(format!(
            "Majority-class baseline (every test example labelled with its most frequent class): {}.",
            values.join(", ")
        ));
    }
    if !collected.without_results.is_empty() {
        let ids = collected.without_results.join(", ");
        notes.push(format!("Not included, no results yet (running or crashed): {ids}."));
    }
    if !collected.warnings.is_empty() {
        notes.push(format!("Skipped {} unusable results file(s); see the warnings.", collected.warnings.len()));
    }
    notes.extend(summary.notes.iter().map(|note| format!("Note: {note}.")));
    notes
}

fn csv(summary: &Summary) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "preset",
        "model",
        "method",
        "column",
        "metric",
        "n",
        "seeds",
        "mean",
        "std",
        "diff",
        "diff_lo",
        "diff_hi",
        "significant",
        "single_class_runs",
        "majority_baseline",
    ];
    let mut records = vec![header.map(String::from).to_vec()];
    for cell in &summary.cells {
        let d = cell.vs_standard;
        let optional = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
        let seeds: Vec<String> = cell.seeds.iter().map(u64::to_string).collect();
        let baseline = summary.baseline(&cell.preset, &cell.column).map(|b| b.value);
        records.push(vec![
            cell.preset.clone(),
            cell.model.clone(),
            cell.method.to_string(),
            cell.column.to_string(),
            cell.metric.key().into(),
            cell.seeds.len().to_string(),
            seeds.join(" "),
            cell.mean.to_string(),
            optional(cell.std),
            optional(d.map(|d| d.diff)),
            optional(d.map(|d| d.lo)),
            optional(d.map(|d| d.hi)),
            d.map(|d| d.significant.to_string()).unwrap_or_default(),
            cell.single_class_runs.to_string(),
            optional(baseline),
        ]);
    }
    // Writing into memory cannot fail.
    records.iter().for_each(|record| writer.write_record(record).expect("in-memory CSV write"));
    String::from_utf8(writer.into_inner().expect("in-memory CSV flush")).expect("CSV of UTF-8 fields")
}

fn json(collected: &Collected, summary: &Summary) -> String {
    let document = serde_json::json!({
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "confidence": CONFIDENCE,
        "single_class_share": SINGLE_CLASS_SHARE,
        "columns": summary.columns,
        "cells": summary.cells,
        "baselines": summary.baselines,
        "without_results": collected.without_results,
        "warnings": collected.warnings,
        "notes": summary.notes,
    });
    let mut text = serde_json::to_string_pretty(&document).expect("JSON of plain values");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> crate::rng::Rng {
        crate::rng::stream(1, 0)
    }

    #[test]
    fn metrics_are_recomputed_from_predictions() {
        let gold = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
        let predicted = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0];
        assert!((score(Metric::Accuracy, 2, &gold, &predicted, None) - 0.7).abs() < 1e-12);
        let mcc = (3.0 * 4.0 - 2.0 * 1.0) / (5.0f64 * 4.0 * 6.0 * 5.0).sqrt();
        assert!((score(Metric::Mcc, 2, &gold, &predicted, None) - mcc).abs() < 1e-12);
        let f1 = (6.0 / 9.0 + 8.0 / 11.0) / 2.0;
        assert!((score(Metric::MacroF1, 2, &gold, &predicted, None) - f1).abs() < 1e-12);
        // Indices count with multiplicity: examples 0 (right) twice and 3 (wrong) once.
        assert!((score(Metric::Accuracy, 2, &gold, &predicted, Some(&[0, 0, 3])) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn sample_std_over_seeds() {
        let (mean, std) = mean_and_std(&[0.7, 0.8, 0.9]);
        assert!((mean - 0.8).abs() < 1e-12);
        assert!((std.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(mean_and_std(&[0.5]), (0.5, None));
    }

    #[test]
    fn identical_arms_give_an_interval_around_zero() {
        let gold: Vec<u32> = (0..200).map(|i| i % 2).collect();
        let predicted: Vec<Vec<u32>> =
            (0..3).map(|s| (0..200).map(|i| ((i * 7 + s) % 3 == 0) as u32).collect()).collect();
        let pairs: Vec<(&[u32], &[u32])> = predicted.iter().map(|p| (p.as_slice(), p.as_slice())).collect();
        let d = bootstrap_difference(Metric::Accuracy, 2, &gold, &pairs, 500, &mut rng());
        assert_eq!(d.diff, 0.0);
        assert!(d.lo <= 0.0 && d.hi >= 0.0 && !d.significant, "{d:?}");
    }

    #[test]
    fn a_method_right_where_standard_is_wrong_is_far_above_zero() {
        let gold: Vec<u32> = (0..100).map(|i| i % 2).collect();
        let wrong: Vec<u32> = gold.iter().map(|g| 1 - g).collect();
        let pairs: Vec<(&[u32], &[u32])> = vec![(&gold, &wrong); 3];
        let d = bootstrap_difference(Metric::Accuracy, 2, &gold, &pairs, 500, &mut rng());
        assert_eq!(d.diff, 1.0);
        assert!(d.lo > 0.9 && d.significant, "{d:?}");
    }

    #[test]
    fn seed_variance_widens_the_interval() {
        // Every example is equally hard, but one seed of the method is much better: resampling
        // seeds must spread the differences, resampling examples alone would not.
        let gold = vec![1u32; 400];
        let right = |k: usize| -> Vec<u32> { (0..400).map(|i| (i < k) as u32).collect() };
        let (base, good, bad) = (right(200), right(380), right(200));
        let pairs: Vec<(&[u32], &[u32])> = vec![(&good, &base), (&bad, &base), (&bad, &base)];
        let d = bootstrap_difference(Metric::Accuracy, 2, &gold, &pairs, 1000, &mut rng());
        assert!((d.diff - 0.15).abs() < 1e-12);
        assert!(d.lo < 0.01 && d.hi > 0.4, "{d:?}");
    }
}

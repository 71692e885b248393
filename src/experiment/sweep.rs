//! A preset's sweep expanded into runs, in a fixed order with deterministic ids, so that the jobs of
//! a cluster job array (`--only N`) each find their own run in a shared runs directory.
use std::fmt::Write;

use anyhow::ensure;

use super::preset::{Preset, Sweep};
use crate::method::MethodName;

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Position in the sweep, 1-based (the `--only` number and the job-array task id).
    pub index: usize,
    /// Directory name of the run, e.g. `quick__all-MiniLM-L6-v2__sift__s7`.
    pub run_id: String,
    pub model: String,
    pub method: MethodName,
    pub seed: u64,
    /// The preset with its sweep lists reduced to this run's model, method and seed.
    pub preset: Preset,
}

impl Preset {
    /// Every run of the sweep: models × methods × seeds, seeds varying fastest.
    pub fn runs(&self) -> Vec<RunSpec> {
        let sweep = &self.sweep;
        let combinations = sweep.models.iter().flat_map(|model| {
            sweep.methods.iter().flat_map(move |&method| sweep.seeds.iter().map(move |&seed| (model, method, seed)))
        });
        combinations
            .enumerate()
            .map(|(i, (model, method, seed))| RunSpec {
                index: i + 1,
                run_id: run_id(&self.name, model, method, seed),
                model: model.clone(),
                method,
                seed,
                preset: Preset {
                    sweep: Sweep { models: vec![model.clone()], methods: vec![method], seeds: vec![seed] },
                    ..self.clone()
                },
            })
            .collect()
    }
}

/// `<preset>__<model>__<method>__s<seed>`, with the model named by its last path component.
fn run_id(preset: &str, model: &str, method: MethodName, seed: u64) -> String {
    format!("{}__{}__{method}__s{seed}", filesystem_safe(preset), model_slug(model))
}

/// The last path component of a model id or checkpoint directory, made filesystem-safe
/// (`sentence-transformers/all-MiniLM-L6-v2` → `all-MiniLM-L6-v2`).
pub fn model_slug(model: &str) -> String {
    let last = model.trim_end_matches(['/', '\\']).rsplit(['/', '\\']).next().unwrap_or_default();
    filesystem_safe(last)
}

/// `name` with every character outside `[A-Za-z0-9._-]` replaced by `-`.
pub fn filesystem_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect()
}

/// A numbered table of the runs, for `run --list`.
pub fn list_runs(runs: &[RunSpec]) -> String {
    let headers = ["#", "run id", "model", "method", "seed"];
    let rows: Vec<[String; 5]> = runs
        .iter()
        .map(|r| [r.index.to_string(), r.run_id.clone(), r.model.clone(), r.method.to_string(), r.seed.to_string()])
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| rows.iter().map(|row| row[c].len()).chain([headers[c].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, &w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&headers);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// The run numbered `only` (1-based, as `--only` and `$SLURM_ARRAY_TASK_ID` count).
pub fn select(runs: &[RunSpec], only: usize) -> anyhow::Result<RunSpec> {
    ensure!(
        (1..=runs.len()).contains(&only),
        "--only {only} is out of range: the sweep has {} run{} (1..={})",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        runs.len()
    );
    Ok(runs[only - 1].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_slugs_are_last_components_and_filesystem_safe() {
        assert_eq!(model_slug("sentence-transformers/all-MiniLM-L6-v2"), "all-MiniLM-L6-v2");
        assert_eq!(model_slug("bert-base-uncased"), "bert-base-uncased");
        assert_eq!(model_slug("checkpoints/my model/"), "my-model");
        assert_eq!(run_id("quick", "org/m", MethodName::Sift, 7), "quick__m__sift__s7");
    }
}

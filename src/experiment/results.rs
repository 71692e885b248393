//! `results.json`: what one finished run reports, read back by `table` and `watch`.
use serde::{Deserialize, Serialize};

use crate::method::MethodName;
use crate::metrics::{Metric, Scores, Split};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub run_id: String,
    pub preset: String,
    pub model: String,
    pub method: MethodName,
    pub seed: u64,
    /// The metric the table reports (and that selected the stage-1 checkpoint on the dev split).
    pub metric: Metric,
    /// Stage-1 update whose weights were selected, and their dev scores.
    pub best_step: usize,
    pub dev: Scores,
    /// One entry per table column: target fractions (`0%`, `10%`) or extra source evaluations.
    pub columns: Vec<ColumnResult>,
    pub elapsed_secs: f64,
}

/// Scores on one test split, with the per-example predictions that the bootstrap resamples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnResult {
    /// A [`Split::Fraction`] or [`Split::Named`] column.
    pub name: Split,
    pub scores: Scores,
    pub gold: Vec<u32>,
    pub predicted: Vec<u32>,
}

//! The vocabulary that the trainer, the results table, the figures and the console share: the
//! metrics, a split's scores, which split was scored ([`Split`]), and the lines of a run's
//! `metrics.jsonl`. It sits below every layer, so each of them can speak it without importing
//! another layer.
mod confusion;
mod split;

use serde::{Deserialize, Serialize};

pub use confusion::Confusion;
pub use split::Split;

/// The metric that selects the stage-1 checkpoint and fills the results table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    MacroF1,
    Mcc,
}

impl Metric {
    /// The metric as presets, CSV and JSON spell it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::MacroF1 => "macro_f1",
            Self::Mcc => "mcc",
        }
    }

    /// The metric as chart titles and axis labels name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::MacroF1 => "macro F1",
            Self::Mcc => "MCC",
        }
    }

    /// The next metric, for keys that cycle through them.
    pub fn next(self) -> Self {
        match self {
            Self::Accuracy => Self::MacroF1,
            Self::MacroF1 => Self::Mcc,
            Self::Mcc => Self::Accuracy,
        }
    }
}

/// Share of one predicted class from which a run counts as predicting a single class: a model that
/// labels 95 % of a balanced test set alike scores at most 0.55 accuracy however it does on the
/// rest, so its score says more about the class balance than about the model.
pub const SINGLE_CLASS_SHARE: f64 = 0.95;

/// Whether predicted-class counts put (nearly) every example into one class.
pub fn predicts_one_class(predicted_counts: &[u64]) -> bool {
    one_class(predicted_counts).is_some()
}

/// The class that (nearly) every example was put into, by the rule of [`SINGLE_CLASS_SHARE`].
pub fn one_class(predicted_counts: &[u64]) -> Option<usize> {
    let total: u64 = predicted_counts.iter().sum();
    let (class, &most) = predicted_counts.iter().enumerate().max_by_key(|&(_, count)| count)?;
    (total > 0 && most as f64 >= SINGLE_CLASS_SHARE * total as f64).then_some(class)
}

/// Classification metrics over a whole split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub mcc: f64,
    pub loss: f64,
    pub examples: usize,
    /// How many examples the model assigned to each class (files written before this field have
    /// none).
    #[serde(default)]
    pub predicted_counts: Vec<u64>,
}

impl Scores {
    pub fn value(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy,
            Metric::MacroF1 => self.macro_f1,
            Metric::Mcc => self.mcc,
        }
    }

    /// Whether the model put (nearly) every example into one class.
    pub fn predicts_one_class(&self) -> bool {
        predicts_one_class(&self.predicted_counts)
    }

    /// The class the model put (nearly) every example into, if it did.
    pub fn one_class(&self) -> Option<usize> {
        one_class(&self.predicted_counts)
    }
}

/// Metrics of one optimizer update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub stage: String,
    pub step: usize,
    pub epoch: usize,
    pub loss: f32,
    pub task_loss: f32,
    pub adv_kl: Option<f32>,
    pub lr: f64,
    pub grad_norm: f32,
    pub samples_per_sec: f64,
}

/// The scores of one evaluation of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub stage: String,
    pub step: usize,
    pub split: Split,
    pub scores: Scores,
}

/// One line of a run's `metrics.jsonl`, tagged by its `kind`: the trainer writes them; `watch`,
/// resumption and the figures read them back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsLine {
    Step {
        stage_index: usize,
        #[serde(flatten)]
        metrics: StepMetrics,
    },
    Eval {
        stage_index: usize,
        #[serde(flatten)]
        metrics: EvalMetrics,
    },
    /// A non-finite update that was not applied.
    Skipped { stage: String, stage_index: usize, step: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_means_at_least_the_share_of_all_predictions() {
        assert!(predicts_one_class(&[0, 100]));
        assert!(predicts_one_class(&[5, 95]));
        assert!(!predicts_one_class(&[6, 94]));
        assert!(!predicts_one_class(&[]), "no predictions say nothing");
        assert!(!predicts_one_class(&[0, 0]));
    }

    #[test]
    fn scores_of_older_files_read_without_counts() {
        let old = r#"{"accuracy":0.5,"macro_f1":0.33,"mcc":0.0,"loss":0.69,"examples":8}"#;
        let scores: Scores = serde_json::from_str(old).unwrap();
        assert!(scores.predicted_counts.is_empty() && !scores.predicts_one_class());
    }
}

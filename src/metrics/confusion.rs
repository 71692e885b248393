//! Accuracy, macro-F1 and Matthews correlation over a whole split.
use super::{Metric, Scores};

/// A confusion matrix, `counts[gold][predicted]`.
#[derive(Debug, Clone)]
pub struct Confusion {
    counts: Vec<Vec<u64>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Self { counts: vec![vec![0; classes]; classes] }
    }

    pub fn add(&mut self, gold: usize, predicted: usize) {
        self.counts[gold][predicted] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.counts.len()).map(|k| self.counts[k][k]).sum();
        ratio(correct as f64, self.total() as f64)
    }

    /// The unweighted mean of per-class F1 over the classes present in the gold labels or the
    /// predictions, as scikit-learn's `f1_score(average="macro")` with its default `labels=None`: a
    /// class that neither side contains is not averaged in.
    pub fn macro_f1(&self) -> f64 {
        let k = self.counts.len();
        let present: Vec<(u64, u64, u64)> = (0..k)
            .map(|c| (self.counts[c][c], (0..k).map(|g| self.counts[g][c]).sum(), self.counts[c].iter().sum()))
            .filter(|&(_, predicted, gold)| predicted + gold > 0)
            .collect();
        let f1s = present.iter().map(|&(tp, predicted, gold)| ratio(2.0 * tp as f64, (predicted + gold) as f64));
        ratio(f1s.sum::<f64>(), present.len() as f64)
    }

    /// Multiclass Matthews correlation (Gorodkin's R_K); 0 when undefined, as scikit-learn returns.
    pub fn mcc(&self) -> f64 {
        let k = self.counts.len();
        let s = self.total() as f64;
        let correct: f64 = (0..k).map(|c| self.counts[c][c] as f64).sum();
        let gold: Vec<f64> = (0..k).map(|c| self.counts[c].iter().sum::<u64>() as f64).collect();
        let pred: Vec<f64> = (0..k).map(|c| (0..k).map(|g| self.counts[g][c]).sum::<u64>() as f64).collect();
        let dot: f64 = gold.iter().zip(&pred).map(|(t, p)| t * p).sum();
        let numerator = correct * s - dot;
        let denominator = ((s * s - pred.iter().map(|p| p * p).sum::<f64>())
            * (s * s - gold.iter().map(|t| t * t).sum::<f64>()))
        .sqrt();
        ratio(numerator, denominator)
    }

    pub fn value(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy(),
            Metric::MacroF1 => self.macro_f1(),
            Metric::Mcc => self.mcc(),
        }
    }

    /// Examples predicted as each class.
    pub fn predicted_counts(&self) -> Vec<u64> {
        let k = self.counts.len();
        (0..k).map(|p| (0..k).map(|g| self.counts[g][p]).sum()).collect()
    }

    pub fn scores(&self, loss: f64) -> Scores {
        Scores {
            accuracy: self.accuracy(),
            macro_f1: self.macro_f1(),
            mcc: self.mcc(),
            loss,
            examples: self.total() as usize,
            predicted_counts: self.predicted_counts(),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confusion(pairs: &[(usize, usize)], k: usize) -> Confusion {
        let mut c = Confusion::new(k);
        pairs.iter().for_each(|&(g, p)| c.add(g, p));
        c
    }

    #[test]
    fn binary_values_match_hand_computation() {
        // tp=3, fn=1, fp=2, tn=4.
        let mut pairs = vec![(1, 1); 3];
        pairs.extend([(1, 0)]);
        pairs.extend([(0, 1); 2]);
        pairs.extend([(0, 0); 4]);
        let c = confusion(&pairs, 2);
        assert!((c.accuracy() - 0.7).abs() < 1e-12);
        let mcc = (3.0 * 4.0 - 2.0 * 1.0) / ((5.0f64 * 4.0 * 6.0 * 5.0).sqrt());
        assert!((c.mcc() - mcc).abs() < 1e-12);
        let f1_pos = 2.0 * 3.0 / (2.0 * 3.0 + 2.0 + 1.0);
        let f1_neg = 2.0 * 4.0 / (2.0 * 4.0 + 1.0 + 2.0);
        assert!((c.macro_f1() - (f1_pos + f1_neg) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn macro_f1_averages_over_the_classes_present() {
        // Three classes, class 2 never gold nor predicted: scikit-learn averages over {0, 1}.
        // f1_score([0, 0, 1, 1], [0, 1, 1, 1], average="macro") = (2/3 + 4/5) / 2.
        let c = confusion(&[(0, 0), (0, 1), (1, 1), (1, 1)], 3);
        assert!((c.macro_f1() - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        // A class predicted but never gold counts, with F1 0.
        let c = confusion(&[(0, 0), (0, 2), (1, 1), (1, 1)], 3);
        assert!((c.macro_f1() - (2.0 / 3.0 + 1.0 + 0.0) / 3.0).abs() < 1e-12);
        assert_eq!(Confusion::new(3).macro_f1(), 0.0);
    }

    #[test]
    fn constant_prediction_has_zero_mcc() {
        let c = confusion(&[(0, 1), (1, 1), (1, 1)], 2);
        assert_eq!(c.mcc(), 0.0);
    }

    #[test]
    fn scores_count_the_predicted_classes() {
        let c = confusion(&[(0, 1), (1, 1), (1, 0), (2, 1)], 3);
        assert_eq!(c.scores(0.0).predicted_counts, vec![1, 3, 0]);
    }
}

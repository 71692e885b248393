//! What a forest plot shows, from the results table's own numbers: per preset, model and column,
//! each method's difference from standard with its bootstrap interval, and where a model that
//! labels everything with the majority class would sit. The SVG figure and the console's results
//! view both draw these panels.
use crate::experiment::table::{Cell, Difference, Summary};
use crate::method::MethodName;
use crate::metrics::{Metric, Split};

/// One method's row of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestRow<'a> {
    pub cell: &'a Cell,
    pub difference: Difference,
}

impl ForestRow<'_> {
    /// The method, flagged when its runs predict one class, as row labels read.
    pub fn label(&self) -> String {
        let flag = if self.cell.single_class_runs > 0 { " †" } else { "" };
        format!("{}{flag}", self.cell.method)
    }
}

/// The differences of one column of one preset and model.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestPanel<'a> {
    pub preset: &'a str,
    pub model: &'a str,
    pub column: &'a Split,
    pub metric: Metric,
    pub rows: Vec<ForestRow<'a>>,
    /// The majority-class baseline minus standard's mean: a method at this Δ scores what labelling
    /// every example alike scores. `None` without a standard cell.
    pub baseline: Option<f64>,
}

impl ForestPanel<'_> {
    /// The x range that holds 0, every interval and the baseline when it is on scale, with a little
    /// room, and at least ±0.05 wide so that identical arms (every Δ 0) still get readable ticks.
    pub fn range(&self) -> [f64; 2] {
        let ends = self.interval_ends().chain(self.baseline_on_scale());
        let (lo, hi) = ends.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let half = ((hi - lo) * 0.58).max(0.05);
        let center = (lo + hi) / 2.0;
        [center - half, center + half]
    }

    /// The baseline, unless it lies further from the intervals than their own width (at least 0.1):
    /// a baseline at Δ −0.38 beside intervals of ±0.02 would squeeze them into a few pixels, so it is
    /// then named at the panel's edge instead of drawn.
    pub fn baseline_on_scale(&self) -> Option<f64> {
        let (lo, hi) = self.interval_ends().fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let reach = (hi - lo).max(0.1);
        self.baseline.filter(|b| (lo - reach..=hi + reach).contains(b))
    }

    fn interval_ends(&self) -> impl Iterator<Item = f64> + '_ {
        self.rows.iter().flat_map(|r| [r.difference.lo, r.difference.hi])
    }

    /// `Δ 10% (accuracy)`.
    pub fn title(&self) -> String {
        format!("Δ {} ({})", self.column, self.metric.label())
    }
}

/// Every panel with at least one difference, by preset and model, then column.
pub fn forest_panels(summary: &Summary) -> Vec<ForestPanel<'_>> {
    let mut panels = Vec::new();
    let mut models: Vec<(&str, &str)> = summary.cells.iter().map(|c| (c.preset.as_str(), c.model.as_str())).collect();
    models.dedup();
    for (preset, model) in models {
        for column in &summary.columns {
            let cells =
                || summary.cells.iter().filter(|c| c.preset == preset && c.model == model && &c.column == column);
            let rows: Vec<ForestRow> =
                cells().filter_map(|cell| Some(ForestRow { cell, difference: cell.vs_standard? })).collect();
            let Some(first) = rows.first() else { continue };
            let standard = cells().find(|c| c.method == MethodName::Standard);
            let baseline = summary.baseline(preset, column).zip(standard).map(|(b, s)| b.value - s.mean);
            panels.push(ForestPanel { preset, model, column, metric: first.cell.metric, rows, baseline });
        }
    }
    panels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;

    fn panel(differences: &[(f64, f64, f64)], baseline: Option<f64>) -> [f64; 2] {
        let cell = Cell {
            preset: "p".into(),
            model: "m".into(),
            method: MethodName::Sift,
            column: Split::Fraction(0.1),
            metric: Metric::Accuracy,
            seeds: vec![1],
            mean: 0.5,
            std: None,
            vs_standard: None,
            single_class_runs: 0,
        };
        let rows = differences
            .iter()
            .map(|&(diff, lo, hi)| ForestRow {
                cell: &cell,
                difference: Difference { diff, lo, hi, shared_seeds: 1, significant: false },
            })
            .collect();
        let column = Split::Fraction(0.1);
        ForestPanel { preset: "p", model: "m", column: &column, metric: Metric::Accuracy, rows, baseline }.range()
    }

    #[test]
    fn the_range_holds_zero_every_interval_and_a_near_baseline() {
        let [lo, hi] = panel(&[(0.2, 0.1, 0.3)], Some(-0.25));
        assert!(lo < -0.25 && hi > 0.3, "{lo} {hi}");
        let [lo, hi] = panel(&[(0.01, -0.01, 0.02)], Some(-0.38));
        assert!(lo > -0.1 && hi < 0.1, "a far baseline is named, not drawn: {lo} {hi}");
        let [lo, hi] = panel(&[(0.0, 0.0, 0.0)], None);
        assert_eq!([lo, hi], [-0.05, 0.05], "identical arms still get a readable axis");
    }
}

//! The curves of every run of a runs directory, read from their `metrics.jsonl`, grouped by
//! preset and model, and summarised over seeds.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::experiment::rundir::{subdirectories, RunDir};
use crate::method::MethodName;
use crate::metrics::{Metric, MetricsLine, Scores, Split};

/// One stage of a run: its updates' losses and its evaluations, x in updates within the stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageCurves {
    pub index: usize,
    pub name: String,
    pub loss: Vec<(f64, f64)>,
    pub adv_kl: Vec<(f64, f64)>,
    pub evals: Vec<(f64, Split, Scores)>,
}

impl StageCurves {
    /// The metric on `split` at each evaluation of it.
    pub fn eval_points(&self, split: &Split, metric: Metric) -> Vec<(f64, f64)> {
        self.evals.iter().filter(|(_, s, _)| s == split).map(|(x, _, scores)| (*x, scores.value(metric))).collect()
    }
}

/// What one run wrote, and which arm of which sweep it is.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCurves {
    pub preset: String,
    pub model: String,
    pub method: MethodName,
    pub seed: u64,
    pub metric: Metric,
    pub stages: Vec<StageCurves>,
}

/// Every run directory (one with a `config.toml`) under `runs_dir`, sorted by preset, model,
/// method and seed. A run that cannot be read becomes a warning.
pub fn read_runs(runs_dir: &Path) -> anyhow::Result<(Vec<RunCurves>, Vec<String>)> {
    let dirs = subdirectories(runs_dir)?;
    let (mut runs, mut warnings) = (Vec::new(), Vec::new());
    for dir in dirs {
        let run = RunDir::open(&dir)?;
        if !run.config_path().is_file() {
            continue;
        }
        match read_run(&run) {
            Ok(curves) => runs.push(curves),
            Err(e) => warnings.push(format!("{e:#}; skipped")),
        }
    }
    runs.sort_by(|a, b| (&a.preset, &a.model, a.method, a.seed).cmp(&(&b.preset, &b.model, b.method, b.seed)));
    Ok((runs, warnings))
}

fn read_run(run: &RunDir) -> anyhow::Result<RunCurves> {
    let preset = run.read_config()?;
    let (Some(model), Some(&method), Some(&seed)) =
        (preset.sweep.models.first(), preset.sweep.methods.first(), preset.sweep.seeds.first())
    else {
        anyhow::bail!("{}: not the config of one run (empty sweep)", run.config_path().display());
    };
    let path = run.metrics_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let mut stages: Vec<StageCurves> = Vec::new();
    let complete_lines = text.lines().take(text.matches('\n').count());
    for (number, line) in complete_lines.enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let parsed: MetricsLine = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a metrics line", path.display(), number + 1))?;
        let (index, name) = match &parsed {
            MetricsLine::Step { stage_index, metrics } => (*stage_index, &metrics.stage),
            MetricsLine::Eval { stage_index, metrics } => (*stage_index, &metrics.stage),
            MetricsLine::Skipped { stage_index, stage, .. } => (*stage_index, stage),
        };
        if stages.last().is_none_or(|s| s.index != index) {
            stages.push(StageCurves { index, name: name.clone(), ..StageCurves::default() });
        }
        let stage = stages.last_mut().expect("pushed above");
        match parsed {
            MetricsLine::Step { metrics, .. } => {
                let x = metrics.step as f64;
                stage.loss.push((x, metrics.loss as f64));
                if let Some(kl) = metrics.adv_kl {
                    stage.adv_kl.push((x, kl as f64));
                }
            }
            MetricsLine::Eval { metrics, .. } => stage.evals.push((metrics.step as f64, metrics.split, metrics.scores)),
            MetricsLine::Skipped { .. } => {}
        }
    }
    Ok(RunCurves {
        preset: preset.name.clone(),
        model: model.clone(),
        method,
        seed,
        metric: preset.source.metric,
        stages,
    })
}

/// The runs of one preset and model, the unit of a figure.
pub struct Group<'a> {
    pub preset: &'a str,
    pub model: &'a str,
    pub runs: &'a [RunCurves],
}

impl Group<'_> {
    /// The methods of the group, in sweep order.
    pub fn methods(&self) -> Vec<MethodName> {
        let mut methods: Vec<MethodName> = self.runs.iter().map(|r| r.method).collect();
        methods.dedup();
        methods
    }

    /// Every stage any run reached, by index, with its name.
    pub fn stages(&self) -> Vec<(usize, String)> {
        let mut stages: BTreeMap<usize, String> = BTreeMap::new();
        for stage in self.runs.iter().flat_map(|r| &r.stages) {
            stages.entry(stage.index).or_insert_with(|| stage.name.clone());
        }
        stages.into_iter().collect()
    }

    /// `pick` of stage `index` of every run of `method` that has it.
    pub fn per_seed(
        &self,
        method: MethodName,
        index: usize,
        pick: impl Fn(&StageCurves) -> Vec<(f64, f64)>,
    ) -> Vec<Vec<(f64, f64)>> {
        self.runs
            .iter()
            .filter(|r| r.method == method)
            .filter_map(|r| r.stages.iter().find(|s| s.index == index).map(&pick))
            .filter(|points| !points.is_empty())
            .collect()
    }
}

/// Runs sorted by preset and model, in groups.
pub fn groups(runs: &[RunCurves]) -> Vec<Group<'_>> {
    runs.chunk_by(|a, b| (&a.preset, &a.model) == (&b.preset, &b.model))
        .map(|runs| Group { preset: &runs[0].preset, model: &runs[0].model, runs })
        .collect()
}

/// The mean over seeds at each x, with the lowest and highest seed's value: a line and its band.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Band {
    pub mean: Vec<(f64, f64)>,
    pub low: Vec<(f64, f64)>,
    pub high: Vec<(f64, f64)>,
}

/// The band of several runs' curves. Runs of one arm log the same updates, so values meet at equal
/// x; an x that only some runs reached (an unfinished seed) averages those that did.
pub fn band(per_seed: &[Vec<(f64, f64)>]) -> Band {
    let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for points in per_seed {
        for &(x, y) in points.iter().filter(|(_, y)| y.is_finite()) {
            at.entry(x.round() as i64).or_default().push(y);
        }
    }
    let mut band = Band::default();
    for (x, values) in at {
        let x = x as f64;
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        band.mean.push((x, mean));
        band.low.push((x, values.iter().copied().fold(f64::INFINITY, f64::min)));
        band.high.push((x, values.iter().copied().fold(f64::NEG_INFINITY, f64::max)));
    }
    band
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_spans_the_seeds_around_their_mean() {
        let band = band(&[vec![(1.0, 1.0), (2.0, 3.0)], vec![(1.0, 3.0), (2.0, f64::NAN)], vec![(1.0, 2.0)]]);
        assert_eq!(band.mean, vec![(1.0, 2.0), (2.0, 3.0)]);
        assert_eq!(band.low, vec![(1.0, 1.0), (2.0, 3.0)]);
        assert_eq!(band.high, vec![(1.0, 3.0), (2.0, 3.0)]);
    }
}

//! Figures of a runs directory, as SVG files for papers (`sift-tui plot`, and `P` in the console):
//! per preset and model, the training curves (loss and adversarial KL, one panel per stage), the
//! evaluation curves (source dev; the target test split during each target stage), and a forest
//! plot of every method's difference from standard with the results table's own intervals.
//!
//! Curves are the mean over seeds with a min–max band, transformed as the console's run view
//! transforms them ([`scale`]), and decimated to the drawing's width keeping every extreme.
pub mod curves;
pub mod forest;
pub mod scale;
pub mod svg;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::experiment::sweep::{filesystem_safe, model_slug};
use crate::experiment::table::{collect, summarize};
use crate::metrics::Split;
use curves::{band, groups, read_runs, Group};
use forest::forest_panels;
use scale::Scale;
use svg::{forest_figure, line_figure, LinePanel};

/// The default folder of the figures inside a runs directory (the table and the figures skip it,
/// as it holds no `config.toml`).
pub const FIGURES_DIR: &str = "figures";

/// What `write_figures` wrote, and what it could not use.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Writes the figures of every preset and model under `runs_dir` into `out_dir`:
/// `<preset>__<model>__training.svg`, `__evaluation.svg` and `__forest.svg` (the last one when
/// the table has differences from standard).
pub fn write_figures(runs_dir: &Path, out_dir: &Path, scale: Scale) -> anyhow::Result<Written> {
    let (runs, mut warnings) = read_runs(runs_dir)?;
    anyhow::ensure!(!runs.is_empty(), "{}: no runs to plot", runs_dir.display());
    let collected = collect(runs_dir)?;
    warnings.extend(collected.warnings.iter().cloned());
    let summary = summarize(&collected);
    let panels = forest_panels(&summary);
    std::fs::create_dir_all(out_dir).with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let mut files = Vec::new();
    for group in groups(&runs) {
        let stem = format!("{}__{}", filesystem_safe(group.preset), model_slug(group.model));
        let file = |kind: &str| out_dir.join(format!("{stem}__{kind}.svg"));
        let title = format!("{} · {}", group.preset, group.model);
        let methods = group.methods();

        // A run without metrics (results copied without their metrics.jsonl) has no curves.
        let training = training_panels(&group, scale);
        if !training.is_empty() {
            let path = file("training");
            line_figure(&path, &format!("{title} · training"), &methods, &training, group.stages().len())?;
            files.push(path);
        }

        let evaluation = evaluation_panels(&group);
        if !evaluation.is_empty() {
            let path = file("evaluation");
            line_figure(&path, &format!("{title} · evaluation"), &methods, &evaluation, evaluation.len())?;
            files.push(path);
        }

        let forest: Vec<_> =
            panels.iter().filter(|p| p.preset == group.preset && p.model == group.model).cloned().collect();
        if forest.is_empty() {
            // Said rather than silently missing: a sweep of one method, or one without standard.
            warnings.push(format!("{title}: no forest plot, it needs `standard` and another method"));
        } else {
            let path = file("forest");
            forest_figure(&path, &format!("{title} · difference from standard"), &forest)?;
            files.push(path);
        }
    }
    Ok(Written { files, warnings })
}

/// Which curve of a stage a panel shows.
type Pick = fn(&curves::StageCurves) -> Vec<(f64, f64)>;

/// Loss panels on top, adversarial KL below (when any method has one), one column per stage.
fn training_panels(group: &Group, scale: Scale) -> Vec<LinePanel> {
    let stages = group.stages();
    let log = if scale.log_y { ", log scale" } else { "" };
    let smoothing = if scale.smoothing > 0.0 { format!(" (smoothing {})", scale.smoothing) } else { String::new() };
    let mut panels = Vec::new();
    let kinds: [(&str, &str, Pick); 2] =
        [("training loss", "loss", |s| s.loss.clone()), ("adversarial KL", "KL", |s| s.adv_kl.clone())];
    for (what, unit, pick) in kinds {
        let row: Vec<LinePanel> = stages
            .iter()
            .map(|(index, name)| {
                let lines = group
                    .methods()
                    .into_iter()
                    .map(|method| {
                        let per_seed: Vec<Vec<(f64, f64)>> =
                            group.per_seed(method, *index, pick).iter().map(|points| scale.apply(points)).collect();
                        (method, band(&per_seed))
                    })
                    .filter(|(_, band)| !band.mean.is_empty())
                    .collect();
                LinePanel {
                    title: format!("{what} · {name}{smoothing}"),
                    x_label: "updates".into(),
                    y_label: format!("{unit} (nats{log})"),
                    log_y: scale.log_y,
                    lines,
                    mark_every_point: false,
                }
            })
            .collect();
        if row.iter().any(|panel| !panel.lines.is_empty()) {
            panels.extend(row);
        }
    }
    panels
}

/// The source dev scores during stage 1 and the target test scores during each target stage, in
/// the preset's metric.
fn evaluation_panels(group: &Group) -> Vec<LinePanel> {
    let metric = group.runs[0].metric;
    let mut panels = Vec::new();
    for (index, name) in group.stages() {
        for (split, what) in [(Split::SourceDev, "source dev"), (Split::TargetTest, "target test")] {
            let lines: Vec<_> = group
                .methods()
                .into_iter()
                .map(|method| (method, band(&group.per_seed(method, index, |s| s.eval_points(&split, metric)))))
                .filter(|(_, band)| !band.mean.is_empty())
                .collect();
            if !lines.is_empty() {
                panels.push(LinePanel {
                    title: format!("{what} · {name}"),
                    x_label: "updates".into(),
                    y_label: metric.label().into(),
                    log_y: false,
                    lines,
                    mark_every_point: true,
                });
            }
        }
    }
    panels
}

//! `sift-tui plot`: the SVG figures of a runs directory.
use std::path::PathBuf;

use crate::experiment::rundir::runs_dir_default;
use crate::plot::scale::{Scale, SMOOTHING_STEPS};
use crate::plot::{write_figures, FIGURES_DIR};

/// Only SVG: plotters' bitmap backend draws text only through a font rasteriser with system font
/// libraries (`ttf`) or a bundled font file (`ab_glyph`); an SVG converts to PNG with any tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FigureFormat {
    Svg,
}

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Runs directory [default: $SIFT_RUNS_DIR or runs/].
    runs_dir: Option<PathBuf>,
    /// Where the figures go [default: <RUNS_DIR>/figures].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "svg")]
    format: FigureFormat,
    /// Exponential smoothing of the loss and KL curves, one of the console's steps (0: raw).
    #[arg(long, default_value_t = 0.0, value_parser = smoothing_step)]
    smoothing: f64,
    /// Loss and KL on a log scale, as `L` in the console.
    #[arg(long)]
    log: bool,
}

fn smoothing_step(text: &str) -> Result<f64, String> {
    let steps = || SMOOTHING_STEPS.map(|s| s.to_string()).join(", ");
    let value: f64 = text.parse().map_err(|_| format!("not a number; one of {}", steps()))?;
    SMOOTHING_STEPS.contains(&value).then_some(value).ok_or_else(|| format!("one of {}", steps()))
}

pub fn run(args: &PlotArgs) -> anyhow::Result<()> {
    let FigureFormat::Svg = args.format;
    let runs_dir = args.runs_dir.clone().unwrap_or_else(runs_dir_default);
    let out = args.out.clone().unwrap_or_else(|| runs_dir.join(FIGURES_DIR));
    let written = write_figures(&runs_dir, &out, Scale { log_y: args.log, smoothing: args.smoothing })?;
    for warning in &written.warnings {
        eprintln!("warning: {warning}");
    }
    for file in &written.files {
        println!("{}", file.display());
    }
    Ok(())
}

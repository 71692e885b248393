//! `sift-tui table`: the results table of a runs directory.
use std::path::PathBuf;

use anyhow::bail;

use crate::experiment::rundir::runs_dir_default;
use crate::experiment::table::{collect, render, Format};

#[derive(Debug, clap::Args)]
pub struct TableArgs {
    /// Runs directory [default: $SIFT_RUNS_DIR or runs/].
    runs_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

pub fn run(args: &TableArgs) -> anyhow::Result<()> {
    let runs_dir = args.runs_dir.clone().unwrap_or_else(runs_dir_default);
    let collected = collect(&runs_dir)?;
    for warning in &collected.warnings {
        eprintln!("warning: {warning}");
    }
    if collected.runs.is_empty() {
        let unfinished = collected.without_results.len();
        bail!("{}: no finished runs ({unfinished} without results)", runs_dir.display());
    }
    print!("{}", render(&collected, args.format));
    Ok(())
}

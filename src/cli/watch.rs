//! `sift-tui watch`: the run view over runs that other processes write.
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The runs directory to follow (e.g. one shared by a cluster job array).
    runs_dir: PathBuf,
}

pub fn run(args: &WatchArgs) -> anyhow::Result<()> {
    crate::ui::run_watch(&args.runs_dir)
}

//! `sift-tui data fetch`: download the datasets into the data directory.
use std::path::PathBuf;

use super::progress::DownloadBars;
use crate::data::data_dir;
use crate::data::fetch::{fetch_dataset, DatasetId, FetchOptions, Fetched};

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DataCommand {
    /// Download the datasets from their canonical sources, check them with the readers, and lay
    /// them out as data/README.md describes. Needs a network connection.
    Fetch(FetchArgs),
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    /// Data directory [default: $SIFT_DATA_DIR or data/].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Fetch only this dataset; repeatable [default: all].
    #[arg(long, value_enum, value_name = "DATASET")]
    only: Vec<DatasetId>,
    /// Download datasets that are already present again, replacing their files.
    #[arg(long)]
    force: bool,
    /// Replace a dataset's base URL (its file names are appended), e.g. a mirror; repeatable.
    /// Also read from $SIFT_FETCH_URL_<NAME>, e.g. SIFT_FETCH_URL_TWITTER_HATE.
    #[arg(long = "base-url-override", value_name = "NAME=URL", value_parser = parse_base_url)]
    base_urls: Vec<(DatasetId, String)>,
}

fn parse_base_url(value: &str) -> Result<(DatasetId, String), String> {
    let (name, url) = value.split_once('=').ok_or("expected NAME=URL")?;
    let dataset = DatasetId::from_name(name).ok_or_else(|| {
        let names: Vec<_> = DatasetId::ALL.iter().map(|dataset| dataset.name()).collect();
        format!("unknown dataset `{name}` (expected one of {})", names.join(", "))
    })?;
    Ok((dataset, url.to_owned()))
}

pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    match &args.command {
        DataCommand::Fetch(args) => fetch(args),
    }
}

/// Fetches the datasets one by one, reporting each as it is done; stops at the first failure.
fn fetch(args: &FetchArgs) -> anyhow::Result<()> {
    let mut options = FetchOptions::from_env(args.dir.clone().unwrap_or_else(data_dir));
    options.only.clone_from(&args.only);
    options.force = args.force;
    options.base_urls.extend(args.base_urls.iter().cloned());
    let mut bars = DownloadBars::default();
    for dataset in options.datasets() {
        report(&fetch_dataset(dataset, &options, &mut bars)?);
    }
    Ok(())
}

fn report(fetched: &Fetched) {
    let dir = fetched.dir.display();
    if !fetched.downloaded() {
        println!("{}: present in {dir}, skipped (--force downloads it again)", fetched.dataset);
        return;
    }
    println!("{}: {} -> {dir}", fetched.dataset, fetched.urls.join(", "));
    for (file, rows) in &fetched.rows {
        println!("  {file:<28} {rows:>6} rows");
    }
    for warning in &fetched.warnings {
        eprintln!("warning: {warning}");
    }
}

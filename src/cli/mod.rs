//! Command-line entry points: the console by default, and headless subcommands.
#[cfg(feature = "fetch")]
mod data;
mod encode;
mod run;
mod slurm;
mod table;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sift-tui",
    version,
    about = "Adversarial fine-tuning research console (BERT, DeBERTa; SiFT, SMART, ALUM, R3F, FreeLB)",
    after_help = "Without a subcommand the console opens; press ? there for its keys. Keys can be rebound in \
                  $XDG_CONFIG_HOME/sift-tui/keys.toml (or ~/.config/sift-tui/keys.toml), one action per line: \
                  pause = [\"p\", \"space\"]"
)]
pub struct Cli {
    /// Open the console with this preset loaded (Enter launches it).
    #[arg(long, value_name = "FILE")]
    preset: Option<PathBuf>,
    /// Where the console's run directories go (default: $SIFT_RUNS_DIR or runs/).
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a preset's sweep headless (or one run of it with --only), writing run directories.
    Run(run::RunArgs),
    /// Continue a run from its newest valid checkpoint.
    Resume(run::ResumeArgs),
    /// Print the results table of a runs directory (mean ± std over seeds, differences from standard).
    Table(table::TableArgs),
    /// Encode texts (one per line) and write the last hidden states to a safetensors file.
    Encode(encode::EncodeArgs),
    /// Print an sbatch job-array script with one task per run of a preset.
    Slurm(slurm::SlurmArgs),
    /// Manage the datasets of the data directory (download them with `data fetch`).
    #[cfg(feature = "fetch")]
    Data(data::DataArgs),
    /// Follow the runs of a runs directory that other processes write (live from metrics.jsonl).
    Watch(watch::WatchArgs),
}

/// Exit status for bad input (files, presets, arguments), as opposed to internal failures.
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => crate::ui::run_console(crate::ui::ConsoleOptions {
            preset: cli.preset,
            runs_dir: cli.runs_dir.unwrap_or_else(crate::experiment::rundir::runs_dir_default),
        }),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Resume(args)) => run::resume(&args),
        Some(Command::Table(args)) => table::run(&args),
        Some(Command::Encode(args)) => encode::run(&args),
        Some(Command::Slurm(args)) => slurm::run(&args),
        #[cfg(feature = "fetch")]
        Some(Command::Data(args)) => data::run(&args),
        Some(Command::Watch(args)) => watch::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::report::report(&e));
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

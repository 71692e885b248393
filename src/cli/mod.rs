//! Command-line entry points: the console by default, and headless subcommands.
mod bench;
mod encode;
mod run;
mod slurm;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sift-tui",
    version,
    about = "Adversarial fine-tuning research console (BERT, DeBERTa; SiFT, SMART, ALUM, R3F, FreeLB)"
)]
pub struct Cli {
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
    /// Time training steps of one method on a synthetic batch; prints one JSON line.
    Bench(bench::BenchArgs),
}

/// Exit status for bad input (files, presets, arguments), as opposed to internal failures.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Sets the thread count of Candle's matmuls (`RAYON_NUM_THREADS`) and elementwise kernels
/// (`CANDLE_NUM_THREADS`). Only effective before the first tensor operation, which builds the pools.
pub fn set_thread_count(threads: usize) {
    for name in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        std::env::set_var(name, threads.to_string());
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => Err(anyhow::anyhow!("the console is not built yet; use a subcommand (see --help)")),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Resume(args)) => run::resume(&args),
        Some(Command::Table(args)) => table::run(&args),
        Some(Command::Encode(args)) => encode::run(&args),
        Some(Command::Slurm(args)) => slurm::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

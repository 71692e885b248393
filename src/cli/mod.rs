//! Command-line entry points: the console by default, and headless subcommands.
pub mod bench;
mod data;
mod encode;
mod jobs;
mod plot;
mod progress;
mod run;
mod slurm;
mod table;
mod watch;

use std::io::Write;
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
    /// Write SVG figures of a runs directory: training and evaluation curves, and the forest plot.
    Plot(plot::PlotArgs),
    /// Encode texts (one per line) and write the last hidden states to a safetensors file.
    Encode(encode::EncodeArgs),
    /// Print an sbatch job-array script with one task per run of a preset.
    Slurm(slurm::SlurmArgs),
    /// Manage the datasets of the data directory (download them with `data fetch`).
    Data(data::DataArgs),
    /// Follow the runs of a runs directory that other processes write (live from metrics.jsonl).
    Watch(watch::WatchArgs),
    /// Time training steps of one method on a synthetic batch; prints one JSON line.
    Bench(bench::BenchArgs),
}

/// Exit status for bad input (files, presets, arguments), as opposed to internal failures.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Sets the threads of the rayon pool, which runs the fused kernels and their matmuls
/// (`RAYON_NUM_THREADS`). Only effective before the first tensor operation, which builds the pool.
pub fn set_thread_count(threads: usize) {
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
}

/// Candle runs its own elementwise ops on a second pool whose workers spin between jobs
/// (`CANDLE_NUM_THREADS`). The heavy elementwise work runs in the fused kernels on the rayon pool, and
/// with both pools on a few cores the spinning steals their time (measured on 2 cores: 10–40 % slower
/// steps), so Candle's pool gets one thread unless the environment says otherwise.
fn default_candle_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Keeps freed tensor buffers for reuse. glibc serves blocks above a (dynamic) threshold with fresh
/// `mmap`s and returns the top of the heap to the kernel beyond another: a training step frees and
/// reallocates hundreds of megabytes, and every page of every fresh block faults on first touch
/// (measured: 15 % of a step). The threshold cannot exceed 32 MiB, and the gradient of a word-embedding
/// table is larger (47 MB for MiniLM's, three such buffers a step: about 30 000 faults), so `mmap` is
/// switched off: every block comes from a heap, which is never trimmed. One arena serves every
/// thread: the trainer's own arena would be a chain of 64 MiB heaps, each unmapped as soon as it is
/// empty (20 000 faults a step on a spawned thread). With both, a step of MiniLM at batch 32 × seq 64
/// faults no page once warm, on the main thread or another; the peak resident size stays what the
/// step needs (measured: within 2 %).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it runs before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}

pub fn main() -> ExitCode {
    keep_freed_memory();
    default_candle_threads();
    let cli = Cli::parse();
    let result = match cli.command {
        None => crate::ui::run_console(crate::ui::ConsoleOptions {
            preset: cli.preset,
            runs_dir: cli.runs_dir.unwrap_or_else(crate::experiment::rundir::runs_dir_default),
        }),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Resume(args)) => run::resume(&args),
        Some(Command::Table(args)) => table::run(&args),
        Some(Command::Plot(args)) => plot::run(&args),
        Some(Command::Encode(args)) => encode::run(&args),
        Some(Command::Slurm(args)) => slurm::run(&args),
        Some(Command::Data(args)) => data::run(&args),
        Some(Command::Watch(args)) => watch::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
    };
    // Written without `eprintln!`, which panics when stderr is gone (a console whose terminal hung up).
    let mut stderr = std::io::stderr();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<crate::signals::Interrupted>() {
            Some(interrupted) => {
                let _ = writeln!(stderr, "{interrupted}");
                ExitCode::from(interrupted.0.exit_status())
            }
            None => {
                let _ = writeln!(stderr, "error: {}", crate::report::report(&e));
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
    }
}

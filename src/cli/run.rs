//! `sift-tui run` and `sift-tui resume`: headless runs with a progress line, for servers and clusters.
//!
//! SIGINT or SIGTERM asks the trainer to checkpoint and stop; `resume` (or running the same preset
//! again) continues from that checkpoint.
use std::path::PathBuf;

use anyhow::Context;
use crossbeam_channel::{select, Receiver};
use indicatif::{ProgressBar, ProgressStyle};

use super::progress::DownloadBars;
use crate::download::Progress;
use crate::experiment::assets::{needs, offline_problems, Sources};
use crate::experiment::preset::Preset;
use crate::experiment::rundir::{runs_dir_default, RunBusy, RunDir};
use crate::experiment::sweep::{list_runs, select as select_run, RunSpec};
use crate::report::report;
use crate::train::checkpoint;
use crate::train::events::{Command, Event};
use crate::train::trainer::spawn;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Preset file (TOML), e.g. presets/quick.toml.
    preset: PathBuf,
    /// Override a preset key: `--set train.max_steps=16`, `--set 'sweep.seeds=[1,2]'`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Where run directories go (default: $SIFT_RUNS_DIR or runs/).
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Print the sweep's runs, numbered, and exit.
    #[arg(long)]
    list: bool,
    /// Run only the K-th run of the sweep (1-based; for cluster job arrays).
    #[arg(long, value_name = "K")]
    only: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// A run directory, e.g. runs/quick__all-MiniLM-L6-v2__sift__s1.
    run_dir: PathBuf,
}

/// How a headless run ended.
enum Ending {
    Finished,
    Stopped,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let preset = Preset::load(&args.preset, &args.overrides)?;
    let runs = preset.runs();
    if args.list {
        print!("{}", list_runs(&runs));
        return Ok(());
    }
    let runs = match args.only {
        Some(k) => vec![select_run(&runs, k)?],
        None => runs,
    };
    // Offline, everything missing is named before anything starts; online, each run downloads
    // what it lacks as its first phase.
    let needed = match &runs[..] {
        [only] => &only.preset,
        _ => &preset,
    };
    let sources = Sources::from_env();
    if let Some(problems) = offline_problems(&needs(needed, &sources), &sources) {
        anyhow::bail!("{problems}");
    }
    let runs_dir = args.runs_dir.clone().unwrap_or_else(runs_dir_default);
    let interrupts = interrupt_channel()?;
    let count = runs.len();
    for (i, spec) in runs.into_iter().enumerate() {
        let dir = runs_dir.join(&spec.run_id);
        if dir.join("results.json").is_file() {
            eprintln!("[{}/{count}] {}: already finished, skipped", i + 1, spec.run_id);
            continue;
        }
        // Re-entering an unfinished run (same config) continues it from its newest checkpoint. A run
        // that another process is training is left to it, so several machines can share a sweep.
        let run_dir = match RunDir::create(&runs_dir, &spec) {
            Err(e) if args.only.is_none() && e.downcast_ref::<RunBusy>().is_some() => {
                eprintln!("[{}/{count}] {}: skipped, {}", i + 1, spec.run_id, report(&e));
                continue;
            }
            other => other?,
        };
        if run_dir.results_path().is_file() {
            // Finished by another process between the check above and taking the lock.
            eprintln!("[{}/{count}] {}: already finished, skipped", i + 1, spec.run_id);
            continue;
        }
        let resume = checkpoint::any(&run_dir.checkpoints_dir());
        eprintln!("[{}/{count}] {}{}", i + 1, spec.run_id, if resume { " (resuming)" } else { "" });
        if let Ending::Stopped = drive(spec, run_dir, resume, &interrupts)? {
            eprintln!("interrupted: the run is checkpointed; run the same command again to continue");
            return Ok(());
        }
    }
    eprintln!("results: sift-tui table {}", runs_dir.display());
    Ok(())
}

pub fn resume(args: &ResumeArgs) -> anyhow::Result<()> {
    let mut run_dir = RunDir::open(&args.run_dir)?;
    run_dir.lock()?;
    let spec = spec_of(&run_dir)?;
    let interrupts = interrupt_channel()?;
    drive(spec, run_dir, true, &interrupts)?;
    Ok(())
}

/// The run a directory holds, from its fully resolved `config.toml`.
fn spec_of(run_dir: &RunDir) -> anyhow::Result<RunSpec> {
    let preset = run_dir.read_config()?;
    let mut spec = preset.runs().into_iter().next().context("the run's config.toml names no run")?;
    spec.run_id = run_dir.run_id();
    Ok(spec)
}

/// SIGINT and SIGTERM arrive here instead of killing the process.
fn interrupt_channel() -> anyhow::Result<Receiver<()>> {
    let (tx, rx) = crossbeam_channel::bounded(4);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .context("installing the signal handler")?;
    Ok(rx)
}

/// Runs one trainer to its end, printing progress; an interrupt becomes a checkpoint-and-stop.
fn drive(spec: RunSpec, run_dir: RunDir, resume: bool, interrupts: &Receiver<()>) -> anyhow::Result<Ending> {
    let handle = spawn(spec, run_dir, resume);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut downloads = DownloadBars::default();
    let mut failure = None;
    let ending = loop {
        select! {
            recv(interrupts) -> _ => {
                say(&bar, "stopping: writing a checkpoint…");
                let _ = handle.commands.send(Command::Stop);
            }
            recv(handle.events) -> event => match event {
                Ok(Event::Download(transfer)) => downloads.report(&transfer),
                Ok(Event::Stage { name, total_steps, .. }) => {
                    bar.set_prefix(name);
                    bar.set_length(total_steps as u64);
                    bar.set_position(0);
                }
                Ok(Event::Step(m)) => {
                    bar.set_position(m.step as u64);
                    let adv = m.adv_kl.map(|kl| format!(" adv_kl {kl:.3e}")).unwrap_or_default();
                    bar.set_message(format!("loss {:.4}{adv} lr {:.2e} {:.1} samples/s", m.loss, m.lr, m.samples_per_sec));
                }
                Ok(Event::Eval(e)) => say(&bar, format!(
                    "  {} step {} {}: acc {:.4} f1 {:.4} mcc {:.4} (n={})",
                    e.stage, e.step, e.split, e.scores.accuracy, e.scores.macro_f1, e.scores.mcc, e.scores.examples
                )),
                Ok(Event::Checkpoint { path, .. }) => say(&bar, format!("  checkpoint {}", path.display())),
                Ok(Event::Warning(w)) => say(&bar, format!("  warning: {w}")),
                Ok(Event::Paused | Event::Resumed) => {}
                Ok(Event::Finished { results }) => {
                    say(&bar, format!("  results {}", results.display()));
                    break Ending::Finished;
                }
                Ok(Event::Stopped { .. }) => break Ending::Stopped,
                Ok(Event::Failed(message)) => {
                    failure = Some(message);
                    break Ending::Stopped;
                }
                Err(_) => {
                    failure = Some("the trainer ended without reporting".into());
                    break Ending::Stopped;
                }
            }
        }
    };
    bar.finish_and_clear();
    let _ = handle.thread.join();
    match failure {
        Some(message) => Err(anyhow::anyhow!(message)),
        None => Ok(ending),
    }
}

/// A log line above the bar, or on stderr when there is no terminal (cluster logs).
fn say(bar: &ProgressBar, line: impl Into<String>) {
    let line = line.into();
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

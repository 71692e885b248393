//! `sift-tui run` and `sift-tui resume`: headless runs with a progress line, for servers and clusters.
//!
//! SIGINT, SIGTERM or SIGHUP asks the trainer to checkpoint and stop, and the process exits with
//! 128 + the signal's number; `resume` (or running the same preset again) continues from that
//! checkpoint. Whether a run starts, resumes or is skipped is `RunDir::launch`'s decision, the same
//! one the console makes. With `--jobs N` the sweep's runs go to N worker processes (`super::jobs`).
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crossbeam_channel::{select, Receiver};
use indicatif::{ProgressBar, ProgressStyle};

use super::progress::DownloadBars;
use crate::download::Progress;
use crate::experiment::assets::{needs, offline_problems, Sources};
use crate::experiment::preset::Preset;
use crate::experiment::rundir::{runs_dir_default, Launch, RunDir};
use crate::experiment::sweep::{list_runs, select as select_run, RunSpec};
use crate::signals::{Interrupted, Signal};
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
    /// Train N runs at a time, in N processes that divide the threads ($RAYON_NUM_THREADS, or all
    /// cores) between them.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_jobs, conflicts_with_all = ["list", "only"])]
    jobs: NonZeroUsize,
    /// Set by `--jobs` on the processes it starts: this is worker K (it prints no summary line).
    #[arg(long, value_name = "K", hide = true, conflicts_with_all = ["list", "only", "jobs"])]
    worker: Option<usize>,
}

fn parse_jobs(value: &str) -> Result<NonZeroUsize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(NonZeroUsize::new(n).expect("not zero")),
        Err(_) => Err("expects a whole number of runs at a time, e.g. 4".into()),
    }
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// A run directory, e.g. runs/quick__all-MiniLM-L6-v2__sift__s1.
    run_dir: PathBuf,
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
    // No more jobs than runs left to train: the spare ones would only hold back threads.
    let pending = runs.iter().filter(|spec| !is_finished(&runs_dir, spec)).count();
    let jobs = args.jobs.get().min(pending);
    if jobs > 1 {
        let sweep = super::jobs::Sweep { preset: &args.preset, overrides: &args.overrides, runs_dir: &runs_dir };
        super::jobs::run(&sweep, jobs, pending)?;
    } else {
        run_sequentially(runs, &runs_dir, args.only.is_some())?;
    }
    if args.worker.is_none() {
        eprintln!("results: sift-tui table {}", runs_dir.display());
    }
    Ok(())
}

/// Whether the run has written its results (`RunDir::launch` would skip it).
fn is_finished(runs_dir: &Path, spec: &RunSpec) -> bool {
    RunDir::open(&runs_dir.join(&spec.run_id)).is_ok_and(|dir| dir.results_path().is_file())
}

/// Trains the runs one after the other in this process. `only`: a single run that must not be
/// left to another process (one job-array task).
fn run_sequentially(runs: Vec<RunSpec>, runs_dir: &Path, only: bool) -> anyhow::Result<()> {
    let interrupts = crate::signals::channel()?;
    let count = runs.len();
    for (i, spec) in runs.into_iter().enumerate() {
        if let Ok(signal) = interrupts.try_recv() {
            return Err(Interrupted(signal).into());
        }
        let at = format!("[{}/{count}] {}", i + 1, spec.run_id);
        // A run that another process is training is left to it, so several machines (or the
        // workers of `--jobs`) can share a sweep; only `--only` treats that as an error.
        let (run_dir, resume) = match RunDir::launch(runs_dir, &spec)? {
            Launch::Finished { .. } => {
                eprintln!("{at}: already finished, skipped");
                continue;
            }
            Launch::Held(busy) if !only => {
                eprintln!("{at}: skipped, {busy}");
                continue;
            }
            Launch::Held(busy) => return Err(busy.into()),
            Launch::Resume(run_dir) => (run_dir, true),
            Launch::Fresh(run_dir) => (run_dir, false),
        };
        eprintln!("{at}{}", if resume { " (resuming)" } else { "" });
        if let Some(signal) = drive(spec, run_dir, resume, &interrupts)? {
            return Err(Interrupted(signal).into());
        }
    }
    Ok(())
}

/// Continues the run in a directory, deciding as `run` does: a finished run is left unchanged.
pub fn resume(args: &ResumeArgs) -> anyhow::Result<()> {
    let run_dir = RunDir::open(&args.run_dir)?;
    let spec = run_dir.read_spec()?;
    let runs_dir = run_dir.path().parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let (run_dir, resume) = match RunDir::launch(&runs_dir, &spec)? {
        Launch::Finished { results } => {
            eprintln!("{}: already finished ({} exists); nothing to resume", spec.run_id, results.display());
            return Ok(());
        }
        Launch::Held(busy) => return Err(busy.into()),
        Launch::Resume(run_dir) => (run_dir, true),
        Launch::Fresh(run_dir) => (run_dir, false),
    };
    let interrupts = crate::signals::channel()?;
    match drive(spec, run_dir, resume, &interrupts)? {
        Some(signal) => Err(Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// Runs one trainer to its end, printing progress; a signal becomes a checkpoint-and-stop and is
/// returned, so that the caller exits with its status.
fn drive(
    spec: RunSpec,
    run_dir: RunDir,
    resume: bool,
    interrupts: &Receiver<Signal>,
) -> anyhow::Result<Option<Signal>> {
    let handle = spawn(spec, run_dir, resume);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut downloads = DownloadBars::default();
    let mut interrupted = None;
    let ended: Result<(), String> = loop {
        select! {
            recv(interrupts) -> signal => {
                if interrupted.is_none() {
                    interrupted = signal.ok();
                    say(&bar, "stopping: writing a checkpoint…");
                    let _ = handle.commands.send(Command::Stop);
                }
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
                    break Ok(());
                }
                // Only a signal stops a headless trainer.
                Ok(Event::Stopped { checkpoint }) => {
                    say(&bar, match checkpoint {
                        Some(_) => "the run is checkpointed; run the same command again to continue",
                        // Stopped while downloading: nothing of the run was written yet.
                        None => "stopped before training began; run the same command again to start it",
                    });
                    break Ok(());
                }
                Ok(Event::Failed(message)) => break Err(message),
                Err(_) => break Err("the trainer ended without reporting".into()),
            }
        }
    };
    bar.finish_and_clear();
    let _ = handle.thread.join();
    ended.map_err(anyhow::Error::msg)?;
    Ok(interrupted)
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

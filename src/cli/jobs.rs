//! `sift-tui run --jobs N`: a sweep's runs trained N at a time, the threads divided between them.
//!
//! The runs go to N worker processes rather than N threads: the rayon pool that runs the fused
//! kernels and the matmuls, and Candle's own pool, are global to a process and sized once, so runs
//! in one process would share one pool instead of each using its own share of the cores. Each worker
//! is `sift-tui run` of the same sweep (same preset, overrides and runs directory) with
//! `RAYON_NUM_THREADS` set to its share. It walks the sweep as a sequential `run` does and trains
//! every run that is neither finished nor held by another process, so the runs' locks hand each run to
//! exactly one worker (a worker that loses the race for a run skips it, as with several machines on
//! one runs directory), and each run computes what it computes in a sequential sweep at that thread
//! count.
//!
//! The workers' stderr comes through line by line, prefixed `[job K]`. A signal to this process is
//! passed on to the workers (a terminal's Ctrl-C reaches them directly too; they ignore the
//! repeat), which checkpoint and stop as a single run does; this process then exits with the
//! signal's status.
use std::io::{BufRead, BufReader, Read, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{ensure, Context};
use crossbeam_channel::select;

use crate::signals::{Interrupted, Signal};

/// What the workers run: the sweep of `sift-tui run`, as given on its command line.
pub struct Sweep<'a> {
    pub preset: &'a Path,
    pub overrides: &'a [String],
    pub runs_dir: &'a Path,
}

/// Trains the `pending` runs of `sweep` that are not finished yet in `jobs` worker processes and
/// waits for all of them; fails when any worker did.
pub fn run(sweep: &Sweep, jobs: usize, pending: usize) -> anyhow::Result<()> {
    let threads = available_threads();
    let per_job = (threads / jobs).max(1);
    eprintln!("{pending} runs to train, {jobs} at a time with {per_job} thread(s) each ({threads} in all)");
    // Before any worker exists, so that no signal ends this process and leaves the workers behind.
    let interrupts = crate::signals::channel()?;
    let (ended, ended_rx) = crossbeam_channel::unbounded();
    let mut workers: Vec<Child> = Vec::new();
    for job in 1..=jobs {
        let mut worker = match spawn(sweep, job, per_job) {
            Ok(worker) => worker,
            Err(e) => {
                // The workers already started would go on unsupervised: stop them.
                for worker in &mut workers {
                    send(worker, Signal(signal_hook::consts::SIGTERM));
                    let _ = worker.wait();
                }
                return Err(e);
            }
        };
        let stderr = worker.stderr.take().context("a worker's stderr is piped")?;
        let ended = ended.clone();
        std::thread::Builder::new()
            .name(format!("job {job} output"))
            .spawn(move || {
                forward_lines(job, stderr);
                let _ = ended.send(job - 1);
            })
            .context("starting a thread for a worker's output")?;
        workers.push(worker);
    }
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; jobs];
    let mut interrupted = None;
    while statuses.iter().any(Option::is_none) {
        select! {
            recv(interrupts) -> signal => {
                let Ok(signal) = signal else { continue };
                interrupted.get_or_insert(signal);
                for (worker, status) in workers.iter().zip(&statuses) {
                    if status.is_none() {
                        send(worker, signal);
                    }
                }
            }
            // A worker's stderr closes when it exits.
            recv(ended_rx) -> index => {
                let index = index.context("the output threads ended without reporting")?;
                let status = workers[index].wait().with_context(|| format!("waiting for job {}", index + 1))?;
                statuses[index] = Some(status);
            }
        }
    }
    if let Some(signal) = interrupted {
        return Err(Interrupted(signal).into());
    }
    let failed: Vec<String> = statuses
        .iter()
        .enumerate()
        .filter_map(|(index, status)| Some((index, (*status)?)))
        .filter(|(_, status)| !status.success())
        .map(|(index, status)| format!("job {}: {status}", index + 1))
        .collect();
    ensure!(
        failed.is_empty(),
        "{} of {jobs} jobs failed ({}); their errors are above, prefixed [job K]",
        failed.len(),
        failed.join(", ")
    );
    Ok(())
}

/// The threads one run would use alone: `RAYON_NUM_THREADS` as rayon reads it, else every core this
/// process may use.
fn available_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|threads| threads.trim().parse::<usize>().ok())
        .filter(|&threads| threads > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// Starts worker `job`: this executable's `run` of the sweep, with `threads` threads.
fn spawn(sweep: &Sweep, job: usize, threads: usize) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot locate the sift-tui executable")?;
    let mut command = Command::new(exe);
    command.arg("run").arg(sweep.preset);
    for set in sweep.overrides {
        command.arg("--set").arg(set);
    }
    command.arg("--runs-dir").arg(sweep.runs_dir).arg("--worker").arg(job.to_string());
    command.env("RAYON_NUM_THREADS", threads.to_string()).stdin(Stdio::null()).stderr(Stdio::piped());
    command.spawn().with_context(|| format!("cannot start job {job}"))
}

/// Copies a worker's stderr to this process's, each line prefixed with the job's number, until the
/// worker closes it. Whole lines, so that the workers' lines never interleave mid-line.
fn forward_lines(job: usize, from: impl Read) {
    let mut from = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match from.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        // Written without `eprintln!`, which panics when stderr is gone.
        let _ = writeln!(std::io::stderr().lock(), "[job {job}] {}", text.trim_end_matches(['\n', '\r']));
    }
}

/// Sends `signal` to a worker that has not been waited for (so its pid is still its own).
fn send(worker: &Child, signal: Signal) {
    let Ok(pid) = libc::pid_t::try_from(worker.id()) else { return };
    // SAFETY: kill(2) only delivers a signal; it touches no memory of this process.
    unsafe {
        libc::kill(pid, signal.0);
    }
}

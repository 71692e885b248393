//! The signals that interrupt a run (SIGINT, SIGTERM, SIGHUP) as messages: headless runs and the
//! console turn one into a checkpoint-and-stop, restore the terminal, and exit with the shell's
//! status for that signal (128 + its number: 130, 143, 129), so `&&` chains and job schedulers see
//! that the run did not finish.
use anyhow::Context;
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// An interrupting signal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    pub fn name(self) -> &'static str {
        match self.0 {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            SIGHUP => "SIGHUP",
            _ => "a signal",
        }
    }

    /// The exit status a shell reports for a process this signal ended: 128 + its number.
    pub fn exit_status(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(u8::MAX)
    }
}

/// The process stopped because of a signal (after checkpointing what it was training).
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}", .0.name())]
pub struct Interrupted(pub Signal);

/// From now on SIGINT, SIGTERM and SIGHUP arrive on the returned channel instead of ending the
/// process.
pub fn channel() -> anyhow::Result<Receiver<Signal>> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing the signal handlers")?;
    let (tx, rx) = crossbeam_channel::bounded(8);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for number in signals.forever() {
                let _ = tx.try_send(Signal(number));
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

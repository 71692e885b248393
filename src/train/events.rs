//! The trainer's channel protocol: commands in, events out. The console and headless runs both
//! speak it; nothing else crosses the thread boundary.
use std::path::PathBuf;

use crate::metrics::{EvalMetrics, StepMetrics};

/// What the console (or a signal handler) asks of a running trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    /// Write a checkpoint at the next step boundary.
    Checkpoint,
    /// Checkpoint and stop after the current step.
    Stop,
}

/// What a running trainer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A stage began: `index` of `count`, with its planned number of updates.
    Stage {
        name: String,
        index: usize,
        count: usize,
        total_steps: usize,
    },
    Step(StepMetrics),
    Eval(EvalMetrics),
    Checkpoint {
        path: PathBuf,
        step: usize,
    },
    Paused,
    Resumed,
    Warning(String),
    /// The run finished; the results file is written.
    Finished {
        results: PathBuf,
    },
    /// The run stopped on request; its checkpoint is kept.
    Stopped {
        checkpoint: Option<PathBuf>,
    },
    /// The run failed; the message says why (the run directory stays for inspection).
    Failed(String),
}

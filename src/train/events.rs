//! The trainer's channel protocol: commands in, events out. The console and headless runs both
//! speak it; nothing else crosses the thread boundary.
use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};

use crate::download::{Progress, Transfer};
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
    /// A model or dataset file is downloading, before the first stage.
    Download(Transfer),
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

/// A trainer's downloads as [`Event::Download`]s; a [`Command::Stop`] cancels them. Pause and
/// checkpoint requests have nothing to act on before training starts and are dropped.
pub struct DownloadEvents<'a> {
    pub events: &'a Sender<Event>,
    pub commands: &'a Receiver<Command>,
}

impl Progress for DownloadEvents<'_> {
    fn report(&mut self, transfer: &Transfer) {
        let event = Event::Download(transfer.clone());
        // A file's first and last reports always arrive; those between are dropped, like steps,
        // when a slow console lets the channel fill.
        if transfer.done == 0 || transfer.finished {
            let _ = self.events.send(event);
        } else {
            let _ = self.events.try_send(event);
        }
    }

    fn cancelled(&mut self) -> bool {
        self.commands.try_iter().any(|command| command == Command::Stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_become_events_and_only_stop_cancels_them() {
        let (event_tx, event_rx) = crossbeam_channel::bounded(2);
        let (command_tx, command_rx) = crossbeam_channel::bounded(4);
        let mut progress = DownloadEvents { events: &event_tx, commands: &command_rx };
        let start = Transfer { file: "org/m/config.json".into(), done: 0, total: Some(10), finished: false };
        let middle = Transfer { done: 5, ..start.clone() };
        progress.report(&start);
        progress.report(&middle);
        // The channel is full: a report between the first and the last is dropped, not waited for.
        progress.report(&middle);
        assert_eq!(event_rx.try_iter().collect::<Vec<_>>(), [Event::Download(start), Event::Download(middle)]);

        command_tx.send(Command::Pause).unwrap();
        assert!(!progress.cancelled());
        command_tx.send(Command::Checkpoint).unwrap();
        command_tx.send(Command::Stop).unwrap();
        assert!(progress.cancelled());
    }
}

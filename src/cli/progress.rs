//! Downloads on stderr: an indicatif bar per file (bytes, rate, ETA) when stderr is a terminal,
//! and plain lines otherwise, for the logs of cluster jobs.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::download::{bytes, Progress, Transfer};

/// Renders the download reports of `data fetch` and of a headless run's first phase.
#[derive(Default)]
pub struct DownloadBars {
    /// The bar of the file downloading now.
    bar: Option<ProgressBar>,
}

impl DownloadBars {
    fn start(&mut self, transfer: &Transfer) {
        let bar = match transfer.total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{msg} {decimal_bytes} {decimal_bytes_per_sec}").expect("valid template"),
            ),
        };
        if bar.is_hidden() {
            let size = transfer.total.map(|total| format!(" ({})", bytes(total))).unwrap_or_default();
            eprintln!("downloading {}{size}", transfer.file);
        }
        bar.set_message(transfer.file.clone());
        self.bar = Some(bar);
    }
}

impl Progress for DownloadBars {
    fn report(&mut self, transfer: &Transfer) {
        if transfer.done == 0 && !transfer.finished {
            self.start(transfer);
        }
        let Some(bar) = &self.bar else { return };
        bar.set_position(transfer.done);
        if transfer.finished {
            if bar.is_hidden() {
                eprintln!("downloaded {} ({})", transfer.file, bytes(transfer.done));
            }
            // The finished bar stays on screen as the file's line.
            bar.finish();
            self.bar = None;
        }
    }
}

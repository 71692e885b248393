//! HTTP downloads shared by the Hub client (`model::hub`) and `data fetch`: one agent
//! configuration, bodies streamed in chunks with progress reports, and cancellation between chunks.
//!
//! Progress goes through [`Progress`], which the console (as trainer events) and the command line
//! (indicatif bars or plain lines) each implement.
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A server that sends nothing for this long is taken to be gone. There is no limit on a whole
/// download: a large checkpoint on a slow link takes as long as it takes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 << 10;
/// The shortest time between two progress reports of one file (its first and last always go out).
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// The state of one file's download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// What is downloaded, as a person would name it (`org/name/model.safetensors`).
    pub file: String,
    /// Bytes received so far.
    pub done: u64,
    /// The file's size, when the server says.
    pub total: Option<u64>,
    /// The last report of this file: it is complete.
    pub finished: bool,
}

impl Transfer {
    /// `12.3 MB / 90.9 MB (13 %)`, or `12.3 MB` when the size is unknown.
    pub fn describe(&self) -> String {
        match self.total {
            Some(total) if total > 0 => {
                format!("{} / {} ({} %)", bytes(self.done), bytes(total), self.done.min(total) * 100 / total)
            }
            _ => bytes(self.done),
        }
    }
}

/// `1.5 MB`: decimal units, as download tools print them.
pub fn bytes(count: u64) -> String {
    match count {
        0..1_000 => format!("{count} B"),
        1_000..1_000_000 => format!("{:.1} kB", count as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", count as f64 / 1e6),
        _ => format!("{:.2} GB", count as f64 / 1e9),
    }
}

/// Told about downloads as they happen, and asked between chunks whether to go on.
pub trait Progress {
    /// A file started (`done` 0), advanced, or finished (`finished`).
    fn report(&mut self, transfer: &Transfer);
    /// Whether the user asked to abandon the download.
    fn cancelled(&mut self) -> bool {
        false
    }
}

/// Downloads nobody watches.
impl Progress for () {
    fn report(&mut self, _: &Transfer) {}
}

/// A download abandoned because [`Progress::cancelled`] said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("download cancelled")]
pub struct Cancelled;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    #[error("download failed after {} bytes: {source}", .done)]
    Read { done: u64, source: std::io::Error },
    #[error("the connection closed after {done} of {total} bytes")]
    Short { done: u64, total: u64 },
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot write: {0}")]
    Write(std::io::Error),
}

/// The agent of every download: rustls, a connect and a per-read timeout, our user agent.
/// `follow_redirects` off returns 3xx answers as they are (the Hub's metadata is on the first one).
pub fn agent(follow_redirects: bool) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_recv_response(Some(READ_TIMEOUT))
        .max_redirects(if follow_redirects { 10 } else { 0 })
        .user_agent(concat!("sift-tui/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// One line for a failed request: the status, or the transport's error.
pub fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::StatusCode(status) => format!("the server answered HTTP {status}"),
        ureq::Error::Io(error) => format!("download failed: {error}"),
        other => format!("download failed: {other}"),
    }
}

/// Copies `body` into `out` in chunks, reporting `file`'s progress and checking for cancellation
/// between chunks. `total` (when known) must be met exactly: a short body is an error even when
/// the transport did not notice. Returns the bytes copied.
pub fn copy_body(
    body: &mut impl Read,
    out: &mut impl Write,
    file: &str,
    total: Option<u64>,
    limit: u64,
    progress: &mut dyn Progress,
) -> Result<u64, BodyError> {
    let mut transfer = Transfer { file: file.to_owned(), done: 0, total, finished: false };
    progress.report(&transfer);
    let mut last_report = Instant::now();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        if progress.cancelled() {
            return Err(Cancelled.into());
        }
        let read = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(BodyError::Read { done: transfer.done, source }),
        };
        transfer.done += read as u64;
        if transfer.done > limit {
            return Err(BodyError::TooLarge { limit });
        }
        out.write_all(&buffer[..read]).map_err(BodyError::Write)?;
        if last_report.elapsed() >= REPORT_EVERY {
            progress.report(&transfer);
            last_report = Instant::now();
        }
    }
    if let Some(total) = total.filter(|&total| total != transfer.done) {
        return Err(BodyError::Short { done: transfer.done, total });
    }
    transfer.finished = true;
    progress.report(&transfer);
    Ok(transfer.done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records reports and cancels after `cancel_after` of them.
    struct Recorder {
        reports: Vec<Transfer>,
        cancel_after: usize,
    }

    impl Progress for Recorder {
        fn report(&mut self, transfer: &Transfer) {
            self.reports.push(transfer.clone());
        }
        fn cancelled(&mut self) -> bool {
            self.reports.len() >= self.cancel_after
        }
    }

    #[test]
    fn a_body_is_copied_with_a_first_and_a_final_report() {
        let body = vec![7u8; 3 * CHUNK + 5];
        let mut out = Vec::new();
        let mut recorder = Recorder { reports: Vec::new(), cancel_after: usize::MAX };
        let copied =
            copy_body(&mut body.as_slice(), &mut out, "f", Some(body.len() as u64), u64::MAX, &mut recorder).unwrap();
        assert_eq!(copied, body.len() as u64);
        assert_eq!(out, body);
        assert_eq!(recorder.reports.first().map(|t| (t.done, t.finished)), Some((0, false)));
        assert_eq!(recorder.reports.last().map(|t| (t.done, t.finished)), Some((body.len() as u64, true)));
    }

    #[test]
    fn a_short_body_an_oversized_one_and_a_cancelled_one_are_errors() {
        let body = vec![1u8; 100];
        let mut none = ();
        let short = copy_body(&mut body.as_slice(), &mut Vec::new(), "f", Some(101), u64::MAX, &mut none);
        assert_eq!(short.unwrap_err().to_string(), "the connection closed after 100 of 101 bytes");
        let large = copy_body(&mut body.as_slice(), &mut Vec::new(), "f", None, 99, &mut none);
        assert!(matches!(large, Err(BodyError::TooLarge { limit: 99 })));
        let mut recorder = Recorder { reports: Vec::new(), cancel_after: 1 };
        let cancelled = copy_body(&mut body.as_slice(), &mut Vec::new(), "f", None, u64::MAX, &mut recorder);
        assert!(matches!(cancelled, Err(BodyError::Cancelled(Cancelled))));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        let transfer = Transfer { file: "f".into(), done: 12_300_000, total: Some(90_900_000), finished: false };
        assert_eq!(transfer.describe(), "12.3 MB / 90.9 MB (13 %)");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(2_000_000_000), "2.00 GB");
    }
}

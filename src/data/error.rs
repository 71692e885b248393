//! Errors of the data module. Every variant prints as one line that names the file, the 1-based
//! line and the cause, so a user can open the file at the right place.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Not a `source`: the message already says it, and a report would repeat the cause.
    #[error("{}: {}", path.display(), describe_io(error))]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}:{line}: {problem}", path.display())]
    Parse { path: PathBuf, line: usize, problem: Problem },
    #[error("label {label} is outside the label map `{map}`")]
    LabelOutsideMap { label: u32, map: String },
    #[error("unknown label map `{0}` (expected `identity`, `hate-to-negative` or a list of target labels)")]
    UnknownLabelMap(String),
}

/// The cause of a failed read, with the fix when the file is missing.
fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!(
            "no such file; dataset paths are relative to the data directory (${} or data/), and `sift-tui data \
             fetch` downloads the known datasets into it",
            super::DATA_DIR_ENV
        ),
        _ => format!("cannot read: {error}"),
    }
}

/// What is wrong at a given line of a data file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the file is empty")]
    Empty,
    #[error("the file has a header but no data rows")]
    HeaderOnly,
    #[error("binary data: NUL byte (is this a text file?)")]
    Binary,
    #[error("unbalanced quotes: a quoted field opens on this line and is never closed")]
    UnclosedQuote,
    #[error("expected {expected} columns, found {found}")]
    ColumnCount { expected: usize, found: usize },
    #[error(
        "unbalanced quotes: a quoted field opens on this line and runs to line {last_line}, leaving {found} \
         columns instead of {expected}"
    )]
    QuoteSpansLines { expected: usize, found: usize, last_line: usize },
    #[error("expected `sentence<TAB>label`, found no tab")]
    MissingTab,
    #[error("the header has no column {column:?} (columns: {found:?})")]
    MissingColumn { column: String, found: Vec<String> },
    #[error("column {column:?}: label {value:?} is not a non-negative integer")]
    NotAnInteger { column: String, value: String },
    #[error("column {column:?}: label {value} is out of range (labels are 0..{classes})")]
    OutOfRange { column: String, value: u32, classes: usize },
    #[error("column {column:?}: unknown label {value:?} (known: {known:?})")]
    UnknownLabel { column: String, value: String, known: Vec<String> },
    #[error("CSV error: {0}")]
    Csv(String),
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_file_is_named_once_with_the_fix() {
        let path = std::path::Path::new("/nonexistent/twitter-hate/train.csv");
        let error = crate::data::read_twitter_hate(path).unwrap_err();
        let report = crate::report::report(&anyhow::Error::from(error));
        assert_eq!(report.matches(path.to_str().unwrap()).count(), 1, "{report}");
        assert!(report.contains("no such file") && report.contains("sift-tui data fetch"), "{report}");
        assert!(!report.contains("os error"), "{report}");
    }
}

//! Errors of the data module. Every variant prints as one line that names the file, the 1-based
//! line and the cause, so a user can open the file at the right place.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // The OS error is the source, which reports print after this line; not repeated here.
    #[error("{}: cannot read", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {problem}", path.display())]
    Parse { path: PathBuf, line: usize, problem: Problem },
    #[error("label {label} is outside the label map `{map}`")]
    LabelOutsideMap { label: u32, map: String },
    #[error("unknown label map `{0}` (expected `identity`, `hate-to-negative` or a list of target labels)")]
    UnknownLabelMap(String),
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

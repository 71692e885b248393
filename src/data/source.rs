//! A data file's bytes, split into records: raw lines for the tab-separated formats that must not
//! process quotes, and RFC 4180 records (through the `csv` crate) for real CSV files.
//!
//! Both paths skip a UTF-8 byte-order mark, accept CRLF line endings, reject binary data, and decode
//! invalid UTF-8 lossily with a warning that names the line.
use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::error::{DataError, Problem};

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";
/// Line warnings kept per file.
const MAX_LINE_WARNINGS: usize = 20;

/// One record of a file: its 1-based starting line, its last line (later when a quoted field spans
/// lines) and its fields.
#[derive(Debug)]
pub(crate) struct Record {
    pub line: usize,
    pub last_line: usize,
    pub fields: Vec<String>,
}

/// The checked contents of one data file, and the warnings raised while decoding it.
pub(crate) struct Source {
    pub path: PathBuf,
    bytes: Vec<u8>,
    warnings: Warnings,
}

impl Source {
    /// Reads a file, skips its byte-order mark and rejects empty or binary files.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let mut bytes = std::fs::read(path).map_err(|error| DataError::Io { path: path.to_path_buf(), error })?;
        if bytes.starts_with(BYTE_ORDER_MARK) {
            bytes.drain(..BYTE_ORDER_MARK.len());
        }
        let source = Self { path: path.to_path_buf(), bytes, warnings: Warnings::new(path) };
        if let Some(offset) = source.bytes.iter().position(|&b| b == 0) {
            return Err(source.error(line_at(&source.bytes, offset), Problem::Binary));
        }
        if source.bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(source.error(1, Problem::Empty));
        }
        Ok(source)
    }

    pub fn error(&self, line: usize, problem: Problem) -> DataError {
        DataError::Parse { path: self.path.clone(), line, problem }
    }

    /// The non-blank lines split on `'\n'` only (never on `'\r'` alone or Unicode line breaks such
    /// as U+0085, which occur inside sentences), without their `'\r'`, each split on `delimiter`.
    pub fn delimited_lines(&mut self, delimiter: char) -> Vec<Record> {
        self.lines()
            .into_iter()
            .map(|(line, text)| Record {
                line,
                last_line: line,
                fields: text.split(delimiter).map(str::to_owned).collect(),
            })
            .collect()
    }

    /// The non-blank lines, as in [`Source::delimited_lines`], unsplit.
    pub fn lines(&mut self) -> Vec<(usize, String)> {
        let warnings = &mut self.warnings;
        self.bytes
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, raw)| (i + 1, raw.strip_suffix(b"\r").unwrap_or(raw)))
            .filter(|(_, raw)| !raw.is_empty())
            .map(|(line, raw)| (line, warnings.decode(line, raw).into_owned()))
            .collect()
    }

    /// The CSV records with RFC 4180 quoting, the header included.
    pub fn csv_records(&mut self, delimiter: u8) -> Result<Vec<Record>, DataError> {
        if let Some(line) = unclosed_quote_line(&self.bytes, delimiter) {
            return Err(self.error(line, Problem::UnclosedQuote));
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(self.bytes.as_slice());
        let mut records = Vec::new();
        for result in reader.byte_records() {
            let record = result.map_err(|e| {
                let line = e.position().map_or(1, |p| p.line() as usize);
                DataError::Parse { path: self.path.clone(), line, problem: Problem::Csv(e.to_string()) }
            })?;
            let line = record.position().map_or(1, |p| p.line() as usize);
            let end_line = line + record.iter().flatten().filter(|&&b| b == b'\n').count();
            if end_line > line {
                let message = format!("a quoted field spans lines {line}-{end_line}");
                self.warnings.warn(line, &message);
            }
            let fields = record.iter().map(|field| self.warnings.decode(line, field).into_owned()).collect();
            records.push(Record { line, last_line: end_line, fields });
        }
        Ok(records)
    }

    /// The warnings raised while decoding the file.
    pub fn into_warnings(self) -> Vec<String> {
        self.warnings.into_lines()
    }
}

/// Warnings about lines of one file. Only the first [`MAX_LINE_WARNINGS`] are kept, and a summary
/// line counts the rest, so a garbled file cannot flood the console.
struct Warnings {
    path: PathBuf,
    kept: Vec<String>,
    raised: usize,
}

impl Warnings {
    fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), kept: Vec::new(), raised: 0 }
    }

    fn warn(&mut self, line: usize, message: &str) {
        self.raised += 1;
        if self.raised <= MAX_LINE_WARNINGS {
            let path = self.path.display();
            self.kept.push(format!("{path}:{line}: {message}"));
        }
    }

    /// The text of `raw`, with invalid UTF-8 replaced by U+FFFD and reported.
    fn decode<'a>(&mut self, line: usize, raw: &'a [u8]) -> Cow<'a, str> {
        let text = String::from_utf8_lossy(raw);
        if let Cow::Owned(_) = text {
            self.warn(line, "invalid UTF-8, replaced with U+FFFD");
        }
        text
    }

    fn into_lines(mut self) -> Vec<String> {
        let left_out = self.raised.saturating_sub(MAX_LINE_WARNINGS);
        if left_out > 0 {
            let path = self.path.display();
            self.kept.push(format!("{path}: {left_out} more warnings left out"));
        }
        self.kept
    }
}

/// The 1-based line that holds byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count()
}

/// The line of a quoted field that is still open at the end of the text, if any. Follows the `csv`
/// crate's rules: a quote opens a field only at its start, and `""` inside it is an escaped quote.
fn unclosed_quote_line(bytes: &[u8], delimiter: u8) -> Option<usize> {
    let mut line = 1;
    let mut opened_on = None;
    let mut at_field_start = true;
    let mut rest = bytes.iter().peekable();
    while let Some(&b) = rest.next() {
        if opened_on.is_some() {
            if b == b'"' && rest.next_if_eq(&&b'"').is_none() {
                opened_on = None;
            }
        } else if b == b'"' && at_field_start {
            opened_on = Some(line);
        }
        at_field_start = opened_on.is_none() && (b == delimiter || b == b'\n' || b == b'\r');
        if b == b'\n' {
            line += 1;
        }
    }
    opened_on
}

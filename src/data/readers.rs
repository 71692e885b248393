//! Readers for the study's three datasets and for any labelled table with a header.
//!
//! Each format is read the way its authors wrote it: CoLA and the UCI sentences are tab-separated
//! without quoting (their sentences contain `"`), the tweets are real CSV with quoted fields.
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{DataError, Problem};
use super::source::{Record, Source};
use super::{Dataset, Example};

const COLA_LABELS: [&str; 2] = ["unacceptable", "acceptable"];
const TWITTER_HATE_LABELS: [&str; 2] = ["non-hate", "hate"];
const UCI_SENTIMENT_LABELS: [&str; 2] = ["negative", "positive"];
/// The files of the UCI "Sentiment Labelled Sentences" release, read in this order.
pub const UCI_SENTIMENT_FILES: [&str; 3] = ["amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"];
const LABEL_COLUMN: &str = "label";

/// The column separator of a table. Tab-separated tables are read without quote processing, as
/// GLUE-style TSV files are meant to be; comma-separated ones with RFC 4180 quoting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delimiter {
    #[default]
    Comma,
    Tab,
}

/// How a table writes its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelValues {
    /// Class indices `0..label_names.len()`.
    #[default]
    Index,
    /// One of `label_names`, whose position is the class index.
    Name,
}

/// Where a table keeps its text, optional text pair and label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    #[serde(default)]
    pub delimiter: Delimiter,
    pub text_column: String,
    #[serde(default)]
    pub pair_column: Option<String>,
    pub label_column: String,
    pub label_names: Vec<String>,
    #[serde(default)]
    pub label_values: LabelValues,
}

/// Reads a raw CoLA file: no header, four tab-separated columns (source, label, author's mark,
/// sentence).
pub fn read_cola(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let mut source = Source::open(path)?;
    let mut examples = Vec::new();
    for Record { line, fields, .. } in source.delimited_lines('\t') {
        examples.push(cola_example(fields).map_err(|problem| source.error(line, problem))?);
    }
    let name = format!("cola/{}", file_stem(path));
    Ok(Dataset::new(name, path, examples, &COLA_LABELS, source.into_warnings()))
}

fn cola_example(fields: Vec<String>) -> Result<Example, Problem> {
    let [_source, label, _mark, sentence] =
        <[String; 4]>::try_from(fields).map_err(|fields| Problem::ColumnCount { expected: 4, found: fields.len() })?;
    let label = parse_index(&label, LABEL_COLUMN, COLA_LABELS.len())?;
    Ok(Example::single(sentence, label))
}

/// Reads the Twitter hate-speech `train.csv` (`id,label,tweet`); tweets are kept byte for byte,
/// leading and trailing spaces included.
pub fn read_twitter_hate(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let spec = TableSpec {
        delimiter: Delimiter::Comma,
        text_column: "tweet".into(),
        pair_column: None,
        label_column: LABEL_COLUMN.into(),
        label_names: TWITTER_HATE_LABELS.map(String::from).into(),
        label_values: LabelValues::Index,
    };
    let mut dataset = read_table(path, &spec)?;
    dataset.name = "twitter-hate".into();
    Ok(dataset)
}

/// Reads the UCI sentiment sentences: from a directory, its three files in the order of
/// [`UCI_SENTIMENT_FILES`]; otherwise the one file given. Each line is `sentence<TAB>label`.
pub fn read_uci_sentiment(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let (name, files) = if path.is_dir() {
        let files = UCI_SENTIMENT_FILES.map(|file| path.join(file)).into();
        ("uci-sentiment".to_owned(), files)
    } else {
        let name = format!("uci-sentiment/{}", file_stem(path));
        (name, vec![path.to_path_buf()])
    };
    let mut examples = Vec::new();
    let mut warnings = Vec::new();
    for file in &files {
        let mut source = Source::open(file)?;
        for (line, text) in source.lines() {
            examples.push(uci_example(&text).map_err(|problem| source.error(line, problem))?);
        }
        warnings.extend(source.into_warnings());
    }
    Ok(Dataset::new(name, path, examples, &UCI_SENTIMENT_LABELS, warnings))
}

/// The sentence may hold tabs of its own, so the label is whatever follows the last one.
fn uci_example(line: &str) -> Result<Example, Problem> {
    let (sentence, label) = line.rsplit_once('\t').ok_or(Problem::MissingTab)?;
    let label = parse_index(label, LABEL_COLUMN, UCI_SENTIMENT_LABELS.len())?;
    Ok(Example::single(sentence.to_owned(), label))
}

/// Reads a CSV or TSV table with a header, taking the columns that `spec` names.
pub fn read_table(path: impl AsRef<Path>, spec: &TableSpec) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let mut source = Source::open(path)?;
    let mut records = match spec.delimiter {
        Delimiter::Comma => source.csv_records(b',')?,
        Delimiter::Tab => source.delimited_lines('\t'),
    }
    .into_iter();
    let header = records.next().ok_or_else(|| source.error(1, Problem::Empty))?;
    let columns = TableColumns::find(&header, spec).map_err(|p| source.error(header.line, p))?;
    let examples = records
        .map(|record| {
            let line = record.line;
            columns.example(record, spec).map_err(|problem| source.error(line, problem))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if examples.is_empty() {
        return Err(source.error(header.line + 1, Problem::HeaderOnly));
    }
    let names: Vec<&str> = spec.label_names.iter().map(String::as_str).collect();
    let name = file_stem(path);
    Ok(Dataset::new(name, path, examples, &names, source.into_warnings()))
}

/// The positions of a table's columns, found in its header.
struct TableColumns {
    count: usize,
    text: usize,
    pair: Option<usize>,
    label: usize,
}

impl TableColumns {
    fn find(header: &Record, spec: &TableSpec) -> Result<Self, Problem> {
        let position = |column: &str| {
            let found = header.fields.iter().position(|name| name.trim() == column);
            found.ok_or_else(|| Problem::MissingColumn { column: column.to_owned(), found: header.fields.clone() })
        };
        Ok(Self {
            count: header.fields.len(),
            text: position(&spec.text_column)?,
            pair: spec.pair_column.as_deref().map(position).transpose()?,
            label: position(&spec.label_column)?,
        })
    }

    fn example(&self, mut record: Record, spec: &TableSpec) -> Result<Example, Problem> {
        let found = record.fields.len();
        if found != self.count && record.last_line > record.line {
            // A quote that closes on a later line swallowed the line breaks in between.
            return Err(Problem::QuoteSpansLines { expected: self.count, found, last_line: record.last_line });
        }
        if found != self.count {
            return Err(Problem::ColumnCount { expected: self.count, found });
        }
        let label = &record.fields[self.label];
        let label = match spec.label_values {
            LabelValues::Index => parse_index(label, &spec.label_column, spec.label_names.len())?,
            LabelValues::Name => parse_name(label, &spec.label_column, &spec.label_names)?,
        };
        Ok(Example {
            text: std::mem::take(&mut record.fields[self.text]),
            pair: self.pair.map(|i| std::mem::take(&mut record.fields[i])),
            label,
        })
    }
}

/// A class index below `classes`.
fn parse_index(value: &str, column: &str, classes: usize) -> Result<u32, Problem> {
    let value = value.trim();
    let label: u32 =
        value.parse().map_err(|_| Problem::NotAnInteger { column: column.to_owned(), value: value.to_owned() })?;
    if label as usize >= classes {
        return Err(Problem::OutOfRange { column: column.to_owned(), value: label, classes });
    }
    Ok(label)
}

/// The class index of a label written by name.
fn parse_name(value: &str, column: &str, names: &[String]) -> Result<u32, Problem> {
    let value = value.trim();
    let index = names.iter().position(|name| name == value);
    index.map(|i| i as u32).ok_or_else(|| Problem::UnknownLabel {
        column: column.to_owned(),
        value: value.to_owned(),
        known: names.to_vec(),
    })
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |stem| stem.to_string_lossy().into_owned())
}

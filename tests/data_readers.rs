//! The dataset readers: exact counts on the real files (with `SIFT_DATA_DIR`), one-line errors that
//! name file and line on malformed input, and no panic on any bytes.
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sift_tui::data::{
    data_dir, read_cola, read_table, read_twitter_hate, read_uci_sentiment, DataError, Dataset, Delimiter, LabelValues,
    TableSpec, COLA_DEV_PATH, COLA_OUT_OF_DOMAIN_DEV_PATH, COLA_TRAIN_PATH, DATA_DIR_ENV, TWITTER_HATE_TRAIN_PATH,
    UCI_SENTIMENT_FILES, UCI_SENTIMENT_PATH,
};

/// The data directory, or `None` (with the reason printed) when the real datasets are not here.
fn real_data_dir() -> Option<PathBuf> {
    if std::env::var_os(DATA_DIR_ENV).is_none() {
        eprintln!("skipped: set {DATA_DIR_ENV} to the data directory to check the real datasets");
        return None;
    }
    Some(data_dir())
}

fn assert_clean(dataset: &Dataset, rows: usize, class_counts: &[usize]) {
    assert_eq!(dataset.len(), rows, "{}", dataset.name);
    assert_eq!(dataset.class_counts(), class_counts, "{}", dataset.name);
    assert!(dataset.warnings.is_empty(), "{:?}", dataset.warnings);
}

#[test]
fn cola_files_have_the_published_counts() {
    let Some(dir) = real_data_dir() else { return };
    let expected = [
        (COLA_TRAIN_PATH, 8551, [2528, 6023]),
        (COLA_DEV_PATH, 527, [162, 365]),
        (COLA_OUT_OF_DOMAIN_DEV_PATH, 516, [162, 354]),
    ];
    for (path, rows, counts) in expected {
        let dataset = read_cola(dir.join(path)).unwrap();
        assert_clean(&dataset, rows, &counts);
        assert_eq!(dataset.label_names, ["unacceptable", "acceptable"]);
    }
    let train = read_cola(dir.join(COLA_TRAIN_PATH)).unwrap();
    let first = &train.examples[0];
    assert_eq!(first.text, "Our friends won't buy this analysis, let alone the next one we propose.");
    assert_eq!((first.label, &first.pair), (1, &None));
}

#[test]
fn twitter_hate_has_the_published_counts_and_exact_text() {
    let Some(dir) = real_data_dir() else { return };
    let dataset = read_twitter_hate(dir.join(TWITTER_HATE_TRAIN_PATH)).unwrap();
    assert_clean(&dataset, 31962, &[29720, 2242]);
    assert_eq!(dataset.label_names, ["non-hate", "hate"]);
    let texts: Vec<&str> = dataset.examples.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts[0],
        " @user when a father is dysfunctional and is so selfish he drags his kids into his dysfunction.   #run"
    );
    assert_eq!(texts[2], "  bihday your majesty");
    // Row 20 is a quoted field with a comma and a trailing space.
    assert_eq!(texts[19], "as we all know, essential oils are not made of chemicals. ");
    assert_eq!(dataset.take_first(4000).len(), 4000);
}

#[test]
fn uci_sentiment_has_1000_rows_per_file() {
    let Some(dir) = real_data_dir() else { return };
    let dir = dir.join(UCI_SENTIMENT_PATH);
    let all = read_uci_sentiment(&dir).unwrap();
    assert_clean(&all, 3000, &[1500, 1500]);
    assert_eq!(all.label_names, ["negative", "positive"]);
    for file in UCI_SENTIMENT_FILES {
        // imdb parses as 748 rows with CSV quoting; it has 1000.
        assert_clean(&read_uci_sentiment(dir.join(file)).unwrap(), 1000, &[500, 500]);
    }
    let next_lines = all.examples.iter().map(|e| e.text.matches('\u{85}').count());
    assert_eq!(next_lines.sum::<usize>(), 2, "U+0085 stays inside its sentences");
}

/// A file named `name` with `contents` in a fresh temporary directory.
fn file(name: &str, contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

/// Asserts a one-line error that names the file, the line and the cause.
fn assert_error(result: Result<Dataset, DataError>, path: &Path, line: usize, cause: &str) {
    let message = result.expect_err("malformed input must fail").to_string();
    let name = path.file_name().unwrap().to_str().unwrap();
    let location = format!("{name}:{line}: ");
    assert!(message.contains(&location), "`{message}` lacks `{location}`");
    assert!(message.contains(cause), "`{message}` lacks `{cause}`");
    assert!(!message.contains('\n'), "`{message}` spans lines");
}

fn sentiment_table(delimiter: Delimiter, label_values: LabelValues) -> TableSpec {
    TableSpec {
        delimiter,
        text_column: "text".into(),
        pair_column: None,
        label_column: "label".into(),
        label_names: vec!["negative".into(), "positive".into()],
        label_values,
    }
}

#[test]
fn malformed_csv_errors_name_file_and_line() {
    let cases: [(&str, &[u8], usize, &str); 8] = [
        ("quote.csv", b"id,label,tweet\n1,0,ok\n2,1,\"never closed\n3,0,x\n", 3, "unbalanced quotes"),
        (
            "requote.csv",
            b"id,label,tweet\n1,\"0,a\n2,1,\"b\n",
            2,
            "unbalanced quotes: a quoted field opens on this line and runs to line 3",
        ),
        ("columns.csv", b"id,label,tweet\n1,0,a\n2,1\n", 3, "expected 3 columns, found 2"),
        ("word.csv", b"id,label,tweet\n1,0,a\n2,yes,b\n", 3, "label \"yes\" is not a non-negative integer"),
        ("range.csv", b"id,label,tweet\n1,2,a\n", 2, "label 2 is out of range"),
        ("empty.csv", b"", 1, "empty"),
        ("header.csv", b"\xEF\xBB\xBFid,label,tweet\r\n", 2, "no data rows"),
        ("binary.csv", b"id,label,tweet\n1,0,a\0b\n", 2, "NUL"),
    ];
    for (name, contents, line, cause) in cases {
        let (_dir, path) = file(name, contents);
        assert_error(read_twitter_hate(&path), &path, line, cause);
    }
    let (_dir, path) = file("spaces.csv", b"  \n\n");
    assert_error(read_twitter_hate(&path), &path, 1, "empty");
}

#[test]
fn malformed_tables_errors_name_file_and_line() {
    let by_name = sentiment_table(Delimiter::Comma, LabelValues::Name);
    let (_dir, path) = file("names.csv", b"text,label\nhi,positive\nho,meh\n");
    assert_error(read_table(&path, &by_name), &path, 3, "unknown label \"meh\"");
    let (_dir, path) = file("missing.csv", b"sentence,label\nhi,positive\n");
    assert_error(read_table(&path, &by_name), &path, 1, "no column \"text\"");
    let (_dir, path) = file("missing.tsv", b"text\tlabel\nhi\t1\n");
    let pair =
        TableSpec { pair_column: Some("hypothesis".into()), ..sentiment_table(Delimiter::Tab, LabelValues::Index) };
    assert_error(read_table(&path, &pair), &path, 1, "no column \"hypothesis\"");
}

#[test]
fn malformed_tsv_errors_name_file_and_line() {
    let (_dir, path) = file("cola.tsv", b"a\t1\t\tGood.\nb\t1\tBad.\n");
    assert_error(read_cola(&path), &path, 2, "expected 4 columns, found 3");
    let (_dir, path) = file("cola.tsv", b"a\t1\t\tGood.\n\nb\tone\t*\tBad.\n");
    assert_error(read_cola(&path), &path, 3, "label \"one\" is not a non-negative integer");
    let (_dir, path) = file("uci.txt", b"Good.\t1\nNo tab here.\n");
    assert_error(read_uci_sentiment(&path), &path, 2, "found no tab");
    let (_dir, path) = file("uci.txt", b"Good.\t1\nBad.\t-1\n");
    assert_error(read_uci_sentiment(&path), &path, 2, "label \"-1\"");
    let (dir, _path) = file("amazon_cells_labelled.txt", b"Good.\t1\n");
    let message = read_uci_sentiment(dir.path()).unwrap_err().to_string();
    assert!(message.contains("imdb_labelled.txt") && !message.contains('\n'), "{message}");
}

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let (_dir, path) = file("tweets.csv", b"\xEF\xBB\xBFid,label,tweet\r\n1,0, hello \r\n2,1,\"a, \"\"b\"\"\"\r\n");
    let tweets = read_twitter_hate(&path).unwrap();
    let texts: Vec<&str> = tweets.examples.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, [" hello ", "a, \"b\""]);
    assert_eq!(tweets.labels(), [0, 1]);
    assert!(tweets.warnings.is_empty());

    let (_dir, path) = file("cola.tsv", b"\xEF\xBB\xBFsrc\t0\t*\t\"Odd.\r\n");
    let cola = read_cola(&path).unwrap();
    assert_eq!((cola.examples[0].text.as_str(), cola.examples[0].label), ("\"Odd.", 0));

    let (_dir, path) = file("pairs.tsv", b"\xEF\xBB\xBFpremise\thypothesis\tlabel\r\nA \"b\tC\tpositive\r\n");
    let spec = TableSpec {
        text_column: "premise".into(),
        pair_column: Some("hypothesis".into()),
        ..sentiment_table(Delimiter::Tab, LabelValues::Name)
    };
    let pairs = read_table(&path, &spec).unwrap();
    let example = &pairs.examples[0];
    assert_eq!((example.text.as_str(), example.pair.as_deref(), example.label), ("A \"b", Some("C"), 1));
}

#[test]
fn uci_lines_split_on_newline_and_the_last_tab_only() {
    let (_dir, path) = file("uci.txt", "\u{feff}A\u{85}B \"quoted\t1\r\nwith\ttab\t0\n".as_bytes());
    let dataset = read_uci_sentiment(&path).unwrap();
    let rows: Vec<(&str, u32)> = dataset.examples.iter().map(|e| (e.text.as_str(), e.label)).collect();
    assert_eq!(rows, [("A\u{85}B \"quoted", 1), ("with\ttab", 0)]);
}

#[test]
fn invalid_utf8_is_decoded_lossily_with_a_warning() {
    let (_dir, path) = file("latin1.csv", b"id,label,tweet\n1,0,ok\n2,0,caf\xE9\n");
    let dataset = read_twitter_hate(&path).unwrap();
    assert_eq!(dataset.examples[1].text, "caf\u{fffd}");
    assert_eq!(dataset.warnings.len(), 1);
    assert!(dataset.warnings[0].contains("latin1.csv:3: invalid UTF-8"), "{:?}", dataset.warnings);

    let (_dir, path) = file("latin1.txt", b"ok\t1\ncaf\xE9\t0\n");
    let dataset = read_uci_sentiment(&path).unwrap();
    assert!(dataset.warnings[0].contains("latin1.txt:2: invalid UTF-8"), "{:?}", dataset.warnings);
}

/// Bytes drawn mostly from the characters the parsers care about, so that runs reach deep paths.
fn data_file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(b"\"\t,\n\r01 a\xEF\xBB\xBF\xC2\x85\xE9\0".to_vec());
    let byte = prop_oneof![4 => interesting, 1 => any::<u8>()];
    prop::collection::vec(byte, 0..300)
}

proptest! {
    #[test]
    fn readers_never_panic_and_errors_stay_on_one_line(bytes in data_file_bytes()) {
        let (_dir, path) = file("fuzz.txt", &bytes);
        let table = sentiment_table(Delimiter::Tab, LabelValues::Index);
        let results = [
            read_cola(&path),
            read_twitter_hate(&path),
            read_uci_sentiment(&path),
            read_table(&path, &table),
        ];
        for result in results {
            if let Err(error) = result {
                prop_assert!(!error.to_string().contains('\n'), "{}", error);
            }
        }
    }
}

/// A missing file: the report names the file once and the fix, and states the cause once (it was
/// printed twice, in the message and again as its cause).
#[test]
fn a_missing_file_reports_the_cause_once_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.csv");
    let error = anyhow::Error::from(read_twitter_hate(&path).expect_err("no such file"));
    let report = sift_tui::report::report(&error);
    assert!(report.starts_with(&format!("{}: no such file; ", path.display())), "{report}");
    assert_eq!(report.matches(&path.display().to_string()).count(), 1, "{report}");
    assert_eq!(report.to_lowercase().matches("no such file").count(), 1, "{report}");
    assert!(report.contains("sift-tui data fetch"), "{report}");
}

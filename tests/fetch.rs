//! `data fetch` against a tiny HTTP server on 127.0.0.1 (no external network): the files land in
//! the readers' layout with their bytes unchanged, and failures (404, truncated or incomplete
//! archives, files the readers reject, offline mode) leave no file behind.
mod http_common;

use std::path::Path;
use std::process::{Command, Output};

use http_common::{zip_of, Reply, Server};
use sift_tui::data::fetch::{fetch, DatasetId, FetchError, FetchOptions};
use sift_tui::data::{
    read_cola, read_twitter_hate, read_uci_sentiment, COLA_DEV_PATH, COLA_OUT_OF_DOMAIN_DEV_PATH, COLA_TRAIN_PATH,
    TWITTER_HATE_TRAIN_PATH, UCI_SENTIMENT_PATH,
};

/// A port nothing listens on, for options that must not download anything.
const NOWHERE: &str = "http://127.0.0.1:9/nowhere";

/// Serves `routes` (any other path gets a 404) and stops after `max_requests` requests.
fn serve(routes: Vec<(&str, Reply)>, max_requests: usize) -> Server {
    let server = Server::start(max_requests);
    for (path, reply) in routes {
        server.route(path, vec![reply]);
    }
    server
}

const COLA_TRAIN: &[u8] = b"gj04\t1\t\tOur friends won't buy this analysis.\nbc01\t0\t*\tThe more books I ask to whom he will give, the more he reads.\nbc01\t1\t\tHe said \"hi\".\n";
const COLA_DEV: &[u8] = b"gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\nr-67\t0\t\tThat he ever went there alone is certain.\n";
const COLA_OUT_OF_DOMAIN: &[u8] = b"clc95\t1\t\tSomebody just left.\ns_97\t1\t \tWho always drinks milk?";
const TWITTER_TRAIN: &[u8] =
    b"id,label,tweet\n1,0, @user when a father is dysfunctional \n2,1,\"@user #sikh, temple vandalised\"\n3,0,bihday your majesty\n";
const TWITTER_TEST: &[u8] = b"id,tweet\n31963,#studiolife #aislife\n";
const AMAZON_CRLF: &[u8] = b"So there is no way for me to plug it in.\t0\r\nGood case, Excellent value.\t1\r\n";
const IMDB: &[u8] = b"A very, very, very slow-moving, aimless movie.  \t0\nThe \"twist\" was great.\t1\n";
const YELP: &[u8] = b"Wow... Loved this place.\t1\n";

fn cola_zip() -> Vec<u8> {
    zip_of(&[
        ("cola_public/", b""),
        ("cola_public/README", b"CoLA v1.1\n"),
        ("cola_public/raw/in_domain_train.tsv", COLA_TRAIN),
        ("cola_public/raw/in_domain_dev.tsv", COLA_DEV),
        ("cola_public/raw/out_of_domain_dev.tsv", COLA_OUT_OF_DOMAIN),
        // Same names as the raw files: only `raw/` may be taken.
        ("cola_public/tokenized/in_domain_train.tsv", b"tokenized\tcopy\n"),
        ("cola_public/tokenized/in_domain_dev.tsv", b"tokenized\tcopy\n"),
    ])
}

/// A UCI-like zip: the files in a nested folder, next to macOS metadata with the same names.
fn uci_zip() -> Vec<u8> {
    zip_of(&[
        ("sentiment labelled sentences/", b""),
        ("sentiment labelled sentences/amazon_cells_labelled.txt", AMAZON_CRLF),
        ("sentiment labelled sentences/imdb_labelled.txt", IMDB),
        ("sentiment labelled sentences/yelp_labelled.txt", YELP),
        ("sentiment labelled sentences/readme.txt", b"Please cite the paper\n"),
        ("__MACOSX/sentiment labelled sentences/._amazon_cells_labelled.txt", b"\x00\x05\x16\x07"),
        ("__MACOSX/sentiment labelled sentences/imdb_labelled.txt", b"\x00\x05\x16\x07"),
    ])
}

fn twitter_routes() -> Vec<(&'static str, Reply)> {
    vec![
        ("/twitter/train_tweet.csv", Reply::ok(TWITTER_TRAIN.to_vec())),
        ("/twitter/test_tweets.csv", Reply::ok(TWITTER_TEST.to_vec())),
    ]
}

/// Options that fetch `dataset` from `base` + `path` into `dir`.
fn options_for(dir: &Path, sources: &[(DatasetId, String)]) -> FetchOptions {
    let mut options = FetchOptions::new(dir);
    options.only = sources.iter().map(|(dataset, _)| *dataset).collect();
    options.base_urls = sources.iter().cloned().collect();
    options
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn fetch_error(options: &FetchOptions) -> String {
    match fetch(options) {
        Ok(fetched) => panic!("expected an error, fetched {fetched:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fetches_all_three_into_the_reader_layout_with_bytes_unchanged() {
    let server = serve(
        [
            vec![
                ("/cola/cola_public_1.1.zip", Reply::ok(cola_zip())),
                ("/uci/sentiment+labelled+sentences.zip", Reply::ok(uci_zip())),
            ],
            twitter_routes(),
        ]
        .concat(),
        4,
    );
    let base = &server.base;
    let tmp = tempfile::tempdir().unwrap();
    let options = options_for(
        tmp.path(),
        &[
            (DatasetId::Cola, format!("{base}/cola")),
            (DatasetId::TwitterHate, format!("{base}/twitter/")),
            (DatasetId::UciSentiment, format!("{base}/uci")),
        ],
    );
    let fetched = fetch(&options).unwrap();

    assert_eq!(fetched.iter().map(|f| f.dataset).collect::<Vec<_>>(), DatasetId::ALL);
    assert!(fetched.iter().all(|f| f.downloaded()));
    assert_eq!(fetched[0].urls, [format!("{base}/cola/cola_public_1.1.zip")]);
    assert_eq!(fetched[1].urls, [format!("{base}/twitter/train_tweet.csv"), format!("{base}/twitter/test_tweets.csv")]);
    let dir = tmp.path();
    assert_eq!(entries(dir), ["cola", "twitter-hate", "uci-sentiment"]);
    assert_eq!(
        entries(&dir.join("cola")),
        ["README.txt", "in_domain_dev.tsv", "in_domain_train.tsv", "out_of_domain_dev.tsv"]
    );
    assert_eq!(entries(&dir.join("twitter-hate")), ["test.csv", "train.csv"]);
    assert_eq!(
        entries(&dir.join("uci-sentiment")),
        ["amazon_cells_labelled.txt", "imdb_labelled.txt", "readme.txt", "yelp_labelled.txt"]
    );
    let expected_bytes: [(&str, &[u8]); 7] = [
        (COLA_TRAIN_PATH, COLA_TRAIN),
        (COLA_DEV_PATH, COLA_DEV),
        (COLA_OUT_OF_DOMAIN_DEV_PATH, COLA_OUT_OF_DOMAIN),
        ("cola/README.txt", b"CoLA v1.1\n"),
        (TWITTER_HATE_TRAIN_PATH, TWITTER_TRAIN),
        ("twitter-hate/test.csv", TWITTER_TEST),
        ("uci-sentiment/amazon_cells_labelled.txt", AMAZON_CRLF),
    ];
    for (path, bytes) in expected_bytes {
        assert_eq!(std::fs::read(dir.join(path)).unwrap(), bytes, "{path}");
    }

    assert_eq!(read_cola(dir.join(COLA_TRAIN_PATH)).unwrap().labels(), [1, 0, 1]);
    assert_eq!(read_cola(dir.join(COLA_OUT_OF_DOMAIN_DEV_PATH)).unwrap().len(), 2);
    let tweets = read_twitter_hate(dir.join(TWITTER_HATE_TRAIN_PATH)).unwrap();
    assert_eq!(tweets.examples[1].text, "@user #sikh, temple vandalised");
    assert_eq!(read_uci_sentiment(dir.join(UCI_SENTIMENT_PATH)).unwrap().labels(), [0, 1, 0, 1, 1]);

    assert_eq!(fetched[0].rows, [("in_domain_train.tsv", 3), ("in_domain_dev.tsv", 2), ("out_of_domain_dev.tsv", 2)]);
    assert_eq!(fetched[1].rows, [("train.csv", 3)]);
    let warnings = fetched.iter().flat_map(|f| &f.warnings).cloned().collect::<Vec<_>>().join("\n");
    assert!(warnings.contains("cola/in_domain_train.tsv: 3 rows, the reference copy has 8551"), "{warnings}");
    assert!(warnings.contains("twitter-hate/test.csv: sha256 "), "{warnings}");
    assert!(warnings.contains("differs from the reference copy's 37d1766af69d706d"), "{warnings}");
}

#[test]
fn a_missing_file_names_its_url_and_leaves_no_file() {
    let server = serve(vec![("/twitter/train_tweet.csv", Reply::ok(TWITTER_TRAIN.to_vec()))], 2);
    let base = &server.base;
    let tmp = tempfile::tempdir().unwrap();
    let options = options_for(tmp.path(), &[(DatasetId::TwitterHate, format!("{base}/twitter"))]);

    let error = fetch_error(&options);

    assert_eq!(error, format!("{base}/twitter/test_tweets.csv: the server answered HTTP 404"));
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

#[test]
fn a_truncated_zip_is_an_error_and_leaves_no_file() {
    let whole = cola_zip();
    let half = whole[..whole.len() / 2].to_vec();
    let server = serve(
        vec![
            ("/short/cola_public_1.1.zip", Reply::ok(half)),
            ("/cut/cola_public_1.1.zip", Reply::ok(whole.clone()).cut_at(whole.len() / 2)),
        ],
        2,
    );
    let base = &server.base;
    let tmp = tempfile::tempdir().unwrap();
    for (folder, cause) in [("short", "not a zip archive"), ("cut", "download failed")] {
        let options = options_for(tmp.path(), &[(DatasetId::Cola, format!("{base}/{folder}"))]);
        let error = fetch_error(&options);
        assert!(error.starts_with(&format!("{base}/{folder}/cola_public_1.1.zip: {cause}")), "{error}");
        assert!(!error.contains('\n'), "{error}");
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }
}

#[test]
fn an_archive_without_an_expected_file_or_with_a_rejected_file_is_an_error() {
    let incomplete = zip_of(&[("cola_public/raw/in_domain_train.tsv", COLA_TRAIN), ("cola_public/README", b"")]);
    let bad_label = zip_of(&[
        ("cola_public/raw/in_domain_train.tsv", b"gj04\t7\t\tA sentence.\n"),
        ("cola_public/raw/in_domain_dev.tsv", COLA_DEV),
        ("cola_public/raw/out_of_domain_dev.tsv", COLA_OUT_OF_DOMAIN),
        ("cola_public/README", b""),
    ]);
    let server = serve(
        vec![
            ("/incomplete/cola_public_1.1.zip", Reply::ok(incomplete)),
            ("/bad/cola_public_1.1.zip", Reply::ok(bad_label)),
        ],
        2,
    );
    let base = &server.base;
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("incomplete", "the archive has no entry `raw/in_domain_dev.tsv`".to_owned()),
        ("bad", "the reader rejects cola/in_domain_train.tsv: ".to_owned()),
    ];
    for (folder, cause) in cases {
        let options = options_for(tmp.path(), &[(DatasetId::Cola, format!("{base}/{folder}"))]);
        let error = fetch_error(&options);
        assert!(error.starts_with(&format!("{base}/{folder}/cola_public_1.1.zip: {cause}")), "{error}");
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }
}

#[test]
fn a_present_dataset_is_skipped_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join(TWITTER_HATE_TRAIN_PATH);
    std::fs::create_dir_all(train.parent().unwrap()).unwrap();
    std::fs::write(&train, "id,label,tweet\n1,0,mine\n").unwrap();
    // Two requests: the forced fetch's. A skip that downloaded would use them up.
    let server = serve(twitter_routes(), 2);
    let base = &server.base;
    let mut options = options_for(tmp.path(), &[(DatasetId::TwitterHate, format!("{base}/twitter"))]);

    let skipped = fetch(&options).unwrap();
    assert!(!skipped[0].downloaded());
    assert_eq!(std::fs::read_to_string(&train).unwrap(), "id,label,tweet\n1,0,mine\n");
    assert!(!tmp.path().join("twitter-hate/test.csv").exists());

    options.force = true;
    let forced = fetch(&options).unwrap();
    assert!(forced[0].downloaded());
    assert_eq!(std::fs::read(&train).unwrap(), TWITTER_TRAIN);
    assert_eq!(entries(&tmp.path().join("twitter-hate")), ["test.csv", "train.csv"]);
}

#[test]
fn offline_mode_refuses_and_says_where_the_files_go() {
    let tmp = tempfile::tempdir().unwrap();
    for path in [COLA_TRAIN_PATH, COLA_DEV_PATH, COLA_OUT_OF_DOMAIN_DEV_PATH] {
        std::fs::create_dir_all(tmp.path().join("cola")).unwrap();
        std::fs::write(tmp.path().join(path), COLA_DEV).unwrap();
    }
    let mut options = FetchOptions::new(tmp.path());
    options.base_urls.insert(DatasetId::UciSentiment, NOWHERE.into());
    options.offline = true;

    let error = fetch(&options).unwrap_err();

    assert!(matches!(error, FetchError::Offline(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("needs a network connection"), "{message}");
    let train = tmp.path().join(TWITTER_HATE_TRAIN_PATH);
    assert!(message.contains(&format!("/train_tweet.csv -> {}", train.display())), "{message}");
    assert!(message.contains(&format!("from the zip {NOWHERE}/sentiment+labelled+sentences.zip")), "{message}");
    assert!(!message.contains("cola"), "present datasets need no instructions: {message}");
    assert_eq!(entries(tmp.path()), ["cola"]);

    options.force = true;
    let message = fetch(&options).unwrap_err().to_string();
    assert!(message.contains("from the zip https://nyu-mll.github.io/CoLA/cola_public_1.1.zip"), "{message}");
}

fn sift_tui(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sift-tui"));
    command.args(args);
    for name in ["SIFT_OFFLINE", "HF_HUB_OFFLINE", "SIFT_FETCH_URL_UCI_SENTIMENT", "SIFT_FETCH_URL_TWITTER_HATE"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn cli_fetches_with_overrides_and_exits_2_on_failure() {
    let server =
        serve([vec![("/uci/sentiment+labelled+sentences.zip", Reply::ok(uci_zip()))], twitter_routes()].concat(), 3);
    let base = &server.base;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let uci_url = format!("uci-sentiment={base}/uci");
    let twitter_env = format!("{base}/twitter");
    let args = ["data", "fetch", "--dir", dir, "--only", "uci-sentiment", "--only", "twitter-hate"];
    let output = sift_tui(
        &[&args[..], &["--base-url-override", &uci_url]].concat(),
        &[("SIFT_FETCH_URL_TWITTER_HATE", &twitter_env)],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("train.csv                         3 rows"), "{stdout}");
    assert!(stdout.contains("imdb_labelled.txt                 2 rows"), "{stdout}");
    assert!(
        stderr.contains("warning: uci-sentiment/imdb_labelled.txt: 2 rows, the reference copy has 1000"),
        "{stderr}"
    );

    let again = sift_tui(&args, &[("SIFT_FETCH_URL_TWITTER_HATE", NOWHERE)]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("twitter-hate: present in"));

    let offline = sift_tui(&["data", "fetch", "--dir", dir, "--force"], &[("SIFT_OFFLINE", "1")]);
    assert_eq!(offline.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&offline.stderr).starts_with("error: fetching the datasets needs a network connection")
    );

    let unknown = sift_tui(&["data", "fetch", "--dir", dir, "--base-url-override", "sst2=http://x"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown dataset `sst2`"));
}

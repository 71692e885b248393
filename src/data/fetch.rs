//! Downloading the datasets from their canonical sources into the layout the readers expect
//! (`sift-tui data fetch`, see `data/README.md`).
//!
//! A dataset is fetched whole or not at all: its downloads are held in memory, its files are
//! written into a staging folder inside the dataset's directory, read back with the project's own
//! readers, and only then renamed into place. A failed download, a broken archive or a file the
//! readers reject leaves no file behind. A dataset whose read files are all present is left alone
//! unless `force` is set.
//!
//! Files keep their bytes: CRLF copies, quirks and all, are what the readers are built for.
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{read_cola, read_twitter_hate, read_uci_sentiment, DataError, Dataset};
use crate::download::{self, BodyError, Progress};
use crate::model::resolve::SearchEnv;

/// The most bytes one download or one extracted file may hold; the largest real file is 3.1 MB.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// Prefix of the environment variables that replace a dataset's base URL.
pub const URL_ENV_PREFIX: &str = "SIFT_FETCH_URL_";
/// The folder, inside a dataset's directory, where its files wait until all of them are good.
const STAGING_PREFIX: &str = ".fetch-";
/// Entries of macOS resource forks that zips made on a Mac carry; never data.
const MACOS_METADATA_DIR: &str = "__MACOSX";

/// The datasets that can be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum DatasetId {
    Cola,
    TwitterHate,
    UciSentiment,
}

impl DatasetId {
    pub const ALL: [DatasetId; 3] = [DatasetId::Cola, DatasetId::TwitterHate, DatasetId::UciSentiment];

    /// The name on the command line, which is also the dataset's directory in the data directory.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|dataset| dataset.name() == name)
    }

    /// Where the dataset's files are published; the file names are appended.
    pub fn default_base_url(self) -> &'static str {
        self.spec().base_url
    }

    /// The environment variable that replaces the base URL, e.g. `SIFT_FETCH_URL_TWITTER_HATE`.
    pub fn url_env(self) -> String {
        format!("{URL_ENV_PREFIX}{}", self.name().to_ascii_uppercase().replace('-', "_"))
    }

    fn spec(self) -> &'static DatasetSpec {
        match self {
            DatasetId::Cola => &COLA,
            DatasetId::TwitterHate => &TWITTER_HATE,
            DatasetId::UciSentiment => &UCI_SENTIMENT,
        }
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a dataset is published and which files it keeps.
struct DatasetSpec {
    name: &'static str,
    base_url: &'static str,
    /// The zip that holds the files, under the base URL; `None` when each file is its own download.
    archive: Option<&'static str>,
    files: &'static [FileSpec],
}

/// One file of a dataset's directory.
struct FileSpec {
    /// The name in the dataset's directory.
    name: &'static str,
    /// The download under the base URL, or the path of the archive entry. Entries are matched at
    /// the end of their paths, so the folder a zip wraps them in does not matter.
    origin: &'static str,
    /// How the file is read back, for the files the project reads.
    check: Option<ReadCheck>,
    /// The first 16 hex digits of the sha256 of the reference copy, for the files whose canonical
    /// bytes are known.
    sha256_prefix: Option<&'static str>,
}

/// The reader of a file and the rows it finds in the reference copy.
struct ReadCheck {
    read: fn(&Path) -> Result<Dataset, DataError>,
    rows: usize,
}

const fn read_check(read: fn(&Path) -> Result<Dataset, DataError>, rows: usize) -> Option<ReadCheck> {
    Some(ReadCheck { read, rows })
}

// Rows and checksums of the reference copies are those of `data/README.md`.
const COLA: DatasetSpec = DatasetSpec {
    name: "cola",
    base_url: "https://nyu-mll.github.io/CoLA/",
    archive: Some("cola_public_1.1.zip"),
    // The zip also holds `tokenized/` copies under the same names: the `raw/` prefix tells them apart.
    files: &[
        FileSpec {
            name: "in_domain_train.tsv",
            origin: "raw/in_domain_train.tsv",
            check: read_check(|path| read_cola(path), 8551),
            sha256_prefix: Some("f320a10f92d3bce6"),
        },
        FileSpec {
            name: "in_domain_dev.tsv",
            origin: "raw/in_domain_dev.tsv",
            check: read_check(|path| read_cola(path), 527),
            sha256_prefix: Some("77176f6a03faa5a1"),
        },
        FileSpec {
            name: "out_of_domain_dev.tsv",
            origin: "raw/out_of_domain_dev.tsv",
            check: read_check(|path| read_cola(path), 516),
            sha256_prefix: Some("201b9c57b2a20f12"),
        },
        FileSpec { name: "README.txt", origin: "cola_public/README", check: None, sha256_prefix: None },
    ],
};

const TWITTER_HATE: DatasetSpec = DatasetSpec {
    name: "twitter-hate",
    base_url: "https://raw.githubusercontent.com/sharmaroshan/Twitter-Sentiment-Analysis/master/",
    archive: None,
    files: &[
        FileSpec {
            name: "train.csv",
            origin: "train_tweet.csv",
            check: read_check(|path| read_twitter_hate(path), 31962),
            sha256_prefix: Some("4f1bfabc29080297"),
        },
        FileSpec { name: "test.csv", origin: "test_tweets.csv", check: None, sha256_prefix: Some("37d1766af69d706d") },
    ],
};

// The checksums are those of LF copies; the UCI zip may hold CRLF ones, which read the same.
const UCI_SENTIMENT: DatasetSpec = DatasetSpec {
    name: "uci-sentiment",
    base_url: "https://archive.ics.uci.edu/static/public/331/",
    archive: Some("sentiment+labelled+sentences.zip"),
    files: &[
        FileSpec {
            name: "amazon_cells_labelled.txt",
            origin: "amazon_cells_labelled.txt",
            check: read_check(|path| read_uci_sentiment(path), 1000),
            sha256_prefix: Some("47003fc0a0d4840b"),
        },
        FileSpec {
            name: "imdb_labelled.txt",
            origin: "imdb_labelled.txt",
            check: read_check(|path| read_uci_sentiment(path), 1000),
            sha256_prefix: Some("aef2e49e3da25714"),
        },
        FileSpec {
            name: "yelp_labelled.txt",
            origin: "yelp_labelled.txt",
            check: read_check(|path| read_uci_sentiment(path), 1000),
            sha256_prefix: Some("c76468b7b5c6e56a"),
        },
        FileSpec { name: "readme.txt", origin: "readme.txt", check: None, sha256_prefix: None },
    ],
};

/// What to fetch, where to, and from where.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The data directory; each dataset goes into its own folder under it.
    pub dir: PathBuf,
    /// The datasets to fetch; empty means all.
    pub only: Vec<DatasetId>,
    /// Download datasets that are already present again.
    pub force: bool,
    /// Base URLs that replace the canonical ones (a mirror, or a test server).
    pub base_urls: BTreeMap<DatasetId, String>,
    /// Downloads are not allowed.
    pub offline: bool,
}

impl FetchOptions {
    /// Options for `dir`, online, with the canonical URLs.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), only: Vec::new(), force: false, base_urls: BTreeMap::new(), offline: false }
    }

    /// [`FetchOptions::new`] with the environment's offline switches (`SIFT_OFFLINE`,
    /// `HF_HUB_OFFLINE`) and base URLs (`SIFT_FETCH_URL_<NAME>`).
    pub fn from_env(dir: impl Into<PathBuf>) -> Self {
        let base_urls = DatasetId::ALL
            .into_iter()
            .filter_map(|dataset| Some((dataset, std::env::var(dataset.url_env()).ok().filter(|url| !url.is_empty())?)))
            .collect();
        Self { base_urls, offline: SearchEnv::from_env().offline, ..Self::new(dir) }
    }

    /// The datasets to fetch, in the canonical order, each once.
    pub fn datasets(&self) -> Vec<DatasetId> {
        DatasetId::ALL.into_iter().filter(|dataset| self.only.is_empty() || self.only.contains(dataset)).collect()
    }

    pub fn base_url(&self, dataset: DatasetId) -> &str {
        self.base_urls.get(&dataset).map_or(dataset.default_base_url(), String::as_str)
    }

    /// The directory that holds `dataset`'s files.
    pub fn dataset_dir(&self, dataset: DatasetId) -> PathBuf {
        self.dir.join(dataset.name())
    }
}

/// What became of one dataset.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub dataset: DatasetId,
    pub dir: PathBuf,
    /// The URLs downloaded; empty when the dataset was present and left alone.
    pub urls: Vec<String>,
    /// The rows the project's readers find in each read file, in layout order.
    pub rows: Vec<(&'static str, usize)>,
    /// Row counts and checksums that differ from the reference copies, and the readers' warnings.
    pub warnings: Vec<String>,
}

impl Fetched {
    /// Whether the dataset was downloaded (rather than found present and skipped).
    pub fn downloaded(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// Why a dataset could not be fetched; each names the URL or file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Offline(String),
    #[error(transparent)]
    Cancelled(#[from] download::Cancelled),
    #[error("{url}: {cause}")]
    Source { url: String, cause: String },
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

fn source_error(url: &str, cause: impl fmt::Display) -> FetchError {
    FetchError::Source { url: url.to_owned(), cause: cause.to_string() }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Write { path: path.to_path_buf(), source }
}

/// Fetches the selected datasets in order, stopping at the first failure (the datasets fetched
/// before it stay complete, and a second run skips them).
pub fn fetch(options: &FetchOptions) -> Result<Vec<Fetched>, FetchError> {
    options.datasets().into_iter().map(|dataset| fetch_dataset(dataset, options, &mut ())).collect()
}

/// Fetches one dataset into [`FetchOptions::dataset_dir`], unless it is present and `force` is not
/// set, reporting each download to `progress`.
pub fn fetch_dataset(
    dataset: DatasetId,
    options: &FetchOptions,
    progress: &mut dyn Progress,
) -> Result<Fetched, FetchError> {
    let dir = options.dataset_dir(dataset);
    if !needs_fetch(dataset, options) {
        return Ok(Fetched { dataset, dir, urls: Vec::new(), rows: Vec::new(), warnings: Vec::new() });
    }
    if options.offline {
        return Err(FetchError::Offline(offline_message(options)));
    }
    let downloads = download_files(dataset, options.base_url(dataset), progress)?;
    let created_dir = !dir.exists();
    let installed = install(dataset, &dir, &downloads);
    if installed.is_err() && created_dir {
        // Only succeeds while empty: nothing but what this call made is removed.
        let _ = fs::remove_dir(&dir);
    }
    installed
}

/// Whether `dataset` is to be downloaded: when forced, or when a file the project reads is missing.
fn needs_fetch(dataset: DatasetId, options: &FetchOptions) -> bool {
    options.force || !missing_files(dataset, &options.dir).is_empty()
}

/// The files of `dataset` that the project reads and the data directory `data_dir` lacks.
pub fn missing_files(dataset: DatasetId, data_dir: &Path) -> Vec<PathBuf> {
    let dir = data_dir.join(dataset.name());
    let read_files = dataset.spec().files.iter().filter(|file| file.check.is_some());
    read_files.map(|file| dir.join(file.name)).filter(|path| !path.is_file()).collect()
}

fn offline_message(options: &FetchOptions) -> String {
    let mut message = String::from(
        "fetching the datasets needs a network connection, and SIFT_OFFLINE or HF_HUB_OFFLINE is set. To install \
         them by hand, copy the files unchanged (see data/README.md):",
    );
    for dataset in options.datasets().into_iter().filter(|&dataset| needs_fetch(dataset, options)) {
        message.push_str(&format!("\n  {}", manual_steps(dataset, options)));
    }
    message
}

/// Where each file of `dataset` comes from and where it goes, for a person doing it by hand.
pub fn manual_steps(dataset: DatasetId, options: &FetchOptions) -> String {
    let spec = dataset.spec();
    let base_url = options.base_url(dataset);
    let dir = options.dataset_dir(dataset);
    let moves = spec.files.iter().map(|file| {
        let from = match spec.archive {
            Some(_) => file.origin.to_owned(),
            None => join_url(base_url, file.origin),
        };
        format!("{from} -> {}", dir.join(file.name).display())
    });
    let moves = moves.collect::<Vec<_>>().join(", ");
    match spec.archive {
        Some(archive) => format!("{dataset}: from the zip {}: {moves}", join_url(base_url, archive)),
        None => format!("{dataset}: {moves}"),
    }
}

fn join_url(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// A file's bytes, and the URL they came from.
struct Download {
    file: &'static FileSpec,
    url: String,
    bytes: Vec<u8>,
}

/// Downloads the files of a dataset, or its archive and the files in it.
fn download_files(
    dataset: DatasetId,
    base_url: &str,
    progress: &mut dyn Progress,
) -> Result<Vec<Download>, FetchError> {
    let spec = dataset.spec();
    let agent = download::agent(true);
    let Some(archive) = spec.archive else {
        return spec
            .files
            .iter()
            .map(|file| {
                let url = join_url(base_url, file.origin);
                let bytes = download(&agent, &url, &format!("{dataset}/{}", file.origin), progress)?;
                Ok(Download { file, url, bytes })
            })
            .collect();
    };
    let url = join_url(base_url, archive);
    let bytes = download(&agent, &url, &format!("{dataset}/{archive}"), progress)?;
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| source_error(&url, format!("not a zip archive: {e}")))?;
    spec.files
        .iter()
        .map(|file| {
            Ok(Download {
                file,
                url: url.clone(),
                bytes: extract(&mut zip, file.origin).map_err(|cause| source_error(&url, cause))?,
            })
        })
        .collect()
}

/// The body at `url`, reported to `progress` as `label`.
fn download(agent: &ureq::Agent, url: &str, label: &str, progress: &mut dyn Progress) -> Result<Vec<u8>, FetchError> {
    let mut response = agent.get(url).call().map_err(|e| source_error(url, download::describe(&e)))?;
    let size = response.body().content_length();
    let mut bytes = Vec::new();
    let mut body = response.body_mut().as_reader();
    match download::copy_body(&mut body, &mut bytes, label, size, MAX_FILE_BYTES, progress) {
        Ok(_) => Ok(bytes),
        Err(BodyError::Cancelled(cancelled)) => Err(cancelled.into()),
        Err(e) => Err(source_error(url, e)),
    }
}

/// The bytes of the one archive entry whose path is `origin` or ends in `/origin`.
fn extract(zip: &mut zip::ZipArchive<Cursor<Vec<u8>>>, origin: &str) -> Result<Vec<u8>, String> {
    let suffix = format!("/{origin}");
    let matches: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|name| *name == origin || name.ends_with(&suffix))
        .filter(|name| !name.split('/').any(|part| part == MACOS_METADATA_DIR))
        .map(|name| name.into_owned())
        .collect();
    let name = match matches.as_slice() {
        [name] => name,
        [] => return Err(format!("the archive has no entry `{origin}`")),
        several => return Err(format!("the archive has several entries for `{origin}`: {several:?}")),
    };
    let entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = Vec::new();
    // Reading to the end checks the entry's CRC; the limit guards against a decompression bomb.
    entry.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{name}: larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    Ok(bytes)
}

/// Writes the files into a staging folder, reads them back, then renames them into `dir`.
fn install(dataset: DatasetId, dir: &Path, downloads: &[Download]) -> Result<Fetched, FetchError> {
    fs::create_dir_all(dir).map_err(write_error(dir))?;
    let staging = Staging::create(dir)?;
    for download in downloads {
        let path = staging.path.join(download.file.name);
        fs::write(&path, &download.bytes).map_err(write_error(&path))?;
    }
    let mut urls: Vec<String> = downloads.iter().map(|download| download.url.clone()).collect();
    urls.dedup();
    let mut fetched = Fetched { dataset, dir: dir.to_path_buf(), urls, rows: Vec::new(), warnings: Vec::new() };
    verify(&mut fetched, &staging.path, downloads)?;
    for download in downloads {
        let target = dir.join(download.file.name);
        fs::rename(staging.path.join(download.file.name), &target).map_err(write_error(&target))?;
    }
    Ok(fetched)
}

/// Reads the staged files with the project's readers into `fetched`'s rows; counts and checksums
/// that differ from the reference copies are warnings, a file the reader rejects is an error.
fn verify(fetched: &mut Fetched, staged: &Path, downloads: &[Download]) -> Result<(), FetchError> {
    for download in downloads {
        let label = format!("{}/{}", fetched.dataset, download.file.name);
        if let Some(check) = &download.file.check {
            let read = (check.read)(&staged.join(download.file.name))
                .map_err(|e| source_error(&download.url, format!("the reader rejects {label}: {e}")))?;
            if read.len() != check.rows {
                fetched.warnings.push(format!("{label}: {} rows, the reference copy has {}", read.len(), check.rows));
            }
            fetched.rows.push((download.file.name, read.len()));
            fetched.warnings.extend(read.warnings);
        }
        fetched.warnings.extend(checksum_warning(&label, download));
    }
    Ok(())
}

fn checksum_warning(label: &str, download: &Download) -> Option<String> {
    let expected = download.file.sha256_prefix?;
    let digest = Sha256::digest(&download.bytes);
    let actual: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    (!actual.starts_with(expected)).then(|| {
        format!(
            "{label}: sha256 {} differs from the reference copy's {expected} (see data/README.md)",
            &actual[..expected.len()]
        )
    })
}

/// A folder inside the dataset's directory, removed with whatever is left in it when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn create(dir: &Path) -> Result<Self, FetchError> {
        let path = dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        // A folder of this name is a leftover of a killed run that had this process id.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).map_err(write_error(&path))?;
        Ok(Self { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

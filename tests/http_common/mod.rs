//! A small HTTP/1.1 server on 127.0.0.1 for the download tests (no external network): fixed routes,
//! one request per connection, each on its own thread, a log of what was asked. It stops by itself after [`LIFETIME`], when
//! dropped, or after a given number of requests.
#![allow(dead_code)]
use std::collections::HashMap;
use std::io::{Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

/// How long a server waits for requests before it stops by itself.
pub const LIFETIME: Duration = Duration::from_secs(120);

/// One answer. A route answers with its replies in turn and repeats the last one.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce the whole body but hang up after this many bytes.
    pub cut_at: Option<usize>,
    /// Wait this long between the headers and the body (the server answers nothing else meanwhile).
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self { status: 200, headers: Vec::new(), body: body.into(), cut_at: None, delay: Duration::ZERO }
    }

    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: b"no".to_vec(), cut_at: None, delay: Duration::ZERO }
    }

    pub fn redirect(location: &str) -> Self {
        Self::status(302).header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the first `sent` bytes of the announced body, then closes the connection.
    pub fn cut_at(mut self, sent: usize) -> Self {
        self.cut_at = Some(sent);
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub authorization: Option<String>,
}

type Routes = Arc<Mutex<HashMap<String, Vec<Reply>>>>;

pub struct Server {
    pub base: String,
    routes: Routes,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Starts a server that answers at most `max_requests` requests.
    pub fn start(max_requests: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let routes: Routes = Arc::default();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_routes, thread_log, thread_stop) = (routes.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + LIFETIME;
            let mut served = 0;
            while served < max_requests && Instant::now() < deadline && !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        // A thread per connection: clients downloading at once overlap here too.
                        let (routes, log) = (thread_routes.clone(), thread_log.clone());
                        std::thread::spawn(move || answer(stream, &routes, &log));
                        served += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        Self { base, routes, log, stop }
    }

    /// Answers `path` with `replies` in turn (the last one repeats).
    pub fn route(&self, path: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty());
        self.routes.lock().unwrap().insert(path.to_owned(), replies);
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|request| request.path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(mut stream: TcpStream, routes: &Routes, log: &Mutex<Vec<Request>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let authorization = head
        .lines()
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("authorization")))
        .map(|(_, value)| value.trim().to_owned());
    log.lock().unwrap().push(Request { path: path.clone(), authorization });
    let reply = {
        let mut routes = routes.lock().unwrap();
        match routes.get_mut(&path) {
            Some(replies) if replies.len() > 1 => replies.remove(0),
            Some(replies) => replies[0].clone(),
            None => Reply::status(404),
        }
    };
    let mut header =
        format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n", reply.status, reply.body.len());
    for (name, value) in &reply.headers {
        header.push_str(&format!("{name}: {value}\r\n"));
    }
    header.push_str("\r\n");
    let _ = stream.write_all(header.as_bytes());
    std::thread::sleep(reply.delay);
    let sent = reply.cut_at.unwrap_or(reply.body.len());
    let _ = stream.write_all(&reply.body[..sent]);
}

/// The commit every served Hub repository is at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The hex sha256 of `bytes`, the Hub's ETag of a large file.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Serves the files of the checkpoint directory `fixture` as the Hub repository `repo` at branch
/// `revision` and commit [`COMMIT`], as the Hub does: `/{repo}/resolve/{rev}/{file}` with
/// `X-Repo-Commit` and `ETag`; weights are "large files" whose answer is a redirect to a file store
/// (`/store/{etag}`) carrying `X-Linked-Etag` and `X-Linked-Size`. Returns the weights' store path.
pub fn serve_repo(server: &Server, repo: &str, revision: &str, fixture: &Path) -> Vec<(String, String)> {
    let mut stores = Vec::new();
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let etag = sha256(&bytes);
        let replies = if file.ends_with(".safetensors") || file.ends_with(".bin") {
            let store = format!("/store/{etag}");
            server.route(&store, vec![Reply::ok(bytes.clone())]);
            stores.push((file.clone(), store.clone()));
            vec![Reply::redirect(&format!("{}{store}", server.base))
                .header("X-Repo-Commit", COMMIT)
                .header("X-Linked-Etag", &format!("\"{etag}\""))
                .header("X-Linked-Size", &bytes.len().to_string())]
        } else {
            vec![Reply::ok(bytes).header("X-Repo-Commit", COMMIT).header("ETag", &format!("W/\"{}\"", &etag[..20]))]
        };
        for rev in [revision, COMMIT] {
            server.route(&format!("/{repo}/resolve/{rev}/{file}"), replies.clone());
        }
    }
    stores
}

/// A deflated zip of `entries`, as the dataset mirrors serve them; names ending in `/` are folders.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, options).unwrap();
        } else {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

/// Serves a small Twitter hate speech set (`/twitter/…`) and UCI sentiment zip (`/uci/…`), the
/// mirrors `SIFT_FETCH_URL_TWITTER_HATE` and `SIFT_FETCH_URL_UCI_SENTIMENT` can point at: enough
/// tweets and sentences for a stratified dev split and a 10 % target fraction.
pub fn serve_datasets(server: &Server) {
    let mut tweets = String::from("id,label,tweet\n");
    for i in 0..40 {
        let label = u8::from(i % 4 == 0);
        tweets.push_str(&format!("{i},{label},@user tweet number {i} #tag\n"));
    }
    server.route("/twitter/train_tweet.csv", vec![Reply::ok(tweets)]);
    server.route("/twitter/test_tweets.csv", vec![Reply::ok("id,tweet\n99,#test\n")]);
    let file = |name: &str| {
        let lines: String = (0..20).map(|i| format!("{name} sentence {i} was fine.\t{}\n", i % 2)).collect();
        lines.into_bytes()
    };
    let (amazon, imdb, yelp) = (file("amazon"), file("imdb"), file("yelp"));
    let zip = zip_of(&[
        ("sentiment labelled sentences/amazon_cells_labelled.txt", &amazon),
        ("sentiment labelled sentences/imdb_labelled.txt", &imdb),
        ("sentiment labelled sentences/yelp_labelled.txt", &yelp),
        ("sentiment labelled sentences/readme.txt", b"cite the paper\n"),
    ]);
    server.route("/uci/sentiment+labelled+sentences.zip", vec![Reply::ok(zip)]);
}

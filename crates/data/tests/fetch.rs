//! Downloads against a local HTTP server on 127.0.0.1 serving files from a temp dir.
#![cfg(feature = "fetch")]

use realbias_fixtures as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use realbias_data::fetch::{Checksum, Fetched, RemoteFile, checksum_of, fetch_dataset, fetch_file};

/// Serves files from `root`. `/cut/NAME` sends the headers of the whole file but only its first
/// half, then closes (a broken connection). Records the `Range` header of every request.
struct Server {
    base: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl Server {
    fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            // Bounded: a test makes a handful of requests; the thread dies with the process.
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { break };
                let _ = serve(stream, &root, &seen);
            }
        });
        Server { base, ranges }
    }
}

fn serve(
    mut stream: TcpStream,
    root: &Path,
    seen: &Mutex<Vec<Option<String>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = Some(v.trim().trim_end_matches('-').to_string());
        }
    }
    seen.lock().unwrap().push(range.clone());
    let (cut, name) = match path.strip_prefix("/cut/") {
        Some(n) => (true, n.to_string()),
        None => (false, path.trim_start_matches('/').to_string()),
    };
    let Ok(body) = std::fs::read(root.join(&name)) else {
        return stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let start: usize = range.and_then(|r| r.parse().ok()).unwrap_or(0);
    let (status, part) = if start > 0 {
        ("206 Partial Content", &body[start..])
    } else {
        ("200 OK", &body[..])
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        part.len()
    )?;
    let sent = if cut { &part[..part.len() / 2] } else { part };
    stream.write_all(sent)?;
    stream.flush()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn remote(name: &str, bases: &[&str], checksum: Checksum) -> RemoteFile {
    RemoteFile {
        name: name.into(),
        urls: bases.iter().map(|b| format!("{b}{name}")).collect(),
        checksum,
    }
}

#[test]
fn checksum_of_a_known_string() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("abc");
    std::fs::write(&f, "abc").unwrap();
    assert_eq!(
        checksum_of(&f, &Checksum::Md5(String::new())).unwrap(),
        "900150983cd24fb0d6963f7d28e17f72"
    );
    std::fs::write(&f, common::gzip(b"abc")).unwrap();
    assert_eq!(
        checksum_of(&f, &Checksum::Md5Gunzipped(String::new())).unwrap(),
        "900150983cd24fb0d6963f7d28e17f72"
    );
}

#[test]
fn downloads_verifies_and_then_skips_a_present_file() {
    let served = tempfile::tempdir().unwrap();
    let content = common::noise_bytes(300_000, 1);
    std::fs::write(served.path().join("data.bin"), &content).unwrap();
    let server = Server::start(served.path().to_path_buf());
    let out = tempfile::tempdir().unwrap();
    let file = remote(
        "data.bin",
        &[&server.base],
        Checksum::Md5(md5_hex(&content)),
    );
    let got = fetch_file(&file, out.path(), false).unwrap();
    assert_eq!(got, Fetched::Downloaded(out.path().join("data.bin")));
    assert_eq!(std::fs::read(out.path().join("data.bin")).unwrap(), content);
    assert!(!out.path().join("data.bin.part").exists());
    assert_eq!(
        fetch_file(&file, out.path(), false).unwrap(),
        Fetched::AlreadyPresent(out.path().join("data.bin"))
    );
    assert_eq!(
        server.ranges.lock().unwrap().len(),
        1,
        "a verified file is not downloaded again"
    );
}

#[test]
fn a_broken_download_resumes_with_a_range_request() {
    let served = tempfile::tempdir().unwrap();
    let content = common::noise_bytes(200_000, 2);
    std::fs::write(served.path().join("data.bin"), &content).unwrap();
    let server = Server::start(served.path().to_path_buf());
    let out = tempfile::tempdir().unwrap();
    let checksum = Checksum::Md5(md5_hex(&content));
    let cut = remote(
        "data.bin",
        &[&format!("{}cut/", server.base)],
        checksum.clone(),
    );
    let err = fetch_file(&cut, out.path(), false).unwrap_err().to_string();
    assert!(err.contains("connection"), "{err}");
    assert!(
        !out.path().join("data.bin").exists(),
        "a partial download never looks complete"
    );
    let part = std::fs::metadata(out.path().join("data.bin.part"))
        .unwrap()
        .len();
    assert_eq!(part, 100_000);

    let whole = remote("data.bin", &[&server.base], checksum);
    fetch_file(&whole, out.path(), false).unwrap();
    assert_eq!(std::fs::read(out.path().join("data.bin")).unwrap(), content);
    assert_eq!(
        server.ranges.lock().unwrap().last().unwrap().as_deref(),
        Some("100000")
    );
}

#[test]
fn a_corrupt_file_is_a_checksum_error_and_leaves_nothing_behind() {
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("data.bin"), b"not what was published").unwrap();
    let server = Server::start(served.path().to_path_buf());
    let out = tempfile::tempdir().unwrap();
    let file = remote(
        "data.bin",
        &[&server.base],
        Checksum::Md5(md5_hex(b"the real thing")),
    );
    let err = fetch_file(&file, out.path(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains(&md5_hex(b"the real thing")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
}

#[test]
fn a_missing_mirror_falls_through_to_the_next() {
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("data.bin"), b"payload").unwrap();
    let server = Server::start(served.path().to_path_buf());
    let out = tempfile::tempdir().unwrap();
    let file = remote(
        "data.bin",
        &[&format!("{}nowhere/", server.base), &server.base],
        Checksum::Md5(md5_hex(b"payload")),
    );
    fetch_file(&file, out.path(), false).unwrap();
    assert_eq!(
        std::fs::read(out.path().join("data.bin")).unwrap(),
        b"payload"
    );
}

/// The real MNIST files, served locally, pass the canonical checksums and then load.
#[test]
#[ignore = "needs the real MNIST files (REALBIAS_DATA); run with -- --include-ignored"]
fn fetching_mnist_verifies_the_canonical_checksums() {
    let shared = common::real_data_dir("mnist");
    let server = Server::start(shared.join("mnist"));
    let out = tempfile::tempdir().unwrap();
    let fetched = fetch_dataset(
        "mnist",
        out.path(),
        std::slice::from_ref(&server.base),
        false,
    )
    .unwrap();
    assert_eq!(fetched.len(), 4);
    let raw = realbias_data::DatasetSource::Mnist
        .load(out.path())
        .unwrap();
    assert_eq!(raw.train.len(), 60_000);
    let mut buf = Vec::new();
    std::fs::File::open(out.path().join("mnist/t10k-labels-idx1-ubyte.gz"))
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert!(!buf.is_empty());
}

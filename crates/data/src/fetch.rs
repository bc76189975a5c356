//! Downloads from the publishers' sites: checksummed, resumable and atomic.
//!
//! A file is downloaded to `NAME.part` (resumed with an HTTP `Range` request when a previous
//! attempt was cut off), checked against its published MD5 and only then renamed to `NAME`, so
//! a partial or corrupt download never looks complete. A checksum mismatch deletes the part file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use crate::error::{DataError, Result};

/// What a file's published MD5 is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// The downloaded bytes.
    Md5(String),
    /// The gunzipped content (MNIST mirrors recompress the files, the content is canonical).
    Md5Gunzipped(String),
}

impl Checksum {
    /// The expected hex digest.
    pub fn expected(&self) -> &str {
        match self {
            Checksum::Md5(s) | Checksum::Md5Gunzipped(s) => s,
        }
    }
}

/// One file to download: mirrors tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub urls: Vec<String>,
    pub checksum: Checksum,
}

/// The publishers' sites (MNIST's own site first, then the mirror most tools use).
pub const MNIST_BASES: [&str; 2] = [
    "https://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
];
pub const CIFAR10_BASES: [&str; 1] = ["https://www.cs.toronto.edu/~kriz/"];

/// The canonical MD5 sums of the four decompressed MNIST files.
pub const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "a25bea736e30d166cdddb491f175f624",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "2646ac647ad5339dbf082846283269ea",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "27ae3e4e09519cfbb04c329615203637",
    ),
];
/// The MD5 the CIFAR-10 page publishes for the binary version.
pub const CIFAR10_FILE: (&str, &str) =
    ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530");

/// The files of `dataset` (`mnist` or `cifar10`), at the given base URLs (each ending in `/`).
pub fn remote_files(dataset: &str, bases: &[String]) -> Result<Vec<RemoteFile>> {
    let urls = |name: &str| {
        bases
            .iter()
            .map(|b| format!("{b}{name}"))
            .collect::<Vec<_>>()
    };
    match dataset {
        "mnist" => Ok(MNIST_FILES
            .iter()
            .map(|&(name, md5)| RemoteFile {
                name: name.into(),
                urls: urls(name),
                checksum: Checksum::Md5Gunzipped(md5.into()),
            })
            .collect()),
        "cifar10" => Ok(vec![RemoteFile {
            name: CIFAR10_FILE.0.into(),
            urls: urls(CIFAR10_FILE.0),
            checksum: Checksum::Md5(CIFAR10_FILE.1.into()),
        }]),
        other => Err(DataError::invalid(
            "dataset",
            format!("cannot fetch {other:?}: expected mnist or cifar10"),
        )),
    }
}

/// The default base URLs of `dataset`.
pub fn default_bases(dataset: &str) -> Vec<String> {
    let bases: &[&str] = if dataset == "cifar10" {
        &CIFAR10_BASES
    } else {
        &MNIST_BASES
    };
    bases.iter().map(|s| s.to_string()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MD5 of a file, as the checksum defines it.
pub fn checksum_of(path: &Path, checksum: &Checksum) -> Result<String> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader: Box<dyn Read> = match checksum {
        Checksum::Md5(_) => Box::new(std::io::BufReader::new(file)),
        Checksum::Md5Gunzipped(_) => Box::new(GzDecoder::new(std::io::BufReader::new(file))),
    };
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| DataError::format(path, format!("cannot checksum: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    AlreadyPresent(PathBuf),
    Downloaded(PathBuf),
}

/// Downloads `file` into `dir` unless a verified copy is already there.
pub fn fetch_file(file: &RemoteFile, dir: &Path, progress: bool) -> Result<Fetched> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let target = dir.join(&file.name);
    let want = file.checksum.expected();
    if target.is_file() && checksum_of(&target, &file.checksum).is_ok_and(|got| got == want) {
        return Ok(Fetched::AlreadyPresent(target));
    }
    let part = dir.join(format!("{}.part", file.name));
    let mut last_error = None;
    for url in &file.urls {
        match download(url, &part, progress) {
            Ok(()) => {
                let got = checksum_of(&part, &file.checksum);
                if got.as_deref().is_ok_and(|g| g == want) {
                    std::fs::rename(&part, &target).map_err(|e| DataError::io(&target, e))?;
                    return Ok(Fetched::Downloaded(target));
                }
                // A corrupt download must not be resumed nor look complete.
                let _ = std::fs::remove_file(&part);
                let found = got.unwrap_or_else(|e| format!("unreadable ({e})"));
                last_error = Some(DataError::Download {
                    url: url.clone(),
                    problem: format!("checksum mismatch: expected MD5 {want}, found {found}"),
                });
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| DataError::invalid("download", "no URL to fetch from")))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Downloads `url` into `part`, resuming from its current length when the server allows.
fn download(url: &str, part: &Path, progress: bool) -> Result<()> {
    let fail = |problem: String| DataError::Download {
        url: url.to_string(),
        problem,
    };
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent().get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| fail(e.to_string()))?;
    let status = response.status().as_u16();
    let length = |r: &ureq::http::Response<ureq::Body>| {
        r.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    };
    let (append, total) = match status {
        206 => (true, length(&response).map(|l| l + have)),
        200 => (false, length(&response)),
        // The part file already holds everything: let the checksum decide.
        416 if have > 0 => return Ok(()),
        _ => return Err(fail(format!("HTTP status {status}"))),
    };
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(|e| DataError::io(part, e))?;
    let bar = if progress {
        ProgressBar::new(total.unwrap_or(0))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(
        part.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
    );
    let start = if append { have } else { 0 };
    bar.set_position(start);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = start;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| fail(format!("connection broken: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
        received += n as u64;
        bar.set_position(received);
    }
    out.sync_all().map_err(|e| DataError::io(part, e))?;
    bar.finish_and_clear();
    if let Some(total) = total
        && received < total
    {
        return Err(fail(format!(
            "connection closed after {received} of {total} bytes"
        )));
    }
    Ok(())
}

/// Fetches every file of `dataset` into `data_dir/<dataset>/`.
pub fn fetch_dataset(
    dataset: &str,
    data_dir: &Path,
    bases: &[String],
    progress: bool,
) -> Result<Vec<Fetched>> {
    let dir = data_dir.join(dataset);
    remote_files(dataset, bases)?
        .iter()
        .map(|f| fetch_file(f, &dir, progress))
        .collect()
}

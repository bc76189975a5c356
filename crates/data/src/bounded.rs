//! Reads that a hostile file cannot turn into a hang or a huge allocation: only regular files
//! (opened non-blocking, so a FIFO is refused rather than waited on), only up to a length
//! bound checked before anything is allocated, and gzip inflated only up to a bound.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// The most bytes a dataset file may hold (EMNIST's largest IDX file is about 0.6 GB).
pub const MAX_FILE_BYTES: u64 = 2 << 30;
/// How many times its own size a gzip file may inflate to (MNIST's inflate about 5x).
pub const MAX_INFLATION: u64 = 64;

/// Opens `path` for reading if it is a regular file; its length.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| DataError::io(path, e))?;
    let metadata = file.metadata().map_err(|e| DataError::io(path, e))?;
    if !metadata.is_file() {
        return Err(DataError::format(
            path,
            "is not a regular file (a FIFO, a device or a folder): refused",
        ));
    }
    Ok((file, metadata.len()))
}

/// The whole regular file `path`, of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if len > limit {
        return Err(DataError::format(
            path,
            format!("is {len} bytes, more than the {limit} such a file can hold: refused unread"),
        ));
    }
    read_at_most(file, (len as usize, limit), path, "read failed")
}

/// Everything `reader` yields, refused once it passes `limit` bytes; `capacity` is reserved
/// first (never more than `limit`). A read error is reported as `failure: error`.
pub fn read_at_most(
    reader: impl Read,
    (capacity, limit): (usize, u64),
    path: &Path,
    failure: &str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity.min(limit as usize));
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::format(path, format!("{failure}: {e}")))?;
    if out.len() as u64 > limit {
        return Err(DataError::format(
            path,
            format!("holds more than {limit} bytes (a gzip bomb, or not a dataset file): refused"),
        ));
    }
    Ok(out)
}

//! The IDX format of MNIST (and every dataset shipped in its layout: Fashion-MNIST, KMNIST, ...).
//!
//! Header: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then
//! one big-endian `u32` per dimension. Labels are `idx1` (magic 2049), images `idx3` (2051).

use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::error::{DataError, Result};
use crate::images::{RawDataset, RawImages};

pub const LABELS_MAGIC: u32 = 2049;
pub const IMAGES_MAGIC: u32 = 2051;

/// The four standard file names, without the optional `.gz`.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a whole file, inflating it when it starts with the gzip magic bytes.
///
/// Bounded (`bounded`): a regular file of at most [`MAX_FILE_BYTES`](crate::bounded::MAX_FILE_BYTES),
/// inflating to at most [`MAX_INFLATION`](crate::bounded::MAX_INFLATION) times its size.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    use crate::bounded::{MAX_FILE_BYTES, MAX_INFLATION, read_at_most, read_regular};
    let raw = read_regular(path, MAX_FILE_BYTES)?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let limit = (raw.len() as u64 * MAX_INFLATION).min(MAX_FILE_BYTES);
    let gz = GzDecoder::new(raw.as_slice());
    read_at_most(gz, (raw.len() * 4, limit), path, "bad gzip data")
}

fn header_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the magic number and the header length, returning the dimensions.
fn parse_header(bytes: &[u8], path: &Path, magic: u32, dims: usize) -> Result<Vec<usize>> {
    let header_len = 4 + 4 * dims;
    if bytes.is_empty() {
        return Err(DataError::format(path, "empty file"));
    }
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!(
                "truncated header: {} bytes, expected at least {header_len}",
                bytes.len()
            ),
        ));
    }
    let found = header_u32(bytes, 0);
    if found != magic {
        return Err(DataError::format(
            path,
            format!("wrong magic number: expected {magic}, found {found}"),
        ));
    }
    if bytes.len() < header_len {
        return Err(DataError::format(
            path,
            format!(
                "truncated header: {} bytes, expected {header_len}",
                bytes.len()
            ),
        ));
    }
    Ok((0..dims)
        .map(|i| header_u32(bytes, 4 + 4 * i) as usize)
        .collect())
}

/// Checks that the body after the header is exactly `expected` bytes long.
fn check_body(bytes: &[u8], path: &Path, header_len: usize, expected: Option<usize>) -> Result<()> {
    let found = bytes.len() - header_len;
    match expected {
        Some(expected) if found == expected => Ok(()),
        Some(expected) if found < expected => Err(DataError::format(
            path,
            format!("truncated body: header promises {expected} bytes of data, found {found}"),
        )),
        Some(expected) => Err(DataError::format(
            path,
            format!(
                "{} unexpected bytes after the {expected} bytes of data",
                found - expected
            ),
        )),
        None => Err(DataError::format(path, "header dimensions overflow")),
    }
}

/// Parses an `idx1-ubyte` label file. `classes`, when given, bounds the label values.
pub fn parse_labels(bytes: &[u8], path: &Path, classes: Option<usize>) -> Result<Vec<u8>> {
    let dims = parse_header(bytes, path, LABELS_MAGIC, 1)?;
    check_body(bytes, path, 8, Some(dims[0]))?;
    let labels = bytes[8..].to_vec();
    if let Some(classes) = classes
        && let Some((i, &bad)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(DataError::format(
            path,
            format!("label {bad} at item {i} is out of range 0..{}", classes - 1),
        ));
    }
    Ok(labels)
}

/// Parses an `idx3-ubyte` image file into (count, rows, cols, pixels).
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let dims = parse_header(bytes, path, IMAGES_MAGIC, 3)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if count > 0 && (rows == 0 || cols == 0) {
        return Err(DataError::format(
            path,
            format!("images of size {rows}x{cols}"),
        ));
    }
    let expected = count.checked_mul(rows).and_then(|n| n.checked_mul(cols));
    check_body(bytes, path, 16, expected)?;
    Ok((count, rows, cols, bytes[16..].to_vec()))
}

/// Finds `name` or `name.gz` in `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [format!("{name}.gz"), name.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Reads one images + labels pair, checking that they describe the same number of items.
fn read_pair(images: &Path, labels: &Path, classes: Option<usize>) -> Result<RawImages> {
    let (count, rows, cols, pixels) = parse_images(&read_maybe_gz(images)?, images)?;
    let labels_vec = parse_labels(&read_maybe_gz(labels)?, labels, classes)?;
    if labels_vec.len() != count {
        return Err(DataError::format(
            labels,
            format!(
                "{} labels but {} holds {count} images",
                labels_vec.len(),
                images.display()
            ),
        ));
    }
    Ok(RawImages {
        height: rows,
        width: cols,
        channels: 1,
        pixels,
        labels: labels_vec,
    })
}

/// Reads the four standard IDX files (each raw or `.gz`) from `dir`.
///
/// `classes` bounds the labels (10 for MNIST); `None` infers it as the largest label + 1.
/// `fetch_name` is what the "not found" error suggests fetching.
pub fn read_idx_dir(
    dir: &Path,
    name: &str,
    classes: Option<usize>,
    fetch_name: &str,
) -> Result<RawDataset> {
    let mut paths = Vec::with_capacity(4);
    for file in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        match find_file(dir, file) {
            Some(p) => paths.push(p),
            None => {
                return Err(DataError::NotFound {
                    dataset: name.to_string(),
                    dir: dir.to_path_buf(),
                    looked_for: format!("{file}[.gz]"),
                    fetch_name: fetch_name.to_string(),
                });
            }
        }
    }
    let train = read_pair(&paths[0], &paths[1], classes)?;
    let test = read_pair(&paths[2], &paths[3], classes)?;
    if (train.height, train.width) != (test.height, test.width) {
        return Err(DataError::format(
            &paths[2],
            format!(
                "test images are {}x{} but training images are {}x{}",
                test.height, test.width, train.height, train.width
            ),
        ));
    }
    let classes = match classes {
        Some(c) => c,
        None => {
            let max = train
                .labels
                .iter()
                .chain(&test.labels)
                .copied()
                .max()
                .unwrap_or(0);
            max as usize + 1
        }
    };
    Ok(RawDataset {
        name: name.to_string(),
        classes,
        train,
        test,
    })
}

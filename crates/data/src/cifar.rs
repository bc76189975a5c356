//! The CIFAR-10 "binary version": records of 1 label byte + 3,072 pixel bytes (the red, green
//! and blue 32x32 planes, row-major), 10,000 records per batch file.

use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::error::{DataError, Result};
use crate::images::{RawDataset, RawImages};

pub const SIDE: usize = 32;
pub const CHANNELS: usize = 3;
pub const RECORD_SIZE: usize = 1 + CHANNELS * SIDE * SIDE;
pub const CLASSES: usize = 10;
pub const ARCHIVE: &str = "cifar-10-binary.tar.gz";
pub const FOLDER: &str = "cifar-10-batches-bin";
pub const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_BATCH: &str = "test_batch.bin";
/// Records in each of the official batch files; more is an error, as trailing bytes are in an
/// IDX file (fewer are allowed so tests can use small files).
pub const RECORDS_PER_BATCH: usize = 10_000;
/// The most bytes a batch file may hold.
const MAX_BATCH_BYTES: u64 = (RECORDS_PER_BATCH * RECORD_SIZE) as u64;

/// Parses one batch file's bytes into images; `path` names it in errors.
pub fn parse_batch(bytes: &[u8], path: &Path) -> Result<RawImages> {
    if bytes.is_empty() {
        return Err(DataError::format(path, "empty file"));
    }
    if !bytes.len().is_multiple_of(RECORD_SIZE) {
        return Err(DataError::format(
            path,
            format!(
                "size {} is not a multiple of the record size {RECORD_SIZE} \
                 (1 label byte + 3072 pixel bytes): wrong format or truncated",
                bytes.len()
            ),
        ));
    }
    let count = bytes.len() / RECORD_SIZE;
    if count > RECORDS_PER_BATCH {
        return Err(DataError::format(
            path,
            format!(
                "{count} records: a CIFAR-10 batch holds {RECORDS_PER_BATCH} (extra data appended?)"
            ),
        ));
    }
    let mut labels = Vec::with_capacity(count);
    let mut pixels = Vec::with_capacity(count * (RECORD_SIZE - 1));
    for (i, record) in bytes.chunks_exact(RECORD_SIZE).enumerate() {
        if record[0] as usize >= CLASSES {
            return Err(DataError::format(
                path,
                format!("label {} of record {i} is out of range 0..9", record[0]),
            ));
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(RawImages {
        height: SIDE,
        width: SIDE,
        channels: CHANNELS,
        pixels,
        labels,
    })
}

/// Assembles the dataset from the six batch files, given by name; reports missing ones.
fn assemble(mut batches: Vec<(String, RawImages)>, source: &Path) -> Result<RawDataset> {
    let mut take = |name: &str| -> Result<RawImages> {
        let at = batches.iter().position(|(n, _)| n == name).ok_or_else(|| {
            DataError::format(
                source,
                format!("batch {name} is missing (expected 5 training batches and {TEST_BATCH})"),
            )
        })?;
        Ok(batches.swap_remove(at).1)
    };
    let mut train = take(TRAIN_BATCHES[0])?;
    for name in &TRAIN_BATCHES[1..] {
        train = train.concat(take(name)?);
    }
    let test = take(TEST_BATCH)?;
    Ok(RawDataset {
        name: "cifar10".into(),
        classes: CLASSES,
        train,
        test,
    })
}

fn is_batch(name: &str) -> bool {
    name == TEST_BATCH || TRAIN_BATCHES.contains(&name)
}

/// Streams `cifar-10-binary.tar.gz` without extracting anything to disk.
pub fn read_archive(path: &Path) -> Result<RawDataset> {
    let (file, _) = crate::bounded::open_regular(path)?;
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let bad = |e: std::io::Error| DataError::format(path, format!("bad tar.gz archive: {e}"));
    let mut batches = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let entry_path = entry.path().map_err(bad)?.into_owned();
        let Some(name) = entry_path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        if !is_batch(&name) {
            continue;
        }
        let shown = path.join(&entry_path);
        // The tar header's declared size is not trusted with an allocation.
        let capacity = entry.size().min(MAX_BATCH_BYTES) as usize;
        let bounds = (capacity, MAX_BATCH_BYTES);
        let bytes = crate::bounded::read_at_most(&mut entry, bounds, path, "bad tar.gz archive")?;
        batches.push((name, parse_batch(&bytes, &shown)?));
    }
    assemble(batches, path)
}

/// Reads an extracted `cifar-10-batches-bin/` folder.
pub fn read_folder(dir: &Path) -> Result<RawDataset> {
    let mut batches = Vec::new();
    for name in TRAIN_BATCHES.iter().chain([&TEST_BATCH]) {
        let path = dir.join(name);
        if !path.is_file() {
            continue; // reported by `assemble` with the full list of what is expected
        }
        let bytes = crate::bounded::read_regular(&path, MAX_BATCH_BYTES)?;
        batches.push((name.to_string(), parse_batch(&bytes, &path)?));
    }
    assemble(batches, dir)
}

/// Reads CIFAR-10 from `dir` (the `cifar10/` folder of the data folder): the archive if it
/// is there, else the extracted folder.
pub fn read_cifar10_dir(dir: &Path) -> Result<RawDataset> {
    let archive = dir.join(ARCHIVE);
    if archive.is_file() {
        return read_archive(&archive);
    }
    let folder: PathBuf = dir.join(FOLDER);
    if folder.is_dir() {
        return read_folder(&folder);
    }
    Err(DataError::NotFound {
        dataset: "cifar10".into(),
        dir: dir.to_path_buf(),
        looked_for: format!("{ARCHIVE} or {FOLDER}/"),
        fetch_name: "cifar10".into(),
    })
}

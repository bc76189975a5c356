//! Which dataset, and where its files are.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cifar::read_cifar10_dir;
use crate::error::{DataError, Result};
use crate::idx::read_idx_dir;
use crate::images::RawDataset;

/// The environment variable naming the data folder when no `--data-dir` is given.
pub const DATA_ENV: &str = "REALBIAS_DATA";
/// The data folder when neither `--data-dir` nor `REALBIAS_DATA` is given.
pub const DEFAULT_DATA_DIR: &str = "datasets";

/// The data folder: the flag, else `REALBIAS_DATA`, else `datasets/`.
pub fn resolve_data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    match std::env::var_os(DATA_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// A dataset the readers know. In configs: `kind = "mnist"`, `kind = "cifar10"` or
/// `kind = "idx"` with a `path` to a folder of the four MNIST-named IDX files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DatasetSource {
    Mnist,
    Cifar10,
    Idx { path: PathBuf },
}

impl DatasetSource {
    /// Reads the raw images from `data_dir` (`mnist/` or `cifar10/` below it; an `idx` path
    /// is taken as is, relative paths from the working directory).
    pub fn load(&self, data_dir: &Path) -> Result<RawDataset> {
        match self {
            DatasetSource::Mnist => {
                read_idx_dir(&data_dir.join("mnist"), "mnist", Some(10), "mnist")
            }
            DatasetSource::Cifar10 => read_cifar10_dir(&data_dir.join("cifar10")),
            DatasetSource::Idx { path } => {
                let name = path
                    .file_name()
                    .map_or("idx".into(), |n| n.to_string_lossy().into_owned());
                if path.is_file() {
                    return Err(DataError::invalid(
                        "dataset",
                        format!(
                            "{} is a file: idx:PATH takes the folder that holds the four IDX files (train-images-idx3-ubyte, ...)",
                            path.display()
                        ),
                    ));
                }
                if !path.is_dir() {
                    return Err(DataError::invalid(
                        "dataset",
                        format!(
                            "{}: no such folder (idx:PATH takes a folder of the four MNIST-named IDX files)",
                            path.display()
                        ),
                    ));
                }
                read_idx_dir(path, &name, None, "mnist")
            }
        }
    }

    /// A short name for folders and reports.
    pub fn name(&self) -> String {
        match self {
            DatasetSource::Mnist => "mnist".into(),
            DatasetSource::Cifar10 => "cifar10".into(),
            DatasetSource::Idx { path } => path
                .file_name()
                .map_or("idx".into(), |n| n.to_string_lossy().into_owned()),
        }
    }
}

impl FromStr for DatasetSource {
    type Err = DataError;

    /// `mnist`, `cifar10` or `idx:PATH`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mnist" => Ok(DatasetSource::Mnist),
            "cifar10" | "cifar-10" => Ok(DatasetSource::Cifar10),
            _ => match s.strip_prefix("idx:") {
                Some(path) if !path.is_empty() => Ok(DatasetSource::Idx { path: path.into() }),
                _ => Err(DataError::invalid(
                    "dataset",
                    format!("unknown dataset {s:?}: expected mnist, cifar10 or idx:PATH"),
                )),
            },
        }
    }
}

impl fmt::Display for DatasetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSource::Idx { path } => write!(f, "idx:{}", path.display()),
            other => f.write_str(&other.name()),
        }
    }
}

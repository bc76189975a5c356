//! Typed errors of the dataset crate: each names the file and what is wrong with it.

use std::path::PathBuf;

/// Everything that can go wrong while locating, reading, fetching or transforming a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data folder (or the dataset's sub-folder) does not hold the files.
    #[error(
        "{dataset} not found: looked for {looked_for} in {dir}\n  \
         fetch it with `realbias data fetch {fetch_name}` (or add --fetch to this command), or point --data-dir / REALBIAS_DATA at a folder that has it"
    )]
    NotFound {
        dataset: String,
        dir: PathBuf,
        looked_for: String,
        fetch_name: String,
    },

    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file's content violates its format.
    #[error("{path}: {problem}")]
    Format { path: PathBuf, problem: String },

    /// Arguments or options that cannot work (sizes, fractions, label vectors).
    #[error("invalid {what}: {problem}")]
    Invalid { what: &'static str, problem: String },

    /// A download failed or did not match its checksum.
    #[error("download of {url} failed: {problem}")]
    Download { url: String, problem: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, problem: impl Into<String>) -> Self {
        DataError::Invalid {
            what,
            problem: problem.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

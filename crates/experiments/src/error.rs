//! The errors of the experiments layer.

use std::path::PathBuf;

use realbias_train::TrainError;
use realbias_train::config::ConfigError;

use crate::chart::ChartError;

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(
        "{path} was made by a different config (it differs in {keys}); rerun with --force to reuse the folder (finished results the new config would not produce are retrained), or choose another --out"
    )]
    ConfigChanged { path: PathBuf, keys: String },
    #[error(
        "{0}: no experiment here (no experiment.toml); give the folder `realbias run` wrote, e.g. runs/<experiment>"
    )]
    NotAnExperiment(PathBuf),
    #[error("{what}: {source}")]
    Theory {
        what: String,
        #[source]
        source: realbias_theory::TheoryError,
    },
    #[error("{path}: cannot encode: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("cannot encode the resolved config of experiment `{name}` as TOML: {message}")]
    EncodeConfig { name: String, message: String },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Nothing to summarize: no unit has a readable result.
    #[error("{dir}: no finished results to summarize{}", broken_list(.broken))]
    NothingFinished { dir: PathBuf, broken: Vec<String> },
    /// The user stopped the work (Ctrl-C, SIGTERM) before it could finish: nothing is lost,
    /// the same command resumes.
    #[error("interrupted {0}; run the same command again to resume")]
    Interrupted(String),
    /// The censoring network could not provide the labels a censored condition needs.
    #[error("censoring: {0}")]
    Censoring(String),
    #[error(
        "{dir}: another process works in this folder ({holders}); a different config cannot take it over until it stops"
    )]
    FolderInUse { dir: PathBuf, holders: String },
    #[error("{dir}: cannot write here ({source}); choose another --out")]
    NotWritable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("timing this machine for the dry run's estimate: {0}")]
    Timing(String),
    #[error("cannot build a pool of {threads} threads: {message}")]
    Pool { threads: usize, message: String },
}

fn broken_list(broken: &[String]) -> String {
    if broken.is_empty() {
        String::new()
    } else {
        format!(" (unreadable: {})", broken.join("; "))
    }
}

impl ExperimentError {
    /// A theory fit's result, `None` when the user stopped it part-way.
    pub fn unless_interrupted<T>(result: Result<T, Self>) -> Result<Option<T>, Self> {
        match result {
            Err(ExperimentError::Theory {
                source: realbias_theory::TheoryError::Interrupted,
                ..
            }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// Wraps a theory-crate error with what was being computed.
    pub fn theory(what: impl Into<String>) -> impl FnOnce(realbias_theory::TheoryError) -> Self {
        let what = what.into();
        move |source| ExperimentError::Theory { what, source }
    }
}

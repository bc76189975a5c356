//! The errors of one training run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] realbias_data::DataError),
    #[error(transparent)]
    Model(#[from] realbias_model::ModelError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot remove: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading results back from the device failed (or returned the wrong amount of data).
    #[error("reading {what} back from the device failed: {message}")]
    ReadBack { what: &'static str, message: String },
    /// An invariant of the code itself failed: a bug, not bad input.
    #[error("internal error in {what}: {message} (this is a bug in realbias; please report it)")]
    Internal { what: &'static str, message: String },
    #[error(
        "{dataset}: the validation split is empty; early stopping selects on it, so give it at least one example (data.validation or data.subset.validation)"
    )]
    EmptyValidation { dataset: String },
    #[error(
        "{dataset}: the training split is empty: data.validation takes every example of the training file; give it fewer"
    )]
    EmptyTraining { dataset: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(
        "{path}: this checkpoint cannot resume the run: {why}. Re-run with --force to discard it and train the run from the start"
    )]
    CheckpointMismatch { path: PathBuf, why: String },
    /// A checkpoint that passed its checks but whose state cannot be restored.
    #[error(
        "the run's checkpoint is corrupt: {why}. Re-run with --force to discard it and train the run from the start"
    )]
    CorruptCheckpoint { why: String },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    #[error("cannot start a thread for an ensemble's share of members: {0}")]
    Threads(String),
    #[error("these runs cannot be trained as one ensemble: {0}")]
    Ensemble(String),
    /// A loop was handed a method it does not step (the trainer dispatches on the method).
    #[error("optim.method = \"{method}\" cannot train in the {engine} loop")]
    MethodLoop {
        method: &'static str,
        engine: &'static str,
    },
    #[error(
        "an ensemble of {members} networks of H = {hidden} needs about {needed_gib:.1} GiB of memory, and this machine has {available_gib:.1} GiB available; train fewer members at once"
    )]
    EnsembleMemory {
        members: usize,
        hidden: usize,
        needed_gib: f64,
        available_gib: f64,
    },
    #[error(
        "a network of H = {hidden} hidden units needs about {needed_gib:.1} GiB of memory to train, and this machine has {available_gib:.1} GiB available; use a smaller H"
    )]
    Memory {
        hidden: usize,
        needed_gib: f64,
        available_gib: f64,
    },
}

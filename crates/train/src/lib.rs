//! One training run of the paper's protocol (Neyshabur, Tomioka & Srebro 2015) on Burn.
//!
//! The pieces, in the order a run uses them: a validated [`config::TrainConfig`]; the data it
//! names ([`data`]); the compute device ([`backend`], the one place a backend is chosen); the
//! network as a Burn learner model ([`classifier`], with the loss as one fused autodiff node,
//! [`fused`]); the paper's SGD and schedule ([`optim`]); the loop itself ([`trainer::Trainer`],
//! with its [`trainer::StopRule`]), full-split evaluation after every epoch ([`eval`]); and the
//! run's record ([`record`]: `result.json` and `history.csv`, written atomically). [`ensemble`]
//! trains many runs of one width as one batched model, each member the run it would be alone;
//! [`bench`] times both on synthetic data.

pub mod backend;
mod batches;
pub mod bench;
pub mod cg;
pub mod classifier;
pub mod config;
pub mod data;
mod engine;
pub mod ensemble;
mod error;
pub mod eval;
pub mod files;
pub mod flatness;
mod full_batch;
mod fused;
mod ledger;
pub mod line_search;
pub mod measures;
pub mod memory;
pub mod networks;
pub mod optim;
pub mod progress;
pub mod provenance;
pub mod record;
pub mod run_files;
mod shards;
mod stacked_eval;
pub mod state;
pub mod tensor_file;
pub mod weights;
mod trainer;

pub use ensemble::{Member, train_ensemble};
pub use error::TrainError;
pub use progress::{Progress, Quiet};
pub use record::{EpochRecord, FinishedRun, RunResult, StopReason, TrueLabels};
pub use state::{CheckpointSlot, RunCheckpoint};
pub use trainer::{RunData, Trainer, train};

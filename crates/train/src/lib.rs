//! One training run of the paper's protocol (Neyshabur, Tomioka & Srebro 2015) on Burn.
//!
//! The parts, in the order a run uses them:
//!
//! - [`config`]: the validated `TrainConfig` (`[data]`, `[model]`, `[optim]`, `[train]`);
//! - [`data`]: the splits it names; [`backend`]: the device (the one place a backend is
//!   chosen); [`memory`]: whether the run fits;
//! - [`optim`]: `optim.method` and each method's settings, the paper's SGD as Burn optimizers,
//!   conjugate gradient and its line search;
//! - [`engine`]: the one epoch loop and its steppers (a single run on Burn's `Learner`, the
//!   batched ensemble, the full-batch methods), the loss as one fused autodiff node, and the
//!   ledger of evaluation, stop rule and best network;
//! - [`eval`]: one tally of logits for every evaluation; [`measures`]: the complexity and
//!   flatness measures of a trained network;
//! - [`run_files`]: what a run leaves in its folder (`result.json`, `history.csv`,
//!   `network.safetensors`, the checkpoint) and how it is written atomically;
//! - [`weights`]: a network's weights on the host; `bench`: timings on synthetic data.

pub mod backend;
pub mod bench;
pub mod config;
pub mod data;
pub mod engine;
mod error;
pub mod eval;
pub mod measures;
pub mod memory;
pub mod optim;
pub mod progress;
pub mod run_files;
pub mod weights;

pub use engine::ensemble::{Member, train_ensemble};
pub use engine::trainer::{RunData, Trainer, train};
pub use error::TrainError;
pub use progress::{Progress, Quiet};
pub use run_files::record::{EpochRecord, FinishedRun, RunResult, StopReason, TrueLabels};
pub use run_files::state::{CheckpointSlot, RunCheckpoint};

//! The one epoch loop every run goes through, and what it steps.
//!
//! `run_epochs` owns what every kind of run shares: the stop check before an epoch, the
//! epoch's timing, the rollback of a stop that lands mid-epoch (the state at the epoch's
//! start is what gets saved, and the resumed run redoes the epoch), the checkpoint timer,
//! and the save at a stop. What differs is a `Stepper`:
//!
//! - a single mini-batch run (the paper's SGD, Adam) steps through Burn's `Learner`, inside
//!   the training strategy `SupervisedTraining` launches (`learner`);
//! - an ensemble steps its stacked members with a hand-written batched gradient
//!   ([`ensemble`]): members leave the stack as they stop, each with its own weight
//!   decay, which a `Learner` (one model, one optimizer state) cannot express;
//! - the full-batch methods step one line-searched iteration an epoch (`full_batch`):
//!   conjugate gradient is this crate's, L-BFGS is Burn's, and both need a closure that
//!   evaluates the loss at trial points, which the `Learner`'s one-gradient-per-step
//!   interface does not give.

pub(crate) mod batches;
pub mod classifier;
pub mod ensemble;
pub(crate) mod full_batch;
pub(crate) mod fused;
pub(crate) mod learner;
pub(crate) mod ledger;
mod optimizer_record;
pub(crate) mod shards;
pub(crate) mod stacked_eval;
pub(crate) mod trainer;

use std::time::Instant;

use burn::tensor::Device;

use crate::config::TrainSettings;
use crate::run_files::record::StopReason;
use crate::run_files::state::CheckpointTimer;
use crate::{Progress, TrainError};

/// How an epoch of steps ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stepped {
    /// Every step of the epoch was taken.
    Done,
    /// A stop was requested before the epoch's last step: the stepper is back at the
    /// epoch's start.
    Stopped,
    /// The weights can no longer change (a full-batch method at its floating-point floor).
    Stalled,
}

/// One run's, or many runs', weights and optimizer state, stepped an epoch at a time.
pub(crate) trait Stepper {
    /// Steps every run through epoch `epoch` (1-based).
    fn step_epoch(
        &mut self,
        epoch: usize,
        progress: &mut dyn Progress,
    ) -> Result<Stepped, TrainError>;

    /// Evaluates and records epoch `epoch` just stepped (its steps took `seconds`); why the
    /// stepper stops now, once every run it steps has stopped.
    fn record_epoch(
        &mut self,
        epoch: usize,
        seconds: f64,
        progress: &mut dyn Progress,
    ) -> Result<Option<StopReason>, TrainError>;

    /// Writes the checkpoint of every run still training.
    fn save(&mut self) -> Result<(), TrainError>;

    /// Why a stepper stops whose weights can no longer change.
    fn at_fixed_point(&self) -> StopReason {
        StopReason::Stalled
    }
}

/// Steps `stepper` through `epochs` (after the last one done) until it stops, a stop is
/// requested, or the epochs run out; returns why it stopped.
pub(crate) fn run_epochs(
    stepper: &mut dyn Stepper,
    epochs: std::ops::RangeInclusive<usize>,
    (settings, device): (&TrainSettings, &Device),
    progress: &mut dyn Progress,
) -> Result<StopReason, TrainError> {
    let mut timer = CheckpointTimer::new(settings);
    for epoch in epochs {
        if progress.stop_requested() {
            stepper.save()?;
            return Ok(StopReason::Interrupted);
        }
        let t = Instant::now();
        match stepper.step_epoch(epoch, progress)? {
            Stepped::Done => {}
            Stepped::Stopped => {
                stepper.save()?;
                return Ok(StopReason::Interrupted);
            }
            Stepped::Stalled => return Ok(stepper.at_fixed_point()),
        }
        // On a GPU the steps are queued: wait for them so the epoch's time is its own (a
        // failed step shows up in the evaluation's read-back).
        let _ = device.sync();
        let seconds = t.elapsed().as_secs_f64();
        if let Some(reason) = stepper.record_epoch(epoch, seconds, progress)? {
            return Ok(reason);
        }
        if timer.due() {
            stepper.save()?;
            timer.restart();
        }
    }
    Ok(StopReason::MaxEpochs)
}

//! What the caller of a run sees while it goes on, and how it asks the run to stop.

use crate::run_files::record::EpochRecord;

/// Progress of one run. The one way to stop a run early is [`Progress::stop_requested`],
/// polled between epochs.
pub trait Progress {
    /// Called once per mini-batch with (batch, batches in the epoch).
    fn batch(&mut self, _epoch: usize, _batch: usize, _batches: usize) {}
    /// Called after each epoch's evaluation (epoch 0 is the initial network).
    fn epoch(&mut self, _record: &EpochRecord) {}
    /// Called when the run resumes from its checkpoint, with its history so far (its last
    /// record is the last epoch done).
    fn resumed(&mut self, _history: &[EpochRecord]) {}
    /// Called when `--force` discarded the checkpoint at `path`, with why it could not resume
    /// the run (the run then starts again).
    fn discarded(&mut self, _path: &std::path::Path, _why: &str) {}
    /// True when the user asked to stop.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Silent progress, for tests and sweeps.
pub struct Quiet;
impl Progress for Quiet {}

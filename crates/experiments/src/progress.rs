//! What an experiment reports while it runs, for every kind, and the one way to stop it.

use crate::unit::Unit;

/// Progress of an experiment's units on its workers.
pub trait ExperimentProgress: Send + Sync {
    /// A unit starts on worker `worker`.
    fn started(&self, _worker: usize, _unit: &Unit) {}
    /// A one-line status of the unit in flight on `worker` (an epoch's errors, say).
    fn status(&self, _worker: usize, _unit: &Unit, _text: &str) {}
    /// A unit finished (`skipped`: it had finished before this run), with a one-line outcome.
    fn finished(&self, _unit: &Unit, _outcome: &str, _skipped: bool) {}
    /// A note about shared work (a censoring network trained, a convex baseline solved).
    fn note(&self, _text: &str) {}
    /// True once the user asked to stop: units in flight stop at their next check, finished
    /// ones are kept.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Progress that shows nothing and never stops (tests).
pub struct Quiet;
impl ExperimentProgress for Quiet {}

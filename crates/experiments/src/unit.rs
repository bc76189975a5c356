//! A unit of an experiment's work, and what running it came to.

use std::path::PathBuf;

/// One unit of an experiment's work (a training run, a fit), finished once its result file
/// holds a readable result.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Position in the plan.
    pub index: usize,
    pub label: String,
    /// The file that holds the unit's result once it finished.
    pub result: PathBuf,
    /// Relative cost: the most expensive units start first.
    pub cost: f64,
}

/// What running a unit came to.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitOutcome {
    /// Finished and saved, with a one-line outcome.
    Finished(String),
    /// Stopped by the user before it finished; nothing was saved.
    Interrupted,
}

impl Unit {
    /// Units of equal cost, one per `(label, result file)`, in plan order.
    pub fn uniform(plan: impl IntoIterator<Item = (String, PathBuf)>) -> Vec<Unit> {
        plan.into_iter()
            .enumerate()
            .map(|(index, (label, result))| Unit {
                index,
                label,
                result,
                cost: 1.0,
            })
            .collect()
    }
}

//! The `[sweep]` section itself: widths, repetitions, the conditions of Figure 2, the
//! weight-decay grid, the censoring network and the `[sweep.vary]` axes. Kept apart from
//! `config` (the whole experiment) so that `vary` can build points of it without a cycle.

use realbias_train::engine::ensemble::EnsembleMode;
use serde::{Deserialize, Serialize};

use super::design::{Axes, Design};

/// The conditions of Figure 2 (Figure 1 is `plain` on the full data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Original labels, no regularization.
    Plain,
    /// Original labels, weight decay λ chosen per H from a grid by validation error.
    WeightDecay,
    /// Labels of the whole dataset replaced by a small (H0) network's predictions.
    Censored,
    /// Censored, then a fraction of the labels changed to another class.
    CensoredNoise,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Plain => "plain",
            Condition::WeightDecay => "weight-decay",
            Condition::Censored => "censored",
            Condition::CensoredNoise => "censored-noise",
        }
    }

    pub fn is_censored(self) -> bool {
        matches!(self, Condition::Censored | Condition::CensoredNoise)
    }
}

fn one() -> usize {
    1
}
fn plain_only() -> Vec<Condition> {
    vec![Condition::Plain]
}
fn paper_grid() -> Vec<f64> {
    vec![1e-5, 1e-4, 1e-3, 1e-2]
}
fn five_percent() -> f64 {
    0.05
}

/// `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Hidden units to train, e.g. [4, 8, ..., 4096].
    pub hidden: Vec<usize>,
    /// Repetitions per (condition, H); repetition r uses seed `train.seed + r`, which redraws
    /// the subset, the label noise, the initialization and the batch order.
    #[serde(default = "one")]
    pub repetitions: usize,
    #[serde(default = "plain_only")]
    pub conditions: Vec<Condition>,
    /// The λ grid of the `weight-decay` condition.
    #[serde(default = "paper_grid")]
    pub weight_decay_grid: Vec<f64>,
    /// H0 of the censoring network (the paper: 4 for MNIST, 16 for CIFAR-10).
    #[serde(default)]
    pub censor_hidden: Option<usize>,
    /// Epoch cap of the censoring network's training (default: `train.max_epochs`).
    #[serde(default)]
    pub censor_max_epochs: Option<usize>,
    /// Label noise of the `censored-noise` condition (5%).
    #[serde(default = "five_percent")]
    pub censor_noise: f64,
    /// `[sweep.vary]`: more axes than H, over any config key (see [`super::vary`]).
    #[serde(default, skip_serializing_if = "Axes::is_empty")]
    pub vary: Axes,
    /// How `vary`'s axes combine: `"grid"` (every combination) or `"one-at-a-time"`.
    #[serde(default, skip_serializing_if = "Design::is_grid")]
    pub vary_design: Design,
    /// Train runs that share a width (repetitions, conditions, the λ grid) as one batched
    /// model: `"auto"` (where the backend gains from it), `"on"` (at every width) or `"off"`.
    /// Results are those of the runs alone either way.
    #[serde(default, skip_serializing_if = "EnsembleMode::is_auto")]
    pub ensemble: EnsembleMode,
}

/// The most repetitions of a sweep (the paper's experiments use 5).
pub const MAX_REPETITIONS: usize = 1_000;
/// The most runs one point of a sweep may plan.
pub const MAX_RUNS: usize = 1_000_000;

impl SweepConfig {
    /// An upper bound on the runs this section plans (`None`: it overflows): every width,
    /// repetition and condition, each weight decay of the grid counted as a condition.
    pub fn planned_runs(&self) -> Option<usize> {
        let decays = match self.conditions.contains(&Condition::WeightDecay) {
            true => self.weight_decay_grid.len(),
            false => 0,
        };
        let conditions = self.conditions.len().checked_add(decays)?;
        self.hidden
            .len()
            .checked_mul(self.repetitions)?
            .checked_mul(conditions)
    }
}

/// The first value that occurs twice in `values`.
pub(super) fn first_repeat<T: PartialEq>(values: &[T]) -> Option<&T> {
    values
        .iter()
        .enumerate()
        .find(|(i, v)| values[..*i].contains(v))
        .map(|(_, v)| v)
}

//! The convex program of one dimension, the selecting view, and one network fit.

use std::time::Instant;

use burn::tensor::Device;
use nalgebra::DMatrix;
use realbias_theory::convex_nn::{
    ConvexNnSolution, patterns_exact_2d, patterns_sampled, random_library, solve_convex_nn,
    solve_library_l1,
};
use realbias_theory::network::{
    Activation, Descent, Loss, TracePoint, Weights, l1_objective, train_l1_constrained,
    train_weight_decay,
};
use serde::{Deserialize, Serialize};

use super::config::{ConvexNnConfig, Formulation, PlannedFit};
use crate::ExperimentError;
use crate::oracle::BurnOracle;

/// One library size's `ℓ1` fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectingRow {
    pub library: usize,
    pub objective: f64,
    /// `(objective − convex) / convex`: ≥ 0 up to solver accuracy when the convex value is
    /// exact.
    pub relative_gap: f64,
    /// Library units with `|v_j|` above `network.active_fraction` of `Σ|v_j|`.
    pub used_units: usize,
    pub status: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitResult {
    pub d: usize,
    pub hidden: usize,
    pub init: usize,
    pub loss: Loss,
    pub formulation: Formulation,
    pub iterations: usize,
    pub converged: bool,
    pub seconds: f64,
    /// The data term and the formulation's own objective.
    pub data_loss: f64,
    pub objective: f64,
    /// Eq. (4)'s value at these weights (for eq. 5 fits, after balancing).
    pub weight_decay_objective: f64,
    /// Eq. (5)'s value after Theorem 1's rescaling to `‖u_h‖ = 1` (feasible).
    pub l1_objective_rescaled: f64,
    pub balance_gap: f64,
    pub path_norm: f64,
    pub active_units: usize,
    /// Active units after merging those with the same activation pattern on the training set
    /// and the same sign of `v_h` (on the data they add up to one unit of no larger norm): the
    /// count that is at most `n + 1` at an optimum.
    pub merged_units: usize,
    /// The weights and the training-set predictions (for the pictures and eq. 4 vs 5).
    pub weights: Weights,
    pub predictions: Vec<f64>,
    pub history: Vec<TracePoint>,
}

impl FitResult {
    /// A fit of the Corollary 1 sweep: squared loss, eq. (4), input dimension `d`.
    pub fn in_sweep(&self, d: usize) -> bool {
        self.d == d && self.loss == Loss::Squared && self.formulation == Formulation::WeightDecay
    }
}

/// The convex program of one dimension, summarized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvexSummary {
    pub d: usize,
    /// `true` when every pattern was enumerated (the optimum is certified), `false` when
    /// sampled (an upper bound).
    pub exact: bool,
    pub patterns: usize,
    pub objective: f64,
    pub solver_primal: f64,
    pub solver_dual: f64,
    pub status: String,
    pub iterations: u32,
    pub max_violation: f64,
    pub active_units: usize,
    pub seconds: f64,
    /// The network read off the solution (one balanced unit per nonzero group).
    pub weights: Weights,
    pub predictions: Vec<f64>,
    /// The selecting view on the same data, by library size.
    #[serde(default)]
    pub selecting: Vec<SelectingRow>,
}

impl ConvexSummary {
    /// The convex value as a figure's reference line, labelled by what it certifies.
    pub fn reference_line(&self) -> (String, f64) {
        let label = if self.exact {
            "convex optimum (certified)"
        } else {
            "convex, sampled patterns (upper bound)"
        };
        (label.to_string(), self.objective)
    }
}

pub(crate) fn convex(config: &ConvexNnConfig, d: usize) -> Result<ConvexSummary, ExperimentError> {
    let (x, y) = config.data(d);
    let t = Instant::now();
    let (patterns, exact) = if d == 2 {
        (
            patterns_exact_2d(&x).map_err(ExperimentError::theory("patterns"))?,
            true,
        )
    } else {
        (
            patterns_sampled(&x, config.problem.sampled_patterns, config.problem.seed),
            false,
        )
    };
    let s: ConvexNnSolution = solve_convex_nn(&x, &y, config.problem.lambda, &patterns).map_err(
        ExperimentError::theory(format!("the convex program, d = {d}")),
    )?;
    let selecting = selecting(config, &x, &y, s.objective, d)?;
    let path: f64 = s
        .groups
        .iter()
        .map(|(c, _)| c.iter().map(|a| a * a).sum::<f64>().sqrt())
        .sum();
    let threshold = config.network.active_fraction * path;
    Ok(ConvexSummary {
        d,
        exact,
        patterns: s.patterns,
        objective: s.objective,
        solver_primal: s.solver_primal,
        solver_dual: s.solver_dual,
        status: s.status.clone(),
        iterations: s.iterations,
        max_violation: s.max_violation,
        active_units: s.active_units(threshold),
        seconds: t.elapsed().as_secs_f64(),
        weights: s.to_weights(threshold),
        predictions: s.predictions.clone(),
        selecting,
    })
}

fn selecting(
    config: &ConvexNnConfig,
    x: &DMatrix<f64>,
    y: &[f64],
    convex_objective: f64,
    d: usize,
) -> Result<Vec<SelectingRow>, ExperimentError> {
    let sizes = &config.selecting.library_sizes;
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let library = random_library(d, largest, config.selecting.seed);
    sizes
        .iter()
        .map(|&m| {
            let t = Instant::now();
            let s = solve_library_l1(x, y, config.problem.lambda, &library[..m]).map_err(
                ExperimentError::theory(format!("the ℓ1 fit over {m} library units, d = {d}")),
            )?;
            let total: f64 = s.weights.iter().map(|w| w.abs()).sum();
            Ok(SelectingRow {
                library: m,
                objective: s.objective,
                relative_gap: (s.objective - convex_objective) / convex_objective,
                used_units: s.used(config.network.active_fraction * total),
                status: s.status.clone(),
                seconds: t.elapsed().as_secs_f64(),
            })
        })
        .collect()
}

pub(crate) fn fit(
    config: &ConvexNnConfig,
    planned: &PlannedFit,
    device: &Device,
    stop: &dyn Fn() -> bool,
) -> Result<FitResult, ExperimentError> {
    let (x, y) = config.data(planned.d);
    let targets: Vec<f64> = match planned.loss {
        Loss::Squared => y,
        Loss::Logistic => y
            .iter()
            .map(|t| if *t >= 0.0 { 1.0 } else { -1.0 })
            .collect(),
    };
    let n = targets.len();
    let y = DMatrix::from_column_slice(n, 1, &targets);
    let ones = DMatrix::from_element(n, 1, 1.0);
    let mut oracle = BurnOracle::new(&x, &y, &ones, Activation::Relu, planned.loss, device);
    let std = config.network.init_std;
    let seed = config.network.seed + planned.init as u64;
    let start = Weights::gaussian(planned.d, planned.hidden, 1, std, std, seed);
    let lambda = config.problem.lambda;

    let t = Instant::now();
    let descent: Descent = match planned.formulation {
        Formulation::WeightDecay => {
            train_weight_decay(&mut oracle, &start, lambda, &config.optim, stop)
        }
        Formulation::L1Constrained => {
            train_l1_constrained(&mut oracle, &start, lambda, &config.optim, stop)
        }
    }
    .map_err(ExperimentError::theory(planned.label()))?;
    let seconds = t.elapsed().as_secs_f64();
    let w = &descent.weights;
    // Re-evaluated in f64 on the host network: the oracle's numbers are f32.
    let x_host = x.clone();
    let mut host = realbias_theory::network::HostOracle::new(x, y, Activation::Relu, planned.loss);
    let predictions = realbias_theory::network::Oracle::predictions(&mut host, w)
        .map_err(ExperimentError::theory("predictions"))?;
    let data_loss: f64 = predictions
        .iter()
        .zip(&targets)
        .map(|(f, t)| planned.loss.value(*f, *t))
        .sum();
    let balanced = w.balanced();
    let path = w.path_norm();
    let objective = match planned.formulation {
        Formulation::WeightDecay => data_loss + lambda * w.weight_decay_penalty(),
        Formulation::L1Constrained => l1_objective(data_loss, w, lambda),
    };
    Ok(FitResult {
        d: planned.d,
        hidden: planned.hidden,
        init: planned.init,
        loss: planned.loss,
        formulation: planned.formulation,
        iterations: descent.iterations,
        converged: descent.converged,
        seconds,
        data_loss,
        objective,
        weight_decay_objective: data_loss + lambda * balanced.weight_decay_penalty(),
        l1_objective_rescaled: l1_objective(data_loss, &w.unit_inputs(), lambda),
        balance_gap: w.balance_gap(),
        path_norm: path,
        active_units: w.active_units(config.network.active_fraction * path),
        merged_units: merged_units(w, &x_host, config.network.active_fraction * path),
        weights: descent.weights.clone(),
        predictions,
        history: descent.history,
    })
}

fn merged_units(w: &Weights, x: &DMatrix<f64>, threshold: f64) -> usize {
    let norms = w.input_norms();
    let mut groups: Vec<(Vec<bool>, bool)> = (0..w.h)
        .filter(|&j| norms[j] * w.v[j].abs() > threshold)
        .map(|j| {
            let pattern = (0..x.nrows())
                .map(|t| (0..w.d).map(|i| x[(t, i)] * w.u[i * w.h + j]).sum::<f64>() > 0.0)
                .collect();
            (pattern, w.v[j] > 0.0)
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups.len()
}

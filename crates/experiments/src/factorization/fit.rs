//! One fit of the linear network, and the convex baselines it is measured against.

use std::time::Instant;

use burn::tensor::Device;
use nalgebra::DMatrix;
use realbias_theory::completion::{
    CompletionProblem, ConvexSettings, ConvexSolution, min_trace_norm_interpolant,
    trace_norm_regularized,
};
use realbias_theory::network::{
    Activation, Loss, Weights, train_weight_decay, weight_decay_objective,
};
use realbias_theory::trace::rank_measures;
use serde::{Deserialize, Serialize};

use super::config::{FactorizationConfig, PlannedFit, Regime};
use crate::ExperimentError;
use crate::oracle::BurnOracle;

/// What one fit measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitResult {
    pub observed: usize,
    pub inner: usize,
    #[serde(flatten)]
    pub regime: Regime,
    pub iterations: usize,
    pub converged: bool,
    pub seconds: f64,
    pub observed_rmse: f64,
    pub held_out_rmse: f64,
    pub trace_norm: f64,
    pub effective_rank: f64,
    pub numerical_rank: usize,
    /// `½(‖U‖² + ‖V‖²)`, never below the trace norm (eq. 3).
    pub factor_cost: f64,
    /// Penalized fits: `L(UV) + λ½(‖U‖² + ‖V‖²)`, the convex optimum, and their relative gap.
    pub objective: Option<f64>,
    pub convex_objective: Option<f64>,
    pub objective_gap: Option<f64>,
    /// `‖W − W*‖_F / ‖W*‖_F` to the convex solution of the same regime (the trace-norm
    /// regularized one for penalized fits, the minimum-trace-norm interpolant otherwise).
    pub distance_to_convex: f64,
}

/// One convex solution, summarized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSummary {
    pub objective: f64,
    pub dual_bound: f64,
    pub relative_gap: f64,
    pub certified: bool,
    pub iterations: usize,
    pub trace_norm: f64,
    pub effective_rank: f64,
    pub numerical_rank: usize,
    pub observed_rmse: f64,
    pub held_out_rmse: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    pub observed: usize,
    pub truth_trace_norm: f64,
    pub lambda: f64,
    pub regularized: BaselineSummary,
    pub interpolant: BaselineSummary,
}

pub(crate) struct Setting {
    pub problem: CompletionProblem,
    pub regularized: ConvexSolution,
    pub interpolant: ConvexSolution,
    pub baselines: Baselines,
}

fn summarize(
    problem: &CompletionProblem,
    s: &ConvexSolution,
    seconds: f64,
) -> Result<BaselineSummary, ExperimentError> {
    let ranks = rank_measures(&s.w).map_err(ExperimentError::theory("baseline rank"))?;
    Ok(BaselineSummary {
        objective: s.objective,
        dual_bound: s.dual_bound,
        relative_gap: s.relative_gap(),
        certified: s.certified,
        iterations: s.iterations,
        trace_norm: ranks.trace_norm,
        effective_rank: ranks.effective_rank,
        numerical_rank: ranks.numerical_rank,
        observed_rmse: problem.observed_rmse(&s.w),
        held_out_rmse: problem.held_out_rmse(&s.w),
        seconds,
    })
}

pub(crate) fn setting(
    config: &FactorizationConfig,
    observed: usize,
) -> Result<Setting, ExperimentError> {
    let p = &config.problem;
    let problem = CompletionProblem::generate(p.n, p.rank, observed, p.seed)
        .map_err(ExperimentError::theory("the completion problem"))?;
    let settings = ConvexSettings {
        relative_gap: config.convex.relative_gap,
        max_iterations: config.convex.max_iterations,
    };
    let lambda = config.factorization.lambda;
    let t = Instant::now();
    let regularized = trace_norm_regularized(&problem, lambda, None, settings).map_err(
        ExperimentError::theory("the trace-norm regularized solution"),
    )?;
    let t_reg = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let interpolant = min_trace_norm_interpolant(&problem, settings).map_err(
        ExperimentError::theory("the minimum-trace-norm interpolant"),
    )?;
    let t_int = t.elapsed().as_secs_f64();
    let baselines = Baselines {
        observed,
        truth_trace_norm: rank_measures(&problem.truth)
            .map_err(ExperimentError::theory("the truth's trace norm"))?
            .trace_norm,
        lambda,
        regularized: summarize(&problem, &regularized, t_reg)?,
        interpolant: summarize(&problem, &interpolant, t_int)?,
    };
    Ok(Setting {
        problem,
        regularized,
        interpolant,
        baselines,
    })
}

pub(crate) fn fit(
    config: &FactorizationConfig,
    planned: &PlannedFit,
    setting: &Setting,
    device: &Device,
    stop: &dyn Fn() -> bool,
) -> Result<FitResult, ExperimentError> {
    let problem = &setting.problem;
    let n = problem.n();
    let mut oracle = BurnOracle::new(
        &DMatrix::identity(n, n),
        &problem.truth,
        &problem.mask,
        Activation::Linear,
        Loss::Squared,
        device,
    );
    let (lambda, scale) = match planned.regime {
        Regime::Unregularized { init_scale } => (0.0, init_scale),
        Regime::Penalized { lambda, init_scale } => (lambda, init_scale),
    };
    let start = Weights::gaussian(n, planned.inner, n, scale, scale, config.factorization.seed);
    let t = Instant::now();
    let descent = train_weight_decay(&mut oracle, &start, lambda, &config.optim, stop)
        .map_err(ExperimentError::theory(planned.label()))?;
    let seconds = t.elapsed().as_secs_f64();
    let w = descent.weights.u_matrix() * descent.weights.v_matrix();
    let ranks = rank_measures(&w).map_err(ExperimentError::theory(planned.label()))?;
    let (objective, convex_objective, objective_gap, reference) = match planned.regime {
        Regime::Penalized { lambda, .. } => {
            // Recomputed in f64 from the final weights (the oracle's loss is f32).
            let obj = weight_decay_objective(problem.data_loss(&w), &descent.weights, lambda);
            let opt = setting.regularized.objective;
            (
                Some(obj),
                Some(opt),
                Some((obj - opt) / opt),
                &setting.regularized.w,
            )
        }
        Regime::Unregularized { .. } => (None, None, None, &setting.interpolant.w),
    };
    Ok(FitResult {
        observed: planned.observed,
        inner: planned.inner,
        regime: planned.regime,
        iterations: descent.iterations,
        converged: descent.converged,
        seconds,
        observed_rmse: problem.observed_rmse(&w),
        held_out_rmse: problem.held_out_rmse(&w),
        trace_norm: ranks.trace_norm,
        effective_rank: ranks.effective_rank,
        numerical_rank: ranks.numerical_rank,
        factor_cost: descent.weights.weight_decay_penalty(),
        objective,
        convex_objective,
        objective_gap,
        distance_to_convex: (&w - reference).norm() / reference.norm().max(1e-300),
    })
}

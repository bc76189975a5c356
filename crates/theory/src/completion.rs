//! Section 3's matrix-completion problem and its convex baselines.
//!
//! A ground-truth `n x n` matrix of rank `r` is observed on a random set `Ω` of `m` entries;
//! the rest are held out. The convex baselines are computed from the matrix alone, never from
//! a factorization:
//! - the trace-norm regularized solution `argmin_W ½‖P_Ω(W − M)‖² + λ‖W‖_tr`, by accelerated
//!   proximal gradient (FISTA with adaptive restart; the proximal map is singular value
//!   thresholding), stopped on a duality gap;
//! - the minimum-trace-norm interpolant `argmin ‖W‖_tr s.t. P_Ω(W) = P_Ω(M)` (the `λ → 0`
//!   limit), by ADMM, stopped on a duality gap.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::TheoryError;
use crate::trace::{singular_value_threshold, spectral_norm, trace_norm};

/// A matrix-completion instance.
#[derive(Debug, Clone)]
pub struct CompletionProblem {
    /// The ground truth `M`, `n x n`, normalized to a root-mean-square entry of 1
    /// (`‖M‖_F = n`), so errors read as fractions of the signal.
    pub truth: DMatrix<f64>,
    /// 1 on observed entries, 0 on held-out ones.
    pub mask: DMatrix<f64>,
    pub rank: usize,
}

impl CompletionProblem {
    /// `M = A Bᵀ` with `A, B` standard Gaussian `n x r`, rescaled to RMS entry 1, and `observed`
    /// entries drawn uniformly without replacement; everything from `seed`.
    pub fn generate(
        n: usize,
        rank: usize,
        observed: usize,
        seed: u64,
    ) -> Result<Self, TheoryError> {
        if n == 0 || rank == 0 || rank > n {
            return Err(TheoryError::InvalidProblem(format!(
                "need 1 <= rank ({rank}) <= n ({n})"
            )));
        }
        if observed == 0 || observed >= n * n {
            return Err(TheoryError::InvalidProblem(format!(
                "observed entries ({observed}) must be between 1 and n² - 1 = {}",
                n * n - 1
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut gaussian = |rows: usize, cols: usize| {
            DMatrix::from_fn(rows, cols, |_, _| StandardNormal.sample(&mut rng))
        };
        let a: DMatrix<f64> = gaussian(n, rank);
        let b: DMatrix<f64> = gaussian(n, rank);
        let mut truth = a * b.transpose();
        let scale = n as f64 / truth.norm();
        truth *= scale;
        let mut mask = DMatrix::zeros(n, n);
        for index in sample(&mut rng, n * n, observed) {
            mask[(index / n, index % n)] = 1.0;
        }
        Ok(CompletionProblem { truth, mask, rank })
    }

    pub fn n(&self) -> usize {
        self.truth.nrows()
    }

    pub fn observed(&self) -> usize {
        self.mask.iter().filter(|&&m| m > 0.0).count()
    }

    /// `P_Ω(W − M)`.
    pub fn residual(&self, w: &DMatrix<f64>) -> DMatrix<f64> {
        (w - &self.truth).component_mul(&self.mask)
    }

    /// The training loss `½‖P_Ω(W − M)‖²`, the loss the factorization is fitted to.
    pub fn data_loss(&self, w: &DMatrix<f64>) -> f64 {
        0.5 * self.residual(w).norm_squared()
    }

    /// Root-mean-square error on the observed entries.
    pub fn observed_rmse(&self, w: &DMatrix<f64>) -> f64 {
        (self.residual(w).norm_squared() / self.observed() as f64).sqrt()
    }

    /// Root-mean-square error on the held-out entries.
    pub fn held_out_rmse(&self, w: &DMatrix<f64>) -> f64 {
        let held = self.mask.map(|m| 1.0 - m);
        let sq = (w - &self.truth).component_mul(&held).norm_squared();
        (sq / (self.n() * self.n() - self.observed()) as f64).sqrt()
    }
}

/// Stopping rule of the convex solvers.
#[derive(Debug, Clone, Copy)]
pub struct ConvexSettings {
    /// Stop when `(primal − dual) / max(primal, 1e-12)` falls below this.
    pub relative_gap: f64,
    pub max_iterations: usize,
}

impl Default for ConvexSettings {
    fn default() -> Self {
        ConvexSettings {
            relative_gap: 1e-9,
            max_iterations: 100_000,
        }
    }
}

/// A convex baseline with its certificate: `dual_bound ≤ optimum ≤ objective`.
#[derive(Debug, Clone)]
pub struct ConvexSolution {
    pub w: DMatrix<f64>,
    /// The objective at `w` (`L(W) + λ‖W‖_tr`, or `‖W‖_tr` for the interpolant).
    pub objective: f64,
    /// A lower bound on the optimum from a dual-feasible point.
    pub dual_bound: f64,
    pub iterations: usize,
    /// Whether the gap reached `ConvexSettings::relative_gap`.
    pub certified: bool,
}

impl ConvexSolution {
    pub fn relative_gap(&self) -> f64 {
        (self.objective - self.dual_bound) / self.objective.abs().max(1e-12)
    }
}

/// `L(W) + λ‖W‖_tr` at `w`.
pub fn regularized_objective(
    problem: &CompletionProblem,
    w: &DMatrix<f64>,
    lambda: f64,
) -> Result<f64, TheoryError> {
    Ok(problem.data_loss(w) + lambda * trace_norm(w)?)
}

/// The dual bound `⟨Z, M⟩ − ½‖Z‖²` at `Z = P_Ω(M − W)` shrunk into `‖Z‖_op ≤ λ`.
fn regularized_dual_bound(
    problem: &CompletionProblem,
    w: &DMatrix<f64>,
    lambda: f64,
) -> Result<f64, TheoryError> {
    let mut z = -problem.residual(w);
    let op = spectral_norm(&z)?;
    if op > lambda {
        z *= lambda / op;
    }
    Ok(z.dot(&problem.truth) - 0.5 * z.norm_squared())
}

/// `argmin_W ½‖P_Ω(W − M)‖² + λ‖W‖_tr` by FISTA (step 1, the gradient's Lipschitz constant)
/// with function-value restarts, from `start` (or zero).
pub fn trace_norm_regularized(
    problem: &CompletionProblem,
    lambda: f64,
    start: Option<&DMatrix<f64>>,
    settings: ConvexSettings,
) -> Result<ConvexSolution, TheoryError> {
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(TheoryError::InvalidProblem(format!(
            "λ = {lambda} must be positive (use min_trace_norm_interpolant for λ → 0)"
        )));
    }
    let n = problem.n();
    let mut x = start.cloned().unwrap_or_else(|| DMatrix::zeros(n, n));
    let mut y = x.clone();
    let mut t = 1.0f64;
    let mut objective = regularized_objective(problem, &x, lambda)?;
    let mut dual = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut certified = false;
    while iterations < settings.max_iterations {
        iterations += 1;
        let step = &y - problem.residual(&y);
        let next = singular_value_threshold(&step, lambda)?;
        let next_objective = regularized_objective(problem, &next, lambda)?;
        if next_objective > objective && t > 1.0 {
            // Restart the momentum: the extrapolation overshot. (A plain proximal step, t = 1,
            // is always taken: it can only rise by rounding.)
            y = x.clone();
            t = 1.0;
            continue;
        }
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        y = &next + (&next - &x) * ((t - 1.0) / t_next);
        t = t_next;
        x = next;
        objective = next_objective;
        if iterations % 10 == 0 || iterations == settings.max_iterations {
            dual = dual.max(regularized_dual_bound(problem, &x, lambda)?);
            if (objective - dual) <= settings.relative_gap * objective.abs().max(1e-12) {
                certified = true;
                break;
            }
        }
    }
    Ok(ConvexSolution {
        w: x,
        objective,
        dual_bound: dual,
        iterations,
        certified,
    })
}

/// The minimum-trace-norm interpolant `argmin ‖W‖_tr s.t. P_Ω(W) = P_Ω(M)` by ADMM on the
/// split `Z = W` (`Z` carries the trace norm, `W` the constraint), with residual balancing of
/// the penalty. The returned `W` interpolates exactly; the bound comes from the scaled dual
/// variable, which is supported on `Ω`.
pub fn min_trace_norm_interpolant(
    problem: &CompletionProblem,
    settings: ConvexSettings,
) -> Result<ConvexSolution, TheoryError> {
    let observed = problem.truth.component_mul(&problem.mask);
    let free = problem.mask.map(|m| 1.0 - m);
    let mut w = observed.clone();
    let mut scaled_dual = DMatrix::zeros(problem.n(), problem.n());
    let mut rho = 1.0 / (0.1 * spectral_norm(&observed)?.max(1e-12));
    let mut objective = trace_norm(&w)?;
    let mut bound = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut certified = false;
    while iterations < settings.max_iterations {
        iterations += 1;
        let z = singular_value_threshold(&(&w - &scaled_dual), 1.0 / rho)?;
        let w_next = &observed + (&z + &scaled_dual).component_mul(&free);
        scaled_dual += &z - &w_next;
        let primal_residual = (&z - &w_next).norm();
        let dual_residual = rho * (&w_next - &w).norm();
        w = w_next;
        if iterations % 10 == 0 || iterations == settings.max_iterations {
            objective = trace_norm(&w)?;
            // Y = −ρΛ is a subgradient of ‖Z‖_tr supported on Ω; any such Y, scaled into the
            // unit spectral ball, gives ‖W‖_tr ≥ ⟨Y, W⟩ = ⟨Y, M⟩ for every interpolant W.
            let y = &scaled_dual * (-rho);
            let op = spectral_norm(&y)?;
            bound = bound.max(y.dot(&observed) / op.max(1.0));
            if objective - bound <= settings.relative_gap * objective.abs().max(1e-12) {
                certified = true;
                break;
            }
            // Residual balancing (Boyd et al. 2011, §3.4.1); the scaled dual rescales with ρ.
            if primal_residual > 10.0 * dual_residual {
                rho *= 2.0;
                scaled_dual /= 2.0;
            } else if dual_residual > 10.0 * primal_residual {
                rho /= 2.0;
                scaled_dual *= 2.0;
            }
        }
    }
    Ok(ConvexSolution {
        w,
        objective,
        dual_bound: bound,
        iterations,
        certified,
    })
}

//! Checks that make Sections 3 and 4 numeric (f64 reference implementation, no Burn).

use nalgebra::DMatrix;
use proptest::prelude::*;
use realbias_theory::completion::{
    CompletionProblem, ConvexSettings, min_trace_norm_interpolant, regularized_objective,
    trace_norm_regularized,
};
use realbias_theory::convex_nn::{
    patterns_exact_2d, patterns_sampled, solve_convex_nn, toy_regression,
};
use realbias_theory::network::{
    Activation, DescentSettings, HostOracle, Loss, Oracle, Weights, l1_objective,
    train_l1_constrained, train_weight_decay, weight_decay_objective,
};
use realbias_theory::trace::{
    balanced_factors, factor_cost, rank_measures, spectral_norm, trace_norm,
};

fn matrix(rows: usize, cols: usize, values: &[f64]) -> DMatrix<f64> {
    DMatrix::from_row_slice(rows, cols, &values[..rows * cols])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Eq. (3): the SVD's balanced factorization costs exactly ‖W‖_tr; any other factorization
    /// of the same W (here A R, B R⁻ᵀ for a random invertible R, padded with zero columns)
    /// costs at least as much.
    #[test]
    fn trace_norm_is_the_cheapest_factorization(
        rows in 2usize..7, cols in 2usize..7, rank in 1usize..4,
        values in prop::collection::vec(-2.0f64..2.0, 64),
        mix in prop::collection::vec(-1.0f64..1.0, 16),
    ) {
        let rank = rank.min(rows).min(cols);
        let a0 = matrix(rows, rank, &values);
        let b0 = matrix(cols, rank, &values[32..]);
        let w = &a0 * b0.transpose();
        let tr = trace_norm(&w).unwrap();
        let (a, b) = balanced_factors(&w).unwrap();
        prop_assert!(((&a * b.transpose()) - &w).norm() <= 1e-9 * (1.0 + w.norm()));
        prop_assert!((factor_cost(&a, &b) - tr).abs() <= 1e-9 * (1.0 + tr));
        // R = I + 0.5 M, invertible for the draws where it is well conditioned.
        let r = DMatrix::identity(rank, rank) + matrix(rank, rank, &mix) * 0.5;
        if let Some(inv) = r.clone().try_inverse() {
            prop_assume!(inv.norm() < 1e3);
            let a2 = &a0 * &r;
            let b2 = &b0 * inv.transpose();
            prop_assert!(((&a2 * b2.transpose()) - &w).norm() <= 1e-8 * (1.0 + w.norm()));
            prop_assert!(factor_cost(&a2, &b2) >= tr - 1e-9 * (1.0 + tr));
            let pad_a = a2.clone().insert_columns(rank, 2, 0.0);
            let pad_b = b2.clone().insert_columns(rank, 2, 0.0);
            prop_assert!(factor_cost(&pad_a, &pad_b) >= tr - 1e-9 * (1.0 + tr));
        }
    }

    /// Theorem 1's rescaling: the function is unchanged, the balanced net's penalty equals
    /// Σ‖u‖‖v‖ ≤ the original penalty, and the unit-input net is feasible for eq. (5) with
    /// λΣ|v| equal to that same value.
    #[test]
    fn rescaling_keeps_the_function_and_meets_the_bound(seed in 0u64..1000, h in 1usize..6) {
        let (x, y) = toy_regression(9, 3, 0.1, seed);
        let mut oracle = HostOracle::new(x, DMatrix::from_column_slice(9, 1, &y), Activation::Relu, Loss::Squared);
        let w = Weights::gaussian(3, h, 1, 1.3, 0.4, seed);
        let before = oracle.predictions(&w).unwrap();
        let balanced = w.balanced();
        let unit = w.unit_inputs();
        for other in [&balanced, &unit] {
            for (p, q) in before.iter().zip(oracle.predictions(other).unwrap()) {
                prop_assert!((p - q).abs() <= 1e-10 * (1.0 + p.abs()));
            }
        }
        let path = w.path_norm();
        prop_assert!((balanced.weight_decay_penalty() - path).abs() <= 1e-10 * (1.0 + path));
        prop_assert!(balanced.balance_gap() <= 1e-10 * (1.0 + path));
        prop_assert!(w.weight_decay_penalty() >= path - 1e-12);
        prop_assert!(unit.input_norms().iter().all(|&a| a <= 1.0 + 1e-12));
        prop_assert!((unit.output_l1() - path).abs() <= 1e-10 * (1.0 + path));
    }
}

#[test]
fn rank_measures_read_off_the_spectrum() {
    let w = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![2.0, 2.0, 0.0, 0.0]));
    let m = rank_measures(&w).unwrap();
    assert!((m.effective_rank - 2.0).abs() < 1e-12);
    assert_eq!(m.numerical_rank, 2);
    assert!((m.trace_norm - 4.0).abs() < 1e-12);
}

/// The oracle's gradient against central finite differences, for every activation and loss.
#[allow(clippy::needless_range_loop)] // parallel indexing of weights and gradients
#[test]
fn host_gradient_matches_finite_differences() {
    let (x, y) = toy_regression(7, 3, 0.1, 3);
    for (activation, loss) in [
        (Activation::Relu, Loss::Squared),
        (Activation::Relu, Loss::Logistic),
        (Activation::Linear, Loss::Squared),
    ] {
        let targets = match loss {
            Loss::Logistic => y.iter().map(|t| t.signum()).collect::<Vec<_>>(),
            Loss::Squared => y.clone(),
        };
        let mut oracle = HostOracle::new(
            x.clone(),
            DMatrix::from_column_slice(7, 1, &targets),
            activation,
            loss,
        );
        let w = Weights::gaussian(3, 4, 1, 1.0, 1.0, 11);
        let (mut gu, mut gv) = (vec![0.0; 12], vec![0.0; 4]);
        oracle.loss_and_gradient(&w, &mut gu, &mut gv).unwrap();
        let mut scratch = (vec![0.0; 12], vec![0.0; 4]);
        let mut f = |w: &Weights| {
            oracle
                .loss_and_gradient(w, &mut scratch.0, &mut scratch.1)
                .unwrap()
        };
        let eps = 1e-6;
        for i in 0..12 {
            let (mut p, mut m) = (w.clone(), w.clone());
            p.u[i] += eps;
            m.u[i] -= eps;
            let fd = (f(&p) - f(&m)) / (2.0 * eps);
            assert!(
                (fd - gu[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "{activation:?} {loss:?} u[{i}]: {fd} vs {}",
                gu[i]
            );
        }
        for j in 0..4 {
            let (mut p, mut m) = (w.clone(), w.clone());
            p.v[j] += eps;
            m.v[j] -= eps;
            let fd = (f(&p) - f(&m)) / (2.0 * eps);
            assert!(
                (fd - gv[j]).abs() < 1e-5 * (1.0 + fd.abs()),
                "{activation:?} {loss:?} v[{j}]"
            );
        }
    }
}

/// The soft-impute solution satisfies its optimality condition ‖P_Ω(M − W)‖_op ≤ λ and a
/// certified duality gap.
#[test]
fn trace_norm_regularized_solution_is_certified() {
    let problem = CompletionProblem::generate(30, 3, 270, 5).unwrap();
    let lambda = 1.0;
    let s = trace_norm_regularized(&problem, lambda, None, ConvexSettings::default()).unwrap();
    assert!(
        s.certified,
        "gap {:e} after {} iterations",
        s.relative_gap(),
        s.iterations
    );
    assert!(s.dual_bound <= s.objective);
    let residual = -problem.residual(&s.w);
    assert!(spectral_norm(&residual).unwrap() <= lambda * (1.0 + 1e-3));
    let recomputed = regularized_objective(&problem, &s.w, lambda).unwrap();
    assert!((recomputed - s.objective).abs() < 1e-9 * s.objective);
}

/// The interpolant fits the observed entries exactly, is certified, costs no more trace norm
/// than the truth (which also interpolates), and with dense observations recovers the truth.
#[test]
fn min_trace_norm_interpolant_recovers_a_densely_observed_matrix() {
    let problem = CompletionProblem::generate(30, 2, 540, 6).unwrap();
    let s = min_trace_norm_interpolant(&problem, ConvexSettings::default()).unwrap();
    assert!(
        s.certified,
        "gap {:e} after {} iterations",
        s.relative_gap(),
        s.iterations
    );
    assert!(problem.observed_rmse(&s.w) < 1e-12);
    assert!(s.objective <= trace_norm(&problem.truth).unwrap() * (1.0 + 1e-6));
    assert!(
        problem.held_out_rmse(&s.w) < 1e-3,
        "held-out RMSE {}",
        problem.held_out_rmse(&s.w)
    );
}

fn completion_oracle(problem: &CompletionProblem) -> HostOracle {
    let n = problem.n();
    let mut oracle = HostOracle::new(
        DMatrix::identity(n, n),
        problem.truth.clone(),
        Activation::Linear,
        Loss::Squared,
    );
    oracle.mask = problem.mask.clone();
    oracle
}

/// Burer-Monteiro: the factorized, Frobenius-penalized objective reaches the convex
/// trace-norm optimum once k ≥ rank of the convex solution, and stays above it for k = 1.
#[test]
fn factorization_reaches_the_convex_optimum_when_wide_enough() {
    let problem = CompletionProblem::generate(20, 3, 180, 7).unwrap();
    let lambda = 1.0;
    let convex = trace_norm_regularized(&problem, lambda, None, ConvexSettings::default()).unwrap();
    let rank = rank_measures(&convex.w).unwrap().numerical_rank;
    let settings = DescentSettings {
        lr: 0.05,
        momentum: 0.9,
        max_iterations: 20_000,
        gradient_tolerance: 1e-9,
        record_every: 1000,
    };
    let mut oracle = completion_oracle(&problem);
    for k in [1, rank, 8] {
        let start = Weights::gaussian(20, k, 20, 0.1, 0.1, 1);
        let fit = train_weight_decay(&mut oracle, &start, lambda, &settings, &|| false).unwrap();
        let gap = (fit.objective - convex.objective) / convex.objective;
        assert!(
            gap > -1e-9,
            "below the certified optimum at k = {k}: {gap:e}"
        );
        if k >= rank {
            assert!(gap < 1e-6, "k = {k} (rank {rank}): relative gap {gap:e}");
            let w = fit.weights.u_matrix() * fit.weights.v_matrix();
            assert!((w - &convex.w).norm() < 1e-3 * convex.w.norm());
        } else {
            assert!(
                gap > 1e-3,
                "k = {k} < rank {rank} should not reach the optimum: {gap:e}"
            );
        }
    }
}

fn regression_oracle(n: usize, seed: u64) -> (HostOracle, DMatrix<f64>, Vec<f64>) {
    let (x, y) = toy_regression(n, 2, 0.2, seed);
    let oracle = HostOracle::new(
        x.clone(),
        DMatrix::from_column_slice(n, 1, &y),
        Activation::Relu,
        Loss::Squared,
    );
    (oracle, x, y)
}

/// The exact d = 2 convex program: constraints hold, the network read off it computes the
/// same predictions at the same eq. (4) objective, sampled patterns only bound it from above,
/// and weight decay with H ≥ n + 1 units reaches it while no network gets below it.
#[test]
fn weight_decay_network_meets_the_exact_convex_optimum() {
    let n = 12;
    let lambda = 0.1;
    let (mut oracle, x, y) = regression_oracle(n, 4);
    let patterns = patterns_exact_2d(&x).unwrap();
    assert!(patterns.len() <= 2 * n);
    let convex = solve_convex_nn(&x, &y, lambda, &patterns).unwrap();
    assert!(
        convex.max_violation < 1e-7,
        "violation {}",
        convex.max_violation
    );
    let rel = |a: f64, b: f64| (a - b) / b.abs();
    assert!(rel(convex.solver_primal, convex.objective).abs() < 1e-6);
    assert!(rel(convex.solver_primal, convex.solver_dual).abs() < 1e-6);

    let net = convex.to_weights(1e-6 * convex.objective);
    assert!(net.h <= n + 1, "{} active units", net.h);
    let (mut gu, mut gv) = (vec![0.0; net.u.len()], vec![0.0; net.v.len()]);
    let loss = oracle.loss_and_gradient(&net, &mut gu, &mut gv).unwrap();
    assert!(rel(weight_decay_objective(loss, &net, lambda), convex.objective).abs() < 1e-5);

    let sampled = solve_convex_nn(&x, &y, lambda, &patterns_sampled(&x, 6, 1)).unwrap();
    assert!(sampled.objective >= convex.objective * (1.0 - 1e-7));

    // Gradient descent on eq. (4) is a non-convex search: from some starts it stalls in a
    // spurious local minimum (seen: 0.9% and 5% above the optimum at H = n + 1 and 2n). The
    // claim checked is the paper's: with H > n units the optimum is reachable (the best of three
    // starts gets there) and nothing gets below it.
    let settings = DescentSettings {
        lr: 0.01,
        momentum: 0.9,
        max_iterations: 100_000,
        gradient_tolerance: 1e-7,
        record_every: 1000,
    };
    let fits: Vec<_> = (0..3)
        .map(|seed| {
            let start = Weights::gaussian(2, 2 * n, 1, 0.5, 0.5, seed);
            train_weight_decay(&mut oracle, &start, lambda, &settings, &|| false).unwrap()
        })
        .collect();
    for fit in &fits {
        assert!(
            rel(fit.objective, convex.objective) > -1e-7,
            "below the certified optimum"
        );
    }
    let best = fits
        .iter()
        .min_by(|a, b| a.objective.total_cmp(&b.objective))
        .unwrap();
    let gap = rel(best.objective, convex.objective);
    assert!(gap < 1e-4, "best relative gap {gap:e}");
    // At a stationary point of eq. (4) every unit is balanced (Theorem 1's proof).
    assert!(best.weights.balance_gap() < 1e-4 * best.objective);
    // Theorem 1: rescaled, it is feasible for eq. (5) with the same objective value.
    let unit = best.weights.unit_inputs();
    assert!(unit.input_norms().iter().all(|&a| a <= 1.0 + 1e-12));
    let l1 = l1_objective(best.loss, &unit, lambda);
    assert!(rel(l1, best.objective).abs() < 1e-4);
}

/// Eq. (5) trained directly by proximal gradient reaches the same optimum and the same
/// predictions as eq. (4).
#[test]
fn l1_constrained_network_reaches_the_same_optimum() {
    let n = 12;
    let lambda = 0.1;
    let (mut oracle, x, y) = regression_oracle(n, 4);
    let convex = solve_convex_nn(&x, &y, lambda, &patterns_exact_2d(&x).unwrap()).unwrap();
    let settings = DescentSettings {
        lr: 0.01,
        momentum: 0.9,
        max_iterations: 100_000,
        gradient_tolerance: 1e-7,
        record_every: 1000,
    };
    let fit = (0..3)
        .map(|seed| {
            let start = Weights::gaussian(2, 2 * n, 1, 0.5, 0.5, seed);
            train_l1_constrained(&mut oracle, &start, lambda, &settings, &|| false).unwrap()
        })
        .min_by(|a, b| a.objective.total_cmp(&b.objective))
        .unwrap();
    assert!(fit.weights.input_norms().iter().all(|&a| a <= 1.0 + 1e-12));
    let gap = (fit.objective - convex.objective) / convex.objective;
    assert!((-1e-7..1e-4).contains(&gap), "relative gap {gap:e}");
    let predictions = oracle.predictions(&fit.weights).unwrap();
    for (p, q) in predictions.iter().zip(&convex.predictions) {
        assert!((p - q).abs() < 1e-2, "{p} vs {q}");
    }
}

/// The "selecting" view: ℓ1 over nested random libraries of unit vectors bounds the convex
/// optimum from above and closes in on it as the library grows.
#[test]
fn random_libraries_approach_the_convex_optimum_from_above() {
    use realbias_theory::convex_nn::{random_library, solve_library_l1};
    let (_, x, y) = regression_oracle(12, 4);
    let lambda = 0.1;
    let exact = solve_convex_nn(&x, &y, lambda, &patterns_exact_2d(&x).unwrap()).unwrap();
    let library = random_library(2, 2000, 9);
    let mut previous = f64::INFINITY;
    for m in [10, 100, 2000] {
        let s = solve_library_l1(&x, &y, lambda, &library[..m]).unwrap();
        assert!(
            s.objective >= exact.objective * (1.0 - 1e-7),
            "m = {m} below the optimum"
        );
        assert!(
            s.objective <= previous * (1.0 + 1e-7),
            "m = {m}: larger library, worse fit"
        );
        previous = s.objective;
    }
    assert!(
        (previous - exact.objective) / exact.objective < 1e-3,
        "{previous} vs {}",
        exact.objective
    );
}

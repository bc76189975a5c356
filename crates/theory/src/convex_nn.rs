//! The convex neural net (eq. 8) for squared loss, solved without training any network.
//!
//! For a bias-free two-layer ReLU network and `L = ½(f − y)²`, eq. (4) over any number of
//! units has the same optimum as a convex program over the activation patterns
//! `D = diag(1[X g ≥ 0])` the data admits (Pilanci & Ergen, 2020):
//!
//! `min ½‖Σ_i D_i X (c_i − c'_i) − y‖² + λ Σ_i (‖c_i‖ + ‖c'_i‖)`
//! `s.t. (2D_i − I) X c_i ≥ 0, (2D_i − I) X c'_i ≥ 0`,
//!
//! a second-order cone program, solved here by Clarabel (interior point). A nonzero `c_i`
//! is a unit with `u = c_i/√‖c_i‖`, `v = +√‖c_i‖` (`c'_i`: `v = −√‖c'_i‖`): the constraints
//! make `D_i` that unit's real activation pattern, so the network computes exactly the convex
//! program's predictions at weight-decay cost `Σ‖c‖`.
//!
//! With `d = 2` every pattern is enumerated (a line through the origin sorts the points by
//! angle) and the optimum is the certified global optimum of eq. (4). With larger `d` the
//! patterns are sampled, the program is a restriction, and its optimum an upper bound.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettings, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::TheoryError;
use crate::network::Weights;

/// An activation pattern: which examples a unit is active on.
pub type Pattern = Vec<bool>;

fn pattern_of(x: &DMatrix<f64>, g: &[f64]) -> Pattern {
    (0..x.nrows())
        .map(|t| (0..x.ncols()).map(|i| x[(t, i)] * g[i]).sum::<f64>() >= 0.0)
        .collect()
}

fn dedup(mut patterns: Vec<Pattern>) -> Vec<Pattern> {
    patterns.retain(|p| p.iter().any(|&a| a));
    patterns.sort();
    patterns.dedup();
    patterns
}

/// Every activation pattern of bias-free ReLU units on 2-dimensional inputs (the all-off
/// pattern left out). A unit direction `g` changes pattern only where it crosses `x_t^⊥`; the
/// midpoints of the arcs between those `2n` angles give every pattern there is.
pub fn patterns_exact_2d(x: &DMatrix<f64>) -> Result<Vec<Pattern>, TheoryError> {
    if x.ncols() != 2 {
        return Err(TheoryError::InvalidProblem(format!(
            "exact pattern enumeration needs d = 2, not d = {}",
            x.ncols()
        )));
    }
    use std::f64::consts::{FRAC_PI_2, TAU};
    let mut angles: Vec<f64> = (0..x.nrows())
        .filter(|&t| x[(t, 0)] != 0.0 || x[(t, 1)] != 0.0)
        .flat_map(|t| {
            let a = x[(t, 1)].atan2(x[(t, 0)]);
            [a + FRAC_PI_2, a - FRAC_PI_2]
        })
        .map(|a| a.rem_euclid(TAU))
        .collect();
    angles.sort_by(f64::total_cmp);
    angles.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    if angles.is_empty() {
        return Ok(Vec::new());
    }
    let patterns = (0..angles.len())
        .map(|i| {
            let next = if i + 1 < angles.len() {
                angles[i + 1]
            } else {
                angles[0] + TAU
            };
            let mid = 0.5 * (angles[i] + next);
            pattern_of(x, &[mid.cos(), mid.sin()])
        })
        .collect();
    Ok(dedup(patterns))
}

/// Patterns of `count` random Gaussian directions (distinct ones kept).
pub fn patterns_sampled(x: &DMatrix<f64>, count: usize, seed: u64) -> Vec<Pattern> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let patterns = (0..count)
        .map(|_| {
            let g: Vec<f64> = (0..x.ncols())
                .map(|_| StandardNormal.sample(&mut rng))
                .collect();
            pattern_of(x, &g)
        })
        .collect();
    dedup(patterns)
}

/// The solved convex program.
#[derive(Debug, Clone)]
pub struct ConvexNnSolution {
    /// `½‖f − y‖² + λΣ‖c‖`, recomputed from the solution.
    pub objective: f64,
    /// Clarabel's primal and dual objective values.
    pub solver_primal: f64,
    pub solver_dual: f64,
    pub status: String,
    pub iterations: u32,
    pub patterns: usize,
    /// One `(c, sign)` per pattern and sign: the unit `sign·[⟨c, x⟩]_+`.
    pub groups: Vec<(Vec<f64>, f64)>,
    /// The convex program's predictions on the training inputs.
    pub predictions: Vec<f64>,
    /// The largest violation of the cone constraints, recomputed from the solution.
    pub max_violation: f64,
}

impl ConvexNnSolution {
    /// Groups with `‖c‖ > threshold`.
    pub fn active_units(&self, threshold: f64) -> usize {
        self.groups
            .iter()
            .filter(|(c, _)| norm(c) > threshold)
            .count()
    }

    /// The network (`k = 1`) that computes the solution, one balanced unit per group with
    /// `‖c‖ > threshold`.
    pub fn to_weights(&self, threshold: f64) -> Weights {
        let active: Vec<&(Vec<f64>, f64)> = self
            .groups
            .iter()
            .filter(|(c, _)| norm(c) > threshold)
            .collect();
        let d = self.groups.first().map_or(0, |g| g.0.len());
        let h = active.len();
        let mut w = Weights::zeros(d, h, 1);
        for (j, (c, sign)) in active.into_iter().enumerate() {
            let root = norm(c).sqrt();
            for (i, ci) in c.iter().enumerate() {
                w.u[i * h + j] = ci / root;
            }
            w.v[j] = sign * root;
        }
        w
    }
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// What Clarabel returned for a solved problem.
struct Solved {
    x: Vec<f64>,
    status: String,
    iterations: u32,
    primal: f64,
    dual: f64,
}

/// `min ½‖r‖² + qᵀz s.t. A z + s = b, s ∈ cones`, where `r` is the block `residual` of `z`:
/// both programs here are least squares on a residual plus a linear penalty. Anything but a
/// (possibly reduced-accuracy) solution is an error.
fn solve_residual_qp(
    a: &CscMatrix<f64>,
    b: &[f64],
    q: &[f64],
    cones: &[SupportedConeT<f64>],
    residual: std::ops::Range<usize>,
) -> Result<Solved, TheoryError> {
    let vars = q.len();
    let n = residual.len();
    let p = CscMatrix::new_from_triplets(
        vars,
        vars,
        residual.clone().collect(),
        residual.collect(),
        vec![1.0; n],
    );
    let settings = DefaultSettings {
        verbose: false,
        max_iter: 500,
        tol_gap_abs: 1e-10,
        tol_gap_rel: 1e-10,
        tol_feas: 1e-10,
        ..DefaultSettings::default()
    };
    let mut solver = DefaultSolver::new(&p, q, a, b, cones, settings)
        .map_err(|e| TheoryError::SolverSetup(format!("{e:?}")))?;
    solver.solve();
    let solution = &solver.solution;
    let status = format!("{:?}", solution.status);
    if !matches!(
        solution.status,
        SolverStatus::Solved | SolverStatus::AlmostSolved
    ) {
        return Err(TheoryError::SolverFailed {
            status,
            primal: solution.obj_val,
            dual: solution.obj_val_dual,
        });
    }
    Ok(Solved {
        x: solution.x.clone(),
        status,
        iterations: solution.iterations,
        primal: solution.obj_val,
        dual: solution.obj_val_dual,
    })
}

/// Solves the convex program for inputs `x` (`n x d`), targets `y`, penalty `λ` and the given
/// activation patterns.
pub fn solve_convex_nn(
    x: &DMatrix<f64>,
    y: &[f64],
    lambda: f64,
    patterns: &[Pattern],
) -> Result<ConvexNnSolution, TheoryError> {
    check_problem(x, y, lambda, patterns)?;
    let (n, d) = (x.nrows(), x.ncols());
    let groups = 2 * patterns.len();
    // Variables: [c_1 … c_G (d each) | t_1 … t_G | r (n)], groups 0..P positive, P..2P negative.
    let t0 = groups * d;
    let r0 = t0 + groups;
    let vars = r0 + n;
    let program = constraints(x, y, patterns, t0, r0);
    let a = CscMatrix::new_from_triplets(program.rows, vars, program.i, program.j, program.v);
    let mut q = vec![0.0; vars];
    q[t0..r0].fill(lambda);
    let solution = solve_residual_qp(&a, &program.b, &q, &program.cones, r0..vars)?;
    let z = &solution.x;
    let groups_out: Vec<(Vec<f64>, f64)> = (0..groups)
        .map(|g| {
            (
                z[g * d..(g + 1) * d].to_vec(),
                if g < patterns.len() { 1.0 } else { -1.0 },
            )
        })
        .collect();
    // Everything below is recomputed from the solution, not taken from the solver.
    let (predictions, violation) = predictions_and_violation(x, patterns, &groups_out);
    let fit: f64 = predictions
        .iter()
        .zip(y)
        .map(|(f, t)| 0.5 * (f - t) * (f - t))
        .sum();
    let penalty: f64 = groups_out.iter().map(|(c, _)| norm(c)).sum();
    Ok(ConvexNnSolution {
        objective: fit + lambda * penalty,
        solver_primal: solution.primal,
        solver_dual: solution.dual,
        status: solution.status,
        iterations: solution.iterations,
        patterns: patterns.len(),
        groups: groups_out,
        predictions,
        max_violation: violation,
    })
}

fn check_problem(
    x: &DMatrix<f64>,
    y: &[f64],
    lambda: f64,
    patterns: &[Pattern],
) -> Result<(), TheoryError> {
    let n = x.nrows();
    if y.len() != n {
        return Err(TheoryError::InvalidProblem(format!(
            "{} targets for {n} examples",
            y.len()
        )));
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(TheoryError::InvalidProblem(format!(
            "λ = {lambda} must be positive"
        )));
    }
    if patterns.is_empty() || patterns.iter().any(|p| p.len() != n) {
        return Err(TheoryError::InvalidProblem(
            "need at least one activation pattern, each of length n".into(),
        ));
    }
    Ok(())
}

/// The cone program's constraints as triplets `(i, j, v)` of `A`, with `b` and the cones.
struct Constraints {
    i: Vec<usize>,
    j: Vec<usize>,
    v: Vec<f64>,
    b: Vec<f64>,
    cones: Vec<SupportedConeT<f64>>,
    rows: usize,
}

impl Constraints {
    fn push(&mut self, i: usize, j: usize, v: f64) {
        self.i.push(i);
        self.j.push(j);
        self.v.push(v);
    }
}

fn constraints(
    x: &DMatrix<f64>,
    y: &[f64],
    patterns: &[Pattern],
    t0: usize,
    r0: usize,
) -> Constraints {
    let (n, d) = (x.nrows(), x.ncols());
    let groups = 2 * patterns.len();
    let mut c = Constraints {
        i: Vec::new(),
        j: Vec::new(),
        v: Vec::new(),
        b: Vec::new(),
        cones: Vec::new(),
        rows: 0,
    };
    // r − Σ_i ±D_i X c_i = −y (zero cone).
    for t in 0..n {
        for (g, pattern) in patterns.iter().enumerate() {
            if !pattern[t] {
                continue;
            }
            for (group, sign) in [(g, 1.0), (g + patterns.len(), -1.0)] {
                for i in 0..d {
                    c.push(t, group * d + i, -sign * x[(t, i)]);
                }
            }
        }
        c.push(t, r0 + t, 1.0);
        c.b.push(-y[t]);
    }
    c.rows = n;
    c.cones.push(SupportedConeT::ZeroConeT(n));
    // (2D − I) X c ≥ 0 for every group (nonnegative cone: s = −A c ≥ 0).
    for group in 0..groups {
        let pattern = &patterns[group % patterns.len()];
        for t in 0..n {
            let s = if pattern[t] { 1.0 } else { -1.0 };
            for i in 0..d {
                c.push(c.rows, group * d + i, -s * x[(t, i)]);
            }
            c.b.push(0.0);
            c.rows += 1;
        }
    }
    c.cones.push(SupportedConeT::NonnegativeConeT(groups * n));
    // (t_g, c_g) in the second-order cone.
    for group in 0..groups {
        c.push(c.rows, t0 + group, -1.0);
        c.b.push(0.0);
        for i in 0..d {
            c.push(c.rows + 1 + i, group * d + i, -1.0);
            c.b.push(0.0);
        }
        c.rows += d + 1;
        c.cones.push(SupportedConeT::SecondOrderConeT(d + 1));
    }
    c
}

/// The solution's predictions on the training set and its largest violation of the pattern
/// constraints.
fn predictions_and_violation(
    x: &DMatrix<f64>,
    patterns: &[Pattern],
    groups: &[(Vec<f64>, f64)],
) -> (Vec<f64>, f64) {
    let (n, d) = (x.nrows(), x.ncols());
    let mut predictions = vec![0.0; n];
    let mut violation: f64 = 0.0;
    for (g, (c, sign)) in groups.iter().enumerate() {
        let pattern = &patterns[g % patterns.len()];
        for t in 0..n {
            let a: f64 = (0..d).map(|i| x[(t, i)] * c[i]).sum();
            if pattern[t] {
                predictions[t] += sign * a;
                violation = violation.max(-a);
            } else {
                violation = violation.max(a);
            }
        }
    }
    (predictions, violation)
}

/// Inputs `(s, 1)` with `s` evenly spread over `[−2, 2]` plus jitter, so a bias-free unit on
/// `d = 2` is a hinge `[a s + b]_+` on the line, and targets `sin(1.5 s)` plus Gaussian noise.
/// For `d > 2`, `s` is standard Gaussian in `d − 1` dimensions and the target is
/// `sin(1.5 s_1) + 0.5 s_2`.
pub fn toy_regression(n: usize, d: usize, noise: f64, seed: u64) -> (DMatrix<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = DMatrix::zeros(n, d.max(2));
    let mut y = Vec::with_capacity(n);
    for t in 0..n {
        let mut g = || -> f64 { StandardNormal.sample(&mut rng) };
        if d <= 2 {
            let s = -2.0 + 4.0 * (t as f64 + 0.5) / n as f64 + 0.1 * g();
            x[(t, 0)] = s;
            x[(t, 1)] = 1.0;
            y.push((1.5 * s).sin() + noise * g());
        } else {
            for i in 0..d - 1 {
                x[(t, i)] = g();
            }
            x[(t, d - 1)] = 1.0;
            let target = (1.5 * x[(t, 0)]).sin() + 0.5 * x[(t, 1)];
            y.push(target + noise * g());
        }
    }
    (x, y)
}

/// `count` directions drawn uniformly from the unit sphere of `R^d`. The first `m` of a draw are
/// the draw of `m` with the same seed, so libraries of growing size are nested.
pub fn random_library(d: usize, count: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            loop {
                let g: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
                let n = norm(&g);
                if n > 1e-12 {
                    break g.into_iter().map(|a| a / n).collect();
                }
            }
        })
        .collect()
}

/// The "selecting" view of eq. (8): the units are fixed to a library of unit vectors and only
/// their output weights are learned, `min ½‖Φv − y‖² + λ‖v‖₁` with `Φ_tj = [⟨u_j, x_t⟩]_+`
/// (a lasso, solved by Clarabel as a QP with `v = p − q`, `p, q ≥ 0`). Every library is a
/// restriction of the convex neural net, so its optimum bounds eq. (8)'s from above.
#[derive(Debug, Clone)]
pub struct LibrarySolution {
    pub objective: f64,
    pub status: String,
    /// Library units with `|v_j|` above the threshold given to [`LibrarySolution::used`].
    pub weights: Vec<f64>,
}

impl LibrarySolution {
    pub fn used(&self, threshold: f64) -> usize {
        self.weights.iter().filter(|w| w.abs() > threshold).count()
    }
}

pub fn solve_library_l1(
    x: &DMatrix<f64>,
    y: &[f64],
    lambda: f64,
    library: &[Vec<f64>],
) -> Result<LibrarySolution, TheoryError> {
    let (n, d) = (x.nrows(), x.ncols());
    let m = library.len();
    if y.len() != n || m == 0 || library.iter().any(|u| u.len() != d) {
        return Err(TheoryError::InvalidProblem(format!(
            "library of {m} units for {n} examples of dimension {d} ({} targets)",
            y.len()
        )));
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(TheoryError::InvalidProblem(format!(
            "λ = {lambda} must be positive"
        )));
    }
    // Variables [p (m) | q (m) | r (n)].
    let r0 = 2 * m;
    let vars = r0 + n;
    let features: Vec<Vec<f64>> = library
        .iter()
        .map(|u| {
            (0..n)
                .map(|t| (0..d).map(|i| x[(t, i)] * u[i]).sum::<f64>().max(0.0))
                .collect()
        })
        .collect();
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    // r − Φ(p − q) = −y.
    for (j, phi) in features.iter().enumerate() {
        for (t, &f) in phi.iter().enumerate() {
            if f != 0.0 {
                rows.extend([t, t]);
                cols.extend([j, m + j]);
                vals.extend([-f, f]);
            }
        }
    }
    for t in 0..n {
        rows.push(t);
        cols.push(r0 + t);
        vals.push(1.0);
    }
    // p, q ≥ 0.
    for j in 0..r0 {
        rows.push(n + j);
        cols.push(j);
        vals.push(-1.0);
    }
    let a = CscMatrix::new_from_triplets(n + r0, vars, rows, cols, vals);
    let mut b: Vec<f64> = y.iter().map(|v| -v).collect();
    b.extend(std::iter::repeat_n(0.0, r0));
    let mut q = vec![0.0; vars];
    q[..r0].fill(lambda);
    let cones = [
        SupportedConeT::ZeroConeT(n),
        SupportedConeT::NonnegativeConeT(r0),
    ];
    let s = solve_residual_qp(&a, &b, &q, &cones, r0..vars)?;
    let weights: Vec<f64> = (0..m).map(|j| s.x[j] - s.x[m + j]).collect();
    // Recomputed from the weights, not taken from the solver.
    let fit: f64 = (0..n)
        .map(|t| {
            let f: f64 = features
                .iter()
                .zip(&weights)
                .map(|(phi, w)| phi[t] * w)
                .sum();
            0.5 * (f - y[t]).powi(2)
        })
        .sum();
    let penalty: f64 = weights.iter().map(|w| w.abs()).sum();
    Ok(LibrarySolution {
        objective: fit + lambda * penalty,
        status: s.status,
        weights,
    })
}

//! Section 4 as an experiment: Theorem 1 and Corollary 1 checked against the certified
//! optimum of the convex neural net.
//!
//! For each input dimension `d`: the convex program (exact patterns for `d = 2`, sampled for
//! larger `d`, then an upper bound), and the weight-decay network (eq. 4, the Burn module with
//! `k = 1`, full-batch gradient descent) over `H` and several initializations. For `d = 2`,
//! Theorem 1 directly: eq. (4) and eq. (5) (proximal gradient, `‖u_h‖ ≤ 1`) from the same
//! start, for squared and logistic loss.
//!
//! Folder: `experiment.toml`, `fits/*.json`, `convex.json`, `summary.csv`, `theorem1.csv`,
//! `report.md`, `corollary.*`, `training.*`, `function.*`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use nalgebra::DMatrix;
use realbias_theory::convex_nn::{
    ConvexNnSolution, patterns_exact_2d, patterns_sampled, random_library, solve_convex_nn,
    solve_library_l1, toy_regression,
};
use realbias_theory::network::{
    Activation, Descent, DescentSettings, Loss, TracePoint, Weights, l1_objective,
    train_l1_constrained, train_weight_decay,
};
use serde::{Deserialize, Serialize};

use crate::chart::{Mark, Panel, Series, draw_panels};
use crate::config::ConfigError;
use crate::oracle::BurnOracle;
use crate::study::{
    FitSlot, StudyError, StudyProgress, cached, claim, fit_once, parse_checked, save, save_text,
};

pub const KIND: &str = "convex-nn";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemSpec {
    /// Training examples `n`.
    pub examples: usize,
    /// Input dimensions to run; `d = 2` is `(s, 1)` on a line (pictures, exact patterns).
    pub dims: Vec<usize>,
    pub noise: f64,
    pub lambda: f64,
    pub seed: u64,
    /// Random directions whose patterns make the convex program for `d > 2`.
    pub sampled_patterns: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Hidden units `H` of the Corollary 1 sweep.
    pub hidden: Vec<usize>,
    /// Initializations per `H`.
    pub inits: usize,
    /// Standard deviation of the initial weights.
    pub init_std: f64,
    pub seed: u64,
    /// A unit is active when `‖u_h‖|v_h|` exceeds this fraction of `Σ‖u_h‖|v_h|`.
    pub active_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Theorem1Spec {
    pub hidden: Vec<usize>,
    pub losses: Vec<Loss>,
}

/// `configs/sec4-convex.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvexNnConfig {
    pub kind: String,
    pub name: String,
    pub problem: ProblemSpec,
    pub network: NetworkSpec,
    pub theorem1: Theorem1Spec,
    #[serde(default)]
    pub selecting: SelectingSpec,
    pub optim: DescentSettings,
}

/// The "selecting" view: `ℓ1` over fixed random libraries of unit vectors (nested, growing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectingSpec {
    /// Library sizes; empty leaves the view out.
    pub library_sizes: Vec<usize>,
    pub seed: u64,
}

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

impl ConvexNnConfig {
    pub fn parse(table: toml::Table, path: &Path) -> Result<Self, ConfigError> {
        parse_checked(table, path, Self::problems)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let pr = &self.problem;
        if pr.examples < 2 {
            p.push("problem.examples must be at least 2".into());
        }
        if pr.dims.is_empty() || pr.dims.iter().any(|&d| d < 2) {
            p.push("problem.dims: give dimensions d >= 2".into());
        }
        if !(pr.lambda.is_finite() && pr.lambda > 0.0) {
            p.push(format!("problem.lambda = {} must be positive", pr.lambda));
        }
        if !(pr.noise.is_finite() && pr.noise >= 0.0) {
            p.push("problem.noise must be non-negative".into());
        }
        if pr.dims.iter().any(|&d| d > 2) && pr.sampled_patterns == 0 {
            p.push("problem.sampled_patterns must be at least 1 for d > 2".into());
        }
        let n = &self.network;
        if n.hidden.is_empty() || n.hidden.contains(&0) {
            p.push("network.hidden: give H >= 1".into());
        }
        if n.inits == 0 {
            p.push("network.inits must be at least 1".into());
        }
        if !(n.init_std.is_finite() && n.init_std > 0.0) {
            p.push("network.init_std must be positive".into());
        }
        if !(0.0..1.0).contains(&n.active_fraction) {
            p.push("network.active_fraction must be in [0, 1)".into());
        }
        if self.theorem1.hidden.contains(&0) {
            p.push("theorem1.hidden: H >= 1".into());
        }
        p.extend(
            self.optim
                .problems()
                .into_iter()
                .map(|s| format!("optim.{s}")),
        );
        p
    }

    fn data(&self, d: usize) -> (DMatrix<f64>, Vec<f64>) {
        toy_regression(
            self.problem.examples,
            d,
            self.problem.noise,
            self.problem.seed,
        )
    }

    pub fn plan(&self) -> Vec<PlannedFit> {
        let mut fits = Vec::new();
        for &d in &self.problem.dims {
            for &h in &self.network.hidden {
                for init in 0..self.network.inits {
                    fits.push(PlannedFit {
                        d,
                        hidden: h,
                        init,
                        loss: Loss::Squared,
                        formulation: Formulation::WeightDecay,
                    });
                }
            }
        }
        for &loss in &self.theorem1.losses {
            for &h in &self.theorem1.hidden {
                for formulation in [Formulation::WeightDecay, Formulation::L1Constrained] {
                    fits.push(PlannedFit {
                        d: 2,
                        hidden: h,
                        init: 0,
                        loss,
                        formulation,
                    });
                }
            }
        }
        // The Theorem 1 squared-loss eq. (4) fits can coincide with sweep fits: keep one.
        let mut unique: Vec<PlannedFit> = Vec::new();
        for f in fits {
            if !unique.contains(&f) {
                unique.push(f);
            }
        }
        unique
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Formulation {
    /// Eq. (4): `λ/2 Σ(‖u_h‖² + v_h²)`.
    WeightDecay,
    /// Eq. (5): `λ Σ|v_h|` with `‖u_h‖ ≤ 1`.
    L1Constrained,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedFit {
    pub d: usize,
    pub hidden: usize,
    pub init: usize,
    pub loss: Loss,
    pub formulation: Formulation,
}

fn loss_name(l: Loss) -> &'static str {
    match l {
        Loss::Squared => "squared",
        Loss::Logistic => "logistic",
    }
}

impl PlannedFit {
    pub fn label(&self) -> String {
        format!(
            "d = {}, H = {}, init {}, {} loss, eq. ({})",
            self.d,
            self.hidden,
            self.init,
            loss_name(self.loss),
            match self.formulation {
                Formulation::WeightDecay => 4,
                Formulation::L1Constrained => 5,
            }
        )
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join("fits").join(format!(
            "d{}-h{}-init{}-{}-{}.json",
            self.d,
            self.hidden,
            self.init,
            loss_name(self.loss),
            match self.formulation {
                Formulation::WeightDecay => "eq4",
                Formulation::L1Constrained => "eq5",
            }
        ))
    }
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
    fn in_sweep(&self, d: usize) -> bool {
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
    fn reference_line(&self) -> (String, f64) {
        let label = if self.exact {
            "convex optimum (certified)"
        } else {
            "convex, sampled patterns (upper bound)"
        };
        (label.to_string(), self.objective)
    }
}

fn convex(config: &ConvexNnConfig, d: usize) -> Result<ConvexSummary, StudyError> {
    let (x, y) = config.data(d);
    let t = Instant::now();
    let (patterns, exact) = if d == 2 {
        (
            patterns_exact_2d(&x).map_err(StudyError::theory("patterns"))?,
            true,
        )
    } else {
        (
            patterns_sampled(&x, config.problem.sampled_patterns, config.problem.seed),
            false,
        )
    };
    let s: ConvexNnSolution = solve_convex_nn(&x, &y, config.problem.lambda, &patterns)
        .map_err(StudyError::theory(format!("the convex program, d = {d}")))?;
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
) -> Result<Vec<SelectingRow>, StudyError> {
    let sizes = &config.selecting.library_sizes;
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let library = random_library(d, largest, config.selecting.seed);
    sizes
        .iter()
        .map(|&m| {
            let t = Instant::now();
            let s = solve_library_l1(x, y, config.problem.lambda, &library[..m]).map_err(
                StudyError::theory(format!("the ℓ1 fit over {m} library units, d = {d}")),
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

fn fit(
    config: &ConvexNnConfig,
    planned: &PlannedFit,
    device: &Device,
    progress: &dyn StudyProgress,
) -> Result<FitResult, StudyError> {
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
    let stop = || progress.stop_requested();
    let t = Instant::now();
    let descent: Descent = match planned.formulation {
        Formulation::WeightDecay => {
            train_weight_decay(&mut oracle, &start, lambda, &config.optim, &stop)
        }
        Formulation::L1Constrained => {
            train_l1_constrained(&mut oracle, &start, lambda, &config.optim, &stop)
        }
    }
    .map_err(StudyError::theory(planned.label()))?;
    let seconds = t.elapsed().as_secs_f64();
    let w = &descent.weights;
    // Re-evaluated in f64 on the host network: the oracle's numbers are f32.
    let x_host = x.clone();
    let mut host = realbias_theory::network::HostOracle::new(x, y, Activation::Relu, planned.loss);
    let predictions = realbias_theory::network::Oracle::predictions(&mut host, w)
        .map_err(StudyError::theory("predictions"))?;
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

pub struct ConvexNnReport {
    pub dir: PathBuf,
    pub fits: Vec<FitResult>,
    pub convex: Vec<ConvexSummary>,
    pub files: Vec<PathBuf>,
    pub plot_warning: Option<String>,
}

/// Runs (or resumes) the experiment in `out/<name>`.
pub fn run(
    config: &ConvexNnConfig,
    out: &Path,
    force: bool,
    device: &Device,
    progress: &dyn StudyProgress,
) -> Result<ConvexNnReport, StudyError> {
    let dir = out.join(&config.name);
    claim(&dir, &toml::to_string(config).unwrap_or_default(), force)?;
    let mut solved = Vec::new();
    for &d in &config.problem.dims {
        let c = convex(config, d)?;
        progress.note(&format!(
            "d = {d}: convex optimum {:.8} ({} patterns, {}; Clarabel {} in {} iterations, primal {:.8} / dual {:.8}; max constraint violation {:.1e}; {} active units)",
            c.objective,
            c.patterns,
            if c.exact { "all of them: certified" } else { "sampled: an upper bound" },
            c.status,
            c.iterations,
            c.solver_primal,
            c.solver_dual,
            c.max_violation,
            c.active_units
        ));
        solved.push(c);
    }
    save(&dir.join("convex.json"), &solved)?;
    let plan = config.plan();
    let total = plan.len();
    let mut results = Vec::new();
    for (i, planned) in plan.iter().enumerate() {
        let optimum = solved
            .iter()
            .find(|c| c.d == planned.d)
            .map(|c| c.objective);
        let slot = FitSlot {
            index: i + 1,
            total,
            label: planned.label(),
            path: planned.path(&dir),
            finished: results.len(),
            progress,
        };
        results.push(fit_once(
            slot,
            |r| outcome(r, optimum),
            || fit(config, planned, device, progress),
        )?);
    }
    let (files, plot_warning) = finalize(config, &dir, &results, &solved)?;
    Ok(ConvexNnReport {
        dir,
        fits: results,
        convex: solved,
        files,
        plot_warning,
    })
}

fn outcome(r: &FitResult, optimum: Option<f64>) -> String {
    let gap = match (r.loss, optimum) {
        (Loss::Squared, Some(o)) => format!(", gap to convex {:+.1e}", (r.objective - o) / o),
        _ => String::new(),
    };
    format!(
        "objective {:.6}{gap}, balance gap {:.1e}, {} active units ({} iterations, {:.1} s)",
        r.objective, r.balance_gap, r.active_units, r.iterations, r.seconds
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// One row per `(d, H)` of the Corollary 1 sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorollaryRow {
    pub d: usize,
    pub hidden: usize,
    pub best_objective: f64,
    pub median_objective: f64,
    /// Eq. (5) at the best fit, rescaled by Theorem 1.
    pub l1_objective: f64,
    pub convex_objective: f64,
    pub exact: bool,
    pub relative_gap: f64,
    pub active_units: usize,
    pub merged_units: usize,
    pub balance_gap: f64,
    /// Inits within 1e-3 (relative) of the convex value.
    pub reached: usize,
    pub inits: usize,
}

pub fn corollary_rows(fits: &[FitResult], convex: &[ConvexSummary]) -> Vec<CorollaryRow> {
    let mut rows = Vec::new();
    for c in convex {
        let mut hs: Vec<usize> = fits
            .iter()
            .filter(|f| f.in_sweep(c.d))
            .map(|f| f.hidden)
            .collect();
        hs.sort();
        hs.dedup();
        for h in hs {
            let of: Vec<&FitResult> = fits
                .iter()
                .filter(|f| f.in_sweep(c.d) && f.hidden == h)
                .collect();
            let Some(best) = of.iter().min_by(|a, b| a.objective.total_cmp(&b.objective)) else {
                continue;
            };
            rows.push(CorollaryRow {
                d: c.d,
                hidden: h,
                best_objective: best.objective,
                median_objective: median(of.iter().map(|f| f.objective).collect()),
                l1_objective: best.l1_objective_rescaled,
                convex_objective: c.objective,
                exact: c.exact,
                relative_gap: (best.objective - c.objective) / c.objective,
                active_units: best.active_units,
                merged_units: best.merged_units,
                balance_gap: best.balance_gap,
                reached: of
                    .iter()
                    .filter(|f| (f.objective - c.objective) / c.objective < 1e-3)
                    .count(),
                inits: of.len(),
            });
        }
    }
    rows
}

pub fn summary_csv(rows: &[CorollaryRow]) -> String {
    let mut s = String::from(
        "d,hidden,objective_eq4_best,objective_eq4_median,objective_eq5_rescaled,convex_objective,convex_exact,relative_gap,active_units,merged_units,balance_gap,inits_within_1e-3,inits\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{:.8e},{:.8e},{:.8e},{:.8e},{},{:.3e},{},{},{:.3e},{},{}\n",
            r.d,
            r.hidden,
            r.best_objective,
            r.median_objective,
            r.l1_objective,
            r.convex_objective,
            r.exact,
            r.relative_gap,
            r.active_units,
            r.merged_units,
            r.balance_gap,
            r.reached,
            r.inits
        ));
    }
    s
}

/// Eq. (4) against eq. (5) from the same start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Theorem1Row {
    pub loss: &'static str,
    pub hidden: usize,
    pub objective_eq4: f64,
    pub objective_eq5_rescaled_from_eq4: f64,
    pub objective_eq5_trained: f64,
    pub max_prediction_difference: f64,
    pub balance_gap_eq4: f64,
}

pub fn theorem1_rows(config: &ConvexNnConfig, fits: &[FitResult]) -> Vec<Theorem1Row> {
    let mut rows = Vec::new();
    for &loss in &config.theorem1.losses {
        for &h in &config.theorem1.hidden {
            let find = |f: Formulation| {
                fits.iter().find(|r| {
                    r.d == 2 && r.hidden == h && r.init == 0 && r.loss == loss && r.formulation == f
                })
            };
            if let (Some(a), Some(b)) = (
                find(Formulation::WeightDecay),
                find(Formulation::L1Constrained),
            ) {
                rows.push(Theorem1Row {
                    loss: loss_name(loss),
                    hidden: h,
                    objective_eq4: a.objective,
                    objective_eq5_rescaled_from_eq4: a.l1_objective_rescaled,
                    objective_eq5_trained: b.objective,
                    max_prediction_difference: a
                        .predictions
                        .iter()
                        .zip(&b.predictions)
                        .map(|(p, q)| (p - q).abs())
                        .fold(0.0, f64::max),
                    balance_gap_eq4: a.balance_gap,
                });
            }
        }
    }
    rows
}

fn theorem1_csv(rows: &[Theorem1Row]) -> String {
    let mut s = String::from(
        "loss,hidden,objective_eq4,objective_eq5_rescaled_from_eq4,objective_eq5_trained,max_prediction_difference,balance_gap_eq4\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{:.8e},{:.8e},{:.8e},{:.3e},{:.3e}\n",
            r.loss,
            r.hidden,
            r.objective_eq4,
            r.objective_eq5_rescaled_from_eq4,
            r.objective_eq5_trained,
            r.max_prediction_difference,
            r.balance_gap_eq4
        ));
    }
    s
}

pub fn report_markdown(
    config: &ConvexNnConfig,
    rows: &[CorollaryRow],
    theorem: &[Theorem1Row],
    convex: &[ConvexSummary],
) -> String {
    let name = &config.name;
    let mut s = format!(
        "# {name}\n\n## The convex neural net (eq. 8)\n\n| d | patterns | optimum | Clarabel primal / dual | max violation | active units |\n|---|---|---|---|---|---|\n"
    );
    for c in convex {
        s.push_str(&format!(
            "| {} | {} ({}) | {:.8} | {:.8} / {:.8} | {:.1e} | {} |\n",
            c.d,
            c.patterns,
            if c.exact {
                "all: certified optimum"
            } else {
                "sampled: upper bound"
            },
            c.objective,
            c.solver_primal,
            c.solver_dual,
            c.max_violation,
            c.active_units
        ));
    }
    s.push_str("\n## Corollary 1: the weight-decay network (eq. 4) against H\n\n| d | H | objective (4), best | median | objective (5), rescaled | convex | relative gap | active units (merged) | balance gap | inits within 1e-3 |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.6} | {:.6} | {:.6} | {:.6}{} | {:+.1e} | {} ({}) | {:.1e} | {} / {} |\n",
            r.d,
            r.hidden,
            r.best_objective,
            r.median_objective,
            r.l1_objective,
            r.convex_objective,
            if r.exact { "" } else { " (bound)" },
            r.relative_gap,
            r.active_units,
            r.merged_units,
            r.balance_gap,
            r.reached,
            r.inits
        ));
    }
    s.push_str(&format!(
        "\nActive units: ‖u_h‖|v_h| above {}% of Σ‖u_h‖|v_h| (`network.active_fraction`); merged: active units with the same activation pattern on the training set and the same sign of v_h counted once (on the data they are one unit of no larger norm; at the optimum at most n + 1 remain).\n",
        100.0 * config.network.active_fraction
    ));
    if convex.iter().any(|c| !c.selecting.is_empty()) {
        s.push_str("\n## Selecting instead of learning: ℓ1 over a fixed random library of unit vectors\n\n| d | library size | objective | relative gap to the convex value | units used |\n|---|---|---|---|---|\n");
        for c in convex {
            for r in &c.selecting {
                s.push_str(&format!(
                    "| {} | {} | {:.6} | {:+.1e}{} | {} |\n",
                    c.d,
                    r.library,
                    r.objective,
                    r.relative_gap,
                    if c.exact { "" } else { " (to the bound)" },
                    r.used_units
                ));
            }
        }
    }
    s.push_str("\n## Theorem 1: eq. (4) and eq. (5) from the same start (d = 2)\n\n| loss | H | objective (4) | (5) at rescaled (4) | (5) trained | max prediction difference | balance gap of (4) |\n|---|---|---|---|---|---|---|\n");
    for r in theorem {
        s.push_str(&format!(
            "| {} | {} | {:.6} | {:.6} | {:.6} | {:.1e} | {:.1e} |\n",
            r.loss,
            r.hidden,
            r.objective_eq4,
            r.objective_eq5_rescaled_from_eq4,
            r.objective_eq5_trained,
            r.max_prediction_difference,
            r.balance_gap_eq4
        ));
    }
    s
}

/// `f(s)` of a `d = 2` network on the input `(s, 1)`.
fn curve(w: &Weights, grid: &[f64]) -> Vec<(f64, f64)> {
    grid.iter()
        .map(|&s| {
            let f: f64 = (0..w.h)
                .map(|j| (w.u[j] * s + w.u[w.h + j]).max(0.0) * w.v[j])
                .sum();
            (s, f)
        })
        .collect()
}

/// `(angle of u_h in degrees, ‖u_h‖ v_h)` for the active units of a `d = 2` network.
fn directions(w: &Weights, threshold: f64) -> Vec<(f64, f64)> {
    let norms = w.input_norms();
    (0..w.h)
        .filter(|&j| norms[j] * w.v[j].abs() > threshold)
        .map(|j| (w.u[w.h + j].atan2(w.u[j]).to_degrees(), norms[j] * w.v[j]))
        .collect()
}

pub fn finalize(
    config: &ConvexNnConfig,
    dir: &Path,
    fits: &[FitResult],
    convex: &[ConvexSummary],
) -> Result<(Vec<PathBuf>, Option<String>), StudyError> {
    let rows = corollary_rows(fits, convex);
    let theorem = theorem1_rows(config, fits);
    let mut files = vec![
        save_text(dir.join("summary.csv"), &summary_csv(&rows))?,
        save_text(dir.join("theorem1.csv"), &theorem1_csv(&theorem))?,
        save_text(
            dir.join("report.md"),
            &report_markdown(config, &rows, &theorem, convex),
        )?,
    ];
    let mut figures: Vec<(&str, String, Vec<Panel>)> = Vec::new();
    // Corollary 1: objective against H, one panel per d.
    let panels = convex
        .iter()
        .map(|c| {
            let sweep: Vec<&FitResult> = fits.iter().filter(|f| f.in_sweep(c.d)).collect();
            Panel {
                title: format!("d = {}", c.d),
                x_label: "hidden units H".into(),
                y_label: "objective of eq. (4) (log)".into(),
                log2_x: true,
                log_y: true,
                series: vec![
                    Series::new(
                        "best of the inits",
                        rows.iter()
                            .filter(|r| r.d == c.d)
                            .map(|r| (r.hidden as f64, r.best_objective))
                            .collect(),
                        Mark::Line,
                    ),
                    Series::new(
                        "each init",
                        sweep
                            .iter()
                            .map(|f| (f.hidden as f64, f.objective))
                            .collect(),
                        Mark::Points,
                    ),
                ],
                references: vec![c.reference_line()],
            }
        })
        .collect();
    figures.push((
        "corollary",
        format!(
            "Weight decay (eq. 4) meets the convex neural net once H is large (n = {}, λ = {})",
            config.problem.examples, config.problem.lambda
        ),
        panels,
    ));
    // Training: gap to the optimum and balance gap over iterations, d = 2, init 0.
    if let Some(c) = convex.iter().find(|c| c.d == 2) {
        let chosen: Vec<&FitResult> = fits
            .iter()
            .filter(|f| f.in_sweep(2) && f.init == 0)
            .collect();
        let gap = Panel {
            title: "objective − convex optimum".into(),
            x_label: "iteration".into(),
            y_label: "(log)".into(),
            log_y: true,
            series: chosen
                .iter()
                .map(|f| {
                    Series::new(
                        format!("H = {}", f.hidden),
                        f.history
                            .iter()
                            .map(|p| (p.iteration as f64, p.objective - c.objective))
                            .collect(),
                        Mark::Thin,
                    )
                })
                .collect(),
            ..Panel::default()
        };
        let balance = Panel {
            title: "½Σ(‖u_h‖² + v_h²) − Σ‖u_h‖|v_h|".into(),
            x_label: "iteration".into(),
            y_label: "balance gap (log)".into(),
            log_y: true,
            series: chosen
                .iter()
                .map(|f| {
                    Series::new(
                        format!("H = {}", f.hidden),
                        f.history
                            .iter()
                            .map(|p| (p.iteration as f64, p.balance_gap))
                            .collect(),
                        Mark::Thin,
                    )
                })
                .collect(),
            ..Panel::default()
        };
        figures.push((
            "training",
            "Gradient descent on eq. (4), d = 2: objective gap and unit balance".into(),
            vec![gap, balance],
        ));
        // The learned function and the active units' directions.
        let (x, y) = config.data(2);
        let best = fits
            .iter()
            .filter(|f| f.in_sweep(2))
            .filter(|f| f.hidden == config.network.hidden.iter().copied().max().unwrap_or(0))
            .min_by(|a, b| a.objective.total_cmp(&b.objective));
        if let Some(best) = best {
            let lo = (0..x.nrows())
                .map(|t| x[(t, 0)])
                .fold(f64::INFINITY, f64::min)
                - 0.3;
            let hi = (0..x.nrows())
                .map(|t| x[(t, 0)])
                .fold(f64::NEG_INFINITY, f64::max)
                + 0.3;
            let grid: Vec<f64> = (0..=300)
                .map(|i| lo + (hi - lo) * i as f64 / 300.0)
                .collect();
            let coarse: Vec<f64> = (0..=30).map(|i| lo + (hi - lo) * i as f64 / 30.0).collect();
            let network = format!("network, H = {}", best.hidden);
            let function = Panel {
                title: "f(s) on inputs (s, 1)".into(),
                x_label: "s".into(),
                y_label: "f".into(),
                series: vec![
                    Series::new(
                        "training data",
                        (0..x.nrows()).map(|t| (x[(t, 0)], y[t])).collect(),
                        Mark::Points,
                    )
                    .colored(7),
                    Series::new(network.clone(), curve(&best.weights, &grid), Mark::Thin)
                        .colored(0),
                    Series::new("convex solution", curve(&c.weights, &coarse), Mark::Points)
                        .colored(1),
                ],
                ..Panel::default()
            };
            let thr = |w: &Weights| config.network.active_fraction * w.path_norm();
            let units = Panel {
                title: "active units: direction of u_h and ‖u_h‖v_h".into(),
                x_label: "angle of u_h (degrees)".into(),
                y_label: "‖u_h‖ v_h".into(),
                series: vec![
                    Series::new(
                        network,
                        directions(&best.weights, thr(&best.weights)),
                        Mark::Points,
                    )
                    .colored(0),
                    Series::new(
                        "convex solution",
                        directions(&c.weights, thr(&c.weights)),
                        Mark::Points,
                    )
                    .colored(1),
                ],
                ..Panel::default()
            };
            figures.push((
                "function",
                "d = 2: the weight-decay network and the convex neural net".into(),
                vec![function, units],
            ));
        }
    }
    if convex.iter().any(|c| !c.selecting.is_empty()) {
        let panels = convex
            .iter()
            .filter(|c| !c.selecting.is_empty())
            .map(|c| Panel {
                title: format!("d = {}", c.d),
                x_label: "library size (random unit vectors)".into(),
                y_label: "ℓ1 objective (log)".into(),
                log2_x: true,
                log_y: true,
                series: vec![Series::new(
                    "selecting: ℓ1 over the library",
                    c.selecting
                        .iter()
                        .map(|r| (r.library as f64, r.objective))
                        .collect(),
                    Mark::Line,
                )],
                references: vec![c.reference_line()],
            })
            .collect();
        figures.push((
            "selecting",
            "Selecting units from a growing random library approaches the convex net from above"
                .into(),
            panels,
        ));
    }
    let mut warning = None;
    for (stem, title, panels) in figures {
        match draw_panels(&dir.join(stem), &title, &panels) {
            Ok(f) => files.extend(f),
            Err(e) => warning = Some(e.to_string()),
        }
    }
    Ok((files, warning))
}

pub fn load_results(config: &ConvexNnConfig, dir: &Path) -> (Vec<FitResult>, Vec<ConvexSummary>) {
    let fits = config
        .plan()
        .iter()
        .filter_map(|p| cached::<FitResult>(&p.path(dir)))
        .collect();
    let convex = cached::<Vec<ConvexSummary>>(&dir.join("convex.json")).unwrap_or_default();
    (fits, convex)
}

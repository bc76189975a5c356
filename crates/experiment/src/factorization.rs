//! Section 3 as an experiment: matrix completion by a linear two-layer network (`W = U V`,
//! the Burn module with `activation = linear`, inputs the identity), swept over the inner
//! dimension `k`, against the convex trace-norm baselines computed from the matrix alone.
//!
//! Layout of the folder: `experiment.toml`, `fits/m<observed>-k<k>-<regime>.json` (one per
//! finished fit), `baselines.json`, `summary.csv`, `report.md`, `errors.*`, `trace-norm.*`,
//! `objective-gap.*`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use nalgebra::DMatrix;
use realbias_theory::completion::{
    CompletionProblem, ConvexSettings, ConvexSolution, min_trace_norm_interpolant,
    trace_norm_regularized,
};
use realbias_theory::network::{
    Activation, DescentSettings, Loss, Weights, train_weight_decay, weight_decay_objective,
};
use realbias_theory::trace::rank_measures;
use serde::{Deserialize, Serialize};

use crate::chart::{Mark, Panel, Series, draw_panels};
use crate::config::ConfigError;
use crate::oracle::BurnOracle;
use crate::study::{
    FitSlot, StudyError, StudyProgress, cached, claim, fit_once, parse_checked, save, save_text,
    tag,
};

pub const KIND: &str = "matrix-factorization";

/// The ground truth and the observed sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionSpec {
    /// The matrix is `n x n`.
    pub n: usize,
    pub rank: usize,
    /// Observed entries, one setting per value (the paper's analogy: sparse ≈ 3nr, and denser).
    pub observed: Vec<usize>,
    pub seed: u64,
}

/// The factorizations fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorizationSpec {
    /// Inner dimensions `k` (hidden units of the linear network).
    pub inner: Vec<usize>,
    /// Standard deviations of the initial `U`, `V` entries for the unregularized fits.
    pub init_scales: Vec<f64>,
    /// `λ` of the Frobenius-penalized fits and of the convex baseline `L(W) + λ‖W‖_tr`.
    pub lambda: f64,
    /// Initial scale of the penalized fits.
    pub penalty_init_scale: f64,
    pub seed: u64,
}

/// The convex solvers' stopping rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvexSpec {
    pub relative_gap: f64,
    pub max_iterations: usize,
}

impl Default for ConvexSpec {
    fn default() -> Self {
        let s = ConvexSettings::default();
        ConvexSpec {
            relative_gap: s.relative_gap,
            max_iterations: s.max_iterations,
        }
    }
}

/// `configs/sec3-matrix-completion.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorizationConfig {
    pub kind: String,
    pub name: String,
    pub problem: CompletionSpec,
    pub factorization: FactorizationSpec,
    pub optim: DescentSettings,
    #[serde(default)]
    pub convex: ConvexSpec,
}

impl FactorizationConfig {
    pub fn parse(table: toml::Table, path: &Path) -> Result<Self, ConfigError> {
        parse_checked(table, path, Self::problems)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let (n, r) = (self.problem.n, self.problem.rank);
        if n < 2 || r == 0 || r > n {
            p.push(format!(
                "problem: need n >= 2 and 1 <= rank <= n (n = {n}, rank = {r})"
            ));
        }
        if self.problem.observed.is_empty() {
            p.push("problem.observed: give at least one number of observed entries".into());
        }
        for &m in &self.problem.observed {
            if m == 0 || m >= n * n {
                p.push(format!(
                    "problem.observed: {m} must be between 1 and n² - 1"
                ));
            }
        }
        let f = &self.factorization;
        if f.inner.is_empty() || f.inner.contains(&0) {
            p.push("factorization.inner: give inner dimensions k >= 1".into());
        }
        if f.init_scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            p.push("factorization.init_scales must be positive".into());
        }
        if !(f.lambda.is_finite() && f.lambda > 0.0) {
            p.push(format!(
                "factorization.lambda = {} must be positive",
                f.lambda
            ));
        }
        if !(f.penalty_init_scale.is_finite() && f.penalty_init_scale > 0.0) {
            p.push("factorization.penalty_init_scale must be positive".into());
        }
        p.extend(
            self.optim
                .problems()
                .into_iter()
                .map(|s| format!("optim.{s}")),
        );
        if !(self.convex.relative_gap.is_finite() && self.convex.relative_gap > 0.0)
            || self.convex.max_iterations == 0
        {
            p.push("convex: relative_gap and max_iterations must be positive".into());
        }
        p
    }

    /// The fits in the order they run.
    pub fn plan(&self) -> Vec<PlannedFit> {
        let mut fits = Vec::new();
        for &observed in &self.problem.observed {
            for &inner in &self.factorization.inner {
                for &scale in &self.factorization.init_scales {
                    fits.push(PlannedFit {
                        observed,
                        inner,
                        regime: Regime::Unregularized { init_scale: scale },
                    });
                }
                fits.push(PlannedFit {
                    observed,
                    inner,
                    regime: Regime::Penalized {
                        lambda: self.factorization.lambda,
                        init_scale: self.factorization.penalty_init_scale,
                    },
                });
            }
        }
        fits
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "regime", rename_all = "lowercase")]
pub enum Regime {
    /// Plain gradient descent on the observed squared error from `N(0, init_scale²)` factors.
    Unregularized { init_scale: f64 },
    /// Gradient descent on `L(UV) + λ/2 (‖U‖² + ‖V‖²)`.
    Penalized { lambda: f64, init_scale: f64 },
}

impl Regime {
    pub fn label(&self) -> String {
        match self {
            Regime::Unregularized { init_scale } => format!("init {}", tag(*init_scale)),
            Regime::Penalized { lambda, .. } => format!("λ = {}", tag(*lambda)),
        }
    }

    fn file_tag(&self) -> String {
        match self {
            Regime::Unregularized { init_scale } => format!("init{}", tag(*init_scale)),
            Regime::Penalized { lambda, .. } => format!("lambda{}", tag(*lambda)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedFit {
    pub observed: usize,
    pub inner: usize,
    pub regime: Regime,
}

impl PlannedFit {
    pub fn label(&self) -> String {
        format!(
            "m = {}, k = {}, {}",
            self.observed,
            self.inner,
            self.regime.label()
        )
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join("fits").join(format!(
            "m{}-k{}-{}.json",
            self.observed,
            self.inner,
            self.regime.file_tag()
        ))
    }
}

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

struct Setting {
    problem: CompletionProblem,
    regularized: ConvexSolution,
    interpolant: ConvexSolution,
    baselines: Baselines,
}

fn summarize(
    problem: &CompletionProblem,
    s: &ConvexSolution,
    seconds: f64,
) -> Result<BaselineSummary, StudyError> {
    let ranks = rank_measures(&s.w).map_err(StudyError::theory("baseline rank"))?;
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

fn setting(config: &FactorizationConfig, observed: usize) -> Result<Setting, StudyError> {
    let p = &config.problem;
    let problem = CompletionProblem::generate(p.n, p.rank, observed, p.seed)
        .map_err(StudyError::theory("the completion problem"))?;
    let settings = ConvexSettings {
        relative_gap: config.convex.relative_gap,
        max_iterations: config.convex.max_iterations,
    };
    let lambda = config.factorization.lambda;
    let t = Instant::now();
    let regularized = trace_norm_regularized(&problem, lambda, None, settings)
        .map_err(StudyError::theory("the trace-norm regularized solution"))?;
    let t_reg = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let interpolant = min_trace_norm_interpolant(&problem, settings)
        .map_err(StudyError::theory("the minimum-trace-norm interpolant"))?;
    let t_int = t.elapsed().as_secs_f64();
    let baselines = Baselines {
        observed,
        truth_trace_norm: rank_measures(&problem.truth)
            .map_err(StudyError::theory("the truth's trace norm"))?
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

fn fit(
    config: &FactorizationConfig,
    planned: &PlannedFit,
    setting: &Setting,
    device: &Device,
    progress: &dyn StudyProgress,
) -> Result<FitResult, StudyError> {
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
    let stop = || progress.stop_requested();
    let descent = train_weight_decay(&mut oracle, &start, lambda, &config.optim, &stop)
        .map_err(StudyError::theory(planned.label()))?;
    let seconds = t.elapsed().as_secs_f64();
    let w = descent.weights.u_matrix() * descent.weights.v_matrix();
    let ranks = rank_measures(&w).map_err(StudyError::theory(planned.label()))?;
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

/// What a run leaves.
pub struct FactorizationReport {
    pub dir: PathBuf,
    pub fits: Vec<FitResult>,
    pub baselines: Vec<Baselines>,
    pub files: Vec<PathBuf>,
    pub plot_warning: Option<String>,
}

/// Runs (or resumes) the experiment in `out/<name>`.
pub fn run(
    config: &FactorizationConfig,
    out: &Path,
    force: bool,
    device: &Device,
    progress: &dyn StudyProgress,
) -> Result<FactorizationReport, StudyError> {
    let dir = out.join(&config.name);
    claim(&dir, &toml::to_string(config).unwrap_or_default(), force)?;
    let plan = config.plan();
    let total = plan.len();
    let mut results = Vec::new();
    let mut baselines = Vec::new();
    let mut index = 0;
    for &observed in &config.problem.observed {
        let setting = setting(config, observed)?;
        let b = &setting.baselines;
        progress.note(&format!(
            "m = {observed}: trace-norm solution (λ = {}) objective {:.6} (gap {:.1e}, rank {}), min-trace-norm interpolant ‖W‖_tr = {:.4} (gap {:.1e}, held-out RMSE {:.4}); truth ‖M‖_tr = {:.4}",
            b.lambda,
            b.regularized.objective,
            b.regularized.relative_gap,
            b.regularized.numerical_rank,
            b.interpolant.objective,
            b.interpolant.relative_gap,
            b.interpolant.held_out_rmse,
            b.truth_trace_norm
        ));
        for planned in plan.iter().filter(|f| f.observed == observed) {
            index += 1;
            let slot = FitSlot {
                index,
                total,
                label: planned.label(),
                path: planned.path(&dir),
                finished: results.len(),
                progress,
            };
            results.push(fit_once(slot, outcome, || {
                fit(config, planned, &setting, device, progress)
            })?);
        }
        baselines.push(setting.baselines);
    }
    save(&dir.join("baselines.json"), &baselines)?;
    let (files, plot_warning) = finalize(&dir, &results, &baselines)?;
    Ok(FactorizationReport {
        dir,
        fits: results,
        baselines,
        files,
        plot_warning,
    })
}

fn outcome(r: &FitResult) -> String {
    let gap = r
        .objective_gap
        .map_or(String::new(), |g| format!(", objective gap {g:.1e}"));
    format!(
        "train RMSE {:.4}, held-out RMSE {:.4}, ‖W‖_tr {:.3}, eff. rank {:.2}{gap}, distance to convex {:.1e} ({} iterations, {:.1} s)",
        r.observed_rmse,
        r.held_out_rmse,
        r.trace_norm,
        r.effective_rank,
        r.distance_to_convex,
        r.iterations,
        r.seconds
    )
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.6e}"))
}

/// `summary.csv`: one row per fit.
pub fn summary_csv(fits: &[FitResult]) -> String {
    let mut s = String::from(
        "observed,inner,regime,init_scale,lambda,iterations,converged,observed_rmse,held_out_rmse,trace_norm,effective_rank,numerical_rank,factor_cost,objective,convex_objective,objective_gap,distance_to_convex\n",
    );
    for r in fits {
        let (regime, init, lambda) = match r.regime {
            Regime::Unregularized { init_scale } => ("unregularized", init_scale, 0.0),
            Regime::Penalized { lambda, init_scale } => ("penalized", init_scale, lambda),
        };
        s.push_str(&format!(
            "{},{},{regime},{init},{lambda},{},{},{:.6e},{:.6e},{:.6e},{:.4},{},{:.6e},{},{},{},{:.6e}\n",
            r.observed,
            r.inner,
            r.iterations,
            r.converged,
            r.observed_rmse,
            r.held_out_rmse,
            r.trace_norm,
            r.effective_rank,
            r.numerical_rank,
            r.factor_cost,
            opt(r.objective),
            opt(r.convex_objective),
            opt(r.objective_gap),
            r.distance_to_convex
        ));
    }
    s
}

/// `report.md`: the baselines and one table per observed set.
pub fn report_markdown(name: &str, fits: &[FitResult], baselines: &[Baselines]) -> String {
    let mut s = format!(
        "# {name}\n\nRMSE = root-mean-square error on the observed (train) and held-out (test) entries; the truth has RMS entry 1.\n"
    );
    for b in baselines {
        s.push_str(&format!(
            "\n## {} observed entries\n\n| convex baseline | objective | certified gap | ‖W‖_tr | eff. rank | rank | train RMSE | test RMSE |\n|---|---|---|---|---|---|---|---|\n",
            b.observed
        ));
        for (label, c) in [
            (format!("min L(W) + {}‖W‖_tr", b.lambda), &b.regularized),
            ("min ‖W‖_tr s.t. W = M on Ω".to_string(), &b.interpolant),
        ] {
            s.push_str(&format!(
                "| {label} | {:.6} | {:.1e} | {:.4} | {:.2} | {} | {:.4} | {:.4} |\n",
                c.objective,
                c.relative_gap,
                c.trace_norm,
                c.effective_rank,
                c.numerical_rank,
                c.observed_rmse,
                c.held_out_rmse
            ));
        }
        s.push_str(&format!(
            "\nThe truth: ‖M‖_tr = {:.4}.\n\n| k | fit | train RMSE | test RMSE | ‖W‖_tr | ½(‖U‖²+‖V‖²) | eff. rank | objective gap | distance to convex | iterations |\n|---|---|---|---|---|---|---|---|---|---|\n",
            b.truth_trace_norm
        ));
        for r in fits.iter().filter(|r| r.observed == b.observed) {
            s.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {} | {:.1e} | {}{} |\n",
                r.inner,
                r.regime.label(),
                r.observed_rmse,
                r.held_out_rmse,
                r.trace_norm,
                r.factor_cost,
                r.effective_rank,
                r.objective_gap.map_or("".into(), |g| format!("{g:.1e}")),
                r.distance_to_convex,
                r.iterations,
                if r.converged { "" } else { " (cap)" }
            ));
        }
    }
    s.push_str("\nObjective gap: (factorized − convex optimum) / convex optimum, penalized fits. Distance: ‖W − W*‖_F/‖W*‖_F to the trace-norm regularized solution (penalized fits) or to the minimum-trace-norm interpolant (unregularized fits). (cap): stopped at optim.max_iterations.\n");
    s
}

fn regimes(fits: &[FitResult]) -> Vec<Regime> {
    let mut out: Vec<Regime> = Vec::new();
    for r in fits {
        if !out.contains(&r.regime) {
            out.push(r.regime);
        }
    }
    out
}

fn series_of(
    fits: &[FitResult],
    observed: usize,
    regime: Regime,
    value: impl Fn(&FitResult) -> Option<f64>,
) -> Vec<(f64, f64)> {
    fits.iter()
        .filter(|r| r.observed == observed && r.regime == regime)
        .filter_map(|r| value(r).map(|v| (r.inner as f64, v)))
        .collect()
}

/// Writes `summary.csv`, `report.md` and the figures from the fits (also what `realbias plot`
/// and `realbias report` redo from the saved files).
pub fn finalize(
    dir: &Path,
    fits: &[FitResult],
    baselines: &[Baselines],
) -> Result<(Vec<PathBuf>, Option<String>), StudyError> {
    let name = dir
        .file_name()
        .map_or("experiment".into(), |n| n.to_string_lossy().into_owned());
    let mut files = vec![
        save_text(dir.join("summary.csv"), &summary_csv(fits))?,
        save_text(
            dir.join("report.md"),
            &report_markdown(&name, fits, baselines),
        )?,
    ];
    let k = "inner dimension k (hidden units)";
    let mut errors = Vec::new();
    let mut traces = Vec::new();
    let mut gaps = Vec::new();
    for b in baselines {
        let m = b.observed;
        let mut e = Panel {
            title: format!("{m} observed entries"),
            x_label: k.into(),
            y_label: "RMSE (log)".into(),
            log2_x: true,
            log_y: true,
            ..Panel::default()
        };
        let mut t = Panel {
            title: e.title.clone(),
            x_label: k.into(),
            y_label: "‖W‖_tr".into(),
            log2_x: true,
            ..Panel::default()
        };
        let mut g = Panel {
            title: e.title.clone(),
            x_label: k.into(),
            y_label: "relative gap / distance (log)".into(),
            log2_x: true,
            log_y: true,
            ..Panel::default()
        };
        for (ri, regime) in regimes(fits).into_iter().enumerate() {
            let label = regime.label();
            e.series.push(
                Series::new(
                    format!("test, {label}"),
                    series_of(fits, m, regime, |r| Some(r.held_out_rmse)),
                    Mark::Line,
                )
                .colored(ri),
            );
            e.series.push(
                Series::new(
                    format!("train, {label}"),
                    series_of(fits, m, regime, |r| Some(r.observed_rmse)),
                    Mark::Thin,
                )
                .colored(ri),
            );
            t.series.push(
                Series::new(
                    label.clone(),
                    series_of(fits, m, regime, |r| Some(r.trace_norm)),
                    Mark::Line,
                )
                .colored(ri),
            );
            if let Regime::Penalized { .. } = regime {
                g.series.push(
                    Series::new(
                        format!("objective gap, {label}"),
                        series_of(fits, m, regime, |r| r.objective_gap),
                        Mark::Line,
                    )
                    .colored(ri),
                );
                g.series.push(
                    Series::new(
                        format!("distance to trace-norm solution, {label}"),
                        series_of(fits, m, regime, |r| Some(r.distance_to_convex)),
                        Mark::Thin,
                    )
                    .colored(ri),
                );
            } else {
                g.series.push(
                    Series::new(
                        format!("distance to min-‖W‖_tr interpolant, {label}"),
                        series_of(fits, m, regime, |r| Some(r.distance_to_convex)),
                        Mark::Line,
                    )
                    .colored(ri),
                );
            }
        }
        e.references = vec![
            (
                format!("test, convex λ = {}", b.lambda),
                b.regularized.held_out_rmse,
            ),
            (
                "test, min-‖W‖_tr interpolant".into(),
                b.interpolant.held_out_rmse,
            ),
        ];
        t.references = vec![
            (
                format!("convex optimum, λ = {}", b.lambda),
                b.regularized.trace_norm,
            ),
            ("min-‖W‖_tr interpolant".into(), b.interpolant.trace_norm),
        ];
        errors.push(e);
        traces.push(t);
        gaps.push(g);
    }
    let mut warning = None;
    for (stem, title, panels) in [
        (
            "errors",
            "Matrix completion by a linear network: errors against k",
            errors,
        ),
        (
            "trace-norm",
            "Trace norm of the learned W against k",
            traces,
        ),
        (
            "objective-gap",
            "Reaching the convex trace-norm solutions as k grows",
            gaps,
        ),
    ] {
        match draw_panels(&dir.join(stem), title, &panels) {
            Ok(f) => files.extend(f),
            Err(e) => warning = Some(e.to_string()),
        }
    }
    Ok((files, warning))
}

/// Reads the saved results of a folder (for `realbias plot` / `report`).
pub fn load_results(config: &FactorizationConfig, dir: &Path) -> (Vec<FitResult>, Vec<Baselines>) {
    let fits = config
        .plan()
        .iter()
        .filter_map(|p| cached::<FitResult>(&p.path(dir)))
        .collect();
    let baselines = cached::<Vec<Baselines>>(&dir.join("baselines.json")).unwrap_or_default();
    (fits, baselines)
}

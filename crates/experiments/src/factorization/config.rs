//! `configs/sec3-matrix-completion.toml`: the completion problem, the factorizations fitted,
//! the optimizer and the convex solvers' stopping rule; and the fits it plans.

use std::path::{Path, PathBuf};

use realbias_theory::completion::ConvexSettings;
use realbias_theory::network::DescentSettings;
use realbias_train::config::{ConfigError, parse_checked};
use serde::{Deserialize, Serialize};

use crate::store::tag;

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

    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join("fits").join(format!(
            "m{}-k{}-{}.json",
            self.observed,
            self.inner,
            self.regime.file_tag()
        ))
    }
}

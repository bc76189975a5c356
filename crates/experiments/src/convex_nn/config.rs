//! `configs/sec4-convex.toml`: the toy problem, the networks of the Corollary 1 sweep, the
//! Theorem 1 comparisons and the selecting view; and the fits it plans.

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use realbias_theory::convex_nn::toy_regression;
use realbias_theory::network::{DescentSettings, Loss};
use realbias_train::config::{ConfigError, parse_checked};
use serde::{Deserialize, Serialize};

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

    pub fn data(&self, d: usize) -> (DMatrix<f64>, Vec<f64>) {
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

pub fn loss_name(l: Loss) -> &'static str {
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

    pub fn path(&self, dir: &Path) -> PathBuf {
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

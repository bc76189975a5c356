//! The tables of Section 4: `summary.csv` (Corollary 1), `theorem1.csv` and `report.md`.

use realbias_theory::network::Loss;
use serde::Serialize;

use super::config::{ConvexNnConfig, Formulation, loss_name};
use super::fit::{ConvexSummary, FitResult};

pub fn outcome(r: &FitResult, optimum: Option<f64>) -> String {
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

pub fn theorem1_csv(rows: &[Theorem1Row]) -> String {
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
    s.push_str(&selecting_markdown(convex));
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

/// The selecting view's table (empty when the config leaves the view out).
fn selecting_markdown(convex: &[ConvexSummary]) -> String {
    let mut s = String::new();
    if convex.iter().all(|c| c.selecting.is_empty()) {
        return s;
    }
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
    s
}

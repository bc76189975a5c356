//! Per-(condition, H) summaries over repetitions, the weight-decay selection, and the tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::config::Condition;
use super::plan::PlannedRun;
use realbias_train::RunResult;

/// Mean and (sample) standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len() as f64;
        if values.is_empty() {
            return Stat {
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stat {
            mean,
            std: var.sqrt(),
        }
    }
}

/// One row of `summary.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub condition: Condition,
    pub hidden: usize,
    pub runs: usize,
    /// The λ selected by validation error (weight-decay condition only).
    pub weight_decay: Option<f64>,
    pub train_error: Stat,
    pub test_error: Stat,
    pub early_stop_test_error: Stat,
    pub validation_error: Stat,
    pub early_stop_validation_error: Stat,
    pub epochs: Stat,
    pub group_norm: Stat,
    pub weight_decay_penalty: Stat,
    pub u_frobenius: Stat,
    pub v_frobenius: Stat,
    pub parameters: usize,
}

/// One λ of the weight-decay grid at one H.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridRow {
    pub hidden: usize,
    pub weight_decay: f64,
    pub runs: usize,
    /// The selection criterion: mean over repetitions of the best validation error.
    pub validation_error: Stat,
    pub test_error: Stat,
    pub early_stop_test_error: Stat,
    pub selected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    pub grid: Vec<GridRow>,
}

fn row(
    condition: Condition,
    hidden: usize,
    weight_decay: Option<f64>,
    results: &[&RunResult],
) -> SummaryRow {
    let stat =
        |f: fn(&RunResult) -> f64| Stat::of(&results.iter().map(|r| f(r)).collect::<Vec<_>>());
    SummaryRow {
        condition,
        hidden,
        runs: results.len(),
        weight_decay,
        train_error: stat(|r| r.train_error),
        test_error: stat(|r| r.test_error),
        early_stop_test_error: stat(|r| r.early_stop_test_error),
        validation_error: stat(|r| r.validation_error),
        early_stop_validation_error: stat(|r| r.early_stop_validation_error),
        epochs: stat(|r| r.epochs as f64),
        group_norm: stat(|r| r.group_norm),
        weight_decay_penalty: stat(|r| r.weight_decay_penalty),
        u_frobenius: stat(|r| r.u_frobenius),
        v_frobenius: stat(|r| r.v_frobenius),
        parameters: results.first().map_or(0, |r| r.parameters),
    }
}

/// The finished runs of one λ (0 when the condition has none).
type LambdaGroup<'a> = (f64, Vec<&'a RunResult>);

/// Summarizes finished runs (`None` = not finished yet: left out of the means). For the
/// weight-decay condition, λ is chosen per H as the grid value with the lowest mean best
/// validation error over repetitions (ties: the smaller λ), and the row reports the runs
/// with that λ.
pub fn summarize(plan: &[PlannedRun], results: &[Option<RunResult>]) -> Summary {
    // (condition, H, λ bits) -> results, in plan order.
    let mut groups: BTreeMap<(Condition, usize, u64), Vec<&RunResult>> = BTreeMap::new();
    for (run, result) in plan.iter().zip(results) {
        let key = (
            run.condition,
            run.hidden,
            run.weight_decay.map_or(0, f64::to_bits),
        );
        let entry = groups.entry(key).or_default();
        if let Some(r) = result {
            entry.push(r);
        }
    }
    let mut rows = Vec::new();
    let mut grid = Vec::new();
    let mut by_h: BTreeMap<(Condition, usize), Vec<LambdaGroup>> = BTreeMap::new();
    for ((condition, hidden, bits), results) in groups {
        by_h.entry((condition, hidden))
            .or_default()
            .push((f64::from_bits(bits), results));
    }
    for ((condition, hidden), mut lambdas) in by_h {
        if condition != Condition::WeightDecay {
            let results = lambdas.pop().map(|(_, r)| r).unwrap_or_default();
            if !results.is_empty() {
                rows.push(row(condition, hidden, None, &results));
            }
            continue;
        }
        lambdas.sort_by(|a, b| a.0.total_cmp(&b.0));
        let criterion = |rs: &[&RunResult]| {
            Stat::of(
                &rs.iter()
                    .map(|r| r.early_stop_validation_error)
                    .collect::<Vec<_>>(),
            )
            .mean
        };
        let best = lambdas
            .iter()
            .filter(|(_, rs)| !rs.is_empty())
            .min_by(|a, b| criterion(&a.1).total_cmp(&criterion(&b.1)))
            .map(|(l, _)| *l);
        for (lambda, rs) in &lambdas {
            if rs.is_empty() {
                continue;
            }
            let stat =
                |f: fn(&RunResult) -> f64| Stat::of(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
            grid.push(GridRow {
                hidden,
                weight_decay: *lambda,
                runs: rs.len(),
                validation_error: stat(|r| r.early_stop_validation_error),
                test_error: stat(|r| r.test_error),
                early_stop_test_error: stat(|r| r.early_stop_test_error),
                selected: Some(*lambda) == best,
            });
            if Some(*lambda) == best {
                rows.push(row(condition, hidden, Some(*lambda), rs));
            }
        }
    }
    rows.sort_by_key(|r| (r.condition, r.hidden));
    Summary { rows, grid }
}

fn f(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v:.6}")
    }
}

impl Summary {
    /// `summary.csv`: one row per (condition, H); no timings, so a re-run that trains
    /// nothing writes the same bytes.
    pub fn csv(&self) -> String {
        let stats = [
            "train_error",
            "test_error",
            "early_stop_test_error",
            "validation_error",
            "early_stop_validation_error",
            "epochs",
            "group_norm",
            "weight_decay_penalty",
            "u_frobenius",
            "v_frobenius",
        ];
        let mut s = String::from("condition,hidden,runs,weight_decay,parameters");
        for name in stats {
            let _ = write!(s, ",{name}_mean,{name}_std");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = write!(
                s,
                "{},{},{},{},{}",
                r.condition.name(),
                r.hidden,
                r.runs,
                r.weight_decay.map_or(String::new(), |l| format!("{l:e}")),
                r.parameters
            );
            for st in [
                r.train_error,
                r.test_error,
                r.early_stop_test_error,
                r.validation_error,
                r.early_stop_validation_error,
                r.epochs,
                r.group_norm,
                r.weight_decay_penalty,
                r.u_frobenius,
                r.v_frobenius,
            ] {
                let _ = write!(s, ",{},{}", f(st.mean), f(st.std));
            }
            s.push('\n');
        }
        s
    }

    /// `weight-decay-grid.csv`: every λ's result and which was selected.
    pub fn grid_csv(&self) -> String {
        let mut s = String::from(
            "hidden,weight_decay,runs,validation_error_mean,validation_error_std,test_error_mean,test_error_std,early_stop_test_error_mean,early_stop_test_error_std,selected\n",
        );
        for g in &self.grid {
            let _ = writeln!(
                s,
                "{},{:e},{},{},{},{},{},{},{},{}",
                g.hidden,
                g.weight_decay,
                g.runs,
                f(g.validation_error.mean),
                f(g.validation_error.std),
                f(g.test_error.mean),
                f(g.test_error.std),
                f(g.early_stop_test_error.mean),
                f(g.early_stop_test_error.std),
                g.selected
            );
        }
        s
    }

    /// A markdown table of the summary (errors in %).
    pub fn markdown(&self) -> String {
        let pct = |st: Stat| {
            if st.std > 0.0 {
                format!("{:.2} ± {:.2}", 100.0 * st.mean, 100.0 * st.std)
            } else {
                format!("{:.2}", 100.0 * st.mean)
            }
        };
        let mut s = String::from(
            "| condition | H | runs | λ | train error % | test error % (convergence) | test error % (early stopping) | epochs | Σ‖u‖‖v‖ | parameters |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {} |",
                r.condition.name(),
                r.hidden,
                r.runs,
                r.weight_decay.map_or("–".into(), |l| format!("{l:e}")),
                pct(r.train_error),
                pct(r.test_error),
                pct(r.early_stop_test_error),
                r.epochs.mean,
                r.group_norm.mean,
                r.parameters
            );
        }
        s
    }
}

//! Per-(condition, H) summaries over repetitions, the weight-decay selection, and the tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::config::Condition;
use super::plan::PlannedRun;
use realbias_train::measures::Measures;
use realbias_train::{RunResult, TrueLabels};

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
    /// The point of `[sweep.vary]`'s grid (0 without one) and its `(key, value)` pairs.
    pub variant: usize,
    pub axes: Vec<(String, String)>,
    /// The point's name (empty without a grid).
    pub point: String,
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
    /// Training dynamics of the final network (from its measures; NaN without them):
    /// `‖U − U₀‖_F / ‖U₀‖_F`, the same for `V`, the 5th-percentile training margin and the
    /// fraction of hidden units whose activation pattern changed.
    pub u_distance_relative: Stat,
    pub v_distance_relative: Stat,
    pub margin_p5: Stat,
    pub pattern_changed_units: Stat,
    /// Censored conditions: the test error against the true labels, and where the censored
    /// and the true test label differ, the fraction predicted as the truth.
    pub true_label_test_error: Stat,
    pub agrees_with_truth: Stat,
}

/// One λ of the weight-decay grid at one H.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridRow {
    pub axes: Vec<(String, String)>,
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

/// Mean and deviation of a value some results have (NaN when none has it).
fn optional_stat(results: &[&RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> Stat {
    Stat::of(&results.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
}

fn row(run: &PlannedRun, weight_decay: Option<f64>, results: &[&RunResult]) -> SummaryRow {
    let stat =
        |f: fn(&RunResult) -> f64| Stat::of(&results.iter().map(|r| f(r)).collect::<Vec<_>>());
    let measured = |f: fn(&Measures) -> f64| {
        optional_stat(results, |r| {
            r.measures.as_ref().map(|m| f(&m.at_convergence))
        })
    };
    let truth = |f: fn(&TrueLabels) -> Option<f64>| {
        optional_stat(results, |r| r.true_labels.as_ref().and_then(f))
    };
    SummaryRow {
        variant: run.variant,
        axes: run.axes.clone(),
        point: run.point.clone(),
        condition: run.condition,
        hidden: run.hidden,
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
        u_distance_relative: measured(|m| m.u_distance_relative),
        v_distance_relative: measured(|m| m.v_distance_relative),
        margin_p5: measured(|m| m.margin_p5),
        pattern_changed_units: measured(|m| m.pattern_changed_units),
        true_label_test_error: truth(|t| Some(t.test_error)),
        agrees_with_truth: truth(|t| t.agrees_with_truth),
    }
}

/// Summarizes finished runs (`None` = not finished yet: left out of the means). For the
/// weight-decay condition, λ is chosen per H as the grid value with the lowest mean best
/// validation error over repetitions (ties: the smaller λ), and the row reports the runs
/// with that λ.
pub fn summarize(plan: &[PlannedRun], results: &[Option<RunResult>]) -> Summary {
    // (variant, condition, H) -> λ bits -> (a planned run, its finished results), in plan
    // order.
    type Key = (usize, Condition, usize);
    let mut groups: BTreeMap<Key, BTreeMap<u64, (&PlannedRun, Vec<&RunResult>)>> = BTreeMap::new();
    for (run, result) in plan.iter().zip(results) {
        let lambda = run.weight_decay.map_or(0, f64::to_bits);
        let entry = groups
            .entry((run.variant, run.condition, run.hidden))
            .or_default()
            .entry(lambda)
            .or_insert((run, Vec::new()));
        if let Some(r) = result {
            entry.1.push(r);
        }
    }
    let mut rows = Vec::new();
    let mut grid = Vec::new();
    for ((_, condition, _), lambdas) in groups {
        let mut lambdas: Vec<(f64, &PlannedRun, Vec<&RunResult>)> = lambdas
            .into_iter()
            .map(|(bits, (run, rs))| (f64::from_bits(bits), run, rs))
            .collect();
        if condition != Condition::WeightDecay {
            if let Some((_, run, results)) = lambdas.pop().filter(|l| !l.2.is_empty()) {
                rows.push(row(run, None, &results));
            }
            continue;
        }
        lambdas.sort_by(|a, b| a.0.total_cmp(&b.0));
        select_lambda(&lambdas, &mut rows, &mut grid);
    }
    rows.sort_by_key(|r| (r.variant, r.condition, r.hidden));
    Summary { rows, grid }
}

/// The weight-decay condition at one H: every λ's grid row, and the summary row of the λ with
/// the lowest mean best validation error (ties: the smaller λ).
fn select_lambda(
    lambdas: &[(f64, &PlannedRun, Vec<&RunResult>)],
    rows: &mut Vec<SummaryRow>,
    grid: &mut Vec<GridRow>,
) {
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
        .filter(|(_, _, rs)| !rs.is_empty())
        .min_by(|a, b| criterion(&a.2).total_cmp(&criterion(&b.2)))
        .map(|(l, _, _)| *l);
    for (lambda, run, rs) in lambdas {
        if rs.is_empty() {
            continue;
        }
        let stat =
            |f: fn(&RunResult) -> f64| Stat::of(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
        grid.push(GridRow {
            axes: run.axes.clone(),
            hidden: run.hidden,
            weight_decay: *lambda,
            runs: rs.len(),
            validation_error: stat(|r| r.early_stop_validation_error),
            test_error: stat(|r| r.test_error),
            early_stop_test_error: stat(|r| r.early_stop_test_error),
            selected: Some(*lambda) == best,
        });
        if Some(*lambda) == best {
            rows.push(row(run, Some(*lambda), rs));
        }
    }
}

fn f(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v:.6}")
    }
}

/// The statistics of `summary.csv`, in column order (the dynamics and true-label columns came
/// later, so they are last).
/// A column of `summary.csv`: its name and the statistic it holds.
type Column = (&'static str, fn(&SummaryRow) -> Stat);

const STATS: [Column; 16] = [
    ("train_error", |r| r.train_error),
    ("test_error", |r| r.test_error),
    ("early_stop_test_error", |r| r.early_stop_test_error),
    ("validation_error", |r| r.validation_error),
    ("early_stop_validation_error", |r| {
        r.early_stop_validation_error
    }),
    ("epochs", |r| r.epochs),
    ("group_norm", |r| r.group_norm),
    ("weight_decay_penalty", |r| r.weight_decay_penalty),
    ("u_frobenius", |r| r.u_frobenius),
    ("v_frobenius", |r| r.v_frobenius),
    ("u_distance_relative", |r| r.u_distance_relative),
    ("v_distance_relative", |r| r.v_distance_relative),
    ("margin_p5", |r| r.margin_p5),
    ("pattern_changed_units", |r| r.pattern_changed_units),
    ("true_label_test_error", |r| r.true_label_test_error),
    ("agrees_with_truth", |r| r.agrees_with_truth),
];

/// The axis columns' header (`key,` each) and a row's values (`value,` each).
fn axis_cells(axes: &[(String, String)], header: bool) -> String {
    axes.iter()
        .map(|(k, v)| format!("{},", if header { k } else { v }))
        .collect()
}

impl Summary {
    /// The `[sweep.vary]` axes' `(key, value)` pairs of the first row (empty without a grid).
    fn axes(&self) -> &[(String, String)] {
        self.rows.first().map_or(&[], |r| &r.axes)
    }

    /// `summary.csv`: one row per (grid point, condition, H), the grid's axes first; no
    /// timings, so a re-run that trains nothing writes the same bytes.
    pub fn csv(&self) -> String {
        let mut s = axis_cells(self.axes(), true);
        s.push_str("condition,hidden,runs,weight_decay,parameters");
        for (name, _) in STATS {
            let _ = write!(s, ",{name}_mean,{name}_std");
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&axis_cells(&r.axes, false));
            let _ = write!(
                s,
                "{},{},{},{},{}",
                r.condition.name(),
                r.hidden,
                r.runs,
                r.weight_decay.map_or(String::new(), |l| format!("{l:e}")),
                r.parameters
            );
            for (_, get) in STATS {
                let st = get(r);
                let _ = write!(s, ",{},{}", f(st.mean), f(st.std));
            }
            s.push('\n');
        }
        s
    }

    /// `weight-decay-grid.csv`: every λ's result and which was selected.
    pub fn grid_csv(&self) -> String {
        let mut s = axis_cells(self.grid.first().map_or(&[], |g| &g.axes), true);
        s.push_str(
            "hidden,weight_decay,runs,validation_error_mean,validation_error_std,test_error_mean,test_error_std,early_stop_test_error_mean,early_stop_test_error_std,selected\n",
        );
        for g in &self.grid {
            s.push_str(&axis_cells(&g.axes, false));
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
        let vary = !self.axes().is_empty();
        let mut s = String::from(if vary { "| variant " } else { "" });
        s.push_str(
            "| condition | H | runs | λ | train error % | test error % (convergence) | test error % (early stopping) | epochs | Σ‖u‖‖v‖ | ‖U−U₀‖/‖U₀‖ | parameters |\n",
        );
        s.push_str(if vary { "|---" } else { "" });
        s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            if vary {
                let _ = write!(s, "| {} ", r.point);
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {} | {} |",
                r.condition.name(),
                r.hidden,
                r.runs,
                r.weight_decay.map_or("–".into(), |l| format!("{l:e}")),
                pct(r.train_error),
                pct(r.test_error),
                pct(r.early_stop_test_error),
                r.epochs.mean,
                r.group_norm.mean,
                match r.u_distance_relative.mean.is_nan() {
                    true => "–".to_string(),
                    false => format!("{:.3}", r.u_distance_relative.mean),
                },
                r.parameters
            );
        }
        s
    }
}

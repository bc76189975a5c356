//! Which complexity measure ranks a sweep's networks like their test error does: Kendall's τ_b
//! of every measure with the test error and with the generalization gap over all runs and
//! within each condition, and Jiang et al.'s granulated τ (ties score 0) over the axes H and
//! condition (`measures.csv`, `measures.md`, `measures.{png,svg}`). Diverged runs are left out:
//! their test error says nothing about a measure of a network that did not train.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use realbias_train::measures::Measures;
use realbias_train::{RunResult, StopReason};

use super::config::Condition;
use super::plan::PlannedRun;
use super::summary::Summary;
use crate::chart::{Figure, Mark, Panel, Series};
use crate::kendall::{Point, granulated, tau_b};

type Getter = fn(&Measures) -> Option<f64>;

/// Every measure, by the name it has in the tables.
pub const MEASURES: [(&str, Getter); 23] = [
    ("hidden units H", |m| Some(m.hidden as f64)),
    ("parameters", |m| Some(m.parameters as f64)),
    ("‖U‖_F", |m| Some(m.u_frobenius)),
    ("‖V‖_F", |m| Some(m.v_frobenius)),
    ("‖U‖_F‖V‖_F", |m| Some(m.frobenius_product)),
    ("group norm Σ‖u_h‖‖v_h‖", |m| Some(m.group_norm)),
    ("path-ℓ2 norm", |m| Some(m.path_norm)),
    ("‖U‖₂‖V‖₂", |m| Some(m.spectral_product)),
    ("‖U − U₀‖_F", |m| Some(m.u_distance)),
    ("‖V − V₀‖_F", |m| Some(m.v_distance)),
    ("‖U − U₀‖_F / ‖U₀‖_F", |m| {
        Some(m.u_distance_relative)
    }),
    ("‖V − V₀‖_F / ‖V₀‖_F", |m| {
        Some(m.v_distance_relative)
    }),
    ("margin, 5th percentile", |m| Some(m.margin_p5)),
    ("margin, 10th percentile", |m| Some(m.margin_p10)),
    ("‖U‖_F²‖V‖_F² / γ²", |m| m.frobenius_over_margin),
    ("group norm² / γ²", |m| m.group_over_margin),
    ("path-ℓ2² / γ²", |m| m.path_over_margin),
    ("‖U‖₂²‖V‖₂² / γ²", |m| {
        m.spectral_over_margin
    }),
    ("Bartlett et al. 2017 bound", |m| m.bartlett2017),
    ("Neyshabur et al. 2018 bound", |m| m.neyshabur2018),
    ("sharpness", |m| Some(m.sharpness)),
    ("units with changed ReLU pattern", |m| {
        Some(m.pattern_changed_units)
    }),
    ("flipped (unit, example) pairs", |m| {
        Some(m.pattern_flip_fraction)
    }),
];

/// Which network of a run is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    AtConvergence,
    EarlyStop,
}

impl Network {
    pub fn name(self) -> &'static str {
        match self {
            Network::AtConvergence => "at convergence",
            Network::EarlyStop => "with early stopping",
        }
    }

    /// The network's measures, test error and training error in a run.
    fn of(self, r: &RunResult) -> Option<(&Measures, f64, f64)> {
        let m = r.measures.as_ref()?;
        match self {
            Network::AtConvergence => Some((&m.at_convergence, r.test_error, r.train_error)),
            Network::EarlyStop => Some((
                &m.early_stop,
                r.early_stop_test_error,
                r.early_stop_train_error?,
            )),
        }
    }
}

/// One measure's rank correlations over one network kind.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureRow {
    pub network: Network,
    pub measure: &'static str,
    pub runs: usize,
    /// τ_b over every run.
    pub tau_test_error: Option<f64>,
    pub tau_gap: Option<f64>,
    /// Granulated τ (Jiang et al.'s eq. 3, ties 0) with the gap: per axis (H, condition, grid
    /// point) and their mean Ψ over the axes that vary.
    pub granulated_hidden: Option<f64>,
    pub granulated_condition: Option<f64>,
    /// ... over the points of a `[sweep.vary]` grid (none without one): e.g. the optimizer.
    pub granulated_point: Option<f64>,
    pub psi: Option<f64>,
    /// τ_b with the gap within each condition.
    pub within: Vec<(Condition, Option<f64>)>,
    /// The measure has one value for every run: it ranks nothing.
    pub constant: bool,
}

/// The measures that are not part of the figure: the axis itself and a multiple of it.
const NOT_DRAWN: [&str; 2] = ["hidden units H", "parameters"];

/// Whether `values` are all the same (to a relative 1e-9).
fn is_constant(values: &[f64]) -> bool {
    let Some(first) = values.first() else {
        return false;
    };
    values
        .iter()
        .all(|v| (v - first).abs() <= 1e-9 * first.abs().max(f64::MIN_POSITIVE))
}

/// The runs that stand for a condition at an H: all of them, except that the weight-decay
/// condition is represented by its selected λ.
pub(super) fn representative(plan: &[PlannedRun], summary: &Summary) -> Vec<bool> {
    let selected: BTreeMap<(usize, usize), f64> = summary
        .rows
        .iter()
        .filter(|r| r.condition == Condition::WeightDecay)
        .filter_map(|r| r.weight_decay.map(|l| ((r.variant, r.hidden), l)))
        .collect();
    plan.iter()
        .map(|r| match r.weight_decay {
            Some(l) => selected.get(&(r.variant, r.hidden)) == Some(&l),
            None => true,
        })
        .collect()
}

/// One measure's row.
fn row(
    network: Network,
    (measure, get): (&'static str, Getter),
    runs: &[(&PlannedRun, &RunResult)],
    conditions: &[Condition],
) -> MeasureRow {
    // (condition, measure, test error, gap, axes)
    let points: Vec<(Condition, f64, f64, f64, Vec<String>)> = runs
        .iter()
        .filter_map(|(plan, r)| {
            let (m, test, train) = network.of(r)?;
            let value = get(m).filter(|v| v.is_finite())?;
            let axes = vec![
                plan.hidden.to_string(),
                plan.condition.name().to_string(),
                plan.variant_label(""),
            ];
            // Groups where one axis varies hold the rest, the repetition included, fixed.
            let rest = format!("rep{}", plan.rep);
            Some((
                plan.condition,
                value,
                test,
                test - train,
                [axes, vec![rest]].concat(),
            ))
        })
        .collect();
    let column = |i: usize| -> Vec<f64> { points.iter().map(|p| [p.1, p.2, p.3][i]).collect() };
    let granular: Vec<Point> = points
        .iter()
        .map(|p| Point {
            measure: p.1,
            target: p.3,
            axes: p.4.clone(),
        })
        .collect();
    let (per_axis, psi) = granulated(&granular, 3);
    let within = conditions
        .iter()
        .map(|&c| {
            let of: Vec<_> = points.iter().filter(|p| p.0 == c).collect();
            let x: Vec<f64> = of.iter().map(|p| p.1).collect();
            let y: Vec<f64> = of.iter().map(|p| p.3).collect();
            (c, tau_b(&x, &y))
        })
        .collect();
    MeasureRow {
        network,
        measure,
        runs: points.len(),
        tau_test_error: tau_b(&column(0), &column(1)),
        tau_gap: tau_b(&column(0), &column(2)),
        granulated_hidden: per_axis[0],
        granulated_condition: per_axis[1],
        granulated_point: per_axis[2],
        psi,
        within,
        constant: is_constant(&column(0)),
    }
}

/// The rows of every measure, and the finished runs left out because they diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub rows: Vec<MeasureRow>,
    /// The folders (relative to the experiment's) of the diverged runs left out.
    pub diverged: Vec<String>,
}

/// Every measure's row for both networks, over the finished runs that carry measures and did
/// not diverge (no rows when no run does; a measure undefined for every run keeps its row,
/// with no τ).
pub fn rank(plan: &[PlannedRun], results: &[Option<RunResult>], summary: &Summary) -> Ranking {
    let keep = representative(plan, summary);
    let mut diverged = Vec::new();
    let mut runs: Vec<(&PlannedRun, &RunResult)> = Vec::new();
    for ((p, r), k) in plan.iter().zip(results).zip(keep) {
        match r.as_ref().filter(|r| k && r.measures.is_some()) {
            Some(r) if r.stop_reason == StopReason::Diverged => diverged.push(p.label()),
            Some(r) => runs.push((p, r)),
            None => {}
        }
    }
    if runs.is_empty() {
        return Ranking {
            rows: Vec::new(),
            diverged,
        };
    }
    let mut conditions: Vec<Condition> = runs.iter().map(|(p, _)| p.condition).collect();
    conditions.sort();
    conditions.dedup();
    let rows = [Network::AtConvergence, Network::EarlyStop]
        .into_iter()
        .flat_map(|n| MEASURES.iter().map(move |&m| (n, m)))
        .map(|(n, m)| row(n, m, &runs, &conditions))
        .collect();
    Ranking { rows, diverged }
}

fn cell(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.4}"))
}

/// `measures.csv`: one row per (network, measure).
pub fn csv(rows: &[MeasureRow]) -> String {
    let conditions: Vec<Condition> = rows
        .first()
        .map_or(Vec::new(), |r| r.within.iter().map(|w| w.0).collect());
    let grid = rows.iter().any(|r| r.granulated_point.is_some());
    let mut s = String::from(
        "network,measure,runs,tau_b_test_error,tau_b_gap,granulated_gap_hidden,granulated_gap_condition",
    );
    if grid {
        s.push_str(",granulated_gap_point");
    }
    s.push_str(",granulated_gap_psi");
    for c in &conditions {
        let _ = write!(s, ",tau_b_gap_within_{}", c.name());
    }
    s.push('\n');
    for r in rows {
        let _ = write!(
            s,
            "{},\"{}\",{},{},{},{},{}",
            r.network.name(),
            r.measure,
            r.runs,
            cell(r.tau_test_error),
            cell(r.tau_gap),
            cell(r.granulated_hidden),
            cell(r.granulated_condition),
        );
        if grid {
            let _ = write!(s, ",{}", cell(r.granulated_point));
        }
        let _ = write!(s, ",{}", cell(r.psi));
        for (_, t) in &r.within {
            let _ = write!(s, ",{}", cell(*t));
        }
        s.push('\n');
    }
    s
}

/// The order of `measures.md`: by |Ψ|, strongest first (a measure whose informative direction
/// is negative, such as a margin, ranks by its strength too), undefined Ψ last.
fn by_strength(a: &&MeasureRow, b: &&MeasureRow) -> std::cmp::Ordering {
    let strength = |r: &MeasureRow| r.psi.map_or(f64::NEG_INFINITY, f64::abs);
    strength(b).total_cmp(&strength(a))
}

/// `measures.md`: per network, the measures sorted by |Ψ| (strongest first, sign shown).
pub fn markdown(name: &str, ranking: &Ranking) -> String {
    let mut s = format!(
        "# {name}: which measure ranks the networks like their generalization?\n\nColumns: Kendall's τ_b (ties corrected) of each measure with the test error and with the generalization gap (test − training error) over all runs (the weight-decay condition by its selected λ) and within each condition; and the granulated τ of Jiang et al. (2020, eq. 3-5), in which a tied pair scores 0: the mean τ over groups in which only H (or only the condition) varies, and Ψ, their mean over the axes that vary here. 1: the measure orders the networks exactly as their gap does; −1: exactly reversed; 0: unrelated, or constant along the axis. Sorted by |Ψ|.\n"
    );
    if ranking.rows.iter().any(|r| r.granulated_point.is_some()) {
        s.push_str("\nWith a `[sweep.vary]` grid, τ over point is the mean τ over groups in which only the grid point varies (H, condition and repetition fixed), and Ψ averages it in.\n");
    }
    if !ranking.diverged.is_empty() {
        let _ = write!(
            s,
            "\n{} diverged run(s) left out: {}.\n",
            ranking.diverged.len(),
            ranking.diverged.join(", ")
        );
    }
    for network in [Network::AtConvergence, Network::EarlyStop] {
        let mut of: Vec<&MeasureRow> = ranking
            .rows
            .iter()
            .filter(|r| r.network == network)
            .collect();
        if of.is_empty() {
            continue;
        }
        of.sort_by(by_strength);
        let _ = write!(s, "\n## Networks {}\n\n", network.name());
        let (constant, ranked): (Vec<&MeasureRow>, Vec<&MeasureRow>) =
            of.into_iter().partition(|r| r.constant);
        if !ranked.is_empty() {
            s.push_str(&table(&ranked));
        }
        s.push_str(&notes(&ranked, &constant));
    }
    s
}

/// What the table leaves out or counts short, said in words.
fn notes(ranked: &[&MeasureRow], constant: &[&MeasureRow]) -> String {
    let mut s = String::new();
    if !constant.is_empty() {
        let names: Vec<&str> = constant.iter().map(|r| r.measure).collect();
        let _ = write!(
            s,
            "\nThe same for every network, so left out (it ranks nothing): {}.\n",
            names.join(", ")
        );
    }
    let most = ranked.iter().map(|r| r.runs).max().unwrap_or(0);
    let short: Vec<String> = ranked
        .iter()
        .filter(|r| r.runs < most)
        .map(|r| format!("{} ({})", r.measure, r.runs))
        .collect();
    if !short.is_empty() {
        let _ = write!(
            s,
            "\nFewer than {most} runs: {}. These measures divide by the margin γ (the 10th percentile of the training margins) and are undefined where γ ≤ 0, i.e. where at least a tenth of the training examples are misclassified or on the boundary.\n",
            short.join(", ")
        );
    }
    s
}

/// One network kind's table. With one condition, the columns that would repeat another (τ
/// within it is τ_b gap; without a grid, Ψ is τ over H) or stay empty (τ over condition) are
/// left out; τ over the grid point shows only with a grid.
fn table(rows: &[&MeasureRow]) -> String {
    let conditions: Vec<&str> = rows[0].within.iter().map(|w| w.0.name()).collect();
    let several = conditions.len() > 1;
    let grid = rows.iter().any(|r| r.granulated_point.is_some());
    let mut header = vec!["measure", "runs", "τ_b test error", "τ_b gap", "Ψ gap"];
    if several || grid {
        header.push("τ over H");
    }
    if several {
        header.push("τ over condition");
    }
    if grid {
        header.push("τ over point");
    }
    let within: Vec<String> = conditions.iter().map(|c| format!("τ_b gap, {c}")).collect();
    let mut header: Vec<String> = header.into_iter().map(String::from).collect();
    if several {
        header.extend(within);
    }
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        let mut cells = vec![
            r.measure.to_string(),
            r.runs.to_string(),
            cell(r.tau_test_error),
            cell(r.tau_gap),
            cell(r.psi),
        ];
        if several || grid {
            cells.push(cell(r.granulated_hidden));
        }
        if several {
            cells.push(cell(r.granulated_condition));
        }
        if grid {
            cells.push(cell(r.granulated_point));
        }
        if several {
            cells.extend(r.within.iter().map(|w| cell(w.1)));
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

/// `measures`: each measure of the final networks against H, one curve per condition (mean
/// over repetitions), log y where a measure spans more than two decades.
pub fn figure(
    name: &str,
    plan: &[PlannedRun],
    results: &[Option<RunResult>],
    summary: &Summary,
) -> Figure {
    let keep = representative(plan, summary);
    // One curve per (grid point, condition).
    let mut curves: Vec<(usize, Condition, String)> = Vec::new();
    for p in plan {
        if !curves
            .iter()
            .any(|(v, c, _)| (*v, *c) == (p.variant, p.condition))
        {
            let label = format!("{}{}", p.variant_label(" · "), p.condition.name());
            curves.push((p.variant, p.condition, label));
        }
    }
    curves.sort_by_key(|(v, c, _)| (*c, *v));
    let panels = MEASURES
        .iter()
        .filter(|(measure, _)| !NOT_DRAWN.contains(measure))
        .filter_map(|&measure| measure_panel(measure, &curves, plan, results, &keep))
        .collect();
    (
        "measures",
        format!("{name}: complexity measures of the final networks against H"),
        panels,
    )
}

/// One measure's panel: its mean over repetitions against H, one curve per (grid point,
/// condition); `None` when it has no value or one value at every width.
fn measure_panel(
    (measure, get): (&'static str, Getter),
    curves: &[(usize, Condition, String)],
    plan: &[PlannedRun],
    results: &[Option<RunResult>],
    keep: &[bool],
) -> Option<Panel> {
    let series: Vec<Series> = curves
        .iter()
        .enumerate()
        .map(|(i, (variant, c, label))| {
            let mut by_h: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for ((p, r), k) in plan.iter().zip(results).zip(keep) {
                let ours = p.condition == *c && p.variant == *variant;
                let value = r.as_ref().filter(|_| *k && ours).and_then(|r| {
                    get(&r.measures.as_ref()?.at_convergence).filter(|v| v.is_finite())
                });
                if let Some(v) = value {
                    by_h.entry(p.hidden).or_default().push(v);
                }
            }
            let points = by_h
                .iter()
                .map(|(h, v)| (*h as f64, v.iter().sum::<f64>() / v.len() as f64))
                .collect();
            Series::new(label, points, Mark::Line).colored(i)
        })
        .collect();
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    // A measure that is the same at every width has nothing to show (one width
    // shows what it has).
    let flat = values.len() > 1 && is_constant(&values);
    (!values.is_empty() && !flat).then(|| Panel {
        title: measure.into(),
        x_label: "hidden units H".into(),
        y_label: String::new(),
        log2_x: true,
        log_y: lo > 0.0 && hi / lo > 100.0,
        series,
        ..Panel::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(measure: &'static str, psi: Option<f64>) -> MeasureRow {
        MeasureRow {
            network: Network::AtConvergence,
            measure,
            runs: 4,
            tau_test_error: None,
            tau_gap: None,
            granulated_hidden: None,
            granulated_condition: None,
            granulated_point: None,
            psi,
            within: Vec::new(),
            constant: false,
        }
    }

    #[test]
    fn the_table_is_sorted_by_the_strength_of_psi_with_its_sign_shown() {
        let ranking = Ranking {
            rows: vec![
                row("weak", Some(0.2)),
                row("undefined", None),
                row("margin-like", Some(-0.8)),
                row("strong", Some(0.5)),
            ],
            diverged: Vec::new(),
        };
        let text = markdown("x", &ranking);
        let at = |name: &str| text.find(&format!("| {name} |")).unwrap();
        assert!(at("margin-like") < at("strong"), "{text}");
        assert!(at("strong") < at("weak") && at("weak") < at("undefined"));
        assert!(text.contains("| -0.8000 |"), "the sign is kept: {text}");
        assert!(!text.contains("diverged"), "{text}");
    }

    #[test]
    fn constant_measures_short_rows_and_repeated_columns_are_said_not_shown() {
        let mut flat = row("flat", Some(0.0));
        flat.constant = true;
        let mut short = row("over margin", Some(0.3));
        short.runs = 3;
        let mut rows = vec![row("strong", Some(0.5)), flat, short];
        for r in &mut rows {
            r.within = vec![(Condition::Plain, Some(0.1))];
        }
        let text = markdown(
            "x",
            &Ranking {
                rows: rows.clone(),
                diverged: Vec::new(),
            },
        );
        assert!(!text.contains("| flat |"), "{text}");
        assert!(
            text.contains("left out (it ranks nothing): flat."),
            "{text}"
        );
        assert!(
            text.contains("Fewer than 4 runs: over margin (3)."),
            "{text}"
        );
        assert!(
            !text.contains("τ over condition") && !text.contains("τ_b gap, plain"),
            "{text}"
        );
        // With two conditions every column is there.
        for r in &mut rows {
            r.within.push((Condition::Censored, Some(0.2)));
        }
        let text = markdown(
            "x",
            &Ranking {
                rows,
                diverged: Vec::new(),
            },
        );
        assert!(
            text.contains("τ over condition") && text.contains("τ_b gap, censored"),
            "{text}"
        );
    }

    #[test]
    fn a_constant_measure_is_one_within_a_relative_billionth() {
        assert!(is_constant(&[1.0, 1.0 + 1e-12, 1.0]));
        assert!(!is_constant(&[1.0, 1.001]));
        assert!(!is_constant(&[]));
    }
}

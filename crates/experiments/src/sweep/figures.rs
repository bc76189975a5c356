//! The paper's figure and the norms beside it, from a sweep's summary: one panel per
//! condition, against H on a log2 axis, bars = ±1 standard deviation over repetitions.

use std::path::Path;

use crate::chart::{ChartError, Mark, Panel, Series, draw_figures};
use crate::experiment::Finalized;

use super::config::Condition;
use super::summary::{Stat, Summary, SummaryRow};

/// A curve of the figures: its label, its palette colour and the statistic it draws.
type Curve = (&'static str, usize, fn(&SummaryRow) -> Stat);

const ERROR_CURVES: [Curve; 3] = [
    ("training error", 0, |r| r.train_error),
    ("test error (at convergence)", 1, |r| r.test_error),
    ("test error (early stopping)", 2, |r| {
        r.early_stop_test_error
    }),
];

// (The parameter count, a straight line decades above the norms, is in summary.csv.)
const NORM_CURVES: [Curve; 2] = [
    ("Σ‖u_h‖‖v_h‖ (group norm)", 4, |r| r.group_norm),
    ("½(‖U‖² + ‖V‖²)", 3, |r| r.weight_decay_penalty),
];

/// The panels' groups: (grid point, condition) in summary order, with their titles.
fn groups(summary: &Summary) -> Vec<((usize, Condition), String)> {
    let mut g: Vec<((usize, Condition), String)> = Vec::new();
    for r in &summary.rows {
        if g.last().is_none_or(|(k, _)| *k != (r.variant, r.condition)) {
            g.push(((r.variant, r.condition), title(r)));
        }
    }
    g
}

/// `censored` or, in a grid, `init_scale=0.1 · censored`.
fn title(r: &SummaryRow) -> String {
    match r.point.is_empty() {
        true => r.condition.name().into(),
        false => format!("{} · {}", r.point, r.condition.name()),
    }
}

/// A curve through `rows` against H: `scale` times the statistic's mean, ±1 deviation bars.
fn curve(rows: &[&SummaryRow], label: &str, get: fn(&SummaryRow) -> Stat, scale: f64) -> Series {
    let stats: Vec<(f64, Stat)> = rows
        .iter()
        .map(|r| (r.hidden as f64, get(r)))
        .filter(|(_, s)| !s.mean.is_nan())
        .collect();
    let points = stats.iter().map(|(h, s)| (*h, scale * s.mean)).collect();
    let errors = stats.iter().map(|(_, s)| scale * s.std).collect();
    Series::new(label, points, Mark::Line).with_errors(errors)
}

/// A panel against H on a log2 axis; `log_y` asks for a log y axis, which it gets where the
/// curves span more than two decades (on less, a linear axis reads better).
fn h_panel(title: String, y_label: &str, log_y: bool, series: Vec<Series>) -> Panel {
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let decades = log_y && lo > 0.0 && hi / lo > 100.0;
    let y_label = match decades || !log_y {
        true => y_label.to_string(),
        false => y_label.replace(" (log scale)", ""),
    };
    Panel {
        title,
        x_label: "hidden units H".into(),
        y_label,
        log2_x: true,
        log_y: decades,
        series,
        // Errors fall with H (upper right is free); norms and counts grow.
        legend_left: log_y,
        ..Panel::default()
    }
}

/// One panel per (grid point, condition); `scale` maps a statistic to the plotted unit.
fn panels(summary: &Summary, curves: &[Curve], y_label: &str, log_y: bool) -> Vec<Panel> {
    let scale = if log_y { 1.0 } else { 100.0 };
    groups(summary)
        .into_iter()
        .map(|(key, title)| {
            let rows: Vec<&SummaryRow> = summary
                .rows
                .iter()
                .filter(|r| (r.variant, r.condition) == key)
                .collect();
            let series = curves
                .iter()
                .map(|&(label, color, get)| curve(&rows, label, get, scale).colored(color))
                .collect();
            h_panel(title, y_label, log_y, series)
        })
        .collect()
}

/// Where the zoomed panel of a group starts, and how its mark reads: the first width whose
/// training error is zero (every repetition), else the first below 1%, else the widest half.
fn past_fit(rows: &[&SummaryRow]) -> Option<(usize, String)> {
    let first = |ok: &dyn Fn(f64) -> bool| rows.iter().find(|r| ok(r.train_error.mean));
    if let Some(r) = first(&|e| e == 0.0) {
        return Some((r.hidden, format!("training error 0 from H = {}", r.hidden)));
    }
    if let Some(r) = first(&|e| e < 0.01) {
        return Some((
            r.hidden,
            format!("training error < 1% from H = {}", r.hidden),
        ));
    }
    let r = rows.get(rows.len() / 2)?;
    Some((r.hidden, format!("the widest half, from H = {}", r.hidden)))
}

/// The paper's figure. First, per group, the test errors alone from where the training error
/// reaches zero, on their own scale: the effect in question, a fraction of a point there.
/// Below them the whole range: training and both test errors against H. That width is
/// marked on both.
fn error_panels(summary: &Summary) -> Vec<Panel> {
    let mut full = Vec::new();
    let mut zoomed = Vec::new();
    for (key, title) in groups(summary) {
        let rows: Vec<&SummaryRow> = summary
            .rows
            .iter()
            .filter(|r| (r.variant, r.condition) == key)
            .collect();
        let curves = |rows: &[&SummaryRow], which: &[Curve]| -> Vec<Series> {
            which
                .iter()
                .map(|&(label, color, get)| curve(rows, label, get, 100.0).colored(color))
                .collect()
        };
        let mut panel = h_panel(
            title.clone(),
            "error (%)",
            false,
            curves(&rows, &ERROR_CURVES),
        );
        let Some((from, mark)) = past_fit(&rows) else {
            full.push(panel);
            continue;
        };
        panel.x_marks.push((mark.clone(), from as f64));
        full.push(panel);
        let past: Vec<&SummaryRow> = rows.iter().copied().filter(|r| r.hidden >= from).collect();
        let zoom_title = format!("{title}: test error past the fit (H ≥ {from})");
        let mut zoom = h_panel(
            zoom_title,
            "test error (%)",
            false,
            curves(&past, &ERROR_CURVES[1..]),
        );
        zoom.x_marks.push((mark, from as f64));
        zoomed.push(zoom);
    }
    if let (false, Some(first)) = (zoomed.is_empty(), full.first_mut()) {
        first.new_row = true;
    }
    zoomed.extend(full);
    zoomed
}

/// What `norms.png`'s rising curves mean, below its title.
const NORMS_NOTE: &str = "A norm rising with H is expected and does not contradict the paper: \
    the smallest group norm that fits the data cannot grow with H (a wider network contains \
    every narrower one), but training from a random start does not find it. Wide networks stay \
    near their start (summary.csv: u_distance_relative), whose group norm grows like √(kH). \
    Which measures do rank the networks: measures.md.";

/// What the grid figure compares across points: (title, y label, log y, statistic, scale).
type Compared = (
    &'static str,
    &'static str,
    bool,
    fn(&SummaryRow) -> Stat,
    f64,
);

const COMPARED: [Compared; 5] = [
    (
        "predicts the true label where the censored one differs",
        "test examples (%)",
        false,
        |r| r.agrees_with_truth,
        100.0,
    ),
    (
        "test error (at convergence)",
        "error (%)",
        false,
        |r| r.test_error,
        100.0,
    ),
    (
        "test error (early stopping)",
        "error (%)",
        false,
        |r| r.early_stop_test_error,
        100.0,
    ),
    (
        "‖U − U₀‖_F / ‖U₀‖_F",
        "relative distance (log scale)",
        true,
        |r| r.u_distance_relative,
        1.0,
    ),
    (
        "Σ‖u_h‖‖v_h‖ (group norm)",
        "value (log scale)",
        true,
        |r| r.group_norm,
        1.0,
    ),
];

/// `vary.{png,svg}` for a `[sweep.vary]` grid: per condition, the test errors, (censored) how
/// often the prediction is the true label where the censored one differs, the distance from
/// initialization and the group norm against H, one curve per grid point.
fn vary_panels(summary: &Summary) -> Vec<Panel> {
    let mut conditions: Vec<Condition> = summary.rows.iter().map(|r| r.condition).collect();
    conditions.sort();
    conditions.dedup();
    let mut points: Vec<(usize, String)> = Vec::new();
    for r in &summary.rows {
        if !points.iter().any(|(v, _)| *v == r.variant) {
            points.push((r.variant, r.point.clone()));
        }
    }
    let mut panels = Vec::new();
    for condition in conditions {
        for (what, y_label, log_y, get, scale) in COMPARED {
            let series: Vec<Series> = points
                .iter()
                .enumerate()
                .map(|(color, (variant, label))| {
                    let rows: Vec<&SummaryRow> = summary
                        .rows
                        .iter()
                        .filter(|r| r.variant == *variant && r.condition == condition)
                        .collect();
                    curve(&rows, label, get, scale).colored(color)
                })
                .collect();
            // A statistic only some conditions have (agreement with the truth) has no panel
            // elsewhere.
            if series.iter().all(|s| s.points.is_empty()) {
                continue;
            }
            let title = format!("{} · {what}", condition.name());
            panels.push(h_panel(title, y_label, log_y, series));
        }
    }
    panels
}

/// `errors.{png,svg}` (the paper's figure: training error and both test errors against H) and
/// `norms.{png,svg}` (beyond the paper: the norm measures beside the parameter count).
pub fn draw(
    dir: &Path,
    summary: &Summary,
    name: &str,
    dataset: &str,
    finalized: &mut Finalized,
) -> Result<(), ChartError> {
    let mut figures = vec![
        (
            "errors",
            format!("{name}: {dataset}, error vs hidden units"),
            error_panels(summary),
        ),
        (
            "norms",
            format!("{name}: {dataset}, norms vs hidden units\n{NORMS_NOTE}"),
            panels(summary, &NORM_CURVES, "value (log scale)", true),
        ),
    ];
    if summary.rows.iter().any(|r| !r.point.is_empty()) {
        figures.push((
            "vary",
            format!("{name}: {dataset}, each point of [sweep.vary] against H"),
            vary_panels(summary),
        ));
    }
    let (files, warnings) = draw_figures(dir, figures)?;
    finalized.files.extend(files);
    finalized.warnings.extend(warnings);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hidden: usize, train_error: f64) -> SummaryRow {
        let stat = |v: f64| Stat::of(&[v, v]);
        SummaryRow {
            variant: 0,
            axes: Vec::new(),
            point: String::new(),
            condition: Condition::Plain,
            hidden,
            runs: 2,
            weight_decay: None,
            train_error: stat(train_error),
            test_error: stat(0.07),
            early_stop_test_error: stat(0.072),
            validation_error: stat(0.07),
            early_stop_validation_error: stat(0.07),
            epochs: stat(100.0),
            group_norm: stat(400.0),
            weight_decay_penalty: stat(400.0),
            u_frobenius: stat(10.0),
            v_frobenius: stat(10.0),
            parameters: hidden * 110,
            u_distance_relative: stat(1.0),
            v_distance_relative: stat(1.0),
            margin_p5: stat(0.1),
            pattern_changed_units: stat(1.0),
            true_label_test_error: stat(f64::NAN),
            agrees_with_truth: stat(f64::NAN),
        }
    }

    #[test]
    fn the_panel_past_the_fit_comes_first_and_marks_where_training_error_reaches_zero() {
        let summary = Summary {
            rows: vec![row(4, 0.2), row(16, 0.01), row(64, 0.0), row(256, 0.0)],
            grid: Vec::new(),
        };
        let panels = error_panels(&summary);
        assert_eq!(panels.len(), 2);
        assert_eq!(panels[0].title, "plain: test error past the fit (H ≥ 64)");
        let xs: Vec<f64> = panels[0].series[0].points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [64.0, 256.0], "only the widths past the fit");
        assert_eq!(
            panels[0].x_marks,
            [("training error 0 from H = 64".into(), 64.0)]
        );
        assert_eq!(panels[1].title, "plain");
        assert!(panels[1].new_row, "the whole range below it");
        assert_eq!(
            panels[1].series.len(),
            3,
            "training error and both test errors"
        );
    }
}

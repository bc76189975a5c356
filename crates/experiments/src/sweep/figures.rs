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

const NORM_CURVES: [Curve; 3] = [
    ("Σ‖u_h‖‖v_h‖ (group norm)", 4, |r| r.group_norm),
    ("½(‖U‖² + ‖V‖²)", 3, |r| r.weight_decay_penalty),
    ("parameters H(d+k)", 7, |r| Stat {
        mean: r.parameters as f64,
        std: 0.0,
    }),
];

fn conditions(summary: &Summary) -> Vec<Condition> {
    let mut c: Vec<Condition> = summary.rows.iter().map(|r| r.condition).collect();
    c.dedup();
    c
}

/// One panel per condition; `scale` maps a statistic to the plotted unit.
fn panels(summary: &Summary, curves: &[Curve], y_label: &str, log_y: bool) -> Vec<Panel> {
    let scale = if log_y { 1.0 } else { 100.0 };
    conditions(summary)
        .into_iter()
        .map(|c| {
            let rows: Vec<&SummaryRow> = summary.rows.iter().filter(|r| r.condition == c).collect();
            let series = curves
                .iter()
                .map(|&(label, color, get)| {
                    let stats: Vec<(f64, Stat)> =
                        rows.iter().map(|r| (r.hidden as f64, get(r))).collect();
                    let points = stats.iter().map(|(h, s)| (*h, scale * s.mean)).collect();
                    let errors = stats.iter().map(|(_, s)| scale * s.std).collect();
                    Series::new(label, points, Mark::Line)
                        .with_errors(errors)
                        .colored(color)
                })
                .collect();
            Panel {
                title: c.name().into(),
                x_label: "hidden units H".into(),
                y_label: y_label.into(),
                log2_x: true,
                log_y,
                series,
                // Errors fall with H (upper right is free); norms and counts grow.
                legend_left: log_y,
                ..Panel::default()
            }
        })
        .collect()
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
    let figures = vec![
        (
            "errors",
            format!("{name}: {dataset}, error vs hidden units"),
            panels(summary, &ERROR_CURVES, "error (%)", false),
        ),
        (
            "norms",
            format!("{name}: {dataset}, norms vs hidden units"),
            panels(summary, &NORM_CURVES, "value (log scale)", true),
        ),
    ];
    let (files, warnings) = draw_figures(dir, figures)?;
    finalized.files.extend(files);
    finalized.warnings.extend(warnings);
    Ok(())
}

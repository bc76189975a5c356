//! Section 3's figures: errors, trace norm and the gap to the convex solutions against k.

use std::path::Path;

use super::config::Regime;
use super::fit::{Baselines, FitResult};
use crate::chart::{ChartError, Mark, Panel, Series, draw_figures};
use crate::experiment::Finalized;

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
    value: fn(&FitResult) -> Option<f64>,
) -> Vec<(f64, f64)> {
    fits.iter()
        .filter(|r| r.observed == observed && r.regime == regime)
        .filter_map(|r| value(r).map(|v| (r.inner as f64, v)))
        .collect()
}

const K_LABEL: &str = "inner dimension k (hidden units)";

/// The three panels of one observed set: errors, trace norm, gaps to the convex solutions.
fn observed_panels(b: &Baselines, fits: &[FitResult]) -> [Panel; 3] {
    let m = b.observed;
    let title = format!("{m} observed entries");
    let mut e = Panel {
        title: title.clone(),
        x_label: K_LABEL.into(),
        y_label: "RMSE (log)".into(),
        log2_x: true,
        log_y: true,
        ..Panel::default()
    };
    let mut t = Panel {
        title: title.clone(),
        x_label: K_LABEL.into(),
        y_label: "‖W‖_tr".into(),
        log2_x: true,
        ..Panel::default()
    };
    let mut g = Panel {
        title,
        x_label: K_LABEL.into(),
        y_label: "relative gap / distance (log)".into(),
        log2_x: true,
        log_y: true,
        ..Panel::default()
    };
    for (ri, regime) in regimes(fits).into_iter().enumerate() {
        let of = |value: fn(&FitResult) -> Option<f64>| series_of(fits, m, regime, value);
        let label = regime.label();
        e.series.push(
            Series::new(
                format!("test, {label}"),
                of(|r| Some(r.held_out_rmse)),
                Mark::Line,
            )
            .colored(ri),
        );
        e.series.push(
            Series::new(
                format!("train, {label}"),
                of(|r| Some(r.observed_rmse)),
                Mark::Thin,
            )
            .colored(ri),
        );
        t.series
            .push(Series::new(label.clone(), of(|r| Some(r.trace_norm)), Mark::Line).colored(ri));
        g.series.extend(
            gap_series(regime, &label, of)
                .into_iter()
                .map(|s| s.colored(ri)),
        );
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
    [e, t, g]
}

/// A regime's curves in the gap panel: penalized fits against the trace-norm solution,
/// unregularized ones against the minimum-trace-norm interpolant.
fn gap_series(
    regime: Regime,
    label: &str,
    of: impl Fn(fn(&FitResult) -> Option<f64>) -> Vec<(f64, f64)>,
) -> Vec<Series> {
    match regime {
        Regime::Penalized { .. } => vec![
            Series::new(
                format!("objective gap, {label}"),
                of(|r| r.objective_gap),
                Mark::Line,
            ),
            Series::new(
                format!("distance to trace-norm solution, {label}"),
                of(|r| Some(r.distance_to_convex)),
                Mark::Thin,
            ),
        ],
        Regime::Unregularized { .. } => vec![Series::new(
            format!("distance to min-‖W‖_tr interpolant, {label}"),
            of(|r| Some(r.distance_to_convex)),
            Mark::Line,
        )],
    }
}

/// `errors`, `trace-norm` and `objective-gap` (PNG and SVG), one panel per observed set.
pub fn draw(
    dir: &Path,
    fits: &[FitResult],
    baselines: &[Baselines],
    finalized: &mut Finalized,
) -> Result<(), ChartError> {
    let (mut errors, mut traces, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    for b in baselines {
        let [e, t, g] = observed_panels(b, fits);
        errors.push(e);
        traces.push(t);
        gaps.push(g);
    }
    let figures = vec![
        (
            "errors",
            "Matrix completion by a linear network: errors against k".to_string(),
            errors,
        ),
        (
            "trace-norm",
            "Trace norm of the learned W against k".to_string(),
            traces,
        ),
        (
            "objective-gap",
            "Reaching the convex trace-norm solutions as k grows".to_string(),
            gaps,
        ),
    ];
    let (files, warnings) = draw_figures(dir, figures)?;
    finalized.files.extend(files);
    finalized.warnings.extend(warnings);
    Ok(())
}

//! Section 4's figures: Corollary 1 against H, training curves, the learned function and its
//! units, and the selecting view.

use std::path::Path;

use realbias_theory::network::Weights;

use super::config::ConvexNnConfig;
use super::fit::{ConvexSummary, FitResult};
use super::report::CorollaryRow;
use crate::chart::{ChartError, Figure, Mark, Panel, Series, draw_figures};
use crate::experiment::Finalized;

/// `f(s)` of a `d = 2` network on the input `(s, 1)`.
fn curve(w: &Weights, grid: &[f64]) -> Vec<(f64, f64)> {
    grid.iter()
        .map(|&s| {
            let f: f64 = (0..w.h)
                .map(|j| (w.u[j] * s + w.u[w.h + j]).max(0.0) * w.v[j])
                .sum();
            (s, f)
        })
        .collect()
}

/// `(angle of u_h in degrees, ‖u_h‖ v_h)` for the active units of a `d = 2` network.
fn directions(w: &Weights, threshold: f64) -> Vec<(f64, f64)> {
    let norms = w.input_norms();
    (0..w.h)
        .filter(|&j| norms[j] * w.v[j].abs() > threshold)
        .map(|j| (w.u[w.h + j].atan2(w.u[j]).to_degrees(), norms[j] * w.v[j]))
        .collect()
}

/// Corollary 1: the objective of eq. (4) against H, one panel per d.
fn corollary(
    config: &ConvexNnConfig,
    fits: &[FitResult],
    convex: &[ConvexSummary],
    rows: &[CorollaryRow],
) -> Figure {
    let panels = convex
        .iter()
        .map(|c| Panel {
            title: format!("d = {}", c.d),
            x_label: "hidden units H".into(),
            y_label: "objective of eq. (4) (log)".into(),
            log2_x: true,
            log_y: true,
            series: vec![
                Series::new(
                    "best of the inits",
                    rows.iter()
                        .filter(|r| r.d == c.d)
                        .map(|r| (r.hidden as f64, r.best_objective))
                        .collect(),
                    Mark::Line,
                ),
                Series::new(
                    "each init",
                    fits.iter()
                        .filter(|f| f.in_sweep(c.d))
                        .map(|f| (f.hidden as f64, f.objective))
                        .collect(),
                    Mark::Points,
                ),
            ],
            references: vec![c.reference_line()],
            ..Panel::default()
        })
        .collect();
    let title = format!(
        "Weight decay (eq. 4) meets the convex neural net once H is large (n = {}, λ = {})",
        config.problem.examples, config.problem.lambda
    );
    ("corollary", title, panels)
}

/// One thin curve per fit of a trace value over the iterations.
fn history_panel(
    title: &str,
    y_label: &str,
    fits: &[&FitResult],
    value: impl Fn(&realbias_theory::network::TracePoint) -> f64,
) -> Panel {
    Panel {
        title: title.into(),
        x_label: "iteration".into(),
        y_label: y_label.into(),
        log_y: true,
        series: fits
            .iter()
            .map(|f| {
                let points = f
                    .history
                    .iter()
                    .map(|p| (p.iteration as f64, value(p)))
                    .collect();
                Series::new(format!("H = {}", f.hidden), points, Mark::Thin)
            })
            .collect(),
        ..Panel::default()
    }
}

/// Training: gap to the optimum and balance gap over iterations, d = 2, init 0.
fn training(fits: &[FitResult], c: &ConvexSummary) -> Figure {
    let chosen: Vec<&FitResult> = fits
        .iter()
        .filter(|f| f.in_sweep(2) && f.init == 0)
        .collect();
    let gap = history_panel("objective − convex optimum", "(log)", &chosen, |p| {
        p.objective - c.objective
    });
    let balance = history_panel(
        "½Σ(‖u_h‖² + v_h²) − Σ‖u_h‖|v_h|",
        "balance gap (log)",
        &chosen,
        |p| p.balance_gap,
    );
    (
        "training",
        "Gradient descent on eq. (4), d = 2: objective gap and unit balance".into(),
        vec![gap, balance],
    )
}

/// The learned function of the widest best fit beside the convex solution, and the active
/// units' directions, d = 2.
fn function(config: &ConvexNnConfig, fits: &[FitResult], c: &ConvexSummary) -> Option<Figure> {
    let widest = config.network.hidden.iter().copied().max().unwrap_or(0);
    let best = fits
        .iter()
        .filter(|f| f.in_sweep(2) && f.hidden == widest)
        .min_by(|a, b| a.objective.total_cmp(&b.objective))?;
    let (x, y) = config.data(2);
    let s: Vec<f64> = (0..x.nrows()).map(|t| x[(t, 0)]).collect();
    let lo = s.iter().copied().fold(f64::INFINITY, f64::min) - 0.3;
    let hi = s.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.3;
    let grid = |n: usize| -> Vec<f64> {
        (0..=n)
            .map(|i| lo + (hi - lo) * i as f64 / n as f64)
            .collect()
    };
    let network = format!("network, H = {}", best.hidden);
    let function = Panel {
        title: "f(s) on inputs (s, 1)".into(),
        x_label: "s".into(),
        y_label: "f".into(),
        series: vec![
            Series::new(
                "training data",
                s.iter().copied().zip(y.iter().copied()).collect(),
                Mark::Points,
            )
            .colored(7),
            Series::new(
                network.clone(),
                curve(&best.weights, &grid(300)),
                Mark::Thin,
            )
            .colored(0),
            Series::new(
                "convex solution",
                curve(&c.weights, &grid(30)),
                Mark::Points,
            )
            .colored(1),
        ],
        ..Panel::default()
    };
    let thr = |w: &Weights| config.network.active_fraction * w.path_norm();
    let units = Panel {
        title: "active units: direction of u_h and ‖u_h‖v_h".into(),
        x_label: "angle of u_h (degrees)".into(),
        y_label: "‖u_h‖ v_h".into(),
        series: vec![
            Series::new(
                network,
                directions(&best.weights, thr(&best.weights)),
                Mark::Points,
            )
            .colored(0),
            Series::new(
                "convex solution",
                directions(&c.weights, thr(&c.weights)),
                Mark::Points,
            )
            .colored(1),
        ],
        ..Panel::default()
    };
    let title = "d = 2: the weight-decay network and the convex neural net".into();
    Some(("function", title, vec![function, units]))
}

/// The selecting view: the ℓ1 objective against the library size, one panel per d.
fn selecting(convex: &[ConvexSummary]) -> Option<Figure> {
    let panels: Vec<Panel> = convex
        .iter()
        .filter(|c| !c.selecting.is_empty())
        .map(|c| Panel {
            title: format!("d = {}", c.d),
            x_label: "library size (random unit vectors)".into(),
            y_label: "ℓ1 objective (log)".into(),
            log2_x: true,
            log_y: true,
            series: vec![Series::new(
                "selecting: ℓ1 over the library",
                c.selecting
                    .iter()
                    .map(|r| (r.library as f64, r.objective))
                    .collect(),
                Mark::Line,
            )],
            references: vec![c.reference_line()],
            ..Panel::default()
        })
        .collect();
    let title =
        "Selecting units from a growing random library approaches the convex net from above";
    (!panels.is_empty()).then(|| ("selecting", title.to_string(), panels))
}

/// `corollary`, `training`, `function` and `selecting` (PNG and SVG).
pub fn draw(
    config: &ConvexNnConfig,
    dir: &Path,
    fits: &[FitResult],
    convex: &[ConvexSummary],
    rows: &[CorollaryRow],
    finalized: &mut Finalized,
) -> Result<(), ChartError> {
    let mut figures = vec![corollary(config, fits, convex, rows)];
    if let Some(c) = convex.iter().find(|c| c.d == 2) {
        figures.push(training(fits, c));
        figures.extend(function(config, fits, c));
    }
    figures.extend(selecting(convex));
    let (files, warnings) = draw_figures(dir, figures)?;
    finalized.files.extend(files);
    finalized.warnings.extend(warnings);
    Ok(())
}

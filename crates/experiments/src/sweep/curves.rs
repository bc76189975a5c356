//! `curves.{png,svg}`, the learning curves: drawn when the runs' histories hold the test error
//! of every epoch (`train.eval_test_every_epoch = true`; by default the test split is
//! evaluated once, at the end, as the paper reports it). Per grid point and condition, the
//! test error and below it the training error against the epoch, one line per width, each of
//! its first repetition (the weight-decay condition: its selected λ).

use std::path::Path;

use crate::chart::{ChartError, Mark, Panel, Series, draw_figures};
use crate::experiment::Finalized;

use super::config::Condition;
use super::measures::representative;
use super::plan::PlannedRun;
use super::summary::Summary;

/// One epoch of a run: (epoch, training error, test error if evaluated).
type EpochErrors = (f64, f64, Option<f64>);

/// One run's curves, from its history.
type Curve = Vec<EpochErrors>;

/// The curves of one (grid point, condition): its key, its title and a curve per width.
type Group = ((usize, Condition), String, Vec<(usize, Curve)>);

/// The curve of a run folder's `history.csv`; `None` when it is missing or unreadable (the
/// figures are drawn from what there is).
fn read_curve(run_dir: &Path) -> Option<Curve> {
    let text = std::fs::read_to_string(run_dir.join("history.csv")).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name);
    let (epoch, train, test) = (at("epoch")?, at("train_error")?, at("test_error")?);
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let number = |i: usize| cells.get(i)?.parse::<f64>().ok();
            Some((number(epoch)?, number(train)?, number(test)))
        })
        .collect()
}

/// The first repetition of every width, grouped by (grid point, condition), with its curve.
fn first_repetitions(plan: &[PlannedRun], summary: &Summary) -> Vec<(String, Vec<(usize, Curve)>)> {
    let keep = representative(plan, summary);
    let mut groups: Vec<Group> = Vec::new();
    for (run, _) in plan.iter().zip(keep).filter(|(r, k)| *k && r.rep == 0) {
        let Some(curve) = read_curve(&run.dir) else {
            continue;
        };
        let key = (run.variant, run.condition);
        let at = match groups.iter().position(|(k, _, _)| *k == key) {
            Some(at) => at,
            None => {
                let title = match run.point.is_empty() {
                    true => run.condition.name().to_string(),
                    false => format!("{} · {}", run.point, run.condition.name()),
                };
                groups.push((key, title, Vec::new()));
                groups.len() - 1
            }
        };
        groups[at].2.push((run.hidden, curve));
    }
    groups.into_iter().map(|(_, t, w)| (t, w)).collect()
}

/// A panel of one statistic against the epoch, a line per width; `log_y` for the test error,
/// whose late differences are fractions of a point beside its first epochs' 90%.
fn epoch_panel(
    title: String,
    widths: &[(usize, Curve)],
    get: fn(&EpochErrors) -> Option<f64>,
    log_y: bool,
) -> Panel {
    let series = widths
        .iter()
        .enumerate()
        .map(|(i, (hidden, curve))| {
            let points = curve
                .iter()
                .filter_map(|p| Some((p.0, 100.0 * get(p)?)))
                .collect();
            Series::new(format!("H = {hidden}"), points, Mark::Thin).colored(i)
        })
        .collect();
    Panel {
        title,
        x_label: "epoch".into(),
        y_label: match log_y {
            true => "error (%, log scale)".into(),
            false => "error (%)".into(),
        },
        log_y,
        series,
        ..Panel::default()
    }
}

/// The learning-curve panels: per group, test errors on top and training errors below;
/// none when no history has a test error before its last epoch.
pub fn curve_panels(plan: &[PlannedRun], summary: &Summary) -> Vec<Panel> {
    let groups = first_repetitions(plan, summary);
    let per_epoch = groups
        .iter()
        .flat_map(|(_, w)| w)
        .any(|(_, c)| c.iter().rev().skip(1).any(|p| p.2.is_some()));
    if !per_epoch {
        return Vec::new();
    }
    let test = groups
        .iter()
        .map(|(t, w)| epoch_panel(format!("{t}: test error per epoch"), w, |p| p.2, true));
    let mut train: Vec<Panel> = groups
        .iter()
        .map(|(t, w)| {
            epoch_panel(
                format!("{t}: training error per epoch"),
                w,
                |p| Some(p.1),
                false,
            )
        })
        .collect();
    if let Some(first) = train.first_mut() {
        first.new_row = true;
    }
    test.chain(train).collect()
}

/// Draws `curves.{png,svg}` into `dir` when the histories have per-epoch test errors.
pub fn draw(
    dir: &Path,
    plan: &[PlannedRun],
    summary: &Summary,
    title: &str,
    finalized: &mut Finalized,
) -> Result<(), ChartError> {
    let panels = curve_panels(plan, summary);
    if panels.is_empty() {
        return Ok(());
    }
    let title = format!(
        "{title}: learning curves\nThe first repetition of each width (the weight-decay condition: its selected λ); \
         the test error on a log scale."
    );
    let (files, warnings) = draw_figures(dir, vec![("curves", title, panels)])?;
    finalized.files.extend(files);
    finalized.warnings.extend(warnings);
    Ok(())
}

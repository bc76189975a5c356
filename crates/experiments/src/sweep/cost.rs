//! What each optimizer's runs cost (a sweep that trains other methods than SGD): epochs,
//! passes over the training split and wall time to the stop, per method and condition, as a
//! section of `report.md`.

use realbias_train::RunResult;
use realbias_train::optim::Method;

use super::plan::PlannedRun;

/// Full-training-set gradient passes of a run: its function-and-gradient evaluations for a
/// full-batch method, its epochs for a mini-batch one (one pass per epoch).
fn passes(r: &RunResult) -> f64 {
    r.gradient_evaluations.map_or(r.epochs as f64, |n| n as f64)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The report's cost section, if any run of the plan trains by another method than SGD.
pub fn section(runs: &[PlannedRun], results: &[Option<RunResult>]) -> Option<String> {
    if runs.iter().all(|r| r.config.optim.method == Method::Sgd) {
        return None;
    }
    let mut groups: Vec<(String, Vec<&RunResult>)> = Vec::new();
    for (run, result) in runs.iter().zip(results) {
        let Some(result) = result else { continue };
        let key = format!(
            "{} | {} | {}",
            run.config.optim.method.name(),
            run.variant_label(""),
            run.condition.name()
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(result),
            None => groups.push((key, vec![result])),
        }
    }
    let mut text = String::from(
        "\n## Cost per optimizer\n\nOver every width; passes: full-training-set gradient evaluations (the full-batch methods' line searches included; one per epoch for the mini-batch methods).\n\n| method | point | condition | runs | converged | mean epochs | mean passes | mean seconds | total seconds |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (key, g) in &groups {
        let converged = g
            .iter()
            .filter(|r| r.stop_reason == realbias_train::StopReason::Converged)
            .count();
        let epochs: Vec<f64> = g.iter().map(|r| r.epochs as f64).collect();
        let passes: Vec<f64> = g.iter().map(|r| passes(r)).collect();
        let seconds: Vec<f64> = g.iter().map(|r| r.wall_seconds).collect();
        text.push_str(&format!(
            "| {key} | {} | {converged} | {:.1} | {:.1} | {:.2} | {:.1} |\n",
            g.len(),
            mean(&epochs),
            mean(&passes),
            mean(&seconds),
            seconds.iter().sum::<f64>()
        ));
    }
    Some(text)
}

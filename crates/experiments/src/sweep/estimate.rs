//! What a dry run says about a sweep beyond its unit count: the units per (grid point,
//! condition) and H, the censoring networks it would train first, and an estimate of the time
//! from a short timing of the real training path on this machine (`realbias bench`'s).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use realbias_train::bench::{self, BenchSettings};
use realbias_train::engine::classifier::LossPath;

use super::Sweep;
use super::censor::{censor_dir, censor_key};
use crate::ExperimentError;
use crate::unit::Unit;

/// Examples of the timing epoch (at most): enough for a stable step time, a second or so at
/// H = 4096.
const TIMED_EXAMPLES: usize = 5_000;
const TIMED_VALIDATION: usize = 2_000;

/// A row of the plan table: its name and, per H, (units to train, units planned).
type PlanRow = (String, BTreeMap<usize, (usize, usize)>);

impl Sweep {
    /// A table of units to train / planned, one row per (grid point, condition), one column
    /// per H.
    pub(super) fn plan_table(&self, units: &[(Unit, bool)]) -> String {
        let mut widths: Vec<usize> = Vec::new();
        let mut rows: Vec<PlanRow> = Vec::new();
        for (unit, kept) in units {
            let Some(run) = self.runs.get(unit.index) else {
                continue;
            };
            let name = format!("{}{}", run.variant_label(" · "), run.condition.name());
            if !widths.contains(&run.hidden) {
                widths.push(run.hidden);
            }
            let at = match rows.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    rows.push((name, BTreeMap::new()));
                    rows.len() - 1
                }
            };
            let cell = rows[at].1.entry(run.hidden).or_default();
            cell.0 += usize::from(!kept);
            cell.1 += 1;
        }
        widths.sort_unstable();
        let header: Vec<String> = widths.iter().map(|h| format!("H={h}")).collect();
        let mut s = format!(
            "units to train / planned:\n  | |{}|\n  |---|{}\n",
            header.join("|"),
            "---|".repeat(widths.len())
        );
        for (name, cells) in rows {
            let cells: Vec<String> = widths
                .iter()
                .map(|h| {
                    cells
                        .get(h)
                        .map_or(String::new(), |(t, n)| format!("{t}/{n}"))
                })
                .collect();
            s.push_str(&format!("  | {name} |{}|\n", cells.join("|")));
        }
        s
    }

    /// The censoring networks the censored conditions need, each cached already or to train
    /// first (before any unit), with its size.
    pub(super) fn censor_work(&self, dir: &Path) -> Result<Vec<String>, ExperimentError> {
        let Some(full) = self.full.as_ref() else {
            return Ok(Vec::new());
        };
        if !self.config.sweep.conditions.iter().any(|c| c.is_censored()) {
            return Ok(Vec::new());
        }
        let mut lines: Vec<String> = Vec::new();
        for config in self.config.censor_configs().into_iter().flatten() {
            let key = censor_key(&config, full)?;
            let cached = censor_dir(dir, &config, full, &key)
                .join("key.toml")
                .is_file();
            let line = format!(
                "censoring network H0 = {} on all {} examples, up to {} epochs: {}",
                config.model.hidden,
                full.total_len(),
                config.train.max_epochs,
                if cached { "cached" } else { "to train first" }
            );
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        Ok(lines)
    }

    /// Seconds each of `units` takes at most (at its epoch cap; most runs converge sooner),
    /// scaled from one timed epoch per width on `TIMED_EXAMPLES` synthetic examples with
    /// `threads` threads: an estimate, as good as the machine is quiet.
    pub(super) fn estimate_seconds(
        &self,
        units: &[&Unit],
        device: &Device,
        threads: usize,
    ) -> Result<Vec<f64>, ExperimentError> {
        let Some(full) = self.full.as_ref() else {
            return Ok(Vec::new());
        };
        let runs: Vec<_> = units
            .iter()
            .filter_map(|u| self.runs.get(u.index))
            .collect();
        let mut widths: Vec<usize> = runs.iter().map(|r| r.hidden).collect();
        widths.sort_unstable();
        widths.dedup();
        let batch = self.config.base.optim.batch_size;
        let examples = (TIMED_EXAMPLES.min(full.train.len()) / batch).max(1) * batch;
        let settings = BenchSettings {
            hidden: widths,
            examples,
            validation: TIMED_VALIDATION.min(full.validation.len()),
            epochs: 1,
            threads: threads.max(1),
            inputs: full.dim(),
            classes: full.classes,
            batch_size: batch,
            loss: LossPath::Fused,
            ensemble: None,
            checkpoint_dir: None,
        };
        let timed = bench::run(&settings, device, &mut |_| {})
            .map_err(|e| ExperimentError::Timing(e.to_string()))?;
        let per_epoch: BTreeMap<usize, (f64, f64)> = timed
            .iter()
            .map(|r| (r.hidden, (r.epoch_seconds, r.eval_seconds)))
            .collect();
        let evaluated = (settings.examples + settings.validation) as f64;
        Ok(runs
            .iter()
            .map(|r| {
                let (train, eval) = per_epoch.get(&r.hidden).copied().unwrap_or((0.0, 0.0));
                let n = self.train_examples(r) as f64;
                let validation = self.validation_examples(r) as f64;
                let epoch = train * n / examples as f64 + eval * (n + validation) / evaluated;
                epoch * r.config.train.max_epochs as f64
            })
            .collect())
    }
}

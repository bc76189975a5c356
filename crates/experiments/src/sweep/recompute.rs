//! `realbias measures DIR --recompute`: every finished run's complexity measures computed
//! again from its saved networks (`network.safetensors`) and its data, with no training, so a
//! measure added later applies to old runs.

use std::path::Path;

use realbias_train::TrainingResult;
use realbias_train::data::derive_data;
use realbias_train::networks::{NETWORK_FILE, read_networks};
use realbias_train::record::write_result;

use super::Sweep;
use crate::ExperimentError;
use crate::experiment::{Context, Experiment};
use crate::store::read_result;

/// What a recompute did.
#[derive(Debug, Default)]
pub struct Recomputed {
    /// Runs whose `result.json` now carries the recomputed measures.
    pub rewritten: usize,
    /// Runs that kept their old measures, each named with why.
    pub kept: Vec<String>,
    /// Rewritten runs whose networks file predates integrity digests (format 1), read
    /// unchecked.
    pub unchecked: Vec<String>,
    /// Runs left as they were because they already carry the flatness measures (an earlier,
    /// interrupted recompute did them; `ctx.force` redoes them).
    pub already: usize,
}

impl Sweep {
    /// Recomputes the measures of every finished run in `ctx.dir` and rewrites its
    /// `result.json` (atomically). Resumable: a run that already carries the flatness measures
    /// (done by an earlier, interrupted recompute) is left as it is unless `ctx.force`. A run whose networks are missing or unreadable keeps its
    /// old values and is named. Loads the data, and the censored labels (training the
    /// censoring network again if its labels are not cached).
    pub fn recompute_measures(&mut self, ctx: &Context) -> Result<Recomputed, ExperimentError> {
        self.load(ctx)?;
        self.prepare(ctx)?;
        let mut done = Recomputed::default();
        for run in &self.runs {
            let label = run
                .dir
                .strip_prefix(&ctx.dir)
                .unwrap_or(&run.dir)
                .display()
                .to_string();
            let result = match read_result::<TrainingResult>(&run.dir.join("result.json")) {
                Ok(Some(result)) if !ctx.force && has_flatness(&result) => {
                    done.already += 1;
                    continue;
                }
                Ok(Some(result)) => result,
                Ok(None) => continue,
                Err(e) => {
                    done.kept.push(format!("{label}: {e}"));
                    continue;
                }
            };
            let started = std::time::Instant::now();
            ctx.progress.note(&format!("recomputing {label} ..."));
            match self.recompute_one(run, result, ctx) {
                Ok(true) => done.rewritten += 1,
                Ok(false) => {
                    done.rewritten += 1;
                    done.unchecked.push(label.clone());
                }
                Err(e) => done.kept.push(format!("{label}: {e}")),
            }
            let seconds = started.elapsed().as_secs_f64();
            ctx.progress
                .note(&format!("recomputed {label} in {seconds:.1}s"));
            if ctx.progress.stop_requested() {
                break;
            }
        }
        Ok(done)
    }

    /// Recomputes one run; whether its networks' digest was checked.
    fn recompute_one(
        &self,
        run: &super::plan::PlannedRun,
        mut result: TrainingResult,
        ctx: &Context,
    ) -> Result<bool, ExperimentError> {
        let data = derive_data(
            self.source(run)?,
            &result.config.data,
            result.config.train.seed,
        )?;
        let dims = (data.dim(), result.hidden, data.classes);
        let path: &Path = &run.dir.join(NETWORK_FILE);
        let networks = read_networks(path, &result.config, dims)?;
        let mut measures = networks.measures(&result.config, &data, ctx.device)?;
        measures.at_convergence.flatness =
            Some(networks.flatness(&result.config, &data, ctx.device)?);
        result.measures = Some(measures);
        write_result(&run.dir, &result)?;
        Ok(networks.digest_checked)
    }
}

/// Whether `result` already carries the flatness measures a recompute adds.
fn has_flatness(result: &TrainingResult) -> bool {
    result
        .measures
        .as_ref()
        .is_some_and(|m| m.at_convergence.flatness.is_some())
}

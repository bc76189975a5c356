//! `realbias measures DIR --recompute`: every finished run's complexity measures computed
//! again from its saved networks (`network.safetensors`) and its data, with no training, so a
//! measure added later applies to old runs.

use std::path::Path;

use realbias_train::RunResult;
use realbias_train::data::derive_data;
use realbias_train::run_files::networks::{NETWORK_FILE, read_networks};
use realbias_train::run_files::record::write_result;

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
    /// `result.json` (atomically), on `jobs` threads. Resumable: a run that already carries
    /// the flatness measures (done by an earlier, interrupted recompute) is left as it is
    /// unless `ctx.force`. A run whose networks are missing or unreadable keeps its old values
    /// and is named. Loads the data, and the censored labels (training the censoring network
    /// again if its labels are not cached).
    pub fn recompute_measures(
        &mut self,
        ctx: &Context,
        jobs: usize,
    ) -> Result<Recomputed, ExperimentError> {
        self.load(ctx)?;
        self.prepare(ctx)?;
        let done = std::sync::Mutex::new(Recomputed::default());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let this = &*self;
        std::thread::scope(|scope| {
            for _ in 0..jobs.max(1) {
                scope.spawn(|| {
                    while !ctx.progress.stop_requested() {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(run) = this.runs.get(i) else { break };
                        let entry = this.recompute_entry(run, ctx);
                        entry.count(&mut done.lock().unwrap_or_else(|p| p.into_inner()));
                    }
                });
            }
        });
        let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
        // In plan order whatever the threads' order.
        done.kept.sort();
        done.unchecked.sort();
        Ok(done)
    }

    /// What recomputing `run` did.
    fn recompute_entry(&self, run: &super::plan::PlannedRun, ctx: &Context) -> Entry {
        let label = run
            .dir
            .strip_prefix(&ctx.dir)
            .unwrap_or(&run.dir)
            .display()
            .to_string();
        let result = match read_result::<RunResult>(&run.dir.join("result.json")) {
            Ok(Some(result)) if !ctx.force && has_flatness(&result) => return Entry::Already,
            Ok(Some(result)) => result,
            Ok(None) => return Entry::Unfinished,
            Err(e) => return Entry::Kept(format!("{label}: {e}")),
        };
        let started = std::time::Instant::now();
        ctx.progress.note(&format!("recomputing {label} ..."));
        let entry = match self.recompute_one(run, result, ctx) {
            Ok(checked) => Entry::Rewritten {
                label: label.clone(),
                checked,
            },
            Err(e) => Entry::Kept(format!("{label}: {e}")),
        };
        let seconds = started.elapsed().as_secs_f64();
        ctx.progress
            .note(&format!("recomputed {label} in {seconds:.1}s"));
        entry
    }

    /// Recomputes one run; whether its networks' digest was checked.
    fn recompute_one(
        &self,
        run: &super::plan::PlannedRun,
        mut result: RunResult,
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
fn has_flatness(result: &RunResult) -> bool {
    result
        .measures
        .as_ref()
        .is_some_and(|m| m.at_convergence.flatness.is_some())
}

/// What recomputing one run did.
enum Entry {
    Unfinished,
    Already,
    /// Rewritten; whether its networks' digest was checked.
    Rewritten {
        label: String,
        checked: bool,
    },
    Kept(String),
}

impl Entry {
    fn count(self, done: &mut Recomputed) {
        match self {
            Entry::Unfinished => {}
            Entry::Already => done.already += 1,
            Entry::Rewritten { label, checked } => {
                done.rewritten += 1;
                if !checked {
                    done.unchecked.push(label);
                }
            }
            Entry::Kept(why) => done.kept.push(why),
        }
    }
}

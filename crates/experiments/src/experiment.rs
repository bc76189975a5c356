//! The one trait every experiment kind implements, and the driver that takes any of them from
//! plan to figures, resumably: load and check the inputs, claim the folder, do the shared work,
//! run the unfinished units on `jobs` workers (most expensive first), finalize.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use realbias_train::run_files::files::{remove, write_atomic};

pub use crate::unit::{Unit, UnitGroup, UnitOutcome};

use crate::ExperimentError;
use crate::lock;
use crate::progress::ExperimentProgress;
use crate::shard::{Shard, assign};
use crate::store::{Claim, check_claim, claim, join};

/// Where and with what an experiment runs.
pub struct Context<'a> {
    /// The experiment folder (`OUT/<name>`).
    pub dir: PathBuf,
    pub device: &'a Device,
    pub data_dir: Option<&'a Path>,
    /// Shared with the runs it shows: a run on Burn's `Learner` takes only owned inputs.
    pub progress: std::sync::Arc<dyn ExperimentProgress>,
    /// `--force`: results and checkpoints of another config are discarded, not refused.
    pub force: bool,
}

/// The files a finalize wrote, the result files it had to leave out, and why figures are
/// missing if they are.
#[derive(Debug, Default)]
pub struct Finalized {
    pub files: Vec<PathBuf>,
    /// Result files that are there but unreadable, each named.
    pub skipped: Vec<String>,
    /// Figures not drawn (no font, nothing to plot).
    pub warnings: Vec<String>,
}

/// An experiment kind. The driver calls, in order: `load` (read and check the inputs; writes
/// nothing), `prepare` (shared work that writes into the folder), `run_unit` for every
/// unfinished unit (from several threads), `finalize`.
pub trait Experiment: Sync {
    /// The experiment folder's name.
    fn name(&self) -> &str;
    /// The resolved config, as recorded in the folder.
    fn config_toml(&self) -> Result<String, ExperimentError>;
    /// Every unit, in plan order, for the folder `dir`.
    fn plan(&self, dir: &Path) -> Vec<Unit>;
    /// A finished unit's outcome line; `None` when it has no readable result.
    fn finished(&self, unit: &Unit) -> Option<String>;
    /// Whether a finished unit's result would differ under this config (`config_changed`:
    /// the folder was made by another config). Stale results are discarded under `--force`.
    fn stale(&self, unit: &Unit, config_changed: bool) -> bool;
    /// Lines a dry run prints about the plan beyond its totals (a table per condition and H,
    /// the shared work it would do first); none without an override.
    fn describe_plan(
        &self,
        _units: &[(Unit, bool)],
        _dir: &Path,
    ) -> Result<Vec<String>, ExperimentError> {
        Ok(Vec::new())
    }
    /// The estimated seconds of each of `units` on `threads` threads, from a short timing on
    /// this machine; `None` where the kind has no estimate.
    fn estimate(
        &self,
        _units: &[&Unit],
        _ctx: &Context,
        _threads: usize,
    ) -> Result<Option<Vec<f64>>, ExperimentError> {
        Ok(None)
    }
    /// Whether this config plans every unit of the folder's `recorded` config, each exactly
    /// as that one did (a sweep grown by repetitions, widths, conditions or grid points):
    /// the folder then grows without `--force`. Without an override, never.
    fn extends(&self, _recorded: &str, _dir: &Path) -> bool {
        false
    }
    fn load(&mut self, ctx: &Context) -> Result<(), ExperimentError>;
    fn prepare(&mut self, ctx: &Context) -> Result<(), ExperimentError>;
    fn run_unit(
        &self,
        unit: &Unit,
        worker: usize,
        ctx: &Context,
    ) -> Result<UnitOutcome, ExperimentError>;
    /// Runs a batch of units of one [`UnitGroup`] together, one outcome per unit in order.
    /// Without an override, one after the other.
    fn run_group(
        &self,
        units: &[&Unit],
        worker: usize,
        ctx: &Context,
    ) -> Vec<Result<UnitOutcome, ExperimentError>> {
        units
            .iter()
            .map(|unit| self.run_unit(unit, worker, ctx))
            .collect()
    }
    /// Writes the tables and figures of whatever finished in `dir`; writes nothing when
    /// nothing finished.
    fn finalize(&self, dir: &Path) -> Result<Finalized, ExperimentError>;
    /// The markdown report of whatever finished in `dir`.
    fn report(&self, dir: &Path) -> Result<String, ExperimentError>;
}

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct ExperimentOptions {
    /// Where experiment folders go (the experiment's is `out/<name>`).
    pub out: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub jobs: usize,
    /// Threads per job (each worker's rayon pool).
    pub threads: usize,
    pub force: bool,
    /// Run only this shard of the plan.
    pub shard: Option<Shard>,
    /// Write the summary and figures once every unit of the plan has finished.
    pub finalize: bool,
    /// Stop after the shared work (the folder claimed, censoring labels computed).
    pub prepare_only: bool,
}

impl ExperimentOptions {
    /// One process running the whole plan and finalizing it.
    pub fn local(out: &Path, jobs: usize, threads: usize, force: bool) -> Self {
        ExperimentOptions {
            out: out.to_path_buf(),
            data_dir: None,
            jobs,
            threads,
            force,
            shard: None,
            finalize: true,
            prepare_only: false,
        }
    }
}

/// How many units were trained, skipped, or left unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub trained: usize,
    pub skipped: usize,
    pub unfinished: usize,
    /// Held by another process (another shard, a second local run) when this one reached them.
    pub elsewhere: usize,
    /// In other shards of the plan.
    pub other_shards: usize,
}

/// What a finished (or interrupted) run leaves.
#[derive(Debug)]
pub struct ExperimentReport {
    pub dir: PathBuf,
    pub outcome: Outcome,
    /// Written once every unit finished (and finalizing was asked for).
    pub finalized: Option<Finalized>,
    /// Every unit of the plan has a result.
    pub complete: bool,
    /// `label: why` of each unit that could not run (an unreadable checkpoint, a corrupt
    /// file): recorded in the unit's `failed.txt`; the other units still ran.
    pub failures: Vec<String>,
    /// Of the units without a result when the run ended: held by a live process (another
    /// shard, another run on the folder), and held by none (left for a later run).
    pub held_elsewhere: usize,
    pub unclaimed: usize,
}

/// The units of a folder's plan that have no result yet.
#[derive(Debug)]
pub struct Missing {
    pub units: Vec<Unit>,
    pub planned: usize,
}

/// Where the list of a partial folder's missing units is written.
pub const MISSING_FILE: &str = "missing.txt";

impl Missing {
    pub fn of(exp: &dyn Experiment, dir: &Path) -> Self {
        Self::among(exp, &exp.plan(dir))
    }

    /// The units of `plan` without a result.
    fn among(exp: &dyn Experiment, plan: &[Unit]) -> Self {
        let units = plan
            .iter()
            .filter(|u| exp.finished(u).is_none())
            .cloned()
            .collect();
        Missing {
            units,
            planned: plan.len(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.units.is_empty()
    }

    /// The line that marks a partial folder's report (`None` when complete).
    pub fn note(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        let shown: Vec<&str> = self
            .units
            .iter()
            .take(5)
            .map(|u| u.label.as_str())
            .collect();
        let more = match self.units.len().saturating_sub(shown.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        Some(format!(
            "**PARTIAL: {} of {} units finished.** Missing: {}{more} (all in {MISSING_FILE}).",
            self.planned - self.units.len(),
            self.planned,
            shown.join("; ")
        ))
    }

    /// `missing.txt`: one missing unit per line, its label and its result file.
    fn listing(&self) -> String {
        self.units
            .iter()
            .map(|u| format!("{}\t{}\n", u.label, u.result.display()))
            .collect()
    }
}

/// Writes the tables and figures of whatever finished in `dir`, marking a partial folder as
/// such: `report.md` then starts with [`Missing::note`] and `missing.txt` lists the units
/// without a result (a complete finalize removes it).
pub fn finalize_folder(
    exp: &dyn Experiment,
    dir: &Path,
) -> Result<(Finalized, Missing), ExperimentError> {
    let finalized = exp.finalize(dir)?;
    let missing = Missing::of(exp, dir);
    let finalized = mark_partial(finalized, &missing, dir)?;
    Ok((finalized, missing))
}

/// Marks what a finalize wrote as partial where units are `missing`, or removes the listing
/// of an earlier partial finalize where none are.
fn mark_partial(
    mut finalized: Finalized,
    missing: &Missing,
    dir: &Path,
) -> Result<Finalized, ExperimentError> {
    let listing = dir.join(MISSING_FILE);
    let Some(note) = missing.note() else {
        remove(&listing)?;
        return Ok(finalized);
    };
    let report = dir.join("report.md");
    if let Ok(text) = std::fs::read_to_string(&report) {
        write_atomic(&report, format!("{note}\n\n{text}").as_bytes())?;
    }
    write_atomic(&listing, missing.listing().as_bytes())?;
    finalized.files.push(listing);
    Ok(finalized)
}

/// The report of whatever finished in `dir`, opening with [`Missing::note`] when partial.
pub fn report_folder(
    exp: &dyn Experiment,
    dir: &Path,
) -> Result<(String, Missing), ExperimentError> {
    let text = exp.report(dir)?;
    let missing = Missing::of(exp, dir);
    let text = match missing.note() {
        Some(note) => format!("{note}\n\n{text}"),
        None => text,
    };
    Ok((text, missing))
}

/// What a run would do, without doing it.
#[derive(Debug)]
pub struct DryRun {
    pub dir: PathBuf,
    pub claim: Claim,
    /// Each unit with `true` when the run would keep its saved result.
    pub units: Vec<(Unit, bool)>,
    /// What the kind says about the plan ([`Experiment::describe_plan`]).
    pub description: Vec<String>,
    /// Estimated seconds of one thread-pool's work for the units to train (the sum over
    /// them), where the kind estimates.
    pub estimate: Option<f64>,
}

impl DryRun {
    pub fn to_train(&self) -> usize {
        self.units.iter().filter(|(_, kept)| !kept).count()
    }
}

/// The units whose saved results a run would keep.
fn kept(exp: &dyn Experiment, units: &[Unit], claim: Claim, force: bool) -> Vec<bool> {
    let changed = claim == Claim::Replaced;
    units
        .iter()
        .map(|u| exp.finished(u).is_some() && !(force && exp.stale(u, changed)))
        .collect()
}

/// Checks everything a run checks (the config, the folder, the data) and says which units it
/// would train; writes nothing.
pub fn dry_run(
    exp: &mut dyn Experiment,
    options: &ExperimentOptions,
    ctx: &Context,
) -> Result<DryRun, ExperimentError> {
    exp.load(ctx)?;
    let extends = |recorded: &str| exp.extends(recorded, &ctx.dir);
    let claim = check_claim(&ctx.dir, &exp.config_toml()?, options.force, &extends)?;
    let units = exp.plan(&ctx.dir);
    let kept = kept(exp, &units, claim, options.force);
    let mine = in_shard(&units, options.shard);
    let units: Vec<(Unit, bool)> = units
        .into_iter()
        .zip(kept)
        .zip(mine)
        .filter_map(|(u, m)| m.then_some(u))
        .collect();
    let to_train: Vec<&Unit> = units.iter().filter(|(_, k)| !k).map(|(u, _)| u).collect();
    let estimate = match to_train.is_empty() {
        true => None,
        false => exp
            .estimate(&to_train, ctx, options.threads)?
            .map(|s| s.iter().sum()),
    };
    Ok(DryRun {
        dir: ctx.dir.clone(),
        claim,
        description: exp.describe_plan(&units, &ctx.dir)?,
        units,
        estimate,
    })
}

/// Runs (or resumes) a whole experiment, or one shard of it.
pub fn run(
    exp: &mut dyn Experiment,
    options: &ExperimentOptions,
    ctx: &Context,
) -> Result<ExperimentReport, ExperimentError> {
    // Inputs first: a config or data problem leaves no trace in the folder.
    exp.load(ctx)?;
    let config = exp.config_toml()?;
    // Everything a claim would refuse is refused before the folder is touched.
    let extends = |recorded: &str| exp.extends(recorded, &ctx.dir);
    check_claim(&ctx.dir, &config, options.force, &extends)?;
    let _session = join(&ctx.dir)?;
    let state = claim(&ctx.dir, &config, options.force, &extends)?;
    let units = exp.plan(&ctx.dir);
    if state == Claim::Extended {
        let kept = units.iter().filter(|u| exp.finished(u).is_some()).count();
        ctx.progress.note(&format!(
            "this config plans the folder's finished runs as before: its {kept} finished units are kept, {} added",
            units.len() - kept
        ));
    }
    if options.force {
        let mut removed = Vec::new();
        for (unit, keep) in units.iter().zip(kept(exp, &units, state, true)) {
            if !keep && lock::live_owner(&lock_path(unit)).is_none() && unit.result.exists() {
                remove(&unit.result)?;
                removed.push(unit.label.as_str());
            }
        }
        if !removed.is_empty() {
            ctx.progress.note(&format!(
                "--force: removed {} result(s) this config would not produce, to train again: {}",
                removed.len(),
                removed.join(", ")
            ));
        }
    }
    exp.prepare(ctx)?;
    let mut report = ExperimentReport {
        dir: ctx.dir.clone(),
        outcome: Outcome::default(),
        finalized: None,
        complete: false,
        failures: Vec::new(),
        held_elsewhere: 0,
        unclaimed: 0,
    };
    if options.prepare_only {
        return Ok(report);
    }
    let mine = in_shard(&units, options.shard);
    (report.outcome, report.failures) = execute(exp, &units, &mine, ctx, options)?;
    let missing = Missing::among(exp, &units);
    report.complete = missing.is_complete();
    report.held_elsewhere = missing
        .units
        .iter()
        .filter(|u| lock::live_owner(&lock_path(u)).is_some())
        .count();
    report.unclaimed = missing.units.len() - report.held_elsewhere;
    if report.complete {
        // The folder is done: nothing a killed process left is needed any more.
        let removed = crate::store::remove_litter(&ctx.dir);
        if removed > 0 {
            ctx.progress.note(&format!(
                "removed {removed} file(s) left by killed processes (temporary files, session markers)"
            ));
        }
    }
    if report.complete && options.finalize {
        // mark_partial also removes a missing.txt an earlier partial plot left.
        let finalized = exp.finalize(&ctx.dir)?;
        report.finalized = Some(mark_partial(finalized, &missing, &ctx.dir)?);
    }
    Ok(report)
}

/// Which units belong to this process: all, or those of its shard.
fn in_shard(units: &[Unit], shard: Option<Shard>) -> Vec<bool> {
    match shard {
        None => vec![true; units.len()],
        Some(s) => assign(units, s.count)
            .iter()
            .map(|&k| k == s.index)
            .collect(),
    }
}

/// The lock a unit is trained under.
pub fn lock_path(unit: &Unit) -> PathBuf {
    unit.result.with_extension("lock")
}

/// The work queue shared by the workers.
struct Queue<'a> {
    pending: Mutex<VecDeque<Vec<&'a Unit>>>,
    outcome: Mutex<Outcome>,
    failure: Mutex<Option<ExperimentError>>,
    failed: AtomicBool,
    /// Units that failed on their own (`label: why`).
    unit_failures: Mutex<Vec<String>>,
}

/// The file beside a unit's result that records why it failed on its own.
pub fn failure_path(unit: &Unit) -> PathBuf {
    unit.result.with_file_name(FAILURE_FILE)
}

pub const FAILURE_FILE: &str = "failed.txt";

/// Whether `e` concerns one unit's own files (its checkpoint, a file of its own), so that the
/// other units can still run; anything else (the disk, the data, the config) stops the run.
fn is_unit_failure(e: &ExperimentError) -> bool {
    use realbias_train::TrainError;
    matches!(
        e,
        ExperimentError::Train(
            TrainError::CheckpointMismatch { .. }
                | TrainError::CorruptCheckpoint { .. }
                | TrainError::File { .. }
        )
    )
}

impl<'a> Queue<'a> {
    fn next(&self, ctx: &Context) -> Option<Vec<&'a Unit>> {
        if self.failed.load(Ordering::Relaxed) || ctx.progress.stop_requested() {
            return None;
        }
        self.pending.lock().ok()?.pop_front()
    }

    fn elsewhere(&self, unit: &Unit, owner: &lock::Owner, ctx: &Context) {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elsewhere += 1;
        ctx.progress
            .note(&format!("{}: held by {owner}, left to it", unit.label));
    }

    fn finished_elsewhere(&self, unit: &Unit, line: &str, ctx: &Context) {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .skipped += 1;
        ctx.progress.finished(unit, line, true);
    }

    fn record(&self, unit: &Unit, result: Result<UnitOutcome, ExperimentError>, ctx: &Context) {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(UnitOutcome::Finished(line)) => {
                outcome.trained += 1;
                drop(outcome);
                let _ = std::fs::remove_file(failure_path(unit)); // an earlier failure's record
                if let Some(folder) = unit.result.parent() {
                    crate::store::remove_litter(folder);
                }
                ctx.progress.finished(unit, &line, false);
            }
            Ok(UnitOutcome::Interrupted) => outcome.unfinished += 1,
            Err(e) if is_unit_failure(&e) => {
                drop(outcome);
                let why = e.to_string();
                // Best effort: the run's exit status and message name it in any case.
                let _ = crate::store::save_texts(vec![(failure_path(unit), format!("{why}\n"))]);
                ctx.progress.note(&format!(
                    "{}: failed, the other units go on: {why}",
                    unit.label
                ));
                let mut failures = self.unit_failures.lock().unwrap_or_else(|p| p.into_inner());
                failures.push(format!("{}: {why}", unit.label));
            }
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                failure.get_or_insert(e);
            }
        }
    }
}

/// Runs every unfinished unit on `jobs` workers, each in its own rayon pool of `threads`
/// threads, the most expensive first so the long units start at once and the short ones fill
/// in around them (stable: plan order among equals). Returns the outcome and the units that
/// failed on their own.
fn execute(
    exp: &dyn Experiment,
    units: &[Unit],
    mine: &[bool],
    ctx: &Context,
    options: &ExperimentOptions,
) -> Result<(Outcome, Vec<String>), ExperimentError> {
    let mut outcome = Outcome::default();
    let mut pending = Vec::new();
    for (unit, &mine) in units.iter().zip(mine) {
        if !mine {
            outcome.other_shards += 1;
            continue;
        }
        match exp.finished(unit) {
            Some(line) => {
                outcome.skipped += 1;
                ctx.progress.finished(unit, &line, true);
            }
            None => pending.push(unit),
        }
    }
    let batches = crate::unit::batches(&pending);
    let grouped: Vec<usize> = batches.iter().map(Vec::len).filter(|&n| n > 1).collect();
    if !grouped.is_empty() {
        ctx.progress.note(&format!(
            "{} of {} runs to train go in {} ensembles (sizes {:?}), each run still its own",
            grouped.iter().sum::<usize>(),
            pending.len(),
            grouped.len(),
            grouped
        ));
    }
    let queue = Queue {
        pending: Mutex::new(batches.into_iter().collect()),
        outcome: Mutex::new(outcome),
        failure: Mutex::new(None),
        failed: AtomicBool::new(false),
        unit_failures: Mutex::new(Vec::new()),
    };
    std::thread::scope(|scope| {
        for worker in 0..options.jobs.max(1) {
            let queue = &queue;
            scope.spawn(move || work(exp, queue, worker, options.threads, ctx));
        }
    });
    if let Some(e) = queue.failure.into_inner().ok().flatten() {
        return Err(e);
    }
    // A worker that panicked poisons the counts but does not make them wrong.
    let mut outcome = queue
        .outcome
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    outcome.unfinished += queue
        .pending
        .into_inner()
        .map(|q| q.iter().map(Vec::len).sum())
        .unwrap_or(0);
    let failures = queue
        .unit_failures
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok((outcome, failures))
}

/// One worker: takes batches of units off the queue until it is empty, stopped or failed.
fn work(exp: &dyn Experiment, queue: &Queue, worker: usize, threads: usize, ctx: &Context) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| ExperimentError::Pool {
            threads,
            message: e.to_string(),
        });
    while let Some(batch) = queue.next(ctx) {
        let (units, _locks) = claim_units(exp, queue, batch, ctx);
        let Some(first) = units.first() else {
            continue;
        };
        ctx.progress.started(worker, first);
        let results = match &pool {
            Ok(pool) if units.len() == 1 => vec![pool.install(|| exp.run_unit(first, worker, ctx))],
            Ok(pool) => pool.install(|| exp.run_group(&units, worker, ctx)),
            Err(e) => units
                .iter()
                .map(|_| {
                    Err(ExperimentError::Pool {
                        threads,
                        message: e.to_string(),
                    })
                })
                .collect(),
        };
        for (unit, result) in units.iter().zip(results) {
            queue.record(unit, result, ctx);
        }
    }
}

/// The units of `batch` this worker may run: each locked, and not finished meanwhile by
/// another process (those are counted and left out); with their locks.
fn claim_units<'a>(
    exp: &dyn Experiment,
    queue: &Queue,
    batch: Vec<&'a Unit>,
    ctx: &Context,
) -> (Vec<&'a Unit>, Vec<lock::Lock>) {
    let (mut units, mut locks) = (Vec::new(), Vec::new());
    for unit in batch {
        match lock::try_lock(&lock_path(unit)) {
            Ok(Ok(lock)) => match exp.finished(unit) {
                Some(line) => queue.finished_elsewhere(unit, &line, ctx),
                None => {
                    units.push(unit);
                    locks.push(lock);
                }
            },
            Ok(Err(owner)) => queue.elsewhere(unit, &owner, ctx),
            Err(e) => queue.record(unit, Err(e.into()), ctx),
        }
    }
    (units, locks)
}

//! Width sweeps (Figures 1 and 2): a training config plus a `[sweep]` section expands into
//! runs (conditions x hidden units x repetitions, and the weight-decay grid), each one run of
//! the paper's protocol.
//!
//! Layout: `OUT/<experiment>/experiment.toml`, `[<point>/]<condition>/h<H>/rep<R>/[wd<λ>/]
//! {result.json,history.csv}` (`<point>`: a point of `[sweep.vary]`'s grid, e.g.
//! `init_scale-0.1`), `censor/` (the cached censoring labels, one folder per distinct
//! censoring network), and `summary.csv`, `weight-decay-grid.csv`, `errors.{png,svg}`,
//! `norms.{png,svg}`, `vary.{png,svg}` (with a grid), `curves.{png,svg}` (with per-epoch test errors), `measures.*`, `report.md`.

mod censor;
mod config;
mod cost;
mod curves;
mod design;
mod estimate;
mod figures;
mod measures;
mod paired;
mod plan;
mod recompute;
pub mod robust;
mod run_progress;
mod settings;
mod summary;
mod vary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::progress::ExperimentProgress;

use realbias_data::Dataset;
use realbias_train::config::TrainConfig;
use realbias_train::data::{derive_data, load_full};
use realbias_train::engine::ensemble::{EnsembleMode, shared_settings, train_ensemble_with};
use realbias_train::eval::DeviceSplit;
use realbias_train::optim::Method;
use realbias_train::run_files::state::outcome_settings;
use realbias_train::run_files::write_run;
use realbias_train::{
    CheckpointSlot, EpochRecord, FinishedRun, Member, Progress, RunResult, StopReason, Trainer,
    TrueLabels,
};

pub use censor::{CensorInfo, censor, censor_dir, censor_key, censor_labels};
pub use config::{Condition, ExperimentConfig, SweepConfig};
pub use measures::{MEASURES, MeasureRow, Network, Ranking};
pub use plan::PlannedRun;
pub use recompute::Recomputed;
use run_progress::RunProgress;
pub use summary::{GridRow, Stat, Summary, SummaryRow, summarize};
pub use vary::{Axes, Variant};

use crate::ExperimentError;
use crate::experiment::{Context, Experiment, Finalized, Unit, UnitGroup, UnitOutcome};
use crate::store::{read_result, read_results, save_texts};

/// The most runs trained as one ensemble (Figure 2 has 35 runs per width: 5 repetitions of
/// plain, censored, censored-noise and the 4-value λ grid).
const MAX_ENSEMBLE: usize = 64;

/// A width sweep as an [`Experiment`].
pub struct Sweep {
    config: ExperimentConfig,
    runs: Vec<PlannedRun>,
    /// The full splits, after `load`.
    full: Option<Dataset>,
    /// The censored full splits of each point of the grid, after `prepare` (censored
    /// conditions only; points with the same censoring network share them).
    censored: Vec<Option<Arc<Dataset>>>,
}

impl Sweep {
    pub fn new(config: ExperimentConfig) -> Self {
        Sweep {
            config,
            runs: Vec::new(),
            full: None,
            censored: Vec::new(),
        }
    }

    pub fn config(&self) -> &ExperimentConfig {
        &self.config
    }

    /// The plan for `dir`, every run's saved result (`None`: not finished or unreadable), the
    /// unreadable files, and the summary: read once, for the tables and the measures alike.
    fn collect(&self, dir: &Path) -> Collected {
        let runs = self.config.plan(dir);
        let paths: Vec<PathBuf> = runs.iter().map(|r| r.dir.join("result.json")).collect();
        let (results, broken) = read_results::<RunResult>(&paths);
        let summary = summarize(&runs, &results);
        Collected {
            runs,
            results,
            broken,
            summary,
        }
    }

    /// The summary of whatever finished in `dir`, the markdown report, and the unreadable
    /// result files.
    pub fn summary(&self, dir: &Path) -> (Summary, String, Vec<String>) {
        let c = self.collect(dir);
        let text = self.report_text(&c);
        (c.summary, text, c.broken)
    }

    fn report_text(&self, c: &Collected) -> String {
        let finished = c.results.iter().filter(|r| r.is_some()).count();
        let mut text = format!(
            "# {}\n\n{} of {} runs finished. Errors in %, mean ± standard deviation over repetitions.\n\n{}",
            self.config.name,
            finished,
            c.runs.len(),
            c.summary.markdown()
        );
        if let Some(cost) = cost::section(&c.runs, &c.results) {
            text.push_str(&cost);
        }
        if !c.broken.is_empty() {
            text.push_str(&format!(
                "\nUnreadable, left out: {}\n",
                c.broken.join("; ")
            ));
        }
        text
    }

    /// The rank correlations of every complexity measure with generalization over the runs
    /// finished in `dir` that carry measures; writes `measures.csv`, `measures.md` and the
    /// figure. `None` when no run has measures (results from before they were recorded).
    pub fn measures(&self, dir: &Path) -> Result<Option<(String, Finalized)>, ExperimentError> {
        self.write_measures(dir, &self.collect(dir))
    }

    /// Every finished run of `dir` with measures, for the robust evaluation, and the result
    /// files that could not be read.
    pub fn robust_runs(&self, dir: &Path) -> (Vec<robust::RobustRun>, Vec<String>) {
        let c = self.collect(dir);
        let runs = c
            .runs
            .iter()
            .zip(&c.results)
            .filter_map(|(p, r)| robust::robust_run(p, r.as_ref()?))
            .collect();
        (runs, c.broken)
    }

    fn write_measures(
        &self,
        dir: &Path,
        c: &Collected,
    ) -> Result<Option<(String, Finalized)>, ExperimentError> {
        let ranking = measures::rank(&c.runs, &c.results, &c.summary);
        if ranking.rows.is_empty() {
            return Ok(None);
        }
        let markdown = measures::markdown(&self.config.name, &ranking);
        let texts = vec![
            (dir.join("measures.csv"), measures::csv(&ranking.rows)),
            (dir.join("measures.md"), markdown.clone()),
        ];
        let mut finalized = Finalized {
            files: save_texts(texts)?,
            skipped: c.broken.clone(),
            warnings: Vec::new(),
        };
        let figure = measures::figure(&self.config.name, &c.runs, &c.results, &c.summary);
        let (files, warnings) = crate::chart::draw_figures(dir, vec![figure])?;
        finalized.files.extend(files);
        finalized.warnings.extend(warnings);
        Ok(Some((markdown, finalized)))
    }

    /// The training examples of a run (its subset, else the loaded training split).
    fn train_examples(&self, run: &PlannedRun) -> usize {
        match run.config.data.subset {
            Some(s) => s.train,
            None => self.full.as_ref().map_or(1, |f| f.train.len()),
        }
    }

    /// The validation examples of a run (its subset, else the loaded validation split).
    fn validation_examples(&self, run: &PlannedRun) -> usize {
        match run.config.data.subset {
            Some(s) => s.validation,
            None => self.full.as_ref().map_or(0, |f| f.validation.len()),
        }
    }

    /// Which methods other than SGD the sweep trains, when it would otherwise use ensembles:
    /// their runs train one by one.
    fn one_by_one_note(&self) -> Option<String> {
        if self.config.sweep.ensemble == EnsembleMode::Off {
            return None;
        }
        let mut methods: Vec<&str> = self
            .runs
            .iter()
            .map(|r| r.config.optim.method)
            .filter(|m| *m != Method::Sgd)
            .map(Method::name)
            .collect();
        methods.sort();
        methods.dedup();
        (!methods.is_empty()).then(|| {
            format!(
                "runs with optim.method = {} train one by one: ensembles are SGD-only",
                methods.join(", ")
            )
        })
    }

    /// The ensemble `run` may join: runs with the same shared settings and subset, where the
    /// backend gains from ensembles at its width, as many as fit in memory.
    fn group(&self, run: &PlannedRun) -> Option<UnitGroup> {
        let full = self.full.as_ref()?;
        let sgd = run.config.optim.method == Method::Sgd;
        if !self.config.sweep.ensemble.at_width(run.hidden) || !sgd {
            return None;
        }
        let examples = self.train_examples(run) + self.validation_examples(run) + full.test.len();
        let shape = (full.dim(), full.classes);
        let capacity =
            realbias_train::memory::ensemble_capacity(shape, examples, &run.config, MAX_ENSEMBLE);
        Some(UnitGroup {
            key: format!(
                "{:?} {:?}",
                shared_settings(&run.config),
                run.config.data.subset
            ),
            max_units: capacity,
        })
    }

    /// Saves a finished run (with its censored test labels judged against the truth).
    fn save(
        &self,
        run: &PlannedRun,
        mut out: FinishedRun,
        data: &Dataset,
        ctx: &Context,
    ) -> Result<UnitOutcome, ExperimentError> {
        if out.result.stop_reason == StopReason::Interrupted {
            return Ok(UnitOutcome::Interrupted);
        }
        if run.condition.is_censored() {
            out.result.true_labels = Some(self.true_labels(&out, data, ctx)?);
        }
        write_run(&run.dir, &out)?;
        Ok(UnitOutcome::Finished(outcome(&out.result)))
    }

    /// Trains the runs of `units` as one ensemble and saves each.
    fn train_group(
        &self,
        units: &[&Unit],
        worker: usize,
        ctx: &Context,
    ) -> Result<Vec<Result<UnitOutcome, ExperimentError>>, ExperimentError> {
        let runs: Vec<&PlannedRun> = units.iter().map(|u| &self.runs[u.index]).collect();
        let data = runs
            .iter()
            .map(|r| {
                Ok(derive_data(
                    self.source(r)?,
                    &r.config.data,
                    r.config.train.seed,
                )?)
            })
            .collect::<Result<Vec<_>, ExperimentError>>()?;
        let slots: Vec<CheckpointSlot> = runs.iter().map(|r| checkpoint_slot(r, ctx)).collect();
        let configs = runs
            .iter()
            .map(|r| r.config.clone().check())
            .collect::<Result<Vec<_>, _>>()?;
        let members: Vec<Member> = configs
            .iter()
            .zip(&data)
            .zip(&slots)
            .map(|((config, data), slot)| Member {
                config,
                data,
                checkpoint: Some(slot),
            })
            .collect();
        let mut progress = RunProgress::new(ctx.progress.clone(), units[0], worker, &runs);
        // Each run is saved as soon as it stops: a kill loses only the runs still training.
        let mut outcomes: Vec<Option<Result<UnitOutcome, ExperimentError>>> =
            runs.iter().map(|_| None).collect();
        train_ensemble_with(&members, ctx.device, &mut progress, &mut |i, out| {
            outcomes[i] = Some(self.save(runs[i], out, &data[i], ctx));
        })?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Ok(UnitOutcome::Interrupted)))
            .collect())
    }

    fn source(&self, run: &PlannedRun) -> Result<&Dataset, ExperimentError> {
        let missing = |what: &str| ExperimentError::Censoring(format!("{what} are not loaded"));
        if run.condition.is_censored() {
            self.censored
                .get(run.variant)
                .and_then(|c| c.as_deref())
                .ok_or_else(|| missing("the censored labels"))
        } else {
            self.full.as_ref().ok_or_else(|| missing("the data"))
        }
    }

    /// The full splits, once loaded.
    fn full(&self) -> Result<&Dataset, ExperimentError> {
        self.full
            .as_ref()
            .ok_or(ExperimentError::Censoring("the data is not loaded".into()))
    }

    /// How a censored run's final network does on the true test labels.
    fn true_labels(
        &self,
        out: &FinishedRun,
        data: &Dataset,
        ctx: &Context,
    ) -> Result<TrueLabels, ExperimentError> {
        let full = self.full()?;
        let batch = out.result.config.train.eval_batch;
        let predicted = DeviceSplit::new(&data.test, batch, ctx.device).predict(&out.final_net)?;
        Ok(TrueLabels::compare(
            &predicted,
            &full.test.labels,
            &data.test.labels,
        ))
    }

    /// Trains the censoring networks (or loads their cached labels) the grid's points need,
    /// each distinct one once.
    fn censor(&mut self, ctx: &Context) -> Result<(), ExperimentError> {
        let needed = self.config.sweep.conditions.iter().any(|c| c.is_censored());
        let configs = self.config.censor_configs();
        let mut done: Vec<(TrainConfig, Arc<Dataset>)> = Vec::new();
        self.censored = Vec::new();
        for config in configs {
            let Some(config) = config.filter(|_| needed) else {
                self.censored.push(None);
                continue;
            };
            let censored = match done.iter().find(|(c, _)| c == &config) {
                Some((_, d)) => d.clone(),
                None => {
                    let d = Arc::new(self.censored_data(&config, ctx)?);
                    done.push((config, d.clone()));
                    d
                }
            };
            self.censored.push(Some(censored));
        }
        Ok(())
    }

    /// The full splits relabelled by the censoring network `config` describes.
    fn censored_data(
        &self,
        config: &TrainConfig,
        ctx: &Context,
    ) -> Result<Dataset, ExperimentError> {
        let full = self.full()?;
        // One process trains the censoring network; others wait for its labels.
        // The key fingerprints the whole dataset: computed once, for the lock and the cache.
        let key = censor_key(config, full)?;
        let cache = censor_dir(&ctx.dir, config, full, &key);
        let stop = || ctx.progress.stop_requested();
        let Some(_lock) = crate::lock::wait_lock(&cache.with_extension("lock"), &stop)? else {
            return Err(ExperimentError::Interrupted(
                "while waiting for another process's censoring labels".into(),
            ));
        };
        let progress = CensorProgress(ctx.progress.clone());
        let Some((labels, info)) =
            censor_labels(config, full, (&cache, &key), ctx.device, progress)?
        else {
            return Err(ExperimentError::Interrupted(
                "while training the censoring network (nothing was cached)".into(),
            ));
        };
        let ties = info.ties.map_or(String::new(), |t| {
            format!("; its largest output is tied on {:.2}% of them", 100.0 * t)
        });
        ctx.progress.note(&format!(
            "censored labels: H0 = {} network ({} epochs, {:?}) disagrees with the true labels on {:.2}% of {} examples{ties}",
            info.censor_hidden,
            info.epochs,
            info.stop_reason,
            100.0 * info.disagreement,
            info.examples
        ));
        let mut censored = full.clone();
        censored
            .relabel_all(&labels)
            .map_err(|e| ExperimentError::Censoring(e.to_string()))?;
        Ok(censored)
    }
}

/// What a sweep folder holds, read once.
struct Collected {
    runs: Vec<PlannedRun>,
    results: Vec<Option<RunResult>>,
    broken: Vec<String>,
    summary: Summary,
}

/// One line of a finished run.
fn outcome(r: &RunResult) -> String {
    let measures = r.measures.as_ref().map_or(String::new(), |m| {
        let seconds = m.at_convergence.seconds + m.early_stop.seconds;
        format!(" (measures {seconds:.1}s)")
    });
    format!(
        "train err {:.2}%  test err {:.2}% (early stop {:.2}%, epoch {})  {} epochs, {:?}, {:.1}s{measures}",
        100.0 * r.train_error,
        100.0 * r.test_error,
        100.0 * r.early_stop_test_error,
        r.early_stop_epoch,
        r.epochs,
        r.stop_reason,
        r.wall_seconds
    )
}

/// Where `run` keeps its checkpoint: in its folder, discarded under `--force` when it
/// cannot resume the run.
fn checkpoint_slot(run: &PlannedRun, ctx: &Context) -> CheckpointSlot {
    CheckpointSlot {
        dir: run.dir.clone(),
        discard_mismatched: ctx.force,
    }
}

/// The censoring network's training, as a note every 10 epochs.
struct CensorProgress(Arc<dyn ExperimentProgress>);

impl Progress for CensorProgress {
    fn epoch(&mut self, r: &EpochRecord) {
        if r.epoch.is_multiple_of(10) {
            self.0
                .note(&format!("  censoring network, {}", r.training_line()));
        }
    }
    fn stop_requested(&self) -> bool {
        self.0.stop_requested()
    }
}

impl Experiment for Sweep {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn config_toml(&self) -> Result<String, ExperimentError> {
        crate::store::config_text(&self.config.name, &self.config)
    }

    fn plan(&self, dir: &Path) -> Vec<Unit> {
        let runs = self.config.plan(dir);
        runs.iter()
            .enumerate()
            .map(|(index, r)| Unit {
                index,
                label: r.label(),
                result: r.dir.join("result.json"),
                cost: r.cost(self.train_examples(r)),
                group: self.group(r),
            })
            .collect()
    }

    fn finished(&self, unit: &Unit) -> Option<String> {
        read_result::<RunResult>(&unit.result)
            .ok()
            .flatten()
            .map(|r| outcome(&r))
    }

    fn stale(&self, unit: &Unit, _config_changed: bool) -> bool {
        // A run's result records its own config: stale exactly when that differs.
        let result = read_result::<RunResult>(&unit.result).ok().flatten();
        match (result, self.runs.get(unit.index)) {
            (Some(r), Some(run)) => outcome_settings(&r.config) != outcome_settings(&run.config),
            _ => false,
        }
    }

    fn describe_plan(
        &self,
        units: &[(Unit, bool)],
        dir: &Path,
    ) -> Result<Vec<String>, ExperimentError> {
        let mut lines = vec![self.plan_table(units)];
        lines.extend(self.one_by_one_note());
        lines.extend(self.censor_work(dir)?);
        Ok(lines)
    }

    fn estimate(
        &self,
        units: &[&Unit],
        ctx: &Context,
        threads: usize,
    ) -> Result<Option<Vec<f64>>, ExperimentError> {
        Ok(Some(self.estimate_seconds(units, ctx.device, threads)?))
    }

    fn extends(&self, recorded: &str, dir: &Path) -> bool {
        let path = dir.join(crate::store::EXPERIMENT_FILE);
        let Ok(old) = ExperimentConfig::from_recorded(recorded, &path) else {
            return false;
        };
        // What decides each planned run's result: its settings and, censored, its labels.
        let decided = |config: &ExperimentConfig| {
            let censors = config.censor_configs();
            config
                .plan(dir)
                .into_iter()
                .map(|r| {
                    let labels = r
                        .condition
                        .is_censored()
                        .then(|| censors[r.variant].clone());
                    (r.dir, (outcome_settings(&r.config), labels))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let new = decided(&self.config);
        decided(&old)
            .iter()
            .all(|(dir, run)| new.get(dir) == Some(run))
    }

    fn load(&mut self, ctx: &Context) -> Result<(), ExperimentError> {
        let full = load_full(&self.config.base.data, ctx.data_dir)?;
        // The subset and noise of every point must fit this data (checked now, not at the
        // first run).
        for (base, sweep) in self.config.points() {
            derive_data(&full, &base.data, base.train.seed)?;
            let widest = sweep.hidden.iter().copied().max().unwrap_or(1);
            realbias_train::memory::check(full.dim(), widest, full.classes, base)?;
        }
        self.full = Some(full);
        self.runs = self.config.plan(&ctx.dir);
        Ok(())
    }

    fn prepare(&mut self, ctx: &Context) -> Result<(), ExperimentError> {
        if let Some(note) = self.one_by_one_note() {
            ctx.progress.note(&note);
        }
        self.censor(ctx)
    }

    fn run_unit(
        &self,
        unit: &Unit,
        worker: usize,
        ctx: &Context,
    ) -> Result<UnitOutcome, ExperimentError> {
        let run = &self.runs[unit.index];
        // A run of an ensemble width trains as an ensemble of one, so that a member resumed
        // alone continues exactly as it would have in its ensemble.
        if unit.group.is_some() {
            let mut outcomes = self.train_group(&[unit], worker, ctx)?;
            return outcomes.pop().unwrap_or(Ok(UnitOutcome::Interrupted));
        }
        let data = derive_data(self.source(run)?, &run.config.data, run.config.train.seed)?;
        let data = Arc::new(data);
        let progress = RunProgress::new(ctx.progress.clone(), unit, worker, &[run]);
        let config = run.config.clone().check()?;
        let out = Trainer::new(&config, data.clone(), ctx.device)
            .with_checkpoint(checkpoint_slot(run, ctx))
            .run(progress)?;
        self.save(run, out, &data, ctx)
    }

    fn run_group(
        &self,
        units: &[&Unit],
        worker: usize,
        ctx: &Context,
    ) -> Vec<Result<UnitOutcome, ExperimentError>> {
        match self.train_group(units, worker, ctx) {
            Ok(outcomes) => outcomes,
            // The failure stops the experiment; the other runs are left unfinished.
            Err(e) => std::iter::once(Err(e))
                .chain(units.iter().skip(1).map(|_| Ok(UnitOutcome::Interrupted)))
                .collect(),
        }
    }

    fn finalize(&self, dir: &Path) -> Result<Finalized, ExperimentError> {
        let c = self.collect(dir);
        if c.summary.rows.is_empty() {
            return Err(ExperimentError::NothingFinished {
                dir: dir.to_path_buf(),
                broken: c.broken,
            });
        }
        let mut texts = vec![
            (dir.join("summary.csv"), c.summary.csv()),
            (dir.join("report.md"), self.report_text(&c)),
        ];
        if !c.summary.grid.is_empty() {
            texts.push((dir.join("weight-decay-grid.csv"), c.summary.grid_csv()));
        }
        let paired = paired::compare(&c.runs, &c.results, &c.summary);
        if !paired.is_empty() {
            texts.push((dir.join("paired.csv"), paired::csv(&paired)));
            texts.push((
                dir.join("paired.md"),
                paired::markdown(&self.config.name, &paired),
            ));
        }
        let mut finalized = Finalized {
            files: save_texts(texts)?,
            skipped: c.broken.clone(),
            warnings: Vec::new(),
        };
        let dataset = self.config.base.data.dataset.name();
        // A partial folder's figures say so in their titles.
        let finished = c.results.iter().flatten().count();
        let name = match finished == c.runs.len() {
            true => self.config.name.clone(),
            false => format!(
                "{} (PARTIAL: {finished} of {} runs)",
                self.config.name,
                c.runs.len()
            ),
        };
        figures::draw(dir, &c.summary, &name, &dataset, &mut finalized)?;
        let curves_title = format!("{name}: {dataset}");
        curves::draw(dir, &c.runs, &c.summary, &curves_title, &mut finalized)?;
        if let Some((_, measured)) = self.write_measures(dir, &c)? {
            finalized.files.extend(measured.files);
            finalized.warnings.extend(measured.warnings);
        }
        Ok(finalized)
    }

    fn report(&self, dir: &Path) -> Result<String, ExperimentError> {
        Ok(self.summary(dir).1)
    }
}

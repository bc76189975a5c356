//! Width sweeps: a base training config plus a `[sweep]` section expands into many runs
//! (conditions x hidden units x repetitions, and the weight-decay grid), executed resumably.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use realbias_data::{Dataset, Split};
use realbias_model::TwoLayerNet;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, TrainConfig, parse_table, read_config};
use crate::output::{write_atomic, write_run};
use crate::train::{
    DeviceSplit, Progress, RunResult, StopReason, TrainError, derive_data, load_full, train,
};

/// The conditions of Figure 2 (Figure 1 is `plain` on the full data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Original labels, no regularization.
    Plain,
    /// Original labels, weight decay λ chosen per H from a grid by validation error.
    WeightDecay,
    /// Labels of the whole dataset replaced by a small (H0) network's predictions.
    Censored,
    /// Censored, then a fraction of the labels changed to another class.
    CensoredNoise,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Plain => "plain",
            Condition::WeightDecay => "weight-decay",
            Condition::Censored => "censored",
            Condition::CensoredNoise => "censored-noise",
        }
    }

    pub fn is_censored(self) -> bool {
        matches!(self, Condition::Censored | Condition::CensoredNoise)
    }
}

fn one() -> usize {
    1
}
fn plain_only() -> Vec<Condition> {
    vec![Condition::Plain]
}
fn paper_grid() -> Vec<f64> {
    vec![1e-5, 1e-4, 1e-3, 1e-2]
}
fn five_percent() -> f64 {
    0.05
}

/// `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Hidden units to train, e.g. [4, 8, ..., 4096].
    pub hidden: Vec<usize>,
    /// Repetitions per (condition, H); repetition r uses seed `train.seed + r`, which redraws
    /// the subset, the label noise, the initialization and the batch order.
    #[serde(default = "one")]
    pub repetitions: usize,
    #[serde(default = "plain_only")]
    pub conditions: Vec<Condition>,
    /// The λ grid of the `weight-decay` condition.
    #[serde(default = "paper_grid")]
    pub weight_decay_grid: Vec<f64>,
    /// H0 of the censoring network (the paper: 4 for MNIST, 16 for CIFAR-10).
    #[serde(default)]
    pub censor_hidden: Option<usize>,
    /// Epoch cap of the censoring network's training (default: `train.max_epochs`).
    #[serde(default)]
    pub censor_max_epochs: Option<usize>,
    /// Label noise of the `censored-noise` condition (5%).
    #[serde(default = "five_percent")]
    pub censor_noise: f64,
}

/// A whole experiment: the base run and how it is swept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub name: String,
    pub base: TrainConfig,
    pub sweep: SweepConfig,
}

impl ExperimentConfig {
    /// Reads a config with a `[sweep]` section; `--set` overrides reach both parts
    /// (`sweep.hidden=[4, 8]`, `optim.lr=0.05`).
    pub fn load(path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        Self::parse(&read_config(path)?, path, sets)
    }

    pub fn parse(text: &str, path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        let mut table = parse_table(text, path, sets)?;
        let sweep = table.remove("sweep").ok_or_else(|| {
            ConfigError::parse(
                path,
                "no [sweep] section: use `realbias train` for a single run",
            )
        })?;
        let sweep: SweepConfig = sweep
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::parse(path, format!("in [sweep]: {e}")))?;
        let base: TrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError::parse(path, e))?;
        let name = base.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or("experiment".into(), |s| s.to_string_lossy().into_owned())
        });
        let config = ExperimentConfig { name, base, sweep };
        let mut problems = config.base.problems();
        problems.extend(config.sweep_problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    fn sweep_problems(&self) -> Vec<String> {
        let s = &self.sweep;
        let mut p = Vec::new();
        if s.hidden.is_empty() || s.hidden.contains(&0) {
            p.push("sweep.hidden must list at least one width, each >= 1".into());
        }
        if s.repetitions == 0 {
            p.push("sweep.repetitions must be at least 1".into());
        }
        if s.conditions.is_empty() {
            p.push("sweep.conditions must name at least one condition".into());
        }
        if s.conditions.contains(&Condition::WeightDecay)
            && (s.weight_decay_grid.is_empty()
                || s.weight_decay_grid
                    .iter()
                    .any(|&l| !(l > 0.0 && l.is_finite())))
        {
            p.push(
                "sweep.weight_decay_grid must list positive values for the weight-decay condition"
                    .into(),
            );
        }
        if s.conditions.iter().any(|c| c.is_censored()) && s.censor_hidden.is_none_or(|h| h == 0) {
            p.push("sweep.censor_hidden (H0 >= 1) is needed for the censored conditions".into());
        }
        if !(0.0..1.0).contains(&s.censor_noise) {
            p.push(format!(
                "sweep.censor_noise = {} must be in [0, 1)",
                s.censor_noise
            ));
        }
        if s.censor_max_epochs == Some(0) {
            p.push("sweep.censor_max_epochs must be at least 1".into());
        }
        p
    }

    /// Every run of the experiment, in plan order (condition, then H, repetition, λ).
    pub fn plan(&self, experiment_dir: &Path) -> Vec<PlannedRun> {
        let mut runs = Vec::new();
        for &condition in &self.sweep.conditions {
            for &hidden in &self.sweep.hidden {
                for rep in 0..self.sweep.repetitions {
                    let mut config = self.base.clone();
                    config.model.hidden = hidden;
                    config.train.seed = self.base.train.seed + rep as u64;
                    config.name = Some(format!("{}/{}", self.name, condition.name()));
                    let dir = experiment_dir
                        .join(condition.name())
                        .join(format!("h{hidden}"))
                        .join(format!("rep{rep}"));
                    let lambdas: Vec<Option<f64>> = match condition {
                        Condition::WeightDecay => self
                            .sweep
                            .weight_decay_grid
                            .iter()
                            .map(|&l| Some(l))
                            .collect(),
                        _ => vec![None],
                    };
                    for lambda in lambdas {
                        let mut config = config.clone();
                        let mut dir = dir.clone();
                        if let Some(l) = lambda {
                            config.optim.weight_decay = l;
                            dir = dir.join(format!("wd{l:e}"));
                        }
                        if condition == Condition::CensoredNoise {
                            config.data.label_noise = self.sweep.censor_noise;
                        }
                        runs.push(PlannedRun {
                            condition,
                            hidden,
                            rep,
                            weight_decay: lambda,
                            dir,
                            config,
                        });
                    }
                }
            }
        }
        runs
    }

    /// The censoring network's training config: the base protocol with H0 hidden units.
    pub fn censor_config(&self) -> Option<TrainConfig> {
        let h0 = self.sweep.censor_hidden?;
        let mut c = self.base.clone();
        c.model.hidden = h0;
        c.optim.weight_decay = 0.0;
        c.data.label_noise = 0.0;
        c.data.subset = None;
        if let Some(e) = self.sweep.censor_max_epochs {
            c.train.max_epochs = e;
        }
        c.name = Some(format!("{}/censor", self.name));
        Some(c)
    }
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub condition: Condition,
    pub hidden: usize,
    pub rep: usize,
    pub weight_decay: Option<f64>,
    pub dir: PathBuf,
    pub config: TrainConfig,
}

impl PlannedRun {
    /// Relative cost: examples x hidden units x epoch cap.
    pub fn cost(&self, train_examples: usize) -> f64 {
        (train_examples * self.hidden * self.config.train.max_epochs) as f64
    }

    pub fn label(&self) -> String {
        let wd = self
            .weight_decay
            .map_or(String::new(), |l| format!(" λ={l:e}"));
        format!(
            "{} H={} rep {}{wd}",
            self.condition.name(),
            self.hidden,
            self.rep
        )
    }
}

/// A finished run's result, if its folder holds a valid `result.json`.
pub fn finished(dir: &Path) -> Option<RunResult> {
    let text = std::fs::read_to_string(dir.join("result.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The censored labels of the whole dataset and how they came about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CensorInfo {
    pub censor_hidden: usize,
    pub seed: u64,
    pub examples: usize,
    /// Fraction of examples whose censored label differs from the true one.
    pub disagreement: f64,
    pub epochs: usize,
    pub stop_reason: StopReason,
    pub train_error: f64,
}

/// Trains the H0 network on the entire dataset (train + validation + test, as in the paper)
/// and returns its predictions for every example, cached in `dir` (`labels.bin`,
/// `censor.json`) so it is trained once per (dataset, H0, seed).
pub fn censor_labels(
    config: &TrainConfig,
    full: &Dataset,
    dir: &Path,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<(Vec<u8>, CensorInfo), TrainError> {
    let labels_path = dir.join("labels.bin");
    let info_path = dir.join("censor.json");
    if let (Ok(labels), Ok(info)) = (
        std::fs::read(&labels_path),
        std::fs::read_to_string(&info_path),
    ) && let Ok(info) = serde_json::from_str::<CensorInfo>(&info)
        && labels.len() == full.total_len()
        && labels.iter().all(|&l| (l as usize) < full.classes)
    {
        return Ok((labels, info));
    }
    let (_, labels, info) = censor(config, full, device, progress)?;
    write_atomic(&labels_path, &labels)?;
    write_atomic(
        &info_path,
        serde_json::to_string_pretty(&info)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok((labels, info))
}

/// Trains the censoring network on every example of `full` (normalized as the config says)
/// and returns it with its predicted labels (train, validation, test order) and a report.
pub fn censor(
    config: &TrainConfig,
    full: &Dataset,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<(TwoLayerNet, Vec<u8>, CensorInfo), TrainError> {
    let empty = Split {
        dim: full.dim(),
        features: Vec::new(),
        labels: Vec::new(),
    };
    let mut everything = Dataset {
        name: full.name.clone(),
        classes: full.classes,
        train: full.all_examples(),
        validation: empty.clone(),
        test: empty,
    };
    everything.normalize(config.data.normalization);
    let run = train(config, &everything, device, progress)?;
    let labels = DeviceSplit::new(&everything.train, config.train.eval_batch, device)
        .predict(&run.final_net);
    let truth = &everything.train.labels;
    let disagree = labels.iter().zip(truth).filter(|(a, b)| a != b).count();
    let info = CensorInfo {
        censor_hidden: config.model.hidden,
        seed: config.train.seed,
        examples: labels.len(),
        disagreement: disagree as f64 / labels.len().max(1) as f64,
        epochs: run.result.epochs,
        stop_reason: run.result.stop_reason,
        train_error: run.result.train_error,
    };
    Ok((run.final_net, labels, info))
}

/// What a sweep reports while it runs.
pub trait SweepProgress: Sync {
    /// A run starts on worker `worker`.
    fn started(&self, _worker: usize, _run: &PlannedRun) {}
    /// Per-epoch progress of the run on `worker`.
    fn epoch(
        &self,
        _worker: usize,
        _run: &PlannedRun,
        _epoch: usize,
        _train_error: f64,
        _validation_error: f64,
    ) {
    }
    /// A run finished (or was found finished).
    fn finished(&self, _run: &PlannedRun, _result: &RunResult, _skipped: bool) {}
    fn stop_requested(&self) -> bool {
        false
    }
}

struct WorkerProgress<'a> {
    worker: usize,
    run: &'a PlannedRun,
    sweep: &'a dyn SweepProgress,
}

impl Progress for WorkerProgress<'_> {
    fn epoch(&mut self, r: &crate::train::EpochRecord) {
        self.sweep.epoch(
            self.worker,
            self.run,
            r.epoch,
            r.train_error,
            r.validation_error,
        );
    }
    fn interrupted(&self) -> bool {
        self.sweep.stop_requested()
    }
}

/// How many runs were trained, skipped, or left unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub trained: usize,
    pub skipped: usize,
    pub unfinished: usize,
}

/// The data a run needs: the full splits, or their censored version.
pub struct SweepData {
    pub full: Dataset,
    pub censored: Option<Dataset>,
}

/// Runs every unfinished run of `plan` on `jobs` workers, each training in its own rayon pool
/// of `threads` threads. A run's folder gets `result.json` only when it finished; a run
/// interrupted part-way is restarted from scratch next time.
pub fn execute(
    plan: &[PlannedRun],
    data: &SweepData,
    device: &Device,
    jobs: usize,
    threads: usize,
    progress: &dyn SweepProgress,
) -> Result<SweepOutcome, TrainError> {
    let mut pending = Vec::new();
    let mut outcome = SweepOutcome::default();
    for run in plan {
        match finished(&run.dir) {
            Some(result) => {
                outcome.skipped += 1;
                progress.finished(run, &result, true);
            }
            None => pending.push(run),
        }
    }
    // Most expensive first, so the longest runs start at once and the short ones fill the
    // other workers around them (stable: plan order among equals).
    let train_examples = data.full.train.len();
    pending.sort_by(|a, b| b.cost(train_examples).total_cmp(&a.cost(train_examples)));
    let queue: VecDeque<&PlannedRun> = pending.into_iter().collect();
    let queue = Mutex::new(queue);
    let outcome = Mutex::new(outcome);
    let failure: Mutex<Option<TrainError>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..jobs.max(1) {
            let (queue, outcome, failure, failed) = (&queue, &outcome, &failure, &failed);
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads.max(1))
                    .build();
                loop {
                    if failed.load(Ordering::Relaxed) || progress.stop_requested() {
                        break;
                    }
                    let Some(run) = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None) else {
                        break;
                    };
                    progress.started(worker, run);
                    let work = || -> Result<Option<RunResult>, TrainError> {
                        let source = if run.condition.is_censored() {
                            data.censored.as_ref()
                        } else {
                            Some(&data.full)
                        };
                        let source = source.unwrap_or(&data.full);
                        let run_data =
                            derive_data(source, &run.config.data, run.config.train.seed)?;
                        let mut p = WorkerProgress {
                            worker,
                            run,
                            sweep: progress,
                        };
                        let out = train(&run.config, &run_data, device, &mut p)?;
                        if out.result.stop_reason == StopReason::Interrupted {
                            return Ok(None);
                        }
                        write_run(&run.dir, &out)?;
                        Ok(Some(out.result))
                    };
                    let result = match &pool {
                        Ok(pool) => pool.install(work),
                        Err(_) => work(),
                    };
                    match result {
                        Ok(Some(r)) => {
                            if let Ok(mut o) = outcome.lock() {
                                o.trained += 1;
                            }
                            progress.finished(run, &r, false);
                        }
                        Ok(None) => {
                            if let Ok(mut o) = outcome.lock() {
                                o.unfinished += 1;
                            }
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut outcome = outcome.into_inner().unwrap_or_default();
    outcome.unfinished += queue.into_inner().map(|q| q.len()).unwrap_or(0);
    Ok(outcome)
}

/// Loads the data an experiment needs, training (or loading) the censoring network first.
pub fn prepare(
    config: &ExperimentConfig,
    experiment_dir: &Path,
    data_dir: Option<&Path>,
    device: &Device,
    censor_progress: &mut dyn Progress,
) -> Result<(SweepData, Option<CensorInfo>), TrainError> {
    let full = load_full(&config.base.data, data_dir)?;
    let needs_censoring = config.sweep.conditions.iter().any(|c| c.is_censored());
    let (censored, info) = match config.censor_config().filter(|_| needs_censoring) {
        Some(c) => {
            let dir = experiment_dir.join("censor").join(format!(
                "{}-h0-{}-seed{}",
                full.name, c.model.hidden, c.train.seed
            ));
            let (labels, info) = censor_labels(&c, &full, &dir, device, censor_progress)?;
            let mut censored = full.clone();
            censored.relabel_all(&labels)?;
            (Some(censored), Some(info))
        }
        None => (None, None),
    };
    Ok((SweepData { full, censored }, info))
}

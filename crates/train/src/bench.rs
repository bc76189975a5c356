//! `realbias bench`: training throughput of the real training path (`train::train`, the code
//! `realbias train` runs) on synthetic data, against this machine's measured matrix-multiply
//! peak on the same backend.
//!
//! FLOPs per epoch of the paper's network on `n` examples: `n·H·(4d + 6k)` (forward `2dH + 2Hk`,
//! backward `2Hk` for `∇V`, `2Hk` for the hidden gradient, `2dH` for `∇U`; no input gradient).

use std::path::Path;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use realbias_data::{Dataset, Split};
use serde::Serialize;

use crate::config::{CheckedConfig, ConfigError, TrainConfig};
use crate::engine::classifier::LossPath;
use crate::engine::ensemble::{Member, train_ensemble};
use crate::run_files::record::EpochRecord;
use crate::{Quiet, TrainError, Trainer};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid bench settings: {0}")]
    Invalid(String),
    #[error("cannot build a pool of {threads} threads: {message}")]
    Pool { threads: usize, message: String },
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub hidden: Vec<usize>,
    /// Training examples per epoch (the paper's MNIST: 50,000).
    pub examples: usize,
    /// Validation examples evaluated every epoch besides the training set.
    pub validation: usize,
    pub epochs: usize,
    pub threads: usize,
    pub inputs: usize,
    pub classes: usize,
    pub batch_size: usize,
    /// The loss implementation the training steps differentiate.
    pub loss: LossPath,
    /// Train this many runs (seeds 0, 1, ...) as one ensemble instead of one run.
    pub ensemble: Option<usize>,
    /// Also time writing each width's checkpoint (a full 500-epoch history), in this folder.
    pub checkpoint_dir: Option<std::path::PathBuf>,
}

impl BenchSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            p.push("--hidden: give widths >= 1".to_string());
        }
        if self.examples < self.batch_size {
            p.push(format!(
                "--examples must be at least the batch size {}",
                self.batch_size
            ));
        }
        if self.epochs == 0 {
            p.push("--epochs must be at least 1".into());
        }
        if self.threads == 0 {
            p.push("--threads must be at least 1".into());
        }
        if self.ensemble == Some(0) {
            p.push("--ensemble must be at least 1 member".into());
        }
        if self.ensemble.is_some() && self.loss != LossPath::Fused {
            p.push("--ensemble trains with the fused loss's gradient only".into());
        }
        p
    }

    /// FLOPs of one training epoch at width `h`.
    pub fn epoch_flops(&self, h: usize) -> f64 {
        self.examples as f64 * h as f64 * (4.0 * self.inputs as f64 + 6.0 * self.classes as f64)
    }
}

/// One width's measurement (one JSON line of `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub hidden: usize,
    /// Members trained as one ensemble (absent: one run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<usize>,
    /// Median over epochs of the training steps' time (evaluation excluded; of the whole
    /// ensemble).
    pub epoch_seconds: f64,
    /// Median over epochs of the per-epoch evaluation (training and validation error; every
    /// member's).
    pub eval_seconds: f64,
    /// `eval_seconds / epoch_seconds`.
    pub eval_overhead: f64,
    /// One step (of the whole ensemble).
    pub step_micros: f64,
    /// `step_micros` per member (one run: the same).
    pub step_micros_per_member: f64,
    pub gflops: f64,
    pub peak_gflops: f64,
    /// The product `[m, k, n]` that reached the peak.
    pub peak_shape: [usize; 3],
    pub percent_of_peak: f64,
    pub backend: &'static str,
    pub loss: LossPath,
    pub threads: usize,
    pub examples: usize,
    pub epochs: usize,
    /// The checkpoint of one run at this width, and the median time to write it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_seconds: Option<f64>,
    /// Of the training time, the share spent writing every member's checkpoint once per
    /// default interval (`train.checkpoint_seconds` = 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_overhead: Option<f64>,
}

/// The median time to write the checkpoint of `run` (its history padded to a full run's 500
/// epochs) into `dir`, and its size.
fn checkpoint_cost(
    run: &crate::FinishedRun,
    dir: &std::path::Path,
) -> Result<(u64, f64), BenchError> {
    let weights = crate::weights::Weights::of(&run.final_net)?;
    let mut history = run.history.clone();
    while let Some(last) = history.last().cloned().filter(|_| history.len() <= 500) {
        history.push(last);
    }
    let state = crate::RunCheckpoint {
        velocity: Some(weights.clone()),
        optimizer: None,
        best: weights.clone(),
        weights,
        ledger: crate::run_files::state::SavedLedger {
            best_epoch: 0,
            best_validation_error: 0.0,
            streak: 0,
            elapsed_seconds: 0.0,
            history,
        },
    };
    let slot = crate::CheckpointSlot {
        dir: dir.to_path_buf(),
        discard_mismatched: false,
    };
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        slot.save(&run.result.config, &state)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let bytes = std::fs::metadata(slot.path()).map_or(0, |m| m.len());
    slot.remove()?;
    Ok((bytes, median(times)))
}

/// Gaussian inputs labelled by a random linear teacher: real training (the loss falls), no
/// dataset needed.
fn synthetic_dataset(settings: &BenchSettings, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (d, k) = (settings.inputs, settings.classes);
    let teacher: Vec<f32> = (0..d * k)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let mut split = |n: usize| {
        let features: Vec<f32> = (0..n * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let labels = features
            .chunks(d)
            .map(|x| {
                (0..k)
                    .map(|c| (0..d).map(|i| x[i] * teacher[i * k + c]).sum::<f32>())
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or(0, |(c, _)| c as u8)
            })
            .collect();
        Split {
            dim: d,
            features,
            labels,
        }
    };
    let train = split(settings.examples);
    let validation = split(settings.validation);
    let test = split(settings.batch_size);
    Dataset {
        name: "synthetic".into(),
        classes: k,
        train,
        validation,
        test,
    }
}

/// The best rate of `m x k` by `k x n` matrix products on `device` (the backend's own GEMM), in
/// GFLOP/s.
fn matmul_rate(device: &Device, [m, k, n]: [usize; 3], repeats: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut matrix = |rows: usize, cols: usize| {
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), device)
    };
    let (a, b) = (matrix(m, k), matrix(k, n));
    // Warm up (first-call dispatch, allocation).
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut best = f64::INFINITY;
    let _ = device.sync();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let c = a.clone().matmul(b.clone());
        let _ = c.into_data();
        // A GPU backend queues work; count it only once it has run.
        let _ = device.sync();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

/// The shapes the peak is taken over: square ones, and the training step's own (a batch of 100
/// through a 4096-wide hidden layer of d = 100). Which shape is fastest depends on the
/// machine's caches: on one 2-core VM 1024³ ran at 80 GFLOP/s in one session and 40 in
/// another with the same kernel, while the training shapes kept their speed.
pub const PEAK_SHAPES: [[usize; 3]; 5] = [
    [256, 256, 256],
    [512, 512, 512],
    [1024, 1024, 1024],
    [100, 100, 4096],
    [4096, 100, 100],
];

/// The machine's matrix-multiply peak on `device`: the best rate over [`PEAK_SHAPES`], with
/// the shape that gave it.
fn matmul_peak(device: &Device, repeats: usize) -> (f64, [usize; 3]) {
    PEAK_SHAPES
        .iter()
        .map(|&shape| (matmul_rate(device, shape, repeats), shape))
        .fold(
            (0.0, PEAK_SHAPES[0]),
            |best, x| if x.0 > best.0 { x } else { best },
        )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    }
}

/// The paper's protocol at width `h` with seed `seed`; only the data and the stopping rule are
/// the bench's.
fn bench_config(
    settings: &BenchSettings,
    h: usize,
    seed: u64,
) -> Result<CheckedConfig, BenchError> {
    let text = format!(
        "name = \"bench\"\n[data]\ndataset = {{ kind = \"mnist\" }}\n[model]\nhidden = {h}\n[optim]\nbatch_size = {}\n[train]\nseed = {seed}\nmax_epochs = {}\nconverge_epochs = {}\nmeasures = false\n",
        settings.batch_size,
        settings.epochs,
        settings.epochs + 1
    );
    Ok(TrainConfig::parse(&text, Path::new("<bench>"), &[])?.check()?)
}

/// Trains `settings.epochs` epochs at width `h` through [`Trainer`] (what `train` runs), or
/// an ensemble of `settings.ensemble` members through [`train_ensemble`], and times them.
fn bench_width(
    settings: &BenchSettings,
    data: &Dataset,
    h: usize,
    (peak, peak_shape): (f64, [usize; 3]),
    device: &Device,
) -> Result<BenchRow, BenchError> {
    let members = settings.ensemble.unwrap_or(1);
    let mut checkpoint = None;
    let histories: Vec<Vec<EpochRecord>> = match settings.ensemble {
        None => {
            let config = bench_config(settings, h, 0)?;
            let out = Trainer::new(&config, data, device)
                .with_loss(settings.loss)
                .run(Quiet)?;
            if let Some(dir) = &settings.checkpoint_dir {
                checkpoint = Some(checkpoint_cost(&out, dir)?);
            }
            vec![out.history]
        }
        Some(r) => {
            let configs = (0..r as u64)
                .map(|seed| bench_config(settings, h, seed))
                .collect::<Result<Vec<_>, _>>()?;
            let members: Vec<Member> = configs
                .iter()
                .map(|config| Member::new(config, data))
                .collect();
            let outs = train_ensemble(&members, device, &mut Quiet)?;
            if let (Some(dir), Some(first)) = (&settings.checkpoint_dir, outs.first()) {
                checkpoint = Some(checkpoint_cost(first, dir)?);
            }
            outs.into_iter().map(|o| o.history).collect()
        }
    };
    // Per epoch: the steps' time (members record their equal shares) and every evaluation.
    let per_epoch = |f: &dyn Fn(&EpochRecord) -> f64| {
        let epochs = settings.epochs.min(histories[0].len().saturating_sub(1));
        median(
            (1..=epochs)
                .map(|e| histories.iter().filter_map(|h| h.get(e)).map(f).sum())
                .collect(),
        )
    };
    let epoch_seconds = per_epoch(&|r| r.train_seconds);
    let eval_seconds = per_epoch(&|r| r.eval_seconds);
    let steps = settings.examples.div_ceil(settings.batch_size);
    let gflops = members as f64 * settings.epoch_flops(h) / epoch_seconds / 1e9;
    let step_micros = epoch_seconds / steps as f64 * 1e6;
    Ok(BenchRow {
        hidden: h,
        ensemble: settings.ensemble,
        epoch_seconds,
        eval_seconds,
        eval_overhead: eval_seconds / epoch_seconds,
        step_micros,
        step_micros_per_member: step_micros / members as f64,
        gflops,
        peak_gflops: peak,
        peak_shape,
        percent_of_peak: 100.0 * gflops / peak,
        backend: crate::backend::backend_name(),
        loss: settings.loss,
        threads: settings.threads,
        examples: settings.examples,
        epochs: settings.epochs,
        checkpoint_bytes: checkpoint.map(|c| c.0),
        checkpoint_seconds: checkpoint.map(|c| c.1),
        checkpoint_overhead: checkpoint
            .map(|c| members as f64 * c.1 / crate::config::DEFAULT_CHECKPOINT_SECONDS),
    })
}

/// Runs the whole bench in a pool of `settings.threads` threads; `each` sees every row as it
/// is measured.
pub fn run(
    settings: &BenchSettings,
    device: &Device,
    each: &mut (dyn FnMut(&BenchRow) + Send),
) -> Result<Vec<BenchRow>, BenchError> {
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(BenchError::Invalid(problems.join("; ")));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(settings.threads)
        .build()
        .map_err(|e| BenchError::Pool {
            threads: settings.threads,
            message: e.to_string(),
        })?;
    pool.install(|| {
        let data = synthetic_dataset(settings, 0);
        let peak = matmul_peak(device, 5);
        let mut rows = Vec::new();
        for &h in &settings.hidden {
            let row = bench_width(settings, &data, h, peak, device)?;
            each(&row);
            rows.push(row);
        }
        Ok(rows)
    })
}

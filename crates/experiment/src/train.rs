//! One training run of the paper's protocol: Burn's `Learner` stepped over shuffled
//! mini-batches, full-split evaluation after every epoch, stopping at convergence.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, ExecutionError, Int, Tensor, TensorData};
use burn::train::metric::ItemLazy;
use burn::train::{ClassificationOutput, InferenceStep, Learner, TrainOutput, TrainStep};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use realbias_data::{Dataset, Split, resolve_data_dir};
use realbias_model::{NormMeasures, TwoLayerNet};
use serde::{Deserialize, Serialize};

use crate::config::{DataConfig, TrainConfig};
use crate::optim::{HeavyBall, MomentumCell, PaperSchedule};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] realbias_data::DataError),
    #[error(transparent)]
    Model(#[from] realbias_model::ModelError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Random streams derived from the run's seed (the data crate uses streams 1 and 2).
const STREAM_BATCHES: u64 = 10;

/// Reads and prepares the data a config describes: paper splits, optional subset, label
/// noise, normalization. `data_dir` overrides `REALBIAS_DATA` / `datasets/`.
pub fn prepare_data(
    config: &DataConfig,
    data_dir: Option<&Path>,
    seed: u64,
) -> Result<Dataset, TrainError> {
    derive_data(&load_full(config, data_dir)?, config, seed)
}

/// The paper's full splits of the configured dataset, before any subset, noise or
/// normalization (what censoring relabels).
pub fn load_full(config: &DataConfig, data_dir: Option<&Path>) -> Result<Dataset, TrainError> {
    let raw = config.dataset.load(&resolve_data_dir(data_dir))?;
    Ok(Dataset::from_raw(
        &raw,
        &config.features,
        config.validation,
    )?)
}

/// One run's data from the full splits: the seeded subset, label noise, normalization.
pub fn derive_data(full: &Dataset, config: &DataConfig, seed: u64) -> Result<Dataset, TrainError> {
    let mut data = match config.subset {
        Some(s) => full.subset(s.train, s.validation, seed)?,
        None => full.clone(),
    };
    if config.label_noise > 0.0 {
        data.add_label_noise(config.label_noise, config.noise_targets, seed)?;
    }
    data.normalize(config.normalization);
    Ok(data)
}

/// The network as a Burn learner model: softmax cross-entropy on its logits.
#[derive(Module, Debug)]
pub struct Classifier {
    pub net: TwoLayerNet,
    /// Which implementation of the loss the training step differentiates.
    #[module(skip)]
    pub loss: LossPath,
}

/// How a training step computes the loss and its gradient. Both give the same numbers up to
/// floating-point rounding (`tests/training.rs` trains both on a fixed seed and compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossPath {
    /// One autodiff node with a hand-written backward pass ([`crate::fused`]): what every run
    /// uses.
    #[default]
    Fused,
    /// Burn's own operations and `CrossEntropyLoss`, differentiated operation by operation:
    /// the reference the fused path is checked against.
    Composed,
}

impl LossPath {
    pub fn name(self) -> &'static str {
        match self {
            LossPath::Fused => "fused",
            LossPath::Composed => "composed",
        }
    }
}

impl std::str::FromStr for LossPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [LossPath::Fused, LossPath::Composed]
            .into_iter()
            .find(|path| path.name() == s)
            .ok_or_else(|| format!("unknown loss path {s:?}: use fused or composed"))
    }
}

/// A mini-batch: features `B x d` and one-hot targets `B x k`.
pub struct Batch {
    pub x: Tensor<2>,
    pub targets: Tensor<2>,
}

impl Batch {
    /// The rows `rows` of `split`, on `device`.
    pub fn gather(split: &Split, rows: &[usize], classes: usize, device: &Device) -> Batch {
        let dim = split.dim;
        let mut xs = Vec::with_capacity(rows.len() * dim);
        let mut targets = vec![0f32; rows.len() * classes];
        for (r, &i) in rows.iter().enumerate() {
            xs.extend_from_slice(split.row(i));
            targets[r * classes + split.labels[i] as usize] = 1.0;
        }
        Batch {
            x: Tensor::from_data(TensorData::new(xs, [rows.len(), dim]), device),
            targets: Tensor::from_data(TensorData::new(targets, [rows.len(), classes]), device),
        }
    }
}

/// A training step's output: the mini-batch loss.
pub struct StepOutput {
    pub loss: Tensor<1>,
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        self.loss.device().flush()?;
        Ok(StepOutput {
            loss: self.loss.without_autodiff(),
        })
    }
}

impl Classifier {
    /// The mean loss of a batch, by the configured path.
    pub fn loss(&self, batch: Batch) -> Tensor<1> {
        match self.loss {
            LossPath::Fused => crate::fused::two_layer_loss(&self.net, batch.x, batch.targets),
            LossPath::Composed => {
                let labels = class_indices(&batch.targets);
                cross_entropy(self.net.forward(batch.x), labels)
            }
        }
    }
}

/// The class of each one-hot row of `targets`.
fn class_indices(targets: &Tensor<2>) -> Tensor<1, Int> {
    targets.clone().argmax(1).squeeze_dim::<1>(1)
}

/// Burn's `CrossEntropyLoss` of `logits` against class indices.
fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, labels)
}

impl TrainStep for Classifier {
    type Input = Batch;
    type Output = StepOutput;

    fn step(&self, batch: Batch) -> TrainOutput<StepOutput> {
        let loss = self.loss(batch);
        TrainOutput::new(self, loss.backward(), StepOutput { loss })
    }
}

impl InferenceStep for Classifier {
    type Input = Batch;
    type Output = ClassificationOutput;

    // No gradient here, so nothing to fuse: one forward pass serves both loss and logits.
    fn step(&self, batch: Batch) -> ClassificationOutput {
        let targets = class_indices(&batch.targets);
        let output = self.net.forward(batch.x);
        ClassificationOutput {
            loss: cross_entropy(output.clone(), targets.clone()),
            output,
            targets,
        }
    }
}

/// Mean cross-entropy and error rate of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub error: f64,
}

/// The class a row of logits predicts: the first maximum, as argmax does everywhere. It is
/// the one rule for errors and for censored labels, so a censoring network's own error on
/// the labels it produced is exactly 0 (a bias-free ReLU net outputs all-zero logits, a tie,
/// on inputs where every unit is off).
pub fn predicted_class(row: &[f32]) -> u8 {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = c;
        }
    }
    best as u8
}

/// A split uploaded once to the evaluation device, in chunks.
pub struct DeviceSplit {
    chunks: Vec<(Tensor<2>, Vec<u8>)>,
    len: usize,
}

impl DeviceSplit {
    pub fn new(split: &Split, chunk: usize, device: &Device) -> Self {
        let chunks = (0..split.len())
            .step_by(chunk.max(1))
            .map(|start| {
                let end = (start + chunk).min(split.len());
                let part = split.slice(start..end);
                let x = Tensor::from_data(
                    TensorData::new(part.features, [end - start, split.dim]),
                    device,
                );
                (x, part.labels)
            })
            .collect();
        DeviceSplit {
            chunks,
            len: split.len(),
        }
    }

    /// The predicted class of every example, in order (ties go to the lowest class).
    pub fn predict(&self, net: &TwoLayerNet) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for (x, labels) in &self.chunks {
            let logits: Vec<f32> = net.forward(x.clone()).try_into_vec_as().unwrap_or_default();
            let k = logits.len() / labels.len().max(1);
            out.extend(logits.chunks_exact(k).map(predicted_class));
        }
        out
    }

    /// Evaluates `net` (in inference mode) on the whole split; logits are reduced on the host
    /// in f64 so every backend is measured the same way.
    pub fn evaluate(&self, net: &TwoLayerNet) -> Evaluation {
        let (mut loss, mut errors) = (0.0f64, 0usize);
        for (x, labels) in &self.chunks {
            let logits: Vec<f32> = net.forward(x.clone()).try_into_vec_as().unwrap_or_default();
            let k = logits.len() / labels.len().max(1);
            for (row, &label) in logits.chunks_exact(k).zip(labels) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let lse = max
                    + row
                        .iter()
                        .map(|&v| (v as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                loss += lse - row[label as usize] as f64;
                errors += usize::from(predicted_class(row) != label);
            }
        }
        let n = self.len.max(1) as f64;
        Evaluation {
            loss: loss / n,
            error: errors as f64 / n,
        }
    }
}

/// One row of `history.csv`. Epoch 0 is the initial network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub train_loss: f64,
    pub train_error: f64,
    pub validation_loss: f64,
    pub validation_error: f64,
    pub test_error: Option<f64>,
    pub u_frobenius: f64,
    pub v_frobenius: f64,
    pub weight_decay_penalty: f64,
    pub group_norm: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Zero training error and training loss under the tolerance for the configured epochs.
    Converged,
    MaxEpochs,
    /// The training loss became NaN or infinite.
    Diverged,
    /// Stopped by the user (Ctrl-C); the run is incomplete.
    Interrupted,
}

/// Everything a figure needs from one run (`result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub train_error: f64,
    pub train_loss: f64,
    pub validation_error: f64,
    /// Test error of the final network ("at convergence").
    pub test_error: f64,
    /// The epoch with the lowest validation error (the first such epoch).
    pub early_stop_epoch: usize,
    pub early_stop_validation_error: f64,
    /// Test error of the network at `early_stop_epoch` ("with early stopping").
    pub early_stop_test_error: f64,
    /// First epoch with zero training error, if any.
    pub epochs_to_zero_train_error: Option<usize>,
    pub epochs: usize,
    pub stop_reason: StopReason,
    pub wall_seconds: f64,
    pub seconds_per_epoch: f64,
    pub hidden: usize,
    pub seed: u64,
    pub backend: String,
    pub git_revision: String,
    pub dataset: String,
    pub train_examples: usize,
    pub validation_examples: usize,
    pub test_examples: usize,
    pub norms: NormMeasures,
    pub u_frobenius: f64,
    pub v_frobenius: f64,
    pub weight_decay_penalty: f64,
    pub group_norm: f64,
    pub parameters: usize,
    pub config: TrainConfig,
}

/// What the caller sees while a run goes on.
pub trait Progress {
    /// Called once per mini-batch with (batch, batches in the epoch).
    fn batch(&mut self, _epoch: usize, _batch: usize, _batches: usize) {}
    /// Called after each epoch's evaluation.
    fn epoch(&mut self, _record: &EpochRecord) {}
    /// True when the user asked to stop.
    fn interrupted(&self) -> bool {
        false
    }
}

/// Silent progress, for tests and sweeps.
pub struct Quiet;
impl Progress for Quiet {}

/// The output of [`train`]: the result and the per-epoch history.
pub struct RunOutput {
    pub result: RunResult,
    pub history: Vec<EpochRecord>,
    pub final_net: TwoLayerNet,
}

/// Trains one network on `data` as `config` says, on `device` (its autodiff twin for training).
pub fn train(
    config: &TrainConfig,
    data: &Dataset,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<RunOutput, TrainError> {
    train_with(config, data, device, progress, LossPath::Fused)
}

/// [`train`] with the loss computed by `loss` (the composed path is the fused one's reference).
pub fn train_with(
    config: &TrainConfig,
    data: &Dataset,
    device: &Device,
    progress: &mut dyn Progress,
    loss: LossPath,
) -> Result<RunOutput, TrainError> {
    let start = Instant::now();
    let seed = config.train.seed;
    let net_config = config.model.network(data.dim(), data.classes);
    let train_device = device.clone().autodiff();
    let model = Classifier {
        net: net_config.init(seed, &train_device)?,
        loss,
    };

    let n = data.train.len();
    let batch_size = config.optim.batch_size.min(n);
    let batches_per_epoch = n.div_ceil(batch_size);
    let momentum = MomentumCell::new(config.optim.momentum);
    let optimizer = HeavyBall::new(momentum.clone(), config.optim.weight_decay);
    let schedule = PaperSchedule::new(config.optim.clone(), batches_per_epoch, momentum.clone());
    let mut learner = Learner::new(model, optimizer.into(), schedule);

    let eval_batch = config.train.eval_batch;
    let train_eval = DeviceSplit::new(&data.train, eval_batch, device);
    let validation_eval = DeviceSplit::new(&data.validation, eval_batch, device);
    let test_eval = DeviceSplit::new(&data.test, eval_batch, device);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(STREAM_BATCHES);
    let mut order: Vec<usize> = (0..n).collect();

    let mut history = Vec::new();
    let evaluate = |net: &TwoLayerNet, epoch: usize, lr: f64, m: f64, train_seconds: f64| {
        let t = Instant::now();
        let tr = train_eval.evaluate(net);
        let va = validation_eval.evaluate(net);
        let te = config
            .train
            .eval_test_every_epoch
            .then(|| test_eval.evaluate(net).error);
        let norms = net.norms();
        EpochRecord {
            epoch,
            lr,
            momentum: m,
            train_loss: tr.loss,
            train_error: tr.error,
            validation_loss: va.loss,
            validation_error: va.error,
            test_error: te,
            u_frobenius: norms.u_frobenius,
            v_frobenius: norms.v_frobenius,
            weight_decay_penalty: norms.weight_decay_penalty,
            group_norm: norms.group_norm,
            train_seconds,
            eval_seconds: t.elapsed().as_secs_f64(),
            wall_seconds: start.elapsed().as_secs_f64(),
        }
    };

    let initial = learner.model().net.valid();
    let record = evaluate(
        &initial,
        0,
        config.optim.lr_at(0),
        config.optim.momentum_at(0),
        0.0,
    );
    progress.epoch(&record);
    let mut best = (record.validation_error, 0usize, initial);
    history.push(record);

    let mut streak = 0;
    let mut stop = StopReason::MaxEpochs;
    for epoch in 1..=config.train.max_epochs {
        if progress.interrupted() {
            stop = StopReason::Interrupted;
            break;
        }
        let t = Instant::now();
        let (lr, m) = (
            config.optim.lr_at(epoch - 1),
            config.optim.momentum_at(epoch - 1),
        );
        order.shuffle(&mut rng);
        for (b, chunk) in order.chunks(batch_size).enumerate() {
            let batch = Batch::gather(&data.train, chunk, data.classes, &train_device);
            learner.lr_step();
            let out = learner.train_step(batch);
            learner.optimizer_step(out.grads);
            progress.batch(epoch, b + 1, batches_per_epoch);
        }
        // On a GPU the steps are queued: wait for them so the epoch's time is its own (a failed
        // step shows up in the evaluation's read-back).
        let _ = train_device.sync();
        let train_seconds = t.elapsed().as_secs_f64();
        let net = learner.model().net.valid();
        let record = evaluate(&net, epoch, lr, m, train_seconds);
        progress.epoch(&record);
        let (train_loss, train_error, val_error) = (
            record.train_loss,
            record.train_error,
            record.validation_error,
        );
        history.push(record);
        if val_error < best.0 {
            best = (val_error, epoch, net);
        }
        if !train_loss.is_finite() {
            stop = StopReason::Diverged;
            break;
        }
        streak = if train_error == 0.0 && train_loss < config.train.converge_loss {
            streak + 1
        } else {
            0
        };
        if streak >= config.train.converge_epochs {
            stop = StopReason::Converged;
            break;
        }
    }

    let final_net = learner.model().net.valid();
    let last = history
        .last()
        .cloned()
        .unwrap_or_else(|| unreachable!("epoch 0 is always recorded"));
    let test_error = test_eval.evaluate(&final_net).error;
    let early_stop_test_error = test_eval.evaluate(&best.2).error;
    let norms = final_net.norms();
    let epochs = last.epoch;
    let wall = start.elapsed().as_secs_f64();
    let result = RunResult {
        train_error: last.train_error,
        train_loss: last.train_loss,
        validation_error: last.validation_error,
        test_error,
        early_stop_epoch: best.1,
        early_stop_validation_error: best.0,
        early_stop_test_error,
        epochs_to_zero_train_error: history
            .iter()
            .find(|r| r.train_error == 0.0)
            .map(|r| r.epoch),
        epochs,
        stop_reason: stop,
        wall_seconds: wall,
        seconds_per_epoch: if epochs > 0 {
            history.iter().map(|r| r.train_seconds).sum::<f64>() / epochs as f64
        } else {
            0.0
        },
        hidden: config.model.hidden,
        seed,
        backend: crate::backend::backend_name().into(),
        git_revision: git_revision(),
        dataset: data.name.clone(),
        train_examples: data.train.len(),
        validation_examples: data.validation.len(),
        test_examples: data.test.len(),
        norms,
        u_frobenius: norms.u_frobenius,
        v_frobenius: norms.v_frobenius,
        weight_decay_penalty: norms.weight_decay_penalty,
        group_norm: norms.group_norm,
        parameters: norms.parameters,
        config: config.clone(),
    };
    Ok(RunOutput {
        result,
        history,
        final_net,
    })
}

/// The source revision, for the record; "unknown" outside a git checkout.
pub fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

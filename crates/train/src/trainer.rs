//! One training run of the paper's protocol: Burn's `Learner` stepped over shuffled
//! mini-batches, full-split evaluation after every epoch, stopping by a [`StopRule`].

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor};
use burn::train::Learner;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use realbias_data::Dataset;
use realbias_model::{TwoLayerNet, norm_measures};

use crate::classifier::{Classifier, LossPath, TrainingSet};
use crate::config::{RunConfig, TrainConfig};
use crate::eval::DeviceSplit;
use crate::measures::{MeasureInputs, frobenius, measure, pattern_fractions, percentile};
use crate::optim::{HeavyBall, MomentumCell, PaperSchedule};
use crate::record::{EpochRecord, RunMeasures, RunOutput, RunResult, StopReason};
use crate::{Progress, TrainError};

/// Random streams derived from the run's seed (the data crate uses streams 1 and 2).
const STREAM_BATCHES: u64 = 10;

/// When a run stops: divergence, "convergence" (zero training error and a training loss below
/// the tolerance for some consecutive epochs), or the epoch cap.
#[derive(Debug, Clone)]
pub(crate) struct StopRule {
    max_epochs: usize,
    converge_loss: f64,
    converge_epochs: usize,
    streak: usize,
}

impl StopRule {
    pub fn new(config: &RunConfig) -> Self {
        StopRule {
            max_epochs: config.max_epochs,
            converge_loss: config.converge_loss,
            converge_epochs: config.converge_epochs,
            streak: 0,
        }
    }

    /// Called after epoch `epoch`'s evaluation: why the run stops now, if it does.
    pub fn after_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
        train_error: f64,
    ) -> Option<StopReason> {
        if !train_loss.is_finite() {
            return Some(StopReason::Diverged);
        }
        self.streak = if train_error == 0.0 && train_loss < self.converge_loss {
            self.streak + 1
        } else {
            0
        };
        if self.streak >= self.converge_epochs {
            Some(StopReason::Converged)
        } else if epoch >= self.max_epochs {
            Some(StopReason::MaxEpochs)
        } else {
            None
        }
    }
}

/// Trains one network on `data` as `config` says, on `device` (its autodiff twin for training).
pub fn train(
    config: &TrainConfig,
    data: &Dataset,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<RunOutput, TrainError> {
    Trainer::new(config, data, device).run(progress)
}

/// One run: the config, its data, the device and the loss implementation.
pub struct Trainer<'a> {
    config: &'a TrainConfig,
    data: &'a Dataset,
    device: &'a Device,
    loss: LossPath,
}

/// Initial activation patterns are kept for the per-epoch dynamics only up to this many
/// (example, unit) pairs (32 MiB of booleans): Figure 2's runs (2,000 x 2,048) qualify,
/// Figure 1's full training set only up to H = 512. Beyond, the end-of-run measures still
/// count the flips (`measures.at_convergence.pattern_*`).
pub const PATTERN_LIMIT: usize = 1 << 25;

/// The initial network as the per-epoch dynamics compare with it.
struct Initial {
    u: Vec<f32>,
    v: Vec<f32>,
    u_norm: f64,
    v_norm: f64,
    /// The training split's activation patterns, chunk by chunk, on the device.
    patterns: Option<Vec<Tensor<2, Bool>>>,
}

impl Initial {
    fn of(net: &TwoLayerNet, train: &DeviceSplit, examples: usize) -> Result<Self, TrainError> {
        let (u, v) = net.weights()?;
        let (_, h, _) = net.dims();
        Ok(Initial {
            u_norm: frobenius(&u, None),
            v_norm: frobenius(&v, None),
            u,
            v,
            patterns: (examples * h <= PATTERN_LIMIT).then(|| train.patterns(net)),
        })
    }
}

/// `x / y`, 0 when `y` is 0 (a zero initialization).
fn ratio(x: f64, y: f64) -> f64 {
    if y > 0.0 { x / y } else { 0.0 }
}

/// The splits on the evaluation device, and the per-epoch record they give.
struct Evaluator<'a> {
    config: &'a TrainConfig,
    train: DeviceSplit,
    validation: DeviceSplit,
    test: DeviceSplit,
    initial: Option<Initial>,
    start: Instant,
}

impl Evaluator<'_> {
    fn record(
        &self,
        net: &TwoLayerNet,
        epoch: usize,
        train_seconds: f64,
    ) -> Result<EpochRecord, TrainError> {
        let t = Instant::now();
        let initial = self.initial.as_ref();
        let patterns = initial.and_then(|i| i.patterns.as_deref());
        let mut tr = self.train.evaluate_dynamics(net, patterns)?;
        let va = self.validation.evaluate(net)?;
        let te = match self.config.train.eval_test_every_epoch {
            true => Some(self.test.evaluate(net)?.error),
            false => None,
        };
        let (u, v) = net.weights()?;
        let (d, h, k) = net.dims();
        let norms = norm_measures(&u, &v, d, h, k);
        let moved = |w: &[f32], w0: &[f32], n0: f64| ratio(frobenius(w, Some(w0)), n0);
        let (u_distance_relative, v_distance_relative) = initial.map_or((0.0, 0.0), |i| {
            (moved(&u, &i.u, i.u_norm), moved(&v, &i.v, i.v_norm))
        });
        let fractions = tr
            .flips_per_unit
            .as_deref()
            .map(|f| pattern_fractions(f, self.train.len()));
        // Epoch e's record carries the step size and momentum its steps used (epoch 0: the
        // first epoch's).
        let schedule_epoch = epoch.saturating_sub(1);
        Ok(EpochRecord {
            epoch,
            lr: self.config.optim.lr_at(schedule_epoch),
            momentum: self.config.optim.momentum_at(schedule_epoch),
            train_loss: tr.evaluation.loss,
            train_error: tr.evaluation.error,
            validation_loss: va.loss,
            validation_error: va.error,
            test_error: te,
            u_frobenius: norms.u_frobenius,
            v_frobenius: norms.v_frobenius,
            weight_decay_penalty: norms.weight_decay_penalty,
            group_norm: norms.group_norm,
            u_distance_relative,
            v_distance_relative,
            margin_p5: match tr.margins.is_empty() {
                true => 0.0,
                false => percentile(&mut tr.margins, 0.05),
            },
            pattern_changed_units: fractions.map(|f| f.0),
            pattern_flip_fraction: fractions.map(|f| f.1),
            train_seconds,
            eval_seconds: t.elapsed().as_secs_f64(),
            wall_seconds: self.start.elapsed().as_secs_f64(),
        })
    }
}

/// The network with the lowest validation error so far (the first such epoch).
struct Best {
    validation_error: f64,
    epoch: usize,
    net: TwoLayerNet,
}

/// One run's bookkeeping, whichever loop steps its weights (a single [`Trainer`] or a member
/// of an ensemble): the evaluation after every epoch, the history, the best-validation
/// network, the stop rule, and the result at the end.
pub(crate) struct Run<'a> {
    config: &'a TrainConfig,
    data: &'a Dataset,
    device: &'a Device,
    eval: Evaluator<'a>,
    init: TwoLayerNet,
    best: Best,
    history: Vec<EpochRecord>,
    rule: StopRule,
}

impl<'a> Run<'a> {
    /// Evaluates the initial network `initial` (epoch 0) and starts the history.
    pub fn start(
        config: &'a TrainConfig,
        data: &'a Dataset,
        device: &'a Device,
        initial: TwoLayerNet,
        progress: &mut dyn Progress,
    ) -> Result<Self, TrainError> {
        let split = |s| DeviceSplit::new(s, config.train.eval_batch, device);
        let mut eval = Evaluator {
            config,
            train: split(&data.train),
            validation: split(&data.validation),
            test: split(&data.test),
            initial: None,
            start: Instant::now(),
        };
        eval.initial = Some(Initial::of(&initial, &eval.train, data.train.len())?);
        let record = eval.record(&initial, 0, 0.0)?;
        progress.epoch(&record);
        Ok(Run {
            config,
            data,
            device,
            eval,
            best: Best {
                validation_error: record.validation_error,
                epoch: 0,
                net: initial.clone(),
            },
            init: initial,
            history: vec![record],
            rule: StopRule::new(&config.train),
        })
    }

    /// Records epoch `epoch`'s network `net` (its steps took `train_seconds`); why the run
    /// stops now, if it does.
    pub fn after_epoch(
        &mut self,
        net: TwoLayerNet,
        epoch: usize,
        train_seconds: f64,
        progress: &mut dyn Progress,
    ) -> Result<Option<StopReason>, TrainError> {
        let record = self.eval.record(&net, epoch, train_seconds)?;
        progress.epoch(&record);
        let verdict = self
            .rule
            .after_epoch(epoch, record.train_loss, record.train_error);
        if record.validation_error < self.best.validation_error {
            self.best = Best {
                validation_error: record.validation_error,
                epoch,
                net,
            };
        }
        self.history.push(record);
        Ok(verdict)
    }

    /// The run's result from its history, its last network `last` and the best one.
    pub fn finish(self, last: TwoLayerNet, stop: StopReason) -> Result<RunOutput, TrainError> {
        let measures = match self.config.train.measures && stop != StopReason::Interrupted {
            true => Some(self.measures(&last)?),
            false => None,
        };
        let (config, data, eval, best) = (self.config, self.data, &self.eval, &self.best);
        let history = self.history;
        let last_record = history.last().cloned().ok_or(TrainError::ReadBack {
            what: "history",
            message: "no epoch was recorded".into(),
        })?;
        let norms = last.norms()?;
        let epochs = last_record.epoch;
        let train_seconds: f64 = history.iter().map(|r| r.train_seconds).sum();
        let result = RunResult {
            train_error: last_record.train_error,
            train_loss: last_record.train_loss,
            validation_error: last_record.validation_error,
            test_error: eval.test.evaluate(&last)?.error,
            early_stop_epoch: best.epoch,
            early_stop_validation_error: best.validation_error,
            early_stop_test_error: eval.test.evaluate(&best.net)?.error,
            early_stop_train_error: history.get(best.epoch).map(|r| r.train_error),
            epochs_to_zero_train_error: history
                .iter()
                .find(|r| r.train_error == 0.0)
                .map(|r| r.epoch),
            epochs,
            stop_reason: stop,
            wall_seconds: eval.start.elapsed().as_secs_f64(),
            seconds_per_epoch: if epochs > 0 {
                train_seconds / epochs as f64
            } else {
                0.0
            },
            hidden: config.model.hidden,
            seed: config.train.seed,
            backend: crate::backend::backend_name().into(),
            git_revision: crate::provenance::BUILD_REVISION.into(),
            machine: Some(crate::provenance::Machine::this()),
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
            measures,
            true_labels: None,
            ensemble_members: None,
        };
        Ok(RunOutput {
            result,
            history,
            final_net: last,
        })
    }

    /// The complexity measures of the last and the early-stopped network.
    fn measures(&self, last: &TwoLayerNet) -> Result<RunMeasures, TrainError> {
        let of = |net: &TwoLayerNet| {
            measure(&MeasureInputs {
                net,
                init: &self.init,
                split: &self.data.train,
                train: &self.eval.train,
                device: self.device,
                seed: self.config.train.seed,
            })
        };
        Ok(RunMeasures {
            at_convergence: of(last)?,
            early_stop: of(&self.best.net)?,
        })
    }
}

impl<'a> Trainer<'a> {
    pub fn new(config: &'a TrainConfig, data: &'a Dataset, device: &'a Device) -> Self {
        Trainer {
            config,
            data,
            device,
            loss: LossPath::Fused,
        }
    }

    /// Differentiate the loss by `loss` (the composed path is the fused one's reference).
    pub fn with_loss(mut self, loss: LossPath) -> Self {
        self.loss = loss;
        self
    }

    /// Trains until the stop rule (or `progress`) says stop.
    pub fn run(&self, progress: &mut dyn Progress) -> Result<RunOutput, TrainError> {
        let (config, data) = (self.config, self.data);
        crate::memory::check(data.dim(), config.model.hidden, data.classes, config)?;
        let mut learner = self.learner()?;
        let initial = learner.model().net.valid();
        let mut run = Run::start(config, data, self.device, initial, progress)?;
        let stop = self.epochs(&mut learner, &mut run, progress)?;
        run.finish(learner.model().net.valid(), stop)
    }

    fn learner(&self) -> Result<Learner<Classifier>, TrainError> {
        let config = self.config;
        let net_config = config.model.network(self.data.dim(), self.data.classes);
        let model = Classifier {
            net: net_config.init(config.train.seed, &self.device.clone().autodiff())?,
            loss: self.loss,
        };
        let momentum = MomentumCell::new(config.optim.momentum);
        let optimizer = HeavyBall::new(momentum.clone(), config.optim.weight_decay);
        let schedule = PaperSchedule::new(config.optim.clone(), self.batches_per_epoch(), momentum);
        Ok(Learner::new(model, optimizer.into(), schedule))
    }

    fn batch_size(&self) -> usize {
        self.config.optim.batch_size.min(self.data.train.len())
    }

    fn batches_per_epoch(&self) -> usize {
        self.data.train.len().div_ceil(self.batch_size())
    }

    /// The epochs from 1 on; returns why they stopped.
    fn epochs(
        &self,
        learner: &mut Learner<Classifier>,
        run: &mut Run,
        progress: &mut dyn Progress,
    ) -> Result<StopReason, TrainError> {
        let device = self.device.clone().autodiff();
        let training = TrainingSet::new(&[&self.data.train], self.data.classes, &device);
        let mut order = BatchOrder::new(self.config.train.seed, self.data.train.len());
        for epoch in 1..=self.config.train.max_epochs {
            if progress.stop_requested() {
                return Ok(StopReason::Interrupted);
            }
            let t = Instant::now();
            let rows = training.epoch_rows(&[(0, order.shuffle())], self.batch_size(), &device);
            self.steps(learner, &training, &rows, epoch, progress);
            // On a GPU the steps are queued: wait for them so the epoch's time is its own (a
            // failed step shows up in the evaluation's read-back).
            let _ = device.sync();
            let net = learner.model().net.valid();
            if let Some(reason) =
                run.after_epoch(net, epoch, t.elapsed().as_secs_f64(), progress)?
            {
                return Ok(reason);
            }
        }
        Ok(StopReason::MaxEpochs)
    }

    /// One epoch's SGD steps over the epoch's shuffled `rows` (on the device).
    fn steps(
        &self,
        learner: &mut Learner<Classifier>,
        training: &TrainingSet,
        rows: &Tensor<1, Int>,
        epoch: usize,
        progress: &mut dyn Progress,
    ) {
        let batches = self.batches_per_epoch();
        for (b, (start, len)) in batch_ranges(self.data.train.len(), self.batch_size()).enumerate()
        {
            let batch = training.batch(rows.clone().narrow(0, start, len));
            learner.lr_step();
            let out = learner.train_step(batch);
            learner.optimizer_step(out.grads);
            progress.batch(epoch, b + 1, batches);
        }
    }
}

/// The mini-batches of an epoch of `examples` examples as `(start, length)` in the shuffled
/// order: full batches of `batch`, the last one shorter.
pub(crate) fn batch_ranges(examples: usize, batch: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..examples)
        .step_by(batch.max(1))
        .map(move |start| (start, batch.min(examples - start)))
}

/// A run's batch order: a fresh permutation of its training examples every epoch, from the
/// run's own seed (a member of an ensemble draws exactly what it would draw alone).
pub(crate) struct BatchOrder {
    rng: ChaCha8Rng,
    order: Vec<usize>,
}

impl BatchOrder {
    pub fn new(seed: u64, examples: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM_BATCHES);
        BatchOrder {
            rng,
            order: (0..examples).collect(),
        }
    }

    /// The next epoch's order.
    pub fn shuffle(&mut self) -> &[usize] {
        self.order.shuffle(&mut self.rng);
        &self.order
    }

    /// The order drawn by the last [`shuffle`](Self::shuffle).
    pub fn current(&self) -> &[usize] {
        &self.order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_epochs: usize) -> StopRule {
        StopRule::new(&RunConfig {
            max_epochs,
            converge_loss: 0.02,
            converge_epochs: 3,
            ..RunConfig::default()
        })
    }

    #[test]
    fn the_stop_rule_needs_consecutive_converged_epochs() {
        let mut r = rule(100);
        assert_eq!(r.after_epoch(1, 0.01, 0.0), None);
        assert_eq!(r.after_epoch(2, 0.01, 0.0), None);
        // A training error resets the streak.
        assert_eq!(r.after_epoch(3, 0.01, 0.001), None);
        assert_eq!(r.after_epoch(4, 0.01, 0.0), None);
        assert_eq!(r.after_epoch(5, 0.01, 0.0), None);
        assert_eq!(r.after_epoch(6, 0.01, 0.0), Some(StopReason::Converged));
    }

    #[test]
    fn the_stop_rule_stops_at_the_cap_and_on_divergence() {
        let mut r = rule(2);
        assert_eq!(r.after_epoch(1, 1.0, 0.5), None);
        assert_eq!(r.after_epoch(2, 1.0, 0.5), Some(StopReason::MaxEpochs));
        assert_eq!(
            rule(10).after_epoch(1, f64::NAN, 0.5),
            Some(StopReason::Diverged)
        );
    }
}

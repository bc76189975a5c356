//! One training run of the paper's protocol, in a loop this crate owns: the loss and its
//! gradient by Burn's autodiff (the fused loss, [`crate::classifier`]), the step by a Burn
//! optimizer (the paper's SGD, [`crate::optim::PaperSgd`], or Burn's Adam, each with the
//! coupled weight decay) at the step size of Burn's `StepLrScheduler`, evaluation
//! and stopping by the run's [`Ledger`], and the whole [`TrainingState`] saved as a checkpoint
//! every `train.checkpoint_seconds` and when a stop is requested. The full-batch methods
//! (conjugate gradient, L-BFGS) have their own loop, [`crate::full_batch`].

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use realbias_data::Dataset;
use realbias_model::{Activation, TwoLayerNet};

use crate::batches::{BatchOrder, batch_ranges};
use crate::classifier::{
    Batch, Classifier, LossPath, TrainingSet, network, tracked, weight_gradients,
};
use crate::config::TrainConfig;
use crate::ledger::{Ledger, Reader};
use crate::optim::{AdamSettings, CoupledDecay, Method, PaperSgd, PaperSgdState};
use crate::record::{StopReason, TrainedRun};
use crate::state::{CheckpointSlot, CheckpointTimer, OptimizerState, TrainingState, Weights};
use crate::{Progress, TrainError};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, Optimizer};

/// Trains one network on `data` as `config` says, on `device` (its autodiff twin for training).
pub fn train(
    config: &TrainConfig,
    data: &Dataset,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<TrainedRun, TrainError> {
    Trainer::new(config, data, device).run(progress)
}

/// One run: the config, its data, the device, the loss implementation and where its
/// checkpoint goes (none: the run is not resumable).
pub struct Trainer<'a> {
    config: &'a TrainConfig,
    data: &'a Dataset,
    device: &'a Device,
    loss: LossPath,
    checkpoint: Option<CheckpointSlot>,
}

/// A mini-batch run's weights and its optimizer with its state, on the device without
/// autodiff (a clone is a handle to the same tensors: cheap).
#[derive(Clone)]
struct MinibatchState {
    u: Tensor<2>,
    v: Tensor<2>,
    optimizer: MinibatchOptimizer,
    activation: Activation,
}

/// A mini-batch method as a Burn optimizer (with the run's coupled weight decay) and its
/// state per weight tensor (none before the first step).
// One per run, moved once per step: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum MinibatchOptimizer {
    /// The paper's SGD: velocity and step count.
    Sgd(
        CoupledDecay<PaperSgd>,
        Option<(PaperSgdState<2>, PaperSgdState<2>)>,
    ),
    /// Burn's Adam: its moments.
    Adam(CoupledDecay<Adam>, Option<(AdamState<2>, AdamState<2>)>),
}

/// A `d x h` and an `h x k` tensor on `device` from host weights.
pub(crate) fn upload_pair(
    w: &Weights,
    (d, h, k): (usize, usize, usize),
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    (
        Tensor::from_data(TensorData::new(w.u.clone(), [d, h]), device),
        Tensor::from_data(TensorData::new(w.v.clone(), [h, k]), device),
    )
}

/// One optimizer step of both weight tensors with gradients `(gu, gv)`.
fn step_pair<O: Optimizer>(
    optimizer: &O,
    lr: f64,
    (u, v): (Tensor<2>, Tensor<2>),
    (gu, gv): (Tensor<2>, Tensor<2>),
    state: Option<(O::State<2>, O::State<2>)>,
) -> ((Tensor<2>, Tensor<2>), Option<(O::State<2>, O::State<2>)>) {
    let (su, sv) = state.unzip();
    let (u, su) = optimizer.step(lr, u, gu, su);
    let (v, sv) = optimizer.step(lr, v, gv, sv);
    ((u, v), su.zip(sv))
}

impl MinibatchOptimizer {
    /// The optimizer of `config`, for `batches` mini-batches an epoch, with no state yet.
    fn new(config: &TrainConfig, batches: usize) -> Result<Self, TrainError> {
        let optim = &config.optim;
        let decayed = |inner| CoupledDecay {
            inner,
            weight_decay: optim.weight_decay,
        };
        match optim.method {
            Method::Sgd => Ok(Self::Sgd(optim.paper_sgd(batches), None)),
            Method::Adam => Ok(Self::Adam(decayed(adam_of(&optim.adam_settings())), None)),
            Method::Cg | Method::Lbfgs => Err(TrainError::MethodLoop {
                method: optim.method.name(),
                engine: "mini-batch",
            }),
        }
    }

    /// One step of `(u, v)` with gradients `grads` at step size `lr`.
    fn step(
        &mut self,
        lr: f64,
        weights: (Tensor<2>, Tensor<2>),
        grads: (Tensor<2>, Tensor<2>),
    ) -> (Tensor<2>, Tensor<2>) {
        match self {
            Self::Sgd(o, state) => {
                let (w, s) = step_pair(o, lr, weights, grads, state.take());
                *state = s;
                w
            }
            Self::Adam(o, state) => {
                let (w, s) = step_pair(o, lr, weights, grads, state.take());
                *state = s;
                w
            }
        }
    }
}

impl MinibatchState {
    fn of(net: &TwoLayerNet, optimizer: MinibatchOptimizer) -> Self {
        MinibatchState {
            u: net.u.val(),
            v: net.v.val(),
            optimizer,
            activation: net.activation,
        }
    }

    /// The weights and optimizer state of a saved `state` of `net`'s shape, `batches`
    /// mini-batches an epoch.
    fn restore(
        state: &TrainingState,
        net: &TwoLayerNet,
        mut optimizer: MinibatchOptimizer,
        (device, batches): (&Device, usize),
    ) -> Result<Self, TrainError> {
        let dims = net.dims();
        let (u, v) = upload_pair(&state.weights, dims, device);
        match &mut optimizer {
            MinibatchOptimizer::Adam(_, adam) => {
                if let Some(o) = &state.optimizer {
                    let time = o.scalar("time")? as usize;
                    let (m1u, m1v) = upload_pair(o.pair("moment_1")?, dims, device);
                    let (m2u, m2v) = upload_pair(o.pair("moment_2")?, dims, device);
                    let moments = |m1, m2| AdamState::new(AdaptiveMomentumState::new(time, m1, m2));
                    *adam = Some((moments(m1u, m2u), moments(m1v, m2v)));
                }
            }
            MinibatchOptimizer::Sgd(_, sgd) => {
                // The step count is fixed by the epochs done: a checkpoint is at an epoch end.
                let steps = state.epoch() * batches;
                let velocity = |velocity| PaperSgdState { velocity, steps };
                *sgd = state.velocity.as_ref().map(|w| {
                    let (bu, bv) = upload_pair(w, dims, device);
                    (velocity(bu), velocity(bv))
                });
            }
        }
        Ok(MinibatchState {
            u,
            v,
            optimizer,
            activation: net.activation,
        })
    }

    /// The network as it stands.
    fn net(&self) -> TwoLayerNet {
        network(self.u.clone(), self.v.clone(), self.activation)
    }

    /// The weights, SGD's momentum and another optimizer's state, on the host.
    fn host(&self) -> Result<(Weights, Option<Weights>, Option<OptimizerState>), TrainError> {
        let weights = Weights::from_device(&self.u, &self.v)?;
        match &self.optimizer {
            MinibatchOptimizer::Sgd(_, state) => {
                let velocity = state.as_ref();
                let velocity =
                    velocity.map(|(su, sv)| Weights::from_device(&su.velocity, &sv.velocity));
                Ok((weights, velocity.transpose()?, None))
            }
            MinibatchOptimizer::Adam(_, None) => Ok((weights, None, None)),
            MinibatchOptimizer::Adam(_, Some((su, sv))) => {
                let (mu, mv) = (&su.momentum, &sv.momentum);
                let state = OptimizerState {
                    tensors: vec![
                        (
                            "moment_1".into(),
                            Weights::from_device(&mu.moment_1, &mv.moment_1)?,
                        ),
                        (
                            "moment_2".into(),
                            Weights::from_device(&mu.moment_2, &mv.moment_2)?,
                        ),
                    ],
                    record: None,
                    scalars: [("time".to_string(), mu.time as f64)].into(),
                };
                Ok((weights, None, Some(state)))
            }
        }
    }

    /// One step on `batch` at step size `lr`: the gradient of the mean loss by autodiff
    /// (`loss`'s path), then the optimizer's update.
    fn step(&mut self, batch: Batch, loss: LossPath, lr: f64) -> Result<(), TrainError> {
        let model = Classifier {
            net: tracked(self.u.clone(), self.v.clone(), self.activation),
            loss,
        };
        let grads = model.loss(batch).backward();
        let grads = weight_gradients(&model.net, &grads)?;
        let weights = (self.u.clone(), self.v.clone());
        (self.u, self.v) = self.optimizer.step(lr, weights, grads);
        Ok(())
    }
}

/// Burn's Adam with the run's settings.
pub(crate) fn adam_of(settings: &AdamSettings) -> Adam {
    AdamConfig::new()
        .with_beta_1(settings.beta_1 as f32)
        .with_beta_2(settings.beta_2 as f32)
        .with_epsilon(settings.epsilon as f32)
        .build()
}

impl<'a> Trainer<'a> {
    pub fn new(config: &'a TrainConfig, data: &'a Dataset, device: &'a Device) -> Self {
        Trainer {
            config,
            data,
            device,
            loss: LossPath::Fused,
            checkpoint: None,
        }
    }

    /// Differentiate the loss by `loss` (the composed path is the fused one's reference).
    pub fn with_loss(mut self, loss: LossPath) -> Self {
        self.loss = loss;
        self
    }

    /// Keep the run's checkpoint in `slot`, and resume from the one there.
    pub fn with_checkpoint(mut self, slot: CheckpointSlot) -> Self {
        self.checkpoint = Some(slot);
        self
    }

    /// Trains until the stop rule (or `progress`) says stop; resumes from the checkpoint
    /// when there is one.
    pub fn run(&self, progress: &mut dyn Progress) -> Result<TrainedRun, TrainError> {
        let (config, data) = (self.config, self.data);
        crate::memory::check(data.dim(), config.model.hidden, data.classes, config)?;
        let net_config = config.model.network(data.dim(), data.classes);
        let initial = net_config.init(config.train.seed, self.device)?;
        let saved = match &self.checkpoint {
            Some(slot) => slot.load(config, initial.dims())?,
            None => None,
        };
        if config.optim.method.is_full_batch() {
            let run = crate::full_batch::FullBatchRun {
                config,
                data,
                device: self.device,
                loss: self.loss,
                checkpoint: self.checkpoint.as_ref(),
            };
            return run.run(initial, saved, progress);
        }
        let optimizer = MinibatchOptimizer::new(config, self.batches())?;
        let (mut ledger, mut state) = match saved {
            Some(saved) => {
                progress.resumed(&saved.bookkeeping.history);
                let at = (self.device, self.batches());
                let state = MinibatchState::restore(&saved, &initial, optimizer, at)?;
                (
                    Ledger::resume((config, data), self.device, initial, &saved, Reader::Own)?,
                    state,
                )
            }
            None => {
                let state = MinibatchState::of(&initial, optimizer);
                (
                    Ledger::start(config, data, self.device, initial, progress)?,
                    state,
                )
            }
        };
        let stop = self.epochs(&mut ledger, &mut state, progress)?;
        ledger.finish(state.net(), stop)
    }

    fn batch_size(&self) -> usize {
        self.config.optim.batch_size.min(self.data.train.len())
    }

    /// Mini-batches an epoch (the last one may be partial).
    fn batches(&self) -> usize {
        self.data.train.len().div_ceil(self.batch_size())
    }

    /// The epochs after the last one recorded; returns why they stopped.
    fn epochs(
        &self,
        ledger: &mut Ledger,
        state: &mut MinibatchState,
        progress: &mut dyn Progress,
    ) -> Result<StopReason, TrainError> {
        let device = self.device.clone().autodiff();
        let training = TrainingSet::new(&[&self.data.train], self.data.classes, &device);
        let done = ledger.epochs_done();
        let mut order = BatchOrder::after(self.config.train.seed, self.data.train.len(), done);
        let mut timer = CheckpointTimer::new(&self.config.train);
        let mut schedule = (self.config.optim)
            .lr_scheduler(self.batches(), done)
            .ok_or(TrainError::MethodLoop {
                method: self.config.optim.method.name(),
                engine: "mini-batch",
            })?;
        for epoch in done + 1..=self.config.train.max_epochs {
            if progress.stop_requested() {
                self.save(ledger, state)?;
                return Ok(StopReason::Interrupted);
            }
            let t = Instant::now();
            let rows = training.epoch_rows(&[(0, order.shuffle())], self.batch_size(), &device);
            let at_start = state.clone();
            if !self.steps(state, (&training, &mut schedule), &rows, epoch, progress)? {
                // Stopped mid-epoch (a wide epoch takes seconds): the state at the epoch's
                // start is saved, and the resumed run redoes the epoch.
                *state = at_start;
                self.save(ledger, state)?;
                return Ok(StopReason::Interrupted);
            }
            // On a GPU the steps are queued: wait for them so the epoch's time is its own (a
            // failed step shows up in the evaluation's read-back).
            let _ = device.sync();
            let seconds = t.elapsed().as_secs_f64();
            if let Some(reason) = ledger.after_epoch(state.net(), epoch, seconds, progress)? {
                return Ok(reason);
            }
            if timer.due() {
                self.save(ledger, state)?;
                timer.restart();
            }
        }
        Ok(StopReason::MaxEpochs)
    }

    /// Writes the run's checkpoint, if it keeps one.
    fn save(&self, ledger: &Ledger, state: &MinibatchState) -> Result<(), TrainError> {
        let Some(slot) = &self.checkpoint else {
            return Ok(());
        };
        let (weights, velocity, optimizer) = state.host()?;
        let mut state = ledger.state(weights, velocity)?;
        state.optimizer = optimizer;
        slot.save(self.config, &state)
    }

    /// One epoch's SGD steps over the epoch's shuffled `rows` (on the device); false when a
    /// stop was requested before the epoch's last step.
    fn steps(
        &self,
        state: &mut MinibatchState,
        (training, schedule): (&TrainingSet, &mut ModuleLrScheduler),
        rows: &Tensor<1, Int>,
        epoch: usize,
        progress: &mut dyn Progress,
    ) -> Result<bool, TrainError> {
        let examples = self.data.train.len();
        let batches = self.batches();
        for (b, (start, len)) in batch_ranges(examples, self.batch_size()).enumerate() {
            if progress.stop_requested() {
                return Ok(false);
            }
            let batch = training.batch(rows.clone().narrow(0, start, len));
            state.step(batch, self.loss, schedule.step().base())?;
            progress.batch(epoch, b + 1, batches);
        }
        Ok(true)
    }
}

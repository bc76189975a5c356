//! One training run of the paper's protocol, in a loop this crate owns: the loss and its
//! gradient by Burn's autodiff (the fused loss, [`crate::classifier`]), the paper's SGD step
//! ([`crate::optim::heavy_ball`]) or Burn's Adam on weights and buffers kept here, evaluation
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
use crate::optim::{AdamSettings, Method, heavy_ball, with_weight_decay};
use crate::record::{StopReason, TrainedRun};
use crate::state::{CheckpointSlot, CheckpointTimer, OptimizerState, TrainingState, Weights};
use crate::{Progress, TrainError};
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

/// A mini-batch run's weights and its optimizer's buffers, on the device without autodiff (a
/// clone is a handle to the same tensors: cheap).
#[derive(Clone)]
struct MinibatchState {
    u: Tensor<2>,
    v: Tensor<2>,
    buffers: Buffers,
    activation: Activation,
}

/// The optimizer's buffers per weight tensor (none before the first step).
// One per run, moved once per step: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Buffers {
    /// SGD's heavy-ball momentum.
    Sgd(Option<(Tensor<2>, Tensor<2>)>),
    /// Burn's Adam moments.
    Adam(Option<(AdamState<2>, AdamState<2>)>),
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

impl MinibatchState {
    fn of(net: &TwoLayerNet, method: Method) -> Self {
        MinibatchState {
            u: net.u.val(),
            v: net.v.val(),
            buffers: match method {
                Method::Adam => Buffers::Adam(None),
                _ => Buffers::Sgd(None),
            },
            activation: net.activation,
        }
    }

    /// The weights and buffers of a saved `state` of `net`'s shape.
    fn restore(
        state: &TrainingState,
        net: &TwoLayerNet,
        method: Method,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let dims = net.dims();
        let (u, v) = upload_pair(&state.weights, dims, device);
        let buffers = match (method, &state.optimizer) {
            (Method::Adam, Some(o)) => {
                let time = o.scalar("time")? as usize;
                let (m1u, m1v) = upload_pair(o.pair("moment_1")?, dims, device);
                let (m2u, m2v) = upload_pair(o.pair("moment_2")?, dims, device);
                let adam = |m1, m2| AdamState::new(AdaptiveMomentumState::new(time, m1, m2));
                Buffers::Adam(Some((adam(m1u, m2u), adam(m1v, m2v))))
            }
            (Method::Adam, None) => Buffers::Adam(None),
            _ => Buffers::Sgd(
                state
                    .velocity
                    .as_ref()
                    .map(|w| upload_pair(w, dims, device)),
            ),
        };
        Ok(MinibatchState {
            u,
            v,
            buffers,
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
        match &self.buffers {
            Buffers::Sgd(velocity) => {
                let velocity = velocity.as_ref();
                let velocity = velocity.map(|(bu, bv)| Weights::from_device(bu, bv));
                Ok((weights, velocity.transpose()?, None))
            }
            Buffers::Adam(None) => Ok((weights, None, None)),
            Buffers::Adam(Some((su, sv))) => {
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

    /// One SGD step on `batch`: the gradient of the mean loss by autodiff (`loss`'s path),
    /// then the paper's update.
    fn step(
        &mut self,
        batch: Batch,
        loss: LossPath,
        settings: StepSettings,
    ) -> Result<(), TrainError> {
        let model = Classifier {
            net: tracked(self.u.clone(), self.v.clone(), self.activation),
            loss,
        };
        let grads = model.loss(batch).backward();
        let (gu, gv) = weight_gradients(&model.net, &grads)?;
        let StepSettings {
            lr,
            momentum,
            weight_decay,
            adam,
        } = settings;
        let gu = with_weight_decay(gu, &self.u, weight_decay);
        let gv = with_weight_decay(gv, &self.v, weight_decay);
        let (u, v) = (self.u.clone(), self.v.clone());
        let ((u, v), buffers) = match &mut self.buffers {
            Buffers::Sgd(velocity) => {
                let (bu, bv) = velocity.take().unzip();
                let (u, bu) = heavy_ball(u, gu, bu, lr, momentum);
                let (v, bv) = heavy_ball(v, gv, bv, lr, momentum);
                ((u, v), Buffers::Sgd(Some((bu, bv))))
            }
            Buffers::Adam(state) => {
                let (su, sv) = state.take().unzip();
                let (u, su) = adam.step(lr, u, gu, su);
                let (v, sv) = adam.step(lr, v, gv, sv);
                ((u, v), Buffers::Adam(su.zip(sv)))
            }
        };
        (self.u, self.v, self.buffers) = (u, v, buffers);
        Ok(())
    }
}

/// An epoch's step size and momentum, the run's weight decay and (`method = "adam"`) Adam.
#[derive(Clone)]
struct StepSettings {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    adam: Adam,
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
        let method = config.optim.method;
        let (mut ledger, mut state) = match saved {
            Some(saved) => {
                progress.resumed(&saved.bookkeeping.history);
                let state = MinibatchState::restore(&saved, &initial, method, self.device)?;
                (
                    Ledger::resume((config, data), self.device, initial, &saved, Reader::Own)?,
                    state,
                )
            }
            None => {
                let state = MinibatchState::of(&initial, method);
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
        for epoch in done + 1..=self.config.train.max_epochs {
            if progress.stop_requested() {
                self.save(ledger, state)?;
                return Ok(StopReason::Interrupted);
            }
            let t = Instant::now();
            let rows = training.epoch_rows(&[(0, order.shuffle())], self.batch_size(), &device);
            let at_start = state.clone();
            if !self.steps(state, &training, &rows, epoch, progress)? {
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
        training: &TrainingSet,
        rows: &Tensor<1, Int>,
        epoch: usize,
        progress: &mut dyn Progress,
    ) -> Result<bool, TrainError> {
        let optim = &self.config.optim;
        let settings = StepSettings {
            lr: optim.lr_at(epoch - 1),
            momentum: optim.momentum_at(epoch - 1),
            weight_decay: optim.weight_decay,
            adam: adam_of(&optim.adam_settings()),
        };
        let examples = self.data.train.len();
        let batches = examples.div_ceil(self.batch_size());
        for (b, (start, len)) in batch_ranges(examples, self.batch_size()).enumerate() {
            if progress.stop_requested() {
                return Ok(false);
            }
            let batch = training.batch(rows.clone().narrow(0, start, len));
            state.step(batch, self.loss, settings.clone())?;
            progress.batch(epoch, b + 1, batches);
        }
        Ok(true)
    }
}

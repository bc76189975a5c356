//! One training run of the paper's protocol, in a loop this crate owns: the loss and its
//! gradient by Burn's autodiff (the fused loss, [`crate::classifier`]), the paper's SGD step
//! ([`crate::optim::heavy_ball`]) on weights and momentum buffers kept here, evaluation and
//! stopping by the run's [`Ledger`], and the whole [`TrainingState`] saved as a checkpoint
//! every `train.checkpoint_seconds` and when a stop is requested.

use std::time::Instant;

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use realbias_data::Dataset;
use realbias_model::{Activation, TwoLayerNet};

use crate::batches::{BatchOrder, batch_ranges};
use crate::classifier::{Batch, Classifier, LossPath, TrainingSet};
use crate::config::TrainConfig;
use crate::ledger::Ledger;
use crate::optim::{heavy_ball, with_weight_decay};
use crate::record::{StopReason, TrainedRun};
use crate::state::{CheckpointSlot, CheckpointTimer, TrainingState, Weights};
use crate::{Progress, TrainError};

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

/// A single run's weights and momentum buffers, on the device without autodiff (a clone is
/// a handle to the same tensors: cheap).
#[derive(Clone)]
struct SgdState {
    u: Tensor<2>,
    v: Tensor<2>,
    velocity: Option<(Tensor<2>, Tensor<2>)>,
    activation: Activation,
}

impl SgdState {
    fn of(net: &TwoLayerNet) -> Self {
        SgdState {
            u: net.u.val(),
            v: net.v.val(),
            velocity: None,
            activation: net.activation,
        }
    }

    /// The weights and buffers of a saved `state` of a `d x h x k` network.
    fn restore(state: &TrainingState, net: &TwoLayerNet, device: &Device) -> Self {
        let (d, h, k) = net.dims();
        let upload = |w: &Weights| {
            (
                Tensor::from_data(TensorData::new(w.u.clone(), [d, h]), device),
                Tensor::from_data(TensorData::new(w.v.clone(), [h, k]), device),
            )
        };
        let (u, v) = upload(&state.weights);
        SgdState {
            u,
            v,
            velocity: state.velocity.as_ref().map(upload),
            activation: net.activation,
        }
    }

    /// The network as it stands.
    fn net(&self) -> TwoLayerNet {
        TwoLayerNet {
            u: Param::from_tensor(self.u.clone()),
            v: Param::from_tensor(self.v.clone()),
            activation: self.activation,
        }
    }

    /// The weights and buffers on the host.
    fn host(&self) -> Result<(Weights, Option<Weights>), TrainError> {
        let velocity = self.velocity.as_ref();
        let velocity = velocity.map(|(bu, bv)| Weights::from_device(bu, bv));
        Ok((
            Weights::from_device(&self.u, &self.v)?,
            velocity.transpose()?,
        ))
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
            net: TwoLayerNet {
                u: Param::from_tensor(self.u.clone().autodiff()),
                v: Param::from_tensor(self.v.clone().autodiff()),
                activation: self.activation,
            },
            loss,
        };
        let grads = model.loss(batch).backward();
        let gradient = |w: &Param<Tensor<2>>| {
            w.val().grad(&grads).ok_or(TrainError::ReadBack {
                what: "gradient",
                message: "the loss gave no gradient for the weights".into(),
            })
        };
        let (gu, gv) = (gradient(&model.net.u)?, gradient(&model.net.v)?);
        let StepSettings {
            lr,
            momentum,
            weight_decay,
        } = settings;
        let (bu, bv) = self.velocity.take().unzip();
        let gu = with_weight_decay(gu, &self.u, weight_decay);
        let gv = with_weight_decay(gv, &self.v, weight_decay);
        let (u, bu) = heavy_ball(self.u.clone(), gu, bu, lr, momentum);
        let (v, bv) = heavy_ball(self.v.clone(), gv, bv, lr, momentum);
        (self.u, self.v, self.velocity) = (u, v, Some((bu, bv)));
        Ok(())
    }
}

/// An epoch's step size and momentum, and the run's weight decay.
#[derive(Clone, Copy)]
struct StepSettings {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
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
        let (mut ledger, mut sgd) = match saved {
            Some(state) => {
                progress.resumed(&state.bookkeeping.history);
                let sgd = SgdState::restore(&state, &initial, self.device);
                (
                    Ledger::resume(config, data, self.device, initial, &state)?,
                    sgd,
                )
            }
            None => {
                let sgd = SgdState::of(&initial);
                (
                    Ledger::start(config, data, self.device, initial, progress)?,
                    sgd,
                )
            }
        };
        let stop = self.epochs(&mut ledger, &mut sgd, progress)?;
        ledger.finish(sgd.net(), stop)
    }

    fn batch_size(&self) -> usize {
        self.config.optim.batch_size.min(self.data.train.len())
    }

    /// The epochs after the last one recorded; returns why they stopped.
    fn epochs(
        &self,
        ledger: &mut Ledger,
        sgd: &mut SgdState,
        progress: &mut dyn Progress,
    ) -> Result<StopReason, TrainError> {
        let device = self.device.clone().autodiff();
        let training = TrainingSet::new(&[&self.data.train], self.data.classes, &device);
        let done = ledger.epochs_done();
        let mut order = BatchOrder::after(self.config.train.seed, self.data.train.len(), done);
        let mut timer = CheckpointTimer::new(&self.config.train);
        for epoch in done + 1..=self.config.train.max_epochs {
            if progress.stop_requested() {
                self.save(ledger, sgd)?;
                return Ok(StopReason::Interrupted);
            }
            let t = Instant::now();
            let rows = training.epoch_rows(&[(0, order.shuffle())], self.batch_size(), &device);
            let at_start = sgd.clone();
            if !self.steps(sgd, &training, &rows, epoch, progress)? {
                // Stopped mid-epoch (a wide epoch takes seconds): the state at the epoch's
                // start is saved, and the resumed run redoes the epoch.
                *sgd = at_start;
                self.save(ledger, sgd)?;
                return Ok(StopReason::Interrupted);
            }
            // On a GPU the steps are queued: wait for them so the epoch's time is its own (a
            // failed step shows up in the evaluation's read-back).
            let _ = device.sync();
            let seconds = t.elapsed().as_secs_f64();
            if let Some(reason) = ledger.after_epoch(sgd.net(), epoch, seconds, progress)? {
                return Ok(reason);
            }
            if timer.due() {
                self.save(ledger, sgd)?;
                timer.restart();
            }
        }
        Ok(StopReason::MaxEpochs)
    }

    /// Writes the run's checkpoint, if it keeps one.
    fn save(&self, ledger: &Ledger, sgd: &SgdState) -> Result<(), TrainError> {
        let Some(slot) = &self.checkpoint else {
            return Ok(());
        };
        let (weights, velocity) = sgd.host()?;
        slot.save(self.config, &ledger.state(weights, velocity)?)
    }

    /// One epoch's SGD steps over the epoch's shuffled `rows` (on the device); false when a
    /// stop was requested before the epoch's last step.
    fn steps(
        &self,
        sgd: &mut SgdState,
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
        };
        let examples = self.data.train.len();
        let batches = examples.div_ceil(self.batch_size());
        for (b, (start, len)) in batch_ranges(examples, self.batch_size()).enumerate() {
            if progress.stop_requested() {
                return Ok(false);
            }
            let batch = training.batch(rows.clone().narrow(0, start, len));
            sgd.step(batch, self.loss, settings)?;
            progress.batch(epoch, b + 1, batches);
        }
        Ok(true)
    }
}

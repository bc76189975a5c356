//! The full-batch methods' loop (`optim.method = "cg"` or `"lbfgs"`): the objective is the
//! whole training split's mean loss plus `λ/2 Σ w²`, its gradient by Burn's autodiff; one
//! iteration is one "epoch" of the history, evaluated and stopped by the run's [`Ledger`]
//! like an SGD epoch, and the state is checkpointed like SGD's.

use std::cell::Cell;
use std::time::Instant;

use burn::module::Param;
use burn::optim::{GradientsParams, LBFGS, LBFGSConfig, LineSearchFn};
use burn::tensor::{Bytes, Device, Tensor};
use realbias_data::Dataset;
use realbias_model::TwoLayerNet;

use crate::cg::{CgState, Objective};
use crate::classifier::{Batch, Classifier, LossPath, TrainingSet};
use crate::config::TrainConfig;
use crate::ledger::Ledger;
use crate::optim::{LbfgsSettings, Method};
use crate::record::{StopReason, TrainedRun};
use crate::state::{CheckpointSlot, CheckpointTimer, OptimizerState, TrainingState, Weights};
use crate::trainer::upload_pair;
use crate::{Progress, TrainError};

/// One full-batch run: what [`crate::Trainer`] hands over.
pub(crate) struct FullBatchRun<'a> {
    pub config: &'a TrainConfig,
    pub data: &'a Dataset,
    pub device: &'a Device,
    pub loss: LossPath,
    pub checkpoint: Option<&'a CheckpointSlot>,
}

/// The training objective on the autodiff device: the whole training split at once.
pub(crate) struct NetworkObjective {
    x: Tensor<2>,
    targets: Tensor<2>,
    dims: (usize, usize, usize),
    activation: realbias_model::Activation,
    weight_decay: f64,
    loss: LossPath,
    /// Function and gradient evaluations so far.
    pub evaluations: Cell<u64>,
}

impl NetworkObjective {
    fn new(run: &FullBatchRun, net: &TwoLayerNet) -> Self {
        let device = run.device.clone().autodiff();
        let set = TrainingSet::new(&[&run.data.train], run.data.classes, &device);
        let n = run.data.train.len() as i64;
        let all = Tensor::arange(0..n, &device);
        let Batch { x, targets } = set.batch(all);
        NetworkObjective {
            x,
            targets,
            dims: net.dims(),
            activation: net.activation,
            weight_decay: run.config.optim.weight_decay,
            loss: run.loss,
            evaluations: Cell::new(0),
        }
    }

    /// The objective of `net` (autodiff weights) as a tensor to differentiate.
    fn loss_of(&self, net: TwoLayerNet) -> Tensor<1> {
        let penalty = (self.weight_decay > 0.0).then(|| {
            let squares = net.u.val().square().sum().add(net.v.val().square().sum());
            squares.mul_scalar(self.weight_decay / 2.0)
        });
        let batch = Batch {
            x: self.x.clone(),
            targets: self.targets.clone(),
        };
        self.evaluations.set(self.evaluations.get() + 1);
        let loss = Classifier {
            net,
            loss: self.loss,
        }
        .loss(batch);
        match penalty {
            Some(p) => loss.add(p),
            None => loss,
        }
    }

    /// A network with weights `(u, v)` (on the device without autodiff) to differentiate.
    fn tracked(&self, u: Tensor<2>, v: Tensor<2>) -> TwoLayerNet {
        TwoLayerNet {
            u: Param::from_tensor(u.autodiff()),
            v: Param::from_tensor(v.autodiff()),
            activation: self.activation,
        }
    }

    /// `(u, v)` of a flat parameter vector.
    fn unflatten(&self, x: &Tensor<1>) -> (Tensor<2>, Tensor<2>) {
        let (d, h, k) = self.dims;
        (
            x.clone().slice(0..d * h).reshape([d, h]),
            x.clone().slice(d * h..d * h + h * k).reshape([h, k]),
        )
    }
}

/// The flat parameter vector of `(u, v)`.
fn flatten(u: Tensor<2>, v: Tensor<2>) -> Tensor<1> {
    let (nu, nv): (usize, usize) = (u.dims().iter().product(), v.dims().iter().product());
    Tensor::cat(vec![u.reshape([nu]), v.reshape([nv])], 0)
}

impl Objective for NetworkObjective {
    type Error = TrainError;

    fn evaluate(&mut self, x: &Tensor<1>) -> Result<(f64, Tensor<1>), TrainError> {
        let (u, v) = self.unflatten(x);
        let net = self.tracked(u, v);
        let loss = self.loss_of(net.clone());
        let grads = loss.backward();
        let gradient = |w: &Param<Tensor<2>>| {
            w.val().grad(&grads).ok_or(TrainError::ReadBack {
                what: "gradient",
                message: "the loss gave no gradient for the weights".into(),
            })
        };
        let g = flatten(gradient(&net.u)?, gradient(&net.v)?);
        Ok((loss.inner().into_scalar::<f64>(), g))
    }
}

/// A full-batch method's state between iterations.
enum FullBatch {
    Cg(CgState),
    Lbfgs(LbfgsState),
}

/// Burn's L-BFGS, the network it steps (autodiff weights) and the loss after its last step.
struct LbfgsState {
    optimizer: LBFGS,
    net: TwoLayerNet,
    last_loss: f64,
}

/// What one iteration did, for the history and the stop rule.
struct Step {
    /// The accepted step length (the history's `lr` column) and, for CG, β (`momentum`).
    length: f64,
    beta: f64,
    stalled: bool,
}

fn lbfgs_of(s: &LbfgsSettings) -> LBFGS {
    LBFGSConfig::new()
        .with_max_iter(1)
        .with_history_size(s.history_size)
        .with_max_eval(Some(s.max_evaluations))
        .with_line_search_fn(LineSearchFn::StrongWolfe)
        .init()
}

impl FullBatch {
    fn start(
        config: &TrainConfig,
        objective: &mut NetworkObjective,
        net: &TwoLayerNet,
    ) -> Result<Self, TrainError> {
        let (u, v) = (net.u.val(), net.v.val());
        Ok(match config.optim.method {
            Method::Lbfgs => FullBatch::Lbfgs(LbfgsState {
                optimizer: lbfgs_of(&config.optim.lbfgs_settings()),
                net: objective.tracked(u, v),
                last_loss: f64::INFINITY,
            }),
            _ => {
                let settings = config.optim.cg_settings();
                FullBatch::Cg(CgState::start(objective, flatten(u, v), &settings)?)
            }
        })
    }

    /// The state a checkpoint saved, for a network of `objective`'s shape.
    fn restore(
        config: &TrainConfig,
        objective: &NetworkObjective,
        saved: &TrainingState,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let o = saved.optimizer.as_ref().ok_or(TrainError::ReadBack {
            what: "checkpoint",
            message: "a full-batch run's checkpoint without its optimizer state".into(),
        })?;
        let dims = objective.dims;
        let (u, v) = upload_pair(&saved.weights, dims, device);
        objective.evaluations.set(o.scalar("evaluations")? as u64);
        let flat = |w: &Weights| {
            let (a, b) = upload_pair(w, dims, device);
            flatten(a, b)
        };
        Ok(match config.optim.method {
            Method::Lbfgs => {
                let record = o.record.clone().ok_or(TrainError::ReadBack {
                    what: "checkpoint",
                    message: "an L-BFGS checkpoint without the optimizer's record".into(),
                })?;
                let optimizer = lbfgs_of(&config.optim.lbfgs_settings())
                    .from_bytes(Bytes::from_bytes_vec(record))
                    .map_err(|e| TrainError::ReadBack {
                        what: "checkpoint",
                        message: format!("the L-BFGS record: {e}"),
                    })?;
                FullBatch::Lbfgs(LbfgsState {
                    optimizer,
                    net: objective.tracked(u, v),
                    last_loss: o.scalar("last_loss")?,
                })
            }
            _ => FullBatch::Cg(CgState {
                x: flatten(u, v),
                value: o.scalar("value")?,
                gradient: flat(o.pair("gradient")?),
                direction: flat(o.pair("direction")?),
                next_step: o.scalar("next_step")?,
                evaluations: o.scalar("evaluations")? as u64,
            }),
        })
    }

    /// One iteration.
    fn iterate(
        &mut self,
        objective: &mut NetworkObjective,
        config: &TrainConfig,
    ) -> Result<Step, TrainError> {
        match self {
            FullBatch::Cg(state) => {
                let it = state.iterate(objective, &config.optim.cg_settings())?;
                Ok(Step {
                    length: it.step,
                    beta: it.beta,
                    stalled: it.stalled,
                })
            }
            FullBatch::Lbfgs(state) => state.iterate(objective, config.optim.lbfgs_settings().lr),
        }
    }

    /// The network as it stands (without autodiff).
    fn net(&self, objective: &NetworkObjective) -> TwoLayerNet {
        let (u, v) = match self {
            FullBatch::Cg(state) => objective.unflatten(&state.x),
            FullBatch::Lbfgs(state) => (state.net.u.val().inner(), state.net.v.val().inner()),
        };
        TwoLayerNet {
            u: Param::from_tensor(u),
            v: Param::from_tensor(v),
            activation: objective.activation,
        }
    }

    /// The optimizer's state on the host.
    fn host(&self, objective: &NetworkObjective) -> Result<OptimizerState, TrainError> {
        let evaluations = objective.evaluations.get() as f64;
        let pair = |x: &Tensor<1>| {
            let (u, v) = objective.unflatten(x);
            Weights::from_device(&u, &v)
        };
        Ok(match self {
            FullBatch::Cg(s) => OptimizerState {
                tensors: vec![
                    ("gradient".into(), pair(&s.gradient)?),
                    ("direction".into(), pair(&s.direction)?),
                ],
                record: None,
                scalars: [
                    ("value".to_string(), s.value),
                    ("next_step".into(), s.next_step),
                    ("evaluations".into(), evaluations),
                ]
                .into(),
            },
            FullBatch::Lbfgs(s) => {
                let bytes = s.optimizer.into_bytes().map_err(|e| TrainError::Encode {
                    what: "the L-BFGS state".into(),
                    message: e.to_string(),
                })?;
                OptimizerState {
                    tensors: Vec::new(),
                    record: Some(bytes.to_vec()),
                    scalars: [
                        ("last_loss".to_string(), s.last_loss),
                        ("evaluations".into(), evaluations),
                    ]
                    .into(),
                }
            }
        })
    }
}

impl LbfgsState {
    /// One iteration of Burn's L-BFGS (its strong-Wolfe line search included).
    fn iterate(&mut self, objective: &mut NetworkObjective, lr: f64) -> Result<Step, TrainError> {
        let mut closure = |net: TwoLayerNet| {
            let loss = objective.loss_of(net.clone());
            let grads = loss.backward();
            let value = loss.inner().into_scalar::<f64>();
            (value, GradientsParams::from_grads(grads, &net))
        };
        let (net, loss) = self.optimizer.step(lr, self.net.clone(), &mut closure);
        // No decrease at all: Burn's L-BFGS leaves the weights where they are once the
        // gradient or the directional derivative is below its tolerance.
        let stalled = loss >= self.last_loss;
        self.net = net;
        self.last_loss = loss;
        Ok(Step {
            length: 0.0,
            beta: 0.0,
            stalled,
        })
    }
}

impl FullBatchRun<'_> {
    /// Trains from `initial` (or the `saved` state) until the stop rule says stop.
    pub fn run(
        &self,
        initial: TwoLayerNet,
        saved: Option<TrainingState>,
        progress: &mut dyn Progress,
    ) -> Result<TrainedRun, TrainError> {
        let (config, data, device) = (self.config, self.data, self.device);
        let mut objective = NetworkObjective::new(self, &initial);
        let (mut ledger, mut state) = match saved {
            Some(saved) => {
                progress.resumed(&saved.bookkeeping.history);
                let state = FullBatch::restore(config, &objective, &saved, device)?;
                (
                    Ledger::resume(config, data, device, initial, &saved)?,
                    state,
                )
            }
            None => {
                let state = FullBatch::start(config, &mut objective, &initial)?;
                (
                    Ledger::start(config, data, device, initial, progress)?,
                    state,
                )
            }
        };
        let stop = self.iterations(&mut ledger, &mut state, &mut objective, progress)?;
        let mut out = ledger.finish(state.net(&objective), stop)?;
        out.result.gradient_evaluations = Some(objective.evaluations.get());
        Ok(out)
    }

    /// The iterations after the last one recorded; returns why they stopped.
    fn iterations(
        &self,
        ledger: &mut Ledger,
        state: &mut FullBatch,
        objective: &mut NetworkObjective,
        progress: &mut dyn Progress,
    ) -> Result<StopReason, TrainError> {
        let mut timer = CheckpointTimer::new(&self.config.train);
        for epoch in ledger.epochs_done() + 1..=self.config.train.max_epochs {
            if progress.stop_requested() {
                self.save(ledger, state, objective)?;
                return Ok(StopReason::Interrupted);
            }
            let t = Instant::now();
            let step = state.iterate(objective, self.config)?;
            if step.stalled {
                return Ok(ledger.at_fixed_point());
            }
            let _ = self.device.sync();
            let seconds = t.elapsed().as_secs_f64();
            ledger.record_step(step.length, step.beta);
            let net = state.net(objective);
            if let Some(reason) = ledger.after_epoch(net, epoch, seconds, progress)? {
                return Ok(reason);
            }
            if timer.due() {
                self.save(ledger, state, objective)?;
                timer.restart();
            }
        }
        Ok(StopReason::MaxEpochs)
    }

    /// Writes the run's checkpoint, if it keeps one.
    fn save(
        &self,
        ledger: &Ledger,
        state: &FullBatch,
        objective: &NetworkObjective,
    ) -> Result<(), TrainError> {
        let Some(slot) = self.checkpoint else {
            return Ok(());
        };
        let net = state.net(objective);
        let mut saved = ledger.state(Weights::of(&net)?, None)?;
        saved.optimizer = Some(state.host(objective)?);
        slot.save(self.config, &saved)
    }
}

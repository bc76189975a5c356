//! The full-batch methods' loop (`optim.method = "cg"` or `"lbfgs"`): the objective is the
//! whole training split's mean loss plus `λ/2 Σ w²`, its gradient by Burn's autodiff; one
//! iteration is one "epoch" of the history, evaluated and stopped by the run's [`Ledger`]
//! like an SGD epoch, and the state is checkpointed like SGD's.

use std::cell::Cell;

use burn::optim::{GradientsParams, LBFGS, LBFGSConfig, LineSearchFn};
use burn::tensor::{Bytes, Device, Tensor};
use realbias_data::Dataset;
use realbias_model::TwoLayerNet;

use crate::config::TrainConfig;
use crate::engine::classifier::{
    Batch, Classifier, LossPath, TrainingSet, network, tracked, weight_gradients,
};
use crate::engine::ledger::{Ledger, Reader};
use crate::engine::{Stepped, Stepper, run_epochs};
use crate::optim::cg::{CgState, Objective};
use crate::optim::{FullBatchMethod, LbfgsSettings};
use crate::run_files::record::{FinishedRun, StopReason};
use crate::run_files::state::{CheckpointSlot, OptimizerState, RunCheckpoint};
use crate::weights::Weights;
use crate::{Progress, TrainError};

/// One full-batch run: what [`crate::Trainer`] hands over.
pub(crate) struct FullBatchRun<'a> {
    pub config: &'a TrainConfig,
    pub data: &'a Dataset,
    pub device: &'a Device,
    pub loss: LossPath,
    pub checkpoint: Option<&'a CheckpointSlot>,
}

use crate::memory::FULL_BATCH_CHUNK;

/// The training objective on the autodiff device: the whole training split, in chunks.
pub(crate) struct NetworkObjective {
    chunks: Vec<Batch>,
    examples: usize,
    dims: (usize, usize, usize),
    activation: realbias_model::Activation,
    weight_decay: f64,
    loss: LossPath,
    /// Function and gradient evaluations so far.
    pub evaluations: Cell<u64>,
}

impl NetworkObjective {
    fn new(run: &FullBatchRun, net: &TwoLayerNet) -> Self {
        Self::with_chunks(run, net, FULL_BATCH_CHUNK)
    }

    /// The objective in passes of at most `chunk` examples.
    fn with_chunks(run: &FullBatchRun, net: &TwoLayerNet, chunk: usize) -> Self {
        let device = run.device.clone().autodiff();
        let set = TrainingSet::new(&[&run.data.train], run.data.classes, &device);
        let n = run.data.train.len();
        let chunks = (0..n)
            .step_by(chunk.max(1))
            .map(|start| {
                let end = (start + chunk).min(n);
                set.batch(Tensor::arange(start as i64..end as i64, &device))
            })
            .collect();
        NetworkObjective {
            chunks,
            examples: n,
            dims: net.dims(),
            activation: net.activation,
            weight_decay: run.config.optim.weight_decay,
            loss: run.loss,
            evaluations: Cell::new(0),
        }
    }

    /// The objective of `net` (autodiff weights) on chunk `i` as a tensor to differentiate:
    /// its share of the mean loss, plus the penalty on the first chunk.
    fn chunk_loss(&self, net: TwoLayerNet, i: usize) -> Tensor<1> {
        let penalty = (self.weight_decay > 0.0 && i == 0).then(|| {
            let squares = net.u.val().square().sum().add(net.v.val().square().sum());
            squares.mul_scalar(self.weight_decay / 2.0)
        });
        let chunk = &self.chunks[i];
        let rows = chunk.x.dims()[0];
        let batch = Batch {
            x: chunk.x.clone(),
            targets: chunk.targets.clone(),
        };
        let mean = Classifier {
            net,
            loss: self.loss,
        }
        .loss(batch);
        // One chunk is the whole split: its mean is the objective as it stands.
        let loss = match self.chunks.len() {
            1 => mean,
            _ => mean.mul_scalar(rows as f64 / self.examples as f64),
        };
        match penalty {
            Some(p) => loss.add(p),
            None => loss,
        }
    }

    /// The objective and its gradient with respect to `net`'s weights (autodiff), summed over
    /// the chunks: one evaluation.
    fn value_and_gradient(
        &self,
        net: &TwoLayerNet,
    ) -> Result<(f64, Tensor<2>, Tensor<2>), TrainError> {
        self.evaluations.set(self.evaluations.get() + 1);
        let mut total: Option<(f64, Tensor<2>, Tensor<2>)> = None;
        for i in 0..self.chunks.len() {
            let loss = self.chunk_loss(net.clone(), i);
            let (gu, gv) = weight_gradients(net, &loss.backward())?;
            let value = loss.inner().into_scalar::<f64>();
            total = Some(match total {
                None => (value, gu, gv),
                Some((f, u, v)) => (f + value, u.add(gu), v.add(gv)),
            });
        }
        total.ok_or(TrainError::Internal {
            what: "gradient",
            message: "the training split is empty".into(),
        })
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
        let (value, gu, gv) = self.value_and_gradient(&tracked(u, v, self.activation))?;
        Ok((value, flatten(gu, gv)))
    }
}

/// A full-batch method's state between iterations.
enum FullBatchState {
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

/// The run's method, which this loop must step.
fn full_batch_method(config: &TrainConfig) -> Result<FullBatchMethod, TrainError> {
    let method = config.optim.method;
    method.full_batch().ok_or(TrainError::MethodLoop {
        method: method.name(),
        engine: "full-batch",
    })
}

impl FullBatchState {
    fn start(
        config: &TrainConfig,
        objective: &mut NetworkObjective,
        net: &TwoLayerNet,
    ) -> Result<Self, TrainError> {
        let (u, v) = (net.u.val(), net.v.val());
        Ok(match full_batch_method(config)? {
            FullBatchMethod::Lbfgs => FullBatchState::Lbfgs(LbfgsState {
                optimizer: lbfgs_of(&config.optim.lbfgs_settings()),
                net: tracked(u, v, objective.activation),
                last_loss: f64::INFINITY,
            }),
            FullBatchMethod::Cg => {
                let settings = config.optim.cg_settings();
                FullBatchState::Cg(CgState::start(objective, flatten(u, v), &settings)?)
            }
        })
    }

    /// The state a checkpoint saved, for a network of `objective`'s shape.
    fn restore(
        config: &TrainConfig,
        objective: &NetworkObjective,
        saved: &RunCheckpoint,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let o = saved
            .optimizer
            .as_ref()
            .ok_or(TrainError::CorruptCheckpoint {
                why: "a full-batch run's checkpoint without its optimizer state".into(),
            })?;
        let dims = objective.dims;
        let (u, v) = saved.weights.upload(dims, device);
        let evaluations = o.scalar("evaluations")? as u64;
        let flat = |w: &Weights| {
            let (a, b) = w.upload(dims, device);
            flatten(a, b)
        };
        let state = match full_batch_method(config)? {
            FullBatchMethod::Lbfgs => {
                let record = o.record.clone().ok_or(TrainError::CorruptCheckpoint {
                    why: "an L-BFGS checkpoint without the optimizer's record".into(),
                })?;
                let optimizer = lbfgs_of(&config.optim.lbfgs_settings())
                    .from_bytes(Bytes::from_bytes_vec(record))
                    .map_err(|e| TrainError::CorruptCheckpoint {
                        why: format!("the L-BFGS record: {e}"),
                    })?;
                FullBatchState::Lbfgs(LbfgsState {
                    optimizer,
                    net: tracked(u, v, objective.activation),
                    last_loss: o.scalar("last_loss")?,
                })
            }
            FullBatchMethod::Cg => FullBatchState::Cg(CgState {
                x: flatten(u, v),
                value: o.scalar("value")?,
                gradient: flat(o.pair("gradient")?),
                direction: flat(o.pair("direction")?),
                next_step: o.scalar("next_step")?,
                evaluations,
            }),
        };
        // Set only once the whole state is restored: a failure leaves the count at 0.
        objective.evaluations.set(evaluations);
        Ok(state)
    }

    /// One iteration.
    fn iterate(
        &mut self,
        objective: &mut NetworkObjective,
        config: &TrainConfig,
    ) -> Result<Step, TrainError> {
        match self {
            FullBatchState::Cg(state) => {
                let it = state.iterate(objective, &config.optim.cg_settings())?;
                Ok(Step {
                    length: it.step,
                    beta: it.beta,
                    stalled: it.stalled,
                })
            }
            FullBatchState::Lbfgs(state) => {
                state.iterate(objective, config.optim.lbfgs_settings().lr)
            }
        }
    }

    /// The network as it stands (without autodiff).
    fn net(&self, objective: &NetworkObjective) -> TwoLayerNet {
        let (u, v) = match self {
            FullBatchState::Cg(state) => objective.unflatten(&state.x),
            FullBatchState::Lbfgs(state) => (state.net.u.val().inner(), state.net.v.val().inner()),
        };
        network(u, v, objective.activation)
    }

    /// The optimizer's state on the host.
    fn host(&self, objective: &NetworkObjective) -> Result<OptimizerState, TrainError> {
        let evaluations = objective.evaluations.get() as f64;
        let pair = |x: &Tensor<1>| {
            let (u, v) = objective.unflatten(x);
            Weights::from_device(&u, &v)
        };
        Ok(match self {
            FullBatchState::Cg(s) => OptimizerState {
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
            FullBatchState::Lbfgs(s) => {
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
        // Burn's closure cannot fail: an error is kept and returned after the step, with a
        // non-finite value meanwhile, which its line search treats as too long a step.
        let failure: Cell<Option<TrainError>> = Cell::new(None);
        let mut closure = |net: TwoLayerNet| {
            let mut gradients = GradientsParams::new();
            match objective.value_and_gradient(&net) {
                Ok((value, gu, gv)) => {
                    gradients.register(net.u.id, gu);
                    gradients.register(net.v.id, gv);
                    (value, gradients)
                }
                Err(e) => {
                    failure.set(Some(e));
                    let (u, v) = (net.u.val().inner(), net.v.val().inner());
                    gradients.register(net.u.id, u.zeros_like());
                    gradients.register(net.v.id, v.zeros_like());
                    (f64::NAN, gradients)
                }
            }
        };
        let (net, loss) = self.optimizer.step(lr, self.net.clone(), &mut closure);
        if let Some(e) = failure.take() {
            return Err(e);
        }
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
        saved: Option<RunCheckpoint>,
        progress: &mut dyn Progress,
    ) -> Result<FinishedRun, TrainError> {
        let (config, data, device) = (self.config, self.data, self.device);
        let mut objective = NetworkObjective::new(self, &initial);
        let restored = match saved {
            Some(saved) => match FullBatchState::restore(config, &objective, &saved, device) {
                Ok(state) => Some((saved, state)),
                // An L-BFGS record that does not decode is found only here: --force discards
                // it as it does a checkpoint that fails its checks.
                Err(TrainError::CorruptCheckpoint { .. })
                    if self.checkpoint.is_some_and(|s| s.discard_mismatched) =>
                {
                    self.checkpoint.map(|s| s.remove()).transpose()?;
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (mut ledger, mut state) = match restored {
            Some((saved, state)) => {
                progress.resumed(&saved.ledger.history);
                (
                    Ledger::resume((config, data), device, initial, &saved, Reader::Own)?,
                    state,
                )
            }
            None => {
                let state = FullBatchState::start(config, &mut objective, &initial)?;
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

    /// The iterations after the last one recorded, through the epoch loop; returns why
    /// they stopped.
    fn iterations(
        &self,
        ledger: &mut Ledger,
        state: &mut FullBatchState,
        objective: &mut NetworkObjective,
        progress: &mut dyn Progress,
    ) -> Result<StopReason, TrainError> {
        let epochs = ledger.epochs_done() + 1..=self.config.train.max_epochs;
        let mut stepper = FullBatchStepper {
            run: self,
            ledger,
            state,
            objective,
            step: None,
        };
        let settings = (&self.config.train, self.device);
        run_epochs(&mut stepper, epochs, settings, progress)
    }
}

/// A full-batch run as the epoch loop's stepper: one line-searched iteration an epoch.
struct FullBatchStepper<'s, 'a, 'l> {
    run: &'s FullBatchRun<'a>,
    ledger: &'s mut Ledger<'l>,
    state: &'s mut FullBatchState,
    objective: &'s mut NetworkObjective,
    /// The last iteration's step, for its record.
    step: Option<Step>,
}

impl Stepper for FullBatchStepper<'_, '_, '_> {
    fn step_epoch(&mut self, _epoch: usize, _: &mut dyn Progress) -> Result<Stepped, TrainError> {
        let step = self.state.iterate(self.objective, self.run.config)?;
        let stalled = step.stalled;
        self.step = Some(step);
        Ok(match stalled {
            true => Stepped::Stalled,
            false => Stepped::Done,
        })
    }

    fn record_epoch(
        &mut self,
        epoch: usize,
        seconds: f64,
        progress: &mut dyn Progress,
    ) -> Result<Option<StopReason>, TrainError> {
        if let Some(step) = self.step.take() {
            self.ledger.record_step(step.length, step.beta);
        }
        let net = self.state.net(self.objective);
        self.ledger.after_epoch(net, epoch, seconds, progress)
    }

    fn save(&mut self) -> Result<(), TrainError> {
        let Some(slot) = self.run.checkpoint else {
            return Ok(());
        };
        let net = self.state.net(self.objective);
        let mut saved = self.ledger.state(Weights::of(&net)?, None)?;
        saved.optimizer = Some(self.state.host(self.objective)?);
        slot.save(self.run.config, &saved)
    }

    fn at_fixed_point(&self) -> StopReason {
        self.ledger.at_fixed_point()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use realbias_data::Split;

    fn split(n: usize, rng: &mut ChaCha8Rng) -> Split {
        Split {
            dim: 6,
            features: (0..n * 6).map(|_| rng.random_range(-1.0..1.0)).collect(),
            labels: (0..n).map(|_| rng.random_range(0..3u8)).collect(),
        }
    }

    #[test]
    fn the_objective_in_chunks_is_the_objective_in_one_pass() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let data = Dataset {
            name: "random".into(),
            classes: 3,
            train: split(250, &mut rng),
            validation: split(10, &mut rng),
            test: split(10, &mut rng),
        };
        let text = "[data]\ndataset = { kind = \"mnist\" }\n[model]\nhidden = 16\n[optim]\nmethod = \"cg\"\nweight_decay = 0.01\n";
        let config = TrainConfig::parse(text, std::path::Path::new("t.toml"), &[]).unwrap();
        let device = crate::backend::device().unwrap();
        let run = FullBatchRun {
            config: &config,
            data: &data,
            device: &device,
            loss: LossPath::Fused,
            checkpoint: None,
        };
        let net = config.model.network(6, 3).init(0, &device).unwrap();
        let x = flatten(net.u.val(), net.v.val());
        let mut whole = NetworkObjective::with_chunks(&run, &net, 1000);
        let mut parts = NetworkObjective::with_chunks(&run, &net, 64);
        assert_eq!((whole.chunks.len(), parts.chunks.len()), (1, 4));
        let (f1, g1) = whole.evaluate(&x).unwrap();
        let (f2, g2) = parts.evaluate(&x).unwrap();
        assert!((f1 - f2).abs() < 1e-6 * f1.abs(), "{f1} vs {f2}");
        let (g1, g2): (Vec<f32>, Vec<f32>) =
            (g1.try_into_vec_as().unwrap(), g2.try_into_vec_as().unwrap());
        let scale = g1.iter().fold(0f32, |m, g| m.max(g.abs()));
        for (a, b) in g1.iter().zip(&g2) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
        assert_eq!(
            parts.evaluations.get(),
            1,
            "one evaluation, whatever the chunks"
        );
    }
}

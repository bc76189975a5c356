//! Many runs of one width trained as one batched model, member by member the same runs.
//!
//! On a GPU a step of a small network is all launch and bookkeeping overhead, and on the CPU
//! a step at H = 16 is mostly overhead too (`experiments/performance/`). An ensemble stacks
//! the weights of R runs (`U: [R, d, H]`, `V: [R, H, k]`) and takes every run's SGD step at
//! once with batched matrix products: R runs for about the overhead of one.
//!
//! Each member stays its own run: its own data (subset, labels, noise, normalization) in its
//! own block of the training stack, its own batch order and initialization from its own seed,
//! its own weight decay, evaluation, best-validation network, stop rule, checkpoint and
//! result. A member that stops leaves the stack (the others go on), so its record is exactly
//! the one it would have had alone. What the members must share is everything that makes the
//! steps line up: the model, the optimizer's schedule and batch size, the stopping settings
//! and the splits' sizes ([`shared_settings`]). Members resumed from checkpoints of
//! different epochs train as separate stacks, one per epoch.
//!
//! The per-epoch evaluation is batched too (`crate::engine::stacked_eval`): one forward pass and one
//! read-back of every member's logits per chunk of a split, instead of a forward pass and two
//! or three read-backs per member; members that stop at the same epoch get their test errors
//! and end-of-run measures from batched forward passes as well. The logits are reduced on the
//! host exactly as a single run reduces them, so the records are the same.
//!
//! On the CPU an ensemble is split over the run's threads (`crate::engine::shards`): each thread
//! trains a stack of its share of the members, which changes no member's record.
//!
//! The gradient is the fused loss's (`crate::engine::fused`), written out without autodiff:
//! `δ = (softmax(z) − t)/B`, `∂V = hᵀδ`, `∂U = xᵀ(δVᵀ ⊙ [h > 0])`, per member.

use burn::module::Param;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use realbias_data::Dataset;
use realbias_model::{Activation, TwoLayerNet};
use serde::{Deserialize, Serialize};

use crate::config::{CheckedConfig, ModelConfig, TrainConfig, TrainSettings};
use crate::engine::batches::{BatchOrder, batch_ranges};
use crate::engine::classifier::TrainingSet;
use crate::engine::ledger::{Ledger, Reader};
use crate::engine::shards;
use crate::engine::stacked_eval::{Ending, StackedEvaluation, stacked};
use crate::engine::{Stepped, Stepper, run_epochs};
use crate::optim::{Method, OptimConfig, heavy_ball};
use crate::run_files::record::{FinishedRun, StopReason};
use crate::run_files::state::{CheckpointSlot, RunCheckpoint};
use crate::weights::Weights;
use crate::{Progress, Quiet, TrainError};

/// Whether a sweep trains runs of one width together: `auto` where the backend gains from it
/// ([`crate::backend::ensembles_help`]), `on` at every width (to measure where they pay on
/// another machine), `off` never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnsembleMode {
    #[default]
    Auto,
    On,
    Off,
}

impl EnsembleMode {
    pub fn is_auto(&self) -> bool {
        *self == EnsembleMode::Auto
    }

    /// Whether runs of width `hidden` train as ensembles in this mode.
    pub fn at_width(&self, hidden: usize) -> bool {
        match self {
            EnsembleMode::Auto => crate::backend::ensembles_help(hidden),
            EnsembleMode::On => true,
            EnsembleMode::Off => false,
        }
    }
}

/// One run of an ensemble: its config, its prepared data, and where its checkpoint goes
/// (none: not resumable).
#[derive(Clone, Copy)]
pub struct Member<'a> {
    pub config: &'a CheckedConfig,
    pub data: &'a Dataset,
    pub checkpoint: Option<&'a CheckpointSlot>,
}

impl<'a> Member<'a> {
    /// A member that keeps no checkpoint.
    pub fn new(config: &'a CheckedConfig, data: &'a Dataset) -> Self {
        Member {
            config,
            data,
            checkpoint: None,
        }
    }
}

/// What the members of one ensemble must share: the config without its seed, its weight
/// decay and its name (the data section only shapes the member's own dataset; the splits'
/// sizes are checked separately).
pub fn shared_settings(config: &TrainConfig) -> (ModelConfig, OptimConfig, TrainSettings) {
    let mut optim = config.optim.clone();
    optim.weight_decay = 0.0;
    let mut run = config.train.clone();
    run.seed = 0;
    (config.model.clone(), optim, run)
}

/// Why `members` cannot be trained as one ensemble, if they cannot.
pub fn incompatibility(members: &[Member]) -> Option<String> {
    let first = members.first()?;
    let other = members
        .iter()
        .position(|m| m.config.optim.method != Method::Sgd);
    if let Some(i) = other {
        return Some(format!(
            "member {i} has optim.method = \"{}\": ensembles train SGD only (train other methods run by run)",
            members[i].config.optim.method.name()
        ));
    }
    let shape = |d: &Dataset| {
        let sizes = (d.train.len(), d.validation.len(), d.test.len());
        (sizes, d.dim(), d.classes)
    };
    let settings = shared_settings(first.config);
    members.iter().enumerate().skip(1).find_map(|(i, m)| {
        if shared_settings(m.config) != settings {
            Some(format!(
                "member {i} differs from member 0 in a setting besides the seed and weight decay"
            ))
        } else if shape(m.data) != shape(first.data) {
            Some(format!(
                "member {i}'s data ((training, validation, test examples), inputs, classes) is {:?}, member 0's {:?}",
                shape(m.data),
                shape(first.data)
            ))
        } else {
            None
        }
    })
}

/// Trains `members` as one ensemble on `device`; returns each member's output, in order
/// (see [`train_ensemble_with`]).
pub fn train_ensemble(
    members: &[Member],
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Vec<FinishedRun>, TrainError> {
    let mut outputs: Vec<Option<FinishedRun>> = members.iter().map(|_| None).collect();
    train_ensemble_with(members, device, progress, &mut |i, out| {
        outputs[i] = Some(out)
    })?;
    Ok(outputs.into_iter().flatten().collect())
}

/// Trains `members` as one ensemble on `device`, handing each member's output to `finished`
/// (with its index) as soon as the member stops, so a caller can save it while the others
/// train on. Members with a checkpoint resume from it. `progress` sees the first
/// still-training member's epochs; an interruption checkpoints and stops every member still
/// training (`StopReason::Interrupted`). On the CPU the members are split over the run's
/// threads ([`crate::backend::ensemble_threads`], `crate::engine::shards`).
pub fn train_ensemble_with(
    members: &[Member],
    device: &Device,
    progress: &mut dyn Progress,
    finished: &mut dyn FnMut(usize, FinishedRun),
) -> Result<(), TrainError> {
    if let Some(why) = incompatibility(members) {
        return Err(TrainError::Ensemble(why));
    }
    let Some(first) = members.first() else {
        return Ok(());
    };
    crate::memory::check_ensemble(members.len(), first.data, first.config)?;
    let origins = Origins::load(members, device)?;
    for (done, group) in origins.stacks() {
        if let Some(state) = group.first().and_then(|&i| origins.saved[i].as_ref()) {
            progress.resumed(&state.ledger.history);
        }
        let shards = shards::split(&group, crate::backend::ensemble_threads());
        let train_shard = |shard: &[usize],
                           shown: &mut dyn Progress,
                           handed: &mut dyn FnMut(usize, FinishedRun)| {
            origins.train(shard, done, shown, handed)
        };
        match shards.as_slice() {
            [one] => origins.train(one, done, progress, finished)?,
            _ => shards::train(&shards, &train_shard, progress, finished)?,
        }
    }
    Ok(())
}

/// Where every member of an ensemble starts: its initial network (from its seed) and, when
/// it resumes, its saved state.
struct Origins<'a> {
    members: &'a [Member<'a>],
    device: &'a Device,
    initial: Vec<TwoLayerNet>,
    saved: Vec<Option<RunCheckpoint>>,
}

impl<'a> Origins<'a> {
    fn load(members: &'a [Member<'a>], device: &'a Device) -> Result<Self, TrainError> {
        let first = &members[0];
        let (d, k) = (first.data.dim(), first.data.classes);
        let mut initial = Vec::with_capacity(members.len());
        let mut saved = Vec::with_capacity(members.len());
        for m in members {
            let net = m
                .config
                .model
                .network(d, k)
                .init(m.config.train.seed, device)?;
            saved.push(match m.checkpoint {
                Some(slot) => slot.load(m.config, net.dims())?,
                None => None,
            });
            initial.push(net);
        }
        Ok(Origins {
            members,
            device,
            initial,
            saved,
        })
    }

    /// The members grouped by the epochs they have done, fewest first: members resumed at
    /// different epochs cannot step together, so each group is its own stack.
    fn stacks(&self) -> Vec<(usize, Vec<usize>)> {
        let starts: Vec<usize> = (self.saved.iter())
            .map(|s| s.as_ref().map_or(0, |s| s.epoch()))
            .collect();
        let mut epochs = starts.clone();
        epochs.sort_unstable();
        epochs.dedup();
        let members = |done: usize| (0..starts.len()).filter(|&i| starts[i] == done).collect();
        epochs
            .into_iter()
            .map(|done| (done, members(done)))
            .collect()
    }

    /// Trains the members `group`, which have all done `done` epochs, as one stack.
    fn train(
        &self,
        group: &[usize],
        done: usize,
        progress: &mut dyn Progress,
        finished: &mut dyn FnMut(usize, FinishedRun),
    ) -> Result<(), TrainError> {
        let (members, device) = (self.members, self.device);
        let stack = Ensemble::new(members, group, (&self.initial, &self.saved), device);
        // A fresh group's stack holds the initial networks: epoch 0's readings.
        let mut first_readings = match done {
            0 => stack.evaluation.read(&stack.u, &stack.v)?,
            _ => Vec::new(),
        }
        .into_iter();
        let mut ledgers: Vec<Option<Ledger>> = members.iter().map(|_| None).collect();
        for (n, &i) in group.iter().enumerate() {
            let shown: &mut dyn Progress = if n == 0 { &mut *progress } else { &mut Quiet };
            let m = &members[i];
            let run = (&**m.config, m.data);
            let net = self.initial[i].clone();
            ledgers[i] = Some(match (&self.saved[i], first_readings.next()) {
                (Some(state), _) => Ledger::resume(run, device, net, state, Reader::Ensemble)?,
                (None, Some(reading)) => Ledger::start_member(run, device, net, reading, shown)?,
                (None, None) => {
                    return Err(TrainError::Internal {
                        what: "ensemble evaluation",
                        message: format!("no reading of member {i}'s initial network"),
                    });
                }
            });
        }
        stack.train(done, &mut ledgers, progress, finished)
    }
}

/// A member that stops: its position in the stack, its index in the ensemble, its last
/// network and why it stops.
type Stopped = (usize, (usize, TwoLayerNet, StopReason));

/// One member in the stack: its index in the ensemble, its block of the training stack, and
/// its batch order.
struct Stacked {
    member: usize,
    block: usize,
    order: BatchOrder,
}

/// The members still training, stacked on the device, with their optimizer state.
struct Ensemble<'a> {
    members: &'a [Member<'a>],
    device: &'a Device,
    training: TrainingSet,
    /// The members still training, in stack order.
    stack: Vec<Stacked>,
    u: Tensor<3>,
    v: Tensor<3>,
    /// Each member's weight decay over its whole block of `U` and of `V` (none when every
    /// λ is 0, so plain ensembles skip the product). Full-size so the product is a plain
    /// elementwise one rather than a broadcast from `[R, 1, 1]`.
    weight_decay: Option<(Tensor<3>, Tensor<3>)>,
    /// Momentum buffers (none before the first step).
    velocity: Option<(Tensor<3>, Tensor<3>)>,
    /// Every member's splits, for the per-epoch records.
    evaluation: StackedEvaluation,
    relu: bool,
}

impl<'a> Ensemble<'a> {
    /// The stack of the members `group`, from their initial networks or saved states.
    fn new(
        members: &'a [Member<'a>],
        group: &[usize],
        (initial, saved): (&[TwoLayerNet], &[Option<RunCheckpoint>]),
        device: &'a Device,
    ) -> Self {
        let first = &members[group[0]];
        let (d, h, k) = initial[group[0]].dims();
        let splits: Vec<_> = group.iter().map(|&i| &members[i].data.train).collect();
        let decays: Vec<f32> = group
            .iter()
            .map(|&i| members[i].config.optim.weight_decay as f32)
            .collect();
        let r = group.len();
        let filled = |size: usize, shape: [usize; 3]| {
            let values = decays.iter().flat_map(|&l| std::iter::repeat_n(l, size));
            Tensor::from_data(TensorData::new(values.collect(), shape), device)
        };
        let weight_decay = decays
            .iter()
            .any(|&l| l != 0.0)
            .then(|| (filled(d * h, [r, d, h]), filled(h * k, [r, h, k])));
        // The members of a group have all done the same epochs: all fresh, or all resumed.
        let states: Option<Vec<&RunCheckpoint>> =
            group.iter().map(|&i| saved[i].as_ref()).collect();
        let stack_pair = |ws: Vec<&Weights>| {
            (
                stacked(ws.iter().map(|w| w.u.clone()).collect(), [d, h], device),
                stacked(ws.iter().map(|w| w.v.clone()).collect(), [h, k], device),
            )
        };
        let ((u, v), velocity) = match &states {
            Some(states) => {
                let buffers: Option<Vec<&Weights>> =
                    states.iter().map(|s| s.velocity.as_ref()).collect();
                (
                    stack_pair(states.iter().map(|s| &s.weights).collect()),
                    buffers.map(stack_pair),
                )
            }
            None => {
                let nets = group.iter().map(|&i| &initial[i]);
                let u = Tensor::stack(nets.clone().map(|n| n.u.val()).collect(), 0);
                (
                    (u, Tensor::stack(nets.map(|n| n.v.val()).collect(), 0)),
                    None,
                )
            }
        };
        let done = |i: usize| saved[i].as_ref().map_or(0, |s| s.epoch());
        let relu = first.config.model.activation == Activation::Relu;
        let data: Vec<&Dataset> = group.iter().map(|&i| members[i].data).collect();
        let u0 = Tensor::stack(group.iter().map(|&i| initial[i].u.val()).collect(), 0);
        let train = &first.config.train;
        let evaluation = StackedEvaluation::new(
            &data,
            (train.eval_batch, train.eval_test_every_epoch, relu),
            &u0,
            device,
        );
        Ensemble {
            members,
            device,
            training: TrainingSet::new(&splits, first.data.classes, device),
            stack: group
                .iter()
                .enumerate()
                .map(|(block, &i)| Stacked {
                    member: i,
                    block,
                    order: BatchOrder::after(
                        members[i].config.train.seed,
                        members[i].data.train.len(),
                        done(i),
                    ),
                })
                .collect(),
            u,
            v,
            weight_decay,
            velocity,
            evaluation,
            relu,
        }
    }

    fn config(&self) -> &TrainConfig {
        self.members[self.stack[0].member].config
    }

    fn examples(&self) -> usize {
        self.members[self.stack[0].member].data.train.len()
    }

    fn batch_size(&self) -> usize {
        self.config().optim.batch_size.min(self.examples())
    }

    /// The epochs after `done`, through the epoch loop; each member is finished and handed
    /// to `finished` when it stops, and the members still training when the loop ends (a
    /// stop was requested) as interrupted.
    fn train(
        mut self,
        done: usize,
        ledgers: &mut [Option<Ledger>],
        progress: &mut dyn Progress,
        finished: &mut dyn FnMut(usize, FinishedRun),
    ) -> Result<(), TrainError> {
        let train = &self.config().train.clone();
        let device = self.device;
        let mut stepper = EnsembleStepper {
            stack: &mut self,
            ledgers: &mut *ledgers,
            finished: &mut *finished,
        };
        run_epochs(
            &mut stepper,
            done + 1..=train.max_epochs,
            (train, device),
            progress,
        )?;
        // Members still training were interrupted (the cap stops them in `after_epoch`).
        let interrupted = (0..self.stack.len())
            .map(|p| {
                let end = (
                    self.stack[p].member,
                    self.member_net(p),
                    StopReason::Interrupted,
                );
                (p, end)
            })
            .collect();
        self.finish(ledgers, interrupted, finished)
    }

    /// Records epoch `epoch` of every member in the stack (its steps took `seconds` in
    /// all); finishes the members that stop and takes them out of the stack. Returns the
    /// reason the last of them stopped, once the stack is empty.
    fn record(
        &mut self,
        (epoch, seconds): (usize, f64),
        ledgers: &mut [Option<Ledger>],
        progress: &mut dyn Progress,
        finished: &mut dyn FnMut(usize, FinishedRun),
    ) -> Result<Option<StopReason>, TrainError> {
        // Each member's share of the epoch's time.
        let seconds = seconds / self.stack.len() as f64;
        let readings = self.evaluation.read(&self.u, &self.v)?;
        let mut stopped = Vec::new();
        for (position, (slot, reading)) in self.stack.iter().zip(readings).enumerate() {
            let Some(ledger) = ledgers[slot.member].as_mut() else {
                continue;
            };
            let net = self.member_net(position);
            let shown: &mut dyn Progress = match position {
                0 => &mut *progress,
                _ => &mut Quiet,
            };
            if let Some(reason) =
                ledger.after_reading(net.clone(), reading, (epoch, seconds), shown)
            {
                stopped.push((position, (slot.member, net, reason)));
            }
        }
        let last = stopped.last().map(|(_, (_, _, reason))| *reason);
        let positions: Vec<usize> = stopped.iter().map(|(p, _)| *p).collect();
        self.finish(ledgers, stopped, finished)?;
        self.remove(&positions);
        Ok(last.filter(|_| self.stack.is_empty()))
    }

    /// Ends the runs of the members `stopped`, all at once: one batched evaluation of their
    /// test splits and measures, then each member's result, handed to `finished`.
    fn finish(
        &self,
        ledgers: &mut [Option<Ledger>],
        stopped: Vec<Stopped>,
        finished: &mut dyn FnMut(usize, FinishedRun),
    ) -> Result<(), TrainError> {
        let count = ledgers.len();
        let taken: Vec<_> = stopped
            .into_iter()
            .filter_map(|(p, (m, net, stop))| ledgers[m].take().map(|l| (p, m, net, stop, l)))
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        let ends: Vec<Ending> = taken
            .iter()
            .map(|(_, m, _, stop, ledger)| {
                let (best, init) = ledger.best_and_initial();
                let member = &self.members[*m];
                Ending {
                    data: member.data,
                    best,
                    init,
                    seed: member.config.train.seed,
                    measures: ledger.measures_due(*stop),
                }
            })
            .collect();
        let positions: Vec<usize> = taken.iter().map(|t| t.0).collect();
        let setting = (self.config().train.eval_batch, self.device);
        let readings =
            self.evaluation
                .final_readings(&positions, (&self.u, &self.v), &ends, setting)?;
        drop(ends);
        for ((_, m, net, stop, ledger), reading) in taken.into_iter().zip(readings) {
            let mut out = ledger.finish_with(net, stop, reading)?;
            out.result.ensemble_members = Some(count);
            finished(m, out);
        }
        Ok(())
    }

    /// Writes the checkpoint of every member in the stack that keeps one.
    fn save(&self, ledgers: &[Option<Ledger>]) -> Result<(), TrainError> {
        for (position, slot) in self.stack.iter().enumerate() {
            let member = &self.members[slot.member];
            let (Some(checkpoint), Some(ledger)) = (member.checkpoint, &ledgers[slot.member])
            else {
                continue;
            };
            let weights = self.member_weights(position, (&self.u, &self.v))?;
            let velocity = match &self.velocity {
                Some((bu, bv)) => Some(self.member_weights(position, (bu, bv))?),
                None => None,
            };
            checkpoint.save(member.config, &ledger.state(weights, velocity)?)?;
        }
        Ok(())
    }

    /// One epoch's SGD steps of every member in the stack; false when a stop was requested
    /// before the epoch's last step.
    fn epoch_steps(&mut self, epoch: usize, progress: &mut dyn Progress) -> bool {
        let batch = self.batch_size();
        let examples = self.examples();
        for slot in &mut self.stack {
            slot.order.shuffle();
        }
        let orders: Vec<(usize, &[usize])> = self
            .stack
            .iter()
            .map(|s| (s.block, s.order.current()))
            .collect();
        let rows = self.training.epoch_rows(&orders, batch, self.device);
        let optim = &self.config().optim;
        let (lr, momentum) = (optim.lr_at(epoch - 1), optim.momentum_at(epoch - 1));
        let count = self.stack.len();
        let batches = examples.div_ceil(batch);
        let first = self.members[self.stack[0].member].data;
        let (dim, classes) = (first.dim(), first.classes);
        for (b, (start, len)) in batch_ranges(examples, batch).enumerate() {
            if progress.stop_requested() {
                return false;
            }
            let picked = self
                .training
                .batch(rows.clone().narrow(0, start * count, len * count));
            let x = picked.x.reshape([count, len, dim]);
            let targets = picked.targets.reshape([count, len, classes]);
            let (grad_u, grad_v) = gradients(x, targets, &self.u, &self.v, self.relu);
            self.update(grad_u, grad_v, lr, momentum);
            progress.batch(epoch, b + 1, batches);
        }
        true
    }

    /// The paper's SGD step for every member ([`heavy_ball`], batched), with each member's
    /// coupled weight decay `g + λw`.
    fn update(&mut self, grad_u: Tensor<3>, grad_v: Tensor<3>, lr: f64, momentum: f64) {
        let (gu, gv) = match &self.weight_decay {
            Some((lu, lv)) => (
                grad_u + self.u.clone() * lu.clone(),
                grad_v + self.v.clone() * lv.clone(),
            ),
            None => (grad_u, grad_v),
        };
        let (bu, bv) = self.velocity.take().unzip();
        let (u, bu) = heavy_ball(self.u.clone(), gu, bu, lr, momentum);
        let (v, bv) = heavy_ball(self.v.clone(), gv, bv, lr, momentum);
        (self.u, self.v, self.velocity) = (u, v, Some((bu, bv)));
    }

    /// The network of the member at `position` in the stack.
    fn member_net(&self, position: usize) -> TwoLayerNet {
        let [_, d, h] = self.u.dims();
        let k = self.v.dims()[2];
        let take =
            |w: &Tensor<3>, shape: [usize; 2]| w.clone().narrow(0, position, 1).reshape(shape);
        TwoLayerNet {
            u: Param::from_tensor(take(&self.u, [d, h])),
            v: Param::from_tensor(take(&self.v, [h, k])),
            activation: match self.relu {
                true => Activation::Relu,
                false => Activation::Linear,
            },
        }
    }

    /// The blocks of the member at `position` of a stacked pair (weights or buffers), on
    /// the host.
    fn member_weights(
        &self,
        position: usize,
        (u, v): (&Tensor<3>, &Tensor<3>),
    ) -> Result<Weights, TrainError> {
        let block = |w: &Tensor<3>| w.clone().narrow(0, position, 1);
        Weights::from_device(&block(u), &block(v))
    }

    /// Takes the members at `positions` out of the stack.
    fn remove(&mut self, positions: &[usize]) {
        if positions.is_empty() {
            return;
        }
        let keep: Vec<usize> = (0..self.stack.len())
            .filter(|p| !positions.contains(p))
            .collect();
        let mut position = 0;
        self.stack.retain(|_| {
            position += 1;
            !positions.contains(&(position - 1))
        });
        if keep.is_empty() {
            return;
        }
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(keep.iter().map(|&p| p as i64).collect(), [keep.len()]),
            self.device,
        );
        self.evaluation.select(&index, &keep);
        let select = |t: Tensor<3>| t.select(0, index.clone());
        self.u = select(self.u.clone());
        self.v = select(self.v.clone());
        self.weight_decay = self
            .weight_decay
            .take()
            .map(|(lu, lv)| (select(lu), select(lv)));
        self.velocity = self
            .velocity
            .take()
            .map(|(bu, bv)| (select(bu), select(bv)));
    }
}

/// An ensemble's stack as the epoch loop's stepper.
struct EnsembleStepper<'e, 'a, 'l, 'f> {
    stack: &'e mut Ensemble<'a>,
    ledgers: &'e mut [Option<Ledger<'l>>],
    finished: &'e mut (dyn FnMut(usize, FinishedRun) + 'f),
}

impl Stepper for EnsembleStepper<'_, '_, '_, '_> {
    fn step_epoch(
        &mut self,
        epoch: usize,
        progress: &mut dyn Progress,
    ) -> Result<Stepped, TrainError> {
        let stack = &mut *self.stack;
        let at_start = (stack.u.clone(), stack.v.clone(), stack.velocity.clone());
        if stack.epoch_steps(epoch, progress) {
            return Ok(Stepped::Done);
        }
        // Stopped mid-epoch: the stack at the epoch's start is what gets saved.
        (stack.u, stack.v, stack.velocity) = at_start;
        Ok(Stepped::Stopped)
    }

    fn record_epoch(
        &mut self,
        epoch: usize,
        seconds: f64,
        progress: &mut dyn Progress,
    ) -> Result<Option<StopReason>, TrainError> {
        let at = (epoch, seconds);
        self.stack.record(at, self.ledgers, progress, self.finished)
    }

    fn save(&mut self) -> Result<(), TrainError> {
        self.stack.save(self.ledgers)
    }
}

/// Every member's gradient of its mean mini-batch loss: `x: [R, B, d]`, `targets: [R, B, k]`.
fn gradients(
    x: Tensor<3>,
    targets: Tensor<3>,
    u: &Tensor<3>,
    v: &Tensor<3>,
    relu_on: bool,
) -> (Tensor<3>, Tensor<3>) {
    let batch = x.dims()[1].max(1);
    let pre = x.clone().matmul(u.clone());
    let hidden = if relu_on { relu(pre) } else { pre };
    let logits = hidden.clone().matmul(v.clone());
    // log softmax, shifted by the row maximum, as the fused loss computes it.
    let shifted = logits.clone() - logits.max_dim(2);
    let log_probs = shifted.clone() - shifted.exp().sum_dim(2).log();
    let delta = (log_probs.exp() - targets).mul_scalar(1.0 / batch as f64);
    let grad_v = hidden.clone().swap_dims(1, 2).matmul(delta.clone());
    let grad_hidden = delta.matmul(v.clone().swap_dims(1, 2));
    let grad_pre = match relu_on {
        true => grad_hidden.mask_fill(hidden.lower_equal_elem(0.0), 0.0),
        false => grad_hidden,
    };
    let grad_u = x.swap_dims(1, 2).matmul(grad_pre);
    (grad_u, grad_v)
}

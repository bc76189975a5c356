//! Many runs of one width trained as one batched model, member by member the same runs.
//!
//! On a GPU a step of a small network is all launch and bookkeeping overhead, and on the CPU
//! a step at H = 16 is mostly overhead too (`experiments/performance/`). An ensemble stacks
//! the weights of R runs (`U: [R, d, H]`, `V: [R, H, k]`) and takes every run's SGD step at
//! once with batched matrix products: R runs for about the overhead of one.
//!
//! Each member stays its own run: its own data (subset, labels, noise, normalization) in its
//! own block of the training stack, its own batch order and initialization from its own seed,
//! its own weight decay, evaluation, best-validation network, stop rule and result. A member
//! that stops leaves the stack (the others go on), so its record is exactly the one it would
//! have had alone. What the members must share is everything that makes the steps line up:
//! the model, the optimizer's schedule and batch size, the stopping settings and the training
//! split's size ([`shared_settings`]).
//!
//! The gradient is the fused loss's (`crate::fused`), written out without autodiff:
//! `δ = (softmax(z) − t)/B`, `∂V = hᵀδ`, `∂U = xᵀ(δVᵀ ⊙ [h > 0])`, per member.

use std::time::Instant;

use burn::module::Param;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use realbias_data::Dataset;
use realbias_model::{Activation, TwoLayerNet};
use serde::{Deserialize, Serialize};

use crate::classifier::TrainingSet;
use crate::config::{ModelConfig, RunConfig, TrainConfig};
use crate::optim::OptimConfig;
use crate::record::{RunOutput, StopReason};
use crate::trainer::{BatchOrder, Run, batch_ranges};
use crate::{Progress, Quiet, TrainError};

/// Whether a sweep trains runs of one width together: `auto` where the backend gains from it
/// ([`crate::backend::ensembles_help`]), `off` never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnsembleMode {
    #[default]
    Auto,
    Off,
}

impl EnsembleMode {
    pub fn is_auto(&self) -> bool {
        *self == EnsembleMode::Auto
    }
}

/// One run of an ensemble: its config and its prepared data.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    pub config: &'a TrainConfig,
    pub data: &'a Dataset,
}

/// What the members of one ensemble must share: the config without its seed, its weight
/// decay and its name (the data section only shapes the member's own dataset; the training
/// split's size is checked separately).
pub fn shared_settings(config: &TrainConfig) -> (ModelConfig, OptimConfig, RunConfig) {
    let mut optim = config.optim.clone();
    optim.weight_decay = 0.0;
    let mut run = config.train.clone();
    run.seed = 0;
    (config.model.clone(), optim, run)
}

/// Why `members` cannot be trained as one ensemble, if they cannot.
pub fn incompatibility(members: &[Member]) -> Option<String> {
    let first = members.first()?;
    let shape = |d: &Dataset| (d.train.len(), d.dim(), d.classes);
    let settings = shared_settings(first.config);
    members.iter().enumerate().skip(1).find_map(|(i, m)| {
        if shared_settings(m.config) != settings {
            Some(format!(
                "member {i} differs from member 0 in a setting besides the seed and weight decay"
            ))
        } else if shape(m.data) != shape(first.data) {
            Some(format!(
                "member {i}'s training split (examples, inputs, classes) is {:?}, member 0's {:?}",
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
) -> Result<Vec<RunOutput>, TrainError> {
    let mut outputs: Vec<Option<RunOutput>> = members.iter().map(|_| None).collect();
    train_ensemble_with(members, device, progress, &mut |i, out| {
        outputs[i] = Some(out)
    })?;
    Ok(outputs.into_iter().flatten().collect())
}

/// Trains `members` as one ensemble on `device`, handing each member's output to `finished`
/// (with its index) as soon as the member stops, so a caller can save it while the others
/// train on. `progress` sees the first still-training member's epochs; an interruption stops
/// every member still training (`StopReason::Interrupted`).
pub fn train_ensemble_with(
    members: &[Member],
    device: &Device,
    progress: &mut dyn Progress,
    finished: &mut dyn FnMut(usize, RunOutput),
) -> Result<(), TrainError> {
    if let Some(why) = incompatibility(members) {
        return Err(TrainError::Ensemble(why));
    }
    let Some(first) = members.first() else {
        return Ok(());
    };
    crate::memory::check_ensemble(members)?;
    let (d, k) = (first.data.dim(), first.data.classes);
    let mut nets = Vec::with_capacity(members.len());
    let mut runs = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let net = m
            .config
            .model
            .network(d, k)
            .init(m.config.train.seed, device)?;
        let mut quiet = Quiet;
        let shown: &mut dyn Progress = if i == 0 { &mut *progress } else { &mut quiet };
        runs.push(Some(Run::start(
            m.config,
            m.data,
            device,
            net.clone(),
            shown,
        )?));
        nets.push(net);
    }
    Ensemble::new(members, &nets, device).train(&mut runs, progress, finished)
}

/// Ends member `m`'s run with its last network `net` and hands its output on.
fn finish_member(
    runs: &mut [Option<Run>],
    (m, net, stop): (usize, TwoLayerNet, StopReason),
    finished: &mut dyn FnMut(usize, RunOutput),
) -> Result<(), TrainError> {
    let count = runs.len();
    if let Some(run) = runs[m].take() {
        let mut out = run.finish(net, stop)?;
        out.result.ensemble_members = Some(count);
        finished(m, out);
    }
    Ok(())
}

/// The members still training, stacked on the device, with their optimizer state.
struct Ensemble<'a> {
    members: &'a [Member<'a>],
    device: &'a Device,
    training: TrainingSet,
    orders: Vec<BatchOrder>,
    /// Indices into `members` of the members still training, in stack order.
    active: Vec<usize>,
    u: Tensor<3>,
    v: Tensor<3>,
    /// Each member's weight decay over its whole block of `U` and of `V` (none when every
    /// λ is 0, so plain ensembles skip the product). Full-size so the product is a plain
    /// elementwise one rather than a broadcast from `[R, 1, 1]`.
    weight_decay: Option<(Tensor<3>, Tensor<3>)>,
    /// Momentum buffers (none before the first step).
    velocity: Option<(Tensor<3>, Tensor<3>)>,
    relu: bool,
}

impl<'a> Ensemble<'a> {
    fn new(members: &'a [Member<'a>], nets: &[TwoLayerNet], device: &'a Device) -> Self {
        let first = &members[0];
        let splits: Vec<_> = members.iter().map(|m| &m.data.train).collect();
        let decays: Vec<f32> = members
            .iter()
            .map(|m| m.config.optim.weight_decay as f32)
            .collect();
        let r = members.len();
        let (d, h, k) = nets[0].dims();
        let filled = |size: usize, shape: [usize; 3]| {
            let values = decays.iter().flat_map(|&l| std::iter::repeat_n(l, size));
            Tensor::from_data(TensorData::new(values.collect(), shape), device)
        };
        let weight_decay = decays
            .iter()
            .any(|&l| l != 0.0)
            .then(|| (filled(d * h, [r, d, h]), filled(h * k, [r, h, k])));
        Ensemble {
            members,
            device,
            training: TrainingSet::new(&splits, first.data.classes, device),
            orders: members
                .iter()
                .map(|m| BatchOrder::new(m.config.train.seed, m.data.train.len()))
                .collect(),
            active: (0..r).collect(),
            u: Tensor::stack(nets.iter().map(|n| n.u.val()).collect(), 0),
            v: Tensor::stack(nets.iter().map(|n| n.v.val()).collect(), 0),
            weight_decay,
            velocity: None,
            relu: first.config.model.activation == Activation::Relu,
        }
    }

    fn config(&self) -> &TrainConfig {
        self.members[0].config
    }

    fn batch_size(&self) -> usize {
        self.config()
            .optim
            .batch_size
            .min(self.members[0].data.train.len())
    }

    /// The epochs; each member is finished and handed to `finished` when it stops.
    fn train(
        &mut self,
        runs: &mut [Option<Run>],
        progress: &mut dyn Progress,
        finished: &mut dyn FnMut(usize, RunOutput),
    ) -> Result<(), TrainError> {
        let max_epochs = self.config().train.max_epochs;
        for epoch in 1..=max_epochs {
            if progress.stop_requested() {
                break;
            }
            let t = Instant::now();
            self.epoch_steps(epoch, progress);
            let _ = self.device.sync();
            // Each member's share of the epoch's time.
            let seconds = t.elapsed().as_secs_f64() / self.active.len() as f64;
            let mut stopped = Vec::new();
            for (position, &m) in self.active.iter().enumerate() {
                let Some(run) = runs[m].as_mut() else {
                    continue;
                };
                let net = self.member_net(position);
                let mut quiet = Quiet;
                let shown: &mut dyn Progress = match position {
                    0 => &mut *progress,
                    _ => &mut quiet,
                };
                if let Some(reason) = run.after_epoch(net.clone(), epoch, seconds, shown)? {
                    stopped.push((position, (m, net, reason)));
                }
            }
            let positions: Vec<usize> = stopped.iter().map(|(p, _)| *p).collect();
            for (_, end) in stopped {
                finish_member(runs, end, finished)?;
            }
            self.remove(&positions);
            if self.active.is_empty() {
                return Ok(());
            }
        }
        // Members still training were interrupted (the cap stops them in `after_epoch`).
        for (position, &m) in self.active.iter().enumerate() {
            let end = (m, self.member_net(position), StopReason::Interrupted);
            finish_member(runs, end, finished)?;
        }
        Ok(())
    }

    /// One epoch's SGD steps of every active member.
    fn epoch_steps(&mut self, epoch: usize, progress: &mut dyn Progress) {
        let batch = self.batch_size();
        let examples = self.members[0].data.train.len();
        for &m in &self.active {
            self.orders[m].shuffle();
        }
        let orders: Vec<(usize, &[usize])> = self
            .active
            .iter()
            .map(|&m| (m, self.orders[m].current()))
            .collect();
        let rows = self.training.epoch_rows(&orders, batch, self.device);
        let optim = &self.config().optim;
        let (lr, momentum) = (optim.lr_at(epoch - 1), optim.momentum_at(epoch - 1));
        let count = self.active.len();
        let batches = examples.div_ceil(batch);
        let (dim, classes) = (self.members[0].data.dim(), self.members[0].data.classes);
        for (b, (start, len)) in batch_ranges(examples, batch).enumerate() {
            let picked = self
                .training
                .batch(rows.clone().narrow(0, start * count, len * count));
            let x = picked.x.reshape([count, len, dim]);
            let targets = picked.targets.reshape([count, len, classes]);
            let (grad_u, grad_v) = gradients(x, targets, &self.u, &self.v, self.relu);
            self.update(grad_u, grad_v, lr, momentum);
            progress.batch(epoch, b + 1, batches);
        }
    }

    /// The paper's SGD step for every member (`crate::optim::HeavyBall`, batched): coupled
    /// weight decay `g + λw`, heavy-ball momentum `b ← m·b + g`, `w ← w − lr·b`.
    fn update(&mut self, grad_u: Tensor<3>, grad_v: Tensor<3>, lr: f64, momentum: f64) {
        let (gu, gv) = match &self.weight_decay {
            Some((lu, lv)) => (
                grad_u + self.u.clone() * lu.clone(),
                grad_v + self.v.clone() * lv.clone(),
            ),
            None => (grad_u, grad_v),
        };
        let (bu, bv) = match self.velocity.take() {
            Some((bu, bv)) if momentum > 0.0 => {
                (bu.mul_scalar(momentum) + gu, bv.mul_scalar(momentum) + gv)
            }
            _ => (gu, gv),
        };
        self.u = self.u.clone() - bu.clone().mul_scalar(lr);
        self.v = self.v.clone() - bv.clone().mul_scalar(lr);
        self.velocity = Some((bu, bv));
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

    /// Takes the members at `positions` out of the stack.
    fn remove(&mut self, positions: &[usize]) {
        if positions.is_empty() {
            return;
        }
        let keep: Vec<usize> = (0..self.active.len())
            .filter(|p| !positions.contains(p))
            .collect();
        self.active = keep.iter().map(|&p| self.active[p]).collect();
        if keep.is_empty() {
            return;
        }
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(keep.iter().map(|&p| p as i64).collect(), [keep.len()]),
            self.device,
        );
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

//! The paper's SGD (Figure 1 caption): heavy-ball momentum without dampening, the step size
//! multiplied by 0.99 and the momentum raised by 0.02 (up to 0.9) after every epoch.
//!
//! Burn's `Sgd` fixes its momentum at construction and dampens by 0.1 by default, so this is an
//! optimizer / scheduler pair: [`PaperSchedule`] is the learning-rate scheduler the learner steps
//! once per iteration; it knows the epoch from the iteration count and publishes that epoch's
//! momentum to [`HeavyBall`] through a shared cell.
//!
//! Update, per parameter `w` with gradient `g` (PyTorch's convention for SGD with momentum):
//! `g ← g + λ·w` (coupled weight decay: the gradient of the penalty `λ/2 Σ w²`),
//! `b ← m·b + g` (`b` starts at `g`), `w ← w − lr·b`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The optimizer's settings (`[optim]` in a config); defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Mini-batch size (100).
    pub batch_size: usize,
    /// Weight decay λ of the explicit penalty `λ/2 Σ w²` over all weights (0: none, as in
    /// Figure 1). Applied as Burn-style coupled decay, `g ← g + λ·w`, which is exactly that
    /// penalty's gradient added to the mean mini-batch loss.
    pub weight_decay: f64,
    /// Initial step size (0.1).
    pub lr: f64,
    /// Factor applied to the step size after each epoch (0.99).
    pub lr_decay: f64,
    /// Initial momentum (0.5).
    pub momentum: f64,
    /// Added to the momentum after each epoch (0.02).
    pub momentum_step: f64,
    /// Cap on the momentum (0.9).
    pub momentum_max: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            batch_size: 100,
            weight_decay: 0.0,
            lr: 0.1,
            lr_decay: 0.99,
            momentum: 0.5,
            momentum_step: 0.02,
            momentum_max: 0.9,
        }
    }
}

impl OptimConfig {
    /// Problems with the values, if any.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.batch_size == 0 {
            p.push("optim.batch_size must be at least 1".to_string());
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            p.push(format!(
                "optim.weight_decay = {} must be >= 0",
                self.weight_decay
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            p.push(format!("optim.lr = {} must be > 0", self.lr));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            p.push(format!(
                "optim.lr_decay = {} must be in (0, 1]",
                self.lr_decay
            ));
        }
        for (name, m) in [
            ("optim.momentum", self.momentum),
            ("optim.momentum_max", self.momentum_max),
        ] {
            if !(0.0..1.0).contains(&m) {
                p.push(format!("{name} = {m} must be in [0, 1)"));
            }
        }
        if !(self.momentum_step >= 0.0 && self.momentum_step.is_finite()) {
            p.push(format!(
                "optim.momentum_step = {} must be >= 0",
                self.momentum_step
            ));
        }
        p
    }

    /// Step size during epoch `epoch` (0-based): `lr · decay^epoch`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.lr_decay.powi(epoch as i32)
    }

    /// Momentum during epoch `epoch`: `min(max, m0 + step·epoch)` (never below `m0`).
    pub fn momentum_at(&self, epoch: usize) -> f64 {
        (self.momentum + self.momentum_step * epoch as f64)
            .min(self.momentum_max.max(self.momentum))
    }
}

/// The momentum coefficient shared by the schedule (writer) and the optimizer (reader).
#[derive(Debug, Clone, Default)]
pub(crate) struct MomentumCell(Arc<AtomicU64>);

impl MomentumCell {
    pub fn new(value: f64) -> Self {
        MomentumCell(Arc::new(AtomicU64::new(value.to_bits())))
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed)
    }
}

/// SGD with heavy-ball momentum, no dampening, optional coupled weight decay.
#[derive(Debug, Clone)]
pub(crate) struct HeavyBall {
    momentum: MomentumCell,
    weight_decay: f64,
}

impl HeavyBall {
    pub fn new(momentum: MomentumCell, weight_decay: f64) -> Self {
        HeavyBall {
            momentum,
            weight_decay,
        }
    }
}

/// The momentum buffer of one parameter.
#[derive(Clone)]
pub(crate) struct HeavyBallState<const D: usize> {
    pub velocity: Tensor<D>,
}

impl<const D: usize> RecordState for HeavyBallState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, "velocity", self.velocity.to_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let data = src.take_tensor(prefix, "velocity")?;
        Some(HeavyBallState {
            velocity: Tensor::from_data(data, device),
        })
    }
}

impl Optimizer for HeavyBall {
    type State<const D: usize> = HeavyBallState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        mut grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if self.weight_decay > 0.0 {
            grad = grad.add(tensor.clone().mul_scalar(self.weight_decay));
        }
        let momentum = self.momentum.get();
        let velocity = match state {
            Some(s) if momentum > 0.0 => s.velocity.mul_scalar(momentum).add(grad),
            _ => grad,
        };
        let updated = tensor.sub(velocity.clone().mul_scalar(lr));
        (updated, Some(HeavyBallState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        HeavyBallState {
            velocity: state.velocity.to_device(device),
        }
    }
}

/// The per-epoch schedule as a learning-rate scheduler stepped once per iteration.
#[derive(Debug, Clone)]
pub(crate) struct PaperSchedule {
    config: OptimConfig,
    iterations_per_epoch: usize,
    iteration: usize,
    momentum: MomentumCell,
}

impl PaperSchedule {
    pub fn new(config: OptimConfig, iterations_per_epoch: usize, momentum: MomentumCell) -> Self {
        momentum.set(config.momentum_at(0));
        PaperSchedule {
            config,
            iterations_per_epoch: iterations_per_epoch.max(1),
            iteration: 0,
            momentum,
        }
    }

    /// The epoch the next step belongs to.
    pub fn epoch(&self) -> usize {
        self.iteration / self.iterations_per_epoch
    }
}

impl LrScheduler for PaperSchedule {
    fn step(&mut self) -> LearningRate {
        let epoch = self.epoch();
        self.iteration += 1;
        self.momentum.set(self.config.momentum_at(epoch));
        self.config.lr_at(epoch)
    }

    // A run interrupted mid-way is restarted from scratch, so the schedule keeps no record.
    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new()
    }

    fn load_record(&mut self, _record: LrSchedulerRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::GradientsParams;
    use burn::optim::ModuleOptimizer;
    use burn::tensor::TensorData;

    #[test]
    fn schedule_values_at_the_checked_epochs() {
        let c = OptimConfig::default();
        let want = [
            (0, 0.1, 0.5),
            (1, 0.099, 0.52),
            (10, 0.1 * 0.99f64.powi(10), 0.7),
            (20, 0.1 * 0.99f64.powi(20), 0.9),
            (100, 0.1 * 0.99f64.powi(100), 0.9),
        ];
        for (epoch, lr, m) in want {
            assert!((c.lr_at(epoch) - lr).abs() < 1e-12, "lr at {epoch}");
            assert!(
                (c.momentum_at(epoch) - m).abs() < 1e-12,
                "momentum at {epoch}: {}",
                c.momentum_at(epoch)
            );
        }
        assert!((c.lr_at(10) - 0.0904382075).abs() < 1e-9);
    }

    #[test]
    fn scheduler_changes_lr_and_momentum_only_at_epoch_boundaries() {
        let cell = MomentumCell::new(0.0);
        let mut s = PaperSchedule::new(OptimConfig::default(), 3, cell.clone());
        let mut seen = Vec::new();
        for _ in 0..7 {
            let lr = s.step();
            seen.push((lr, cell.get()));
        }
        let e0 = (0.1, 0.5);
        let e1 = (0.1 * 0.99, 0.52);
        let e2 = (0.1 * 0.99 * 0.99, 0.54);
        for (i, want) in [e0, e0, e0, e1, e1, e1, e2].iter().enumerate() {
            assert!(
                (seen[i].0 - want.0).abs() < 1e-12 && (seen[i].1 - want.1).abs() < 1e-12,
                "step {i}: {:?}",
                seen[i]
            );
        }
    }

    #[derive(Module, Debug)]
    struct One {
        w: Param<Tensor<1>>,
    }

    fn grads_of(model: &One, g: &[f32]) -> GradientsParams {
        // The loss Σ g_i w_i has gradient g.
        let device = model.w.val().device();
        let gt = Tensor::<1>::from_data(TensorData::new(g.to_vec(), [g.len()]), &device);
        let loss = model.w.val().mul(gt).sum();
        GradientsParams::from_grads(loss.backward(), model)
    }

    #[test]
    fn update_steps_match_a_hand_computation() {
        let device = Device::flex().autodiff();
        let cell = MomentumCell::new(0.5);
        let mut optim: ModuleOptimizer = HeavyBall::new(cell.clone(), 0.01).into();
        let w0 = [1.0f32, -2.0];
        let mut model = One {
            w: Param::from_tensor(Tensor::from_data(
                TensorData::new(w0.to_vec(), [2]),
                &device,
            )),
        };
        // Step 1: g' = g + λw = (0.3 + 0.01, -0.1 - 0.02); b = g'; w = w - 0.1 b.
        let g = grads_of(&model, &[0.3, -0.1]);
        model = optim.step(0.1, model, g);
        let w1: Vec<f32> = model.w.val().try_into_vec_as().unwrap();
        let b1 = [0.31f64, -0.12];
        let want1 = [1.0 - 0.1 * b1[0], -2.0 - 0.1 * b1[1]];
        for i in 0..2 {
            assert!(
                (w1[i] as f64 - want1[i]).abs() < 1e-6,
                "{w1:?} vs {want1:?}"
            );
        }
        // Step 2 with momentum 0.7 and lr 0.05: b = 0.7 b1 + (g + λ w1), no dampening.
        cell.set(0.7);
        let g = grads_of(&model, &[0.2, 0.4]);
        model = optim.step(0.05, model, g);
        let w2: Vec<f32> = model.w.val().try_into_vec_as().unwrap();
        for i in 0..2 {
            let g2 = [0.2, 0.4][i] + 0.01 * want1[i];
            let b2 = 0.7 * b1[i] + g2;
            let want = want1[i] - 0.05 * b2;
            assert!(
                (w2[i] as f64 - want).abs() < 1e-6,
                "w2[{i}] = {} vs {want}",
                w2[i]
            );
        }
    }
}

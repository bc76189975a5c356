//! The paper's SGD and its schedules on Burn's optimizer API: the "custom LR/momentum
//! schedulers" of the project's design.
//!
//! - The step size is Burn's own [`StepLrScheduler`](burn::optim::lr_scheduler::step) with
//!   `step_size` = the mini-batches of one epoch and `gamma` = `optim.lr_decay`: it computes
//!   `lr · decay^(iteration / batches)`, the same expression in the same order as
//!   [`OptimConfig::lr_at`], so every step size has the same bits (tested over every epoch
//!   of a run).
//! - The momentum schedule lives in [`PaperSgd`], a Burn [`Optimizer`] whose per-tensor state
//!   holds the velocity and the steps taken: the momentum of a step is the one of its epoch,
//!   `momentum_at(steps / batches)`. Burn's `Sgd` has a fixed momentum, so it cannot be used.
//! - The coupled weight decay `g ← g + λ·w` is [`CoupledDecay`], a wrapper that adds it to
//!   the gradient before any inner optimizer (the paper's SGD, or Burn's Adam).

use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::{Device, Tensor};
use burn_pack::Scalar;

use super::{Method, OptimConfig, heavy_ball, with_weight_decay};

/// The momentum of epoch `epoch` (0-based): `min(max(m0, m_max), m0 + step · epoch)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MomentumSchedule {
    pub initial: f64,
    pub step: f64,
    pub max: f64,
}

impl MomentumSchedule {
    pub fn at(&self, epoch: usize) -> f64 {
        (self.initial + self.step * epoch as f64).min(self.max.max(self.initial))
    }
}

/// The paper's SGD: heavy-ball momentum without dampening, the momentum raised every epoch
/// ([`MomentumSchedule`]); `steps_per_epoch` turns the state's step count into the epoch.
#[derive(Debug, Clone)]
pub struct PaperSgd {
    pub momentum: MomentumSchedule,
    pub steps_per_epoch: usize,
}

/// [`PaperSgd`]'s state of one weight tensor: its velocity and the steps it has taken.
#[derive(Clone)]
pub struct PaperSgdState<const D: usize> {
    pub velocity: Tensor<D>,
    pub steps: usize,
}

impl<const D: usize> RecordState for PaperSgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, "velocity", self.velocity.to_data());
        out.push_scalar(prefix, "steps", Scalar::from(self.steps));
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let velocity = Tensor::from_data(src.take_tensor(prefix, "velocity")?, device);
        let steps = usize::try_from(src.take_scalar(prefix, "steps")?).ok()?;
        Some(PaperSgdState { velocity, steps })
    }
}

impl Optimizer for PaperSgd {
    type State<const D: usize> = PaperSgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (velocity, steps) = match state {
            Some(s) => (Some(s.velocity), s.steps),
            None => (None, 0),
        };
        let momentum = self.momentum.at(steps / self.steps_per_epoch.max(1));
        let (tensor, velocity) = heavy_ball(tensor, grad, velocity, lr, momentum);
        let steps = steps + 1;
        (tensor, Some(PaperSgdState { velocity, steps }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        PaperSgdState {
            velocity: state.velocity.to_device(device),
            steps: state.steps,
        }
    }
}

/// An optimizer `inner` with the coupled weight decay `g ← g + λ·w` (the gradient of the
/// penalty `λ/2 Σ w²`) added to every gradient first; λ = 0 adds nothing.
#[derive(Debug, Clone)]
pub struct CoupledDecay<O> {
    pub inner: O,
    pub weight_decay: f64,
}

impl<O: Optimizer> Optimizer for CoupledDecay<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let grad = with_weight_decay(grad, &tensor, self.weight_decay);
        self.inner.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        O::to_device(state, device)
    }
}

impl OptimConfig {
    /// The paper's SGD of this config, for `steps_per_epoch` mini-batches an epoch.
    pub fn paper_sgd(&self, steps_per_epoch: usize) -> CoupledDecay<PaperSgd> {
        CoupledDecay {
            inner: PaperSgd {
                momentum: self.momentum_schedule(),
                steps_per_epoch,
            },
            weight_decay: self.weight_decay,
        }
    }

    /// The step-size schedule of a mini-batch method as Burn's `StepLrScheduler`, for
    /// `steps_per_epoch` mini-batches an epoch, advanced past the `epochs_done` epochs of a
    /// resumed run (its state is its step count, which the epochs done fix). `None` for the
    /// full-batch methods, whose line search picks each step.
    pub fn lr_scheduler(
        &self,
        steps_per_epoch: usize,
        epochs_done: usize,
    ) -> Option<ModuleLrScheduler> {
        let initial = match self.method {
            Method::Sgd => self.lr,
            Method::Adam => self.adam_settings().lr,
            Method::Cg | Method::Lbfgs => return None,
        };
        let mut scheduler = StepLrSchedulerConfig::new(initial, steps_per_epoch.max(1))
            .with_gamma(self.lr_decay)
            .init()
            .ok()?;
        for _ in 0..epochs_done * steps_per_epoch {
            scheduler.step();
        }
        Some(scheduler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(method: Method) -> OptimConfig {
        let mut c = OptimConfig {
            method,
            ..OptimConfig::default()
        };
        c.fill_method_table();
        c
    }

    /// Burn's step scheduler gives `lr_at`'s bits at every step of every epoch, from the
    /// start and after a resume, for a partial last batch too (the step count per epoch is
    /// the batches, whatever their size).
    #[test]
    fn burns_step_scheduler_has_the_bits_of_lr_at() {
        for method in [Method::Sgd, Method::Adam] {
            let c = config(method);
            let batches = 7;
            let mut fresh = c.lr_scheduler(batches, 0).unwrap();
            for epoch in 0..600 {
                for _ in 0..batches {
                    let lr = fresh.step().base();
                    assert_eq!(lr.to_bits(), c.lr_at(epoch).to_bits(), "epoch {epoch}");
                }
            }
            // A run's epochs are runtime values; a constant exponent would let the compiler
            // fold `powi` with another algorithm (8 ulps apart here).
            let epoch = std::hint::black_box(250);
            let mut resumed = c.lr_scheduler(batches, epoch).unwrap();
            assert_eq!(resumed.step().base().to_bits(), c.lr_at(epoch).to_bits());
        }
        assert!(config(Method::Cg).lr_scheduler(5, 0).is_none());
    }

    #[test]
    fn the_momentum_schedule_is_momentum_at() {
        let c = config(Method::Sgd);
        let sgd = c.paper_sgd(3).inner;
        for epoch in 0..40 {
            assert_eq!(
                sgd.momentum.at(epoch).to_bits(),
                c.momentum_at(epoch).to_bits()
            );
        }
    }

    /// The optimizer raises the momentum when its step count enters the next epoch: three
    /// steps of one epoch at m0, the fourth at m0 + step.
    #[test]
    fn the_momentum_follows_the_step_count() {
        let device = Device::flex();
        let one =
            |v: f32| Tensor::<1>::from_data(burn::tensor::TensorData::new(vec![v], [1]), &device);
        let read = |t: &Tensor<1>| t.clone().try_into_vec_as::<f32>().unwrap()[0] as f64;
        let c = OptimConfig::default();
        let sgd = c.paper_sgd(3);
        let (mut w, mut state) = (one(0.0), None);
        let mut b = 0.0f64;
        for step in 0..5 {
            let m = c.momentum_at(step / 3);
            b = if step == 0 { 1.0 } else { m * b + 1.0 };
            let (w2, s) = sgd.step(0.1, w, one(1.0), state);
            (w, state) = (w2, s);
            let s = state.as_ref().unwrap();
            assert_eq!(s.steps, step + 1);
            assert!((read(&s.velocity) - b).abs() < 1e-6, "step {step}");
        }
    }
}

//! The paper's SGD (Figure 1 caption): heavy-ball momentum without dampening, the step size
//! multiplied by 0.99 and the momentum raised by 0.02 (up to 0.9) after every epoch.
//!
//! Update, per weight tensor `w` with gradient `g` (PyTorch's convention for SGD with momentum):
//! `g ← g + λ·w` (coupled weight decay: the gradient of the penalty `λ/2 Σ w²`),
//! `b ← m·b + g` (`b` starts at `g`), `w ← w − lr·b`.
//!
//! Both training loops (a single run and the batched ensemble) take this step through
//! [`heavy_ball`] and keep `w` and `b` themselves: they are what a checkpoint saves. (Burn's
//! `Learner` keeps its optimizer's state private, so a run on it could not resume exactly.)

use burn::tensor::Tensor;
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

/// One step of the paper's SGD on a weight tensor `w` with gradient `grad` (weight decay
/// already added): `b ← m·b + g` (`b = g` on the first step or without momentum),
/// `w ← w − lr·b`. Returns the new weights and momentum buffer.
pub(crate) fn heavy_ball<const D: usize>(
    w: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
    lr: f64,
    momentum: f64,
) -> (Tensor<D>, Tensor<D>) {
    let velocity = match velocity {
        Some(b) if momentum > 0.0 => b.mul_scalar(momentum).add(grad),
        _ => grad,
    };
    (w.sub(velocity.clone().mul_scalar(lr)), velocity)
}

/// `g + λ·w`: a gradient with the coupled weight decay of its weight tensor.
pub(crate) fn with_weight_decay<const D: usize>(
    grad: Tensor<D>,
    w: &Tensor<D>,
    weight_decay: f64,
) -> Tensor<D> {
    match weight_decay > 0.0 {
        true => grad.add(w.clone().mul_scalar(weight_decay)),
        false => grad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

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
    fn update_steps_match_a_hand_computation() {
        let device = Device::flex();
        let tensor =
            |v: [f32; 2]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [2]), &device);
        let read = |t: &Tensor<1>| -> Vec<f32> { t.clone().try_into_vec_as().unwrap() };
        let w0 = tensor([1.0, -2.0]);
        // Step 1: g' = g + λw = (0.3 + 0.01, -0.1 - 0.02); b = g'; w = w - 0.1 b.
        let g = with_weight_decay(tensor([0.3, -0.1]), &w0, 0.01);
        let (w1, b1) = heavy_ball(w0, g, None, 0.1, 0.5);
        let want_b1 = [0.31f64, -0.12];
        let want1 = [1.0 - 0.1 * want_b1[0], -2.0 - 0.1 * want_b1[1]];
        for (i, (w, b)) in read(&w1).iter().zip(read(&b1)).enumerate() {
            assert!((*w as f64 - want1[i]).abs() < 1e-6, "w1[{i}] = {w}");
            assert!((b as f64 - want_b1[i]).abs() < 1e-6, "b1[{i}] = {b}");
        }
        // Step 2 with momentum 0.7 and lr 0.05: b = 0.7 b1 + (g + λ w1), no dampening.
        let g = with_weight_decay(tensor([0.2, 0.4]), &w1, 0.01);
        let (w2, _) = heavy_ball(w1, g, Some(b1), 0.05, 0.7);
        for (i, w) in read(&w2).iter().enumerate() {
            let g2 = [0.2, 0.4][i] + 0.01 * want1[i];
            let want = want1[i] - 0.05 * (0.7 * want_b1[i] + g2);
            assert!((*w as f64 - want).abs() < 1e-6, "w2[{i}] = {w} vs {want}");
        }
        // Without momentum the buffer is the gradient alone.
        let old = Some(tensor([5.0, 5.0]));
        let (_, b) = heavy_ball(tensor([0.0, 0.0]), tensor([1.0, 2.0]), old, 0.1, 0.0);
        assert_eq!(read(&b), vec![1.0, 2.0]);
    }
}

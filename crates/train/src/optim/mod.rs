//! The optimizer's settings (`[optim]`) and the paper's SGD (Figure 1 caption): heavy-ball
//! momentum without dampening, the step size multiplied by 0.99 and the momentum raised by
//! 0.02 (up to 0.9) after every epoch.
//!
//! Update, per weight tensor `w` with gradient `g` (PyTorch's convention for SGD with momentum):
//! `g ← g + λ·w` (coupled weight decay: the gradient of the penalty `λ/2 Σ w²`),
//! `b ← m·b + g` (`b` starts at `g`), `w ← w − lr·b`.
//!
//! A single run takes this step through Burn's optimizer API (`burn_optim`: the step size
//! from Burn's `StepLrScheduler`, the momentum schedule and the decay in [`PaperSgd`] and
//! [`CoupledDecay`]); the batched ensemble takes the same `heavy_ball` step on its stacked
//! weights, with each member's own λ.

mod burn_optim;
pub mod cg;
pub mod line_search;

pub use burn_optim::{CoupledDecay, MomentumSchedule, PaperSgd, PaperSgdState};

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which optimizer trains the network (`optim.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The paper's mini-batch heavy-ball SGD and its schedule.
    #[default]
    Sgd,
    /// Full-batch nonlinear conjugate gradient (Polak-Ribière+, strong-Wolfe line search):
    /// the paper's own check (Section 2).
    Cg,
    /// Full-batch L-BFGS: Burn's `burn_optim::LBFGS` with its strong-Wolfe line search.
    Lbfgs,
    /// Burn's Adam on the same mini-batches and step-size decay as SGD.
    Adam,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Sgd, Method::Cg, Method::Lbfgs, Method::Adam];

    pub fn name(self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::Cg => "cg",
            Method::Lbfgs => "lbfgs",
            Method::Adam => "adam",
        }
    }

    /// Which loop steps the method's weights: the one place a method picks its engine.
    /// Every loop matches the narrower enum it is handed, so a new method must be placed
    /// here and in each of its loop's matches before it builds.
    pub fn loop_kind(self) -> LoopKind {
        match self {
            Method::Sgd => LoopKind::MiniBatch(MiniBatchMethod::Sgd),
            Method::Adam => LoopKind::MiniBatch(MiniBatchMethod::Adam),
            Method::Cg => LoopKind::FullBatch(FullBatchMethod::Cg),
            Method::Lbfgs => LoopKind::FullBatch(FullBatchMethod::Lbfgs),
        }
    }

    /// The method as one the `Learner` steps, if it is one.
    pub fn mini_batch(self) -> Option<MiniBatchMethod> {
        match self.loop_kind() {
            LoopKind::MiniBatch(m) => Some(m),
            LoopKind::FullBatch(_) => None,
        }
    }

    /// The method as one the full-batch loop steps, if it is one.
    pub fn full_batch(self) -> Option<FullBatchMethod> {
        match self.loop_kind() {
            LoopKind::FullBatch(m) => Some(m),
            LoopKind::MiniBatch(_) => None,
        }
    }

    /// Whether the method steps on the whole training split at once (one iteration per
    /// "epoch" of the history) rather than on mini-batches.
    pub fn is_full_batch(self) -> bool {
        matches!(self.loop_kind(), LoopKind::FullBatch(_))
    }

    /// What a checkpoint of this method holds of its optimizer's state.
    pub fn saved_state(self) -> SavedStateLayout {
        match self {
            Method::Sgd => SavedStateLayout {
                velocity: true,
                tensors: &[],
                scalars: &[],
                record: false,
            },
            Method::Adam => SavedStateLayout {
                velocity: false,
                tensors: &["moment_1", "moment_2"],
                scalars: &["time"],
                record: false,
            },
            Method::Cg => SavedStateLayout {
                velocity: false,
                tensors: &["gradient", "direction"],
                scalars: &["value", "next_step", "evaluations"],
                record: false,
            },
            Method::Lbfgs => SavedStateLayout {
                velocity: false,
                tensors: &[],
                scalars: &["last_loss", "evaluations"],
                record: true,
            },
        }
    }

    /// The keys of `[optim]` this method reads besides `weight_decay` (which every method
    /// reads): a key of another method's is an error in a config of this one.
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            Method::Sgd => &[
                "batch_size",
                "lr",
                "lr_decay",
                "momentum",
                "momentum_step",
                "momentum_max",
            ],
            Method::Adam => &["batch_size", "lr_decay", "adam"],
            Method::Cg => &["cg"],
            Method::Lbfgs => &["lbfgs"],
        }
    }
}

/// The loop a method trains in ([`Method::loop_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopKind {
    /// On Burn's `Learner` over mini-batches (or, for SGD, the batched ensemble).
    MiniBatch(MiniBatchMethod),
    /// On the whole training split at once, one iteration per history row.
    FullBatch(FullBatchMethod),
}

/// The methods that step on mini-batches through Burn's `Learner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiniBatchMethod {
    Sgd,
    Adam,
}

/// The methods that step on the whole training split (they need a loss closure, which
/// Burn's `Learner` does not take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullBatchMethod {
    Cg,
    Lbfgs,
}

/// The names of a method's optimizer state in a checkpoint: SGD's velocity (`velocity.u` /
/// `.v`, shared with the ensemble), other weight-shaped tensor pairs (`optimizer.{name}.u` /
/// `.v`), scalars, and whether it keeps an opaque record (L-BFGS's).
#[derive(Debug, Clone, Copy)]
pub struct SavedStateLayout {
    pub velocity: bool,
    pub tensors: &'static [&'static str],
    pub scalars: &'static [&'static str],
    pub record: bool,
}

impl SavedStateLayout {
    /// Weight-shaped tensors a checkpoint of this layout holds besides the weights and the
    /// best network. L-BFGS's record keeps two vectors of the weights' size, and two more for
    /// each of its `history_size` pairs.
    pub fn weight_copies(&self, history_size: usize) -> u64 {
        let record = if self.record { 2 + 2 * history_size } else { 0 };
        (usize::from(self.velocity) + self.tensors.len() + record) as u64
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown optim.method {s:?}: use sgd, cg, lbfgs or adam"))
    }
}

/// `[optim.cg]`: full-batch conjugate gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgSettings {
    /// Sufficient decrease constant of the strong Wolfe conditions (1e-4).
    pub c1: f64,
    /// Curvature constant (0.1, the usual choice for CG: Nocedal & Wright, ch. 5).
    pub c2: f64,
    /// Function and gradient evaluations one line search may use (25).
    pub max_line_search: usize,
    /// Step length the first line search tries (1); later ones start from the last step
    /// scaled by the change in the directional derivative (Nocedal & Wright, eq. 3.60).
    pub initial_step: f64,
}

impl Default for CgSettings {
    fn default() -> Self {
        CgSettings {
            c1: 1e-4,
            c2: 0.1,
            max_line_search: 25,
            initial_step: 1.0,
        }
    }
}

/// `[optim.lbfgs]`: full-batch L-BFGS, one iteration of Burn's `LBFGS` per epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbfgsSettings {
    /// Curvature pairs kept (100, PyTorch's default).
    pub history_size: usize,
    /// Step length each line search starts from (1: the quasi-Newton step).
    pub lr: f64,
    /// Function and gradient evaluations one iteration (its line search) may use (25).
    pub max_evaluations: usize,
}

impl Default for LbfgsSettings {
    fn default() -> Self {
        LbfgsSettings {
            history_size: 100,
            lr: 1.0,
            max_evaluations: 25,
        }
    }
}

/// `[optim.adam]`: Burn's Adam (its defaults but the step size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamSettings {
    /// Initial step size (0.01), multiplied by `optim.lr_decay` every epoch. Kingma & Ba's
    /// 0.001 under the paper's decay by 0.99 an epoch moves the weights too little to fit:
    /// the decayed steps add up to 100 epochs at the initial size.
    pub lr: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            lr: 1e-2,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
        }
    }
}

/// The optimizer's settings (`[optim]` in a config); defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// `"sgd"` (the paper's, default), `"cg"`, `"lbfgs"` or `"adam"`.
    #[serde(skip_serializing_if = "is_sgd")]
    pub method: Method,
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
    /// Conjugate gradient's settings (`method = "cg"` only; filled with the defaults when
    /// the config is read, so `result.json` records the values used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cg: Option<CgSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lbfgs: Option<LbfgsSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adam: Option<AdamSettings>,
}

fn is_sgd(m: &Method) -> bool {
    *m == Method::Sgd
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            method: Method::Sgd,
            batch_size: 100,
            weight_decay: 0.0,
            lr: 0.1,
            lr_decay: 0.99,
            momentum: 0.5,
            momentum_step: 0.02,
            momentum_max: 0.9,
            cg: None,
            lbfgs: None,
            adam: None,
        }
    }
}

impl OptimConfig {
    /// Problems with the values, if any: every method's table is checked, and a setting of
    /// another method than `method` is one.
    pub fn problems(&self) -> Vec<String> {
        self.problems_allowing(&[])
    }

    /// [`problems`](Self::problems), except that the keys `allowed` may be set for another
    /// method (a sweep's shared config with an `optim.method` axis holds every method's).
    pub fn problems_allowing(&self, allowed: &[&str]) -> Vec<String> {
        let mut p = self.sgd_problems();
        if let Some(cg) = &self.cg {
            p.extend(cg_problems(cg));
        }
        if let Some(l) = &self.lbfgs {
            p.extend(lbfgs_problems(l));
        }
        if let Some(a) = &self.adam {
            p.extend(adam_problems(a));
        }
        let foreign = self.foreign_keys().into_iter();
        p.extend(
            foreign
                .filter(|k| !allowed.contains(k))
                .map(|key| self.foreign_problem(key)),
        );
        p
    }

    /// The keys present in a config's `[optim]` table as written (`optim`) that this method
    /// does not read, except `allowed`, as problems: a key of another method is refused
    /// whatever its value (`momentum = 0.5`, SGD's default, used to pass in a CG config).
    pub fn foreign_keys_written(&self, optim: &toml::Table, allowed: &[&str]) -> Vec<String> {
        let own = self.method.own_keys();
        let of_some_method = |key: &str| Method::ALL.iter().any(|m| m.own_keys().contains(&key));
        optim
            .keys()
            .filter(|k| of_some_method(k) && !own.contains(&k.as_str()))
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|key| self.foreign_problem(key))
            .collect()
    }

    fn foreign_problem(&self, key: &str) -> String {
        format!(
            "optim.{key} is a setting of another method: optim.method = \"{}\" does not read it",
            self.method.name()
        )
    }

    /// The keys of `[optim]` set (away from their defaults) that `method` does not read.
    pub fn foreign_keys(&self) -> Vec<&'static str> {
        let default = OptimConfig::default();
        let set = [
            ("batch_size", self.batch_size != default.batch_size),
            ("lr", self.lr != default.lr),
            ("lr_decay", self.lr_decay != default.lr_decay),
            ("momentum", self.momentum != default.momentum),
            ("momentum_step", self.momentum_step != default.momentum_step),
            ("momentum_max", self.momentum_max != default.momentum_max),
            ("cg", self.cg.is_some()),
            ("lbfgs", self.lbfgs.is_some()),
            ("adam", self.adam.is_some()),
        ];
        let own = self.method.own_keys();
        set.into_iter()
            .filter(|(key, set)| *set && !own.contains(key))
            .map(|(key, _)| key)
            .collect()
    }

    /// The method's own table filled with its defaults when the config has none, so that the
    /// settings a run used are recorded with it.
    pub fn fill_method_table(&mut self) {
        match self.method {
            Method::Sgd => {}
            Method::Cg => _ = self.cg.get_or_insert_with(Default::default),
            Method::Lbfgs => _ = self.lbfgs.get_or_insert_with(Default::default),
            Method::Adam => _ = self.adam.get_or_insert_with(Default::default),
        }
    }

    pub fn cg_settings(&self) -> CgSettings {
        self.cg.clone().unwrap_or_default()
    }

    pub fn lbfgs_settings(&self) -> LbfgsSettings {
        self.lbfgs.clone().unwrap_or_default()
    }

    pub fn adam_settings(&self) -> AdamSettings {
        self.adam.clone().unwrap_or_default()
    }

    fn sgd_problems(&self) -> Vec<String> {
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

    /// Step size during epoch `epoch` (0-based): `lr · decay^epoch` (Adam: its own `lr`; the
    /// full-batch methods: the first step their line search tries).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        match self.method {
            Method::Sgd => self.lr * self.lr_decay.powi(epoch as i32),
            Method::Adam => self.adam_settings().lr * self.lr_decay.powi(epoch as i32),
            // The line search's first trial step.
            Method::Cg => self.cg_settings().initial_step,
            Method::Lbfgs => self.lbfgs_settings().lr,
        }
    }

    /// Momentum during epoch `epoch`: `min(max, m0 + step·epoch)` (never below `m0`; Adam:
    /// its `beta_1`).
    pub fn momentum_at(&self, epoch: usize) -> f64 {
        match self.method {
            Method::Sgd => self.momentum_schedule().at(epoch),
            Method::Adam => self.adam_settings().beta_1,
            Method::Cg | Method::Lbfgs => 0.0,
        }
    }

    /// SGD's momentum schedule (`optim.momentum`, `momentum_step`, `momentum_max`).
    pub fn momentum_schedule(&self) -> MomentumSchedule {
        MomentumSchedule {
            initial: self.momentum,
            step: self.momentum_step,
            max: self.momentum_max,
        }
    }
}

fn positive(key: &str, v: f64) -> Option<String> {
    (!(v > 0.0 && v.is_finite())).then(|| format!("{key} = {v} must be > 0"))
}

fn cg_problems(cg: &CgSettings) -> Vec<String> {
    let mut p = Vec::new();
    // 0 < c1 < c2 < 1 (Nocedal & Wright, 3.7): a step satisfying both then exists.
    if !(cg.c1 > 0.0 && cg.c1 < cg.c2 && cg.c2 < 1.0) {
        p.push(format!(
            "optim.cg.c1 = {} and optim.cg.c2 = {} must satisfy 0 < c1 < c2 < 1",
            cg.c1, cg.c2
        ));
    }
    if cg.max_line_search < 2 {
        p.push("optim.cg.max_line_search must be at least 2".into());
    }
    p.extend(positive("optim.cg.initial_step", cg.initial_step));
    p
}

fn lbfgs_problems(l: &LbfgsSettings) -> Vec<String> {
    let mut p = Vec::new();
    if l.history_size == 0 {
        p.push("optim.lbfgs.history_size must be at least 1".into());
    }
    if l.max_evaluations < 2 {
        p.push("optim.lbfgs.max_evaluations must be at least 2 (one for the gradient, one for the line search)".into());
    }
    p.extend(positive("optim.lbfgs.lr", l.lr));
    p
}

fn adam_problems(a: &AdamSettings) -> Vec<String> {
    let mut p = Vec::new();
    p.extend(positive("optim.adam.lr", a.lr));
    p.extend(positive("optim.adam.epsilon", a.epsilon));
    for (key, b) in [
        ("optim.adam.beta_1", a.beta_1),
        ("optim.adam.beta_2", a.beta_2),
    ] {
        if !(0.0..1.0).contains(&b) {
            p.push(format!("{key} = {b} must be in [0, 1)"));
        }
    }
    p
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

/// Burn's Adam with the run's settings.
pub(crate) fn adam_of(settings: &AdamSettings) -> burn::optim::Adam {
    burn::optim::AdamConfig::new()
        .with_beta_1(settings.beta_1 as f32)
        .with_beta_2(settings.beta_2 as f32)
        .with_epsilon(settings.epsilon as f32)
        .build()
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

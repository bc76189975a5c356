//! Two-layer networks `f(x) = Σ_h v_h σ(⟨u_h, x⟩)` as optimization problems: the loss and its
//! gradient behind an [`Oracle`] (the experiment crate answers it with the Burn module; the
//! [`HostOracle`] here is an independent f64 reference for tests), the objectives of eq. (4)
//! and eq. (5), Theorem 1's rescaling, and the two optimizers.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::TheoryError;

/// The hidden units' activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    /// A matrix factorization (eq. 2).
    Linear,
}

/// The per-example loss `L(y, f)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// `½(f − y)²`.
    Squared,
    /// `log(1 + exp(−y f))` for labels `y = ±1`.
    Logistic,
}

impl Loss {
    pub fn value(self, f: f64, y: f64) -> f64 {
        match self {
            Loss::Squared => 0.5 * (f - y) * (f - y),
            Loss::Logistic => softplus(-y * f),
        }
    }

    /// `∂L/∂f`.
    pub fn derivative(self, f: f64, y: f64) -> f64 {
        match self {
            Loss::Squared => f - y,
            Loss::Logistic => -y * sigmoid(-y * f),
        }
    }
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The weights of a network with `d` inputs, `h` hidden units and `k` outputs: `u` is `d x h`
/// row-major (column `j` is `u_j`), `v` is `h x k` row-major (row `j` is `v_j`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub d: usize,
    pub h: usize,
    pub k: usize,
    pub u: Vec<f64>,
    pub v: Vec<f64>,
}

impl Weights {
    pub fn zeros(d: usize, h: usize, k: usize) -> Self {
        Weights {
            d,
            h,
            k,
            u: vec![0.0; d * h],
            v: vec![0.0; h * k],
        }
    }

    /// Gaussian weights with standard deviations `std_u`, `std_v`, from `seed`.
    pub fn gaussian(d: usize, h: usize, k: usize, std_u: f64, std_v: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |n: usize, std: f64| -> Vec<f64> {
            match Normal::new(0.0, std) {
                Ok(normal) => (0..n).map(|_| normal.sample(&mut rng)).collect(),
                Err(_) => vec![0.0; n],
            }
        };
        let u = draw(d * h, std_u);
        let v = draw(h * k, std_v);
        Weights { d, h, k, u, v }
    }

    pub fn u_matrix(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.d, self.h, &self.u)
    }

    pub fn v_matrix(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.h, self.k, &self.v)
    }

    /// `‖u_j‖` for every unit.
    pub fn input_norms(&self) -> Vec<f64> {
        (0..self.h)
            .map(|j| {
                (0..self.d)
                    .map(|i| self.u[i * self.h + j].powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }

    /// `‖v_j‖` for every unit (`|v_j|` when `k = 1`).
    pub fn output_norms(&self) -> Vec<f64> {
        (0..self.h)
            .map(|j| {
                self.v[j * self.k..(j + 1) * self.k]
                    .iter()
                    .map(|x| x * x)
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }

    /// `½ Σ (‖u_j‖² + ‖v_j‖²)`, the weight-decay penalty of eq. (4) without `λ`.
    pub fn weight_decay_penalty(&self) -> f64 {
        0.5 * (self.u.iter().map(|x| x * x).sum::<f64>()
            + self.v.iter().map(|x| x * x).sum::<f64>())
    }

    /// `Σ ‖u_j‖·‖v_j‖`: the rescaling-invariant norm that eq. (4)'s penalty is bounded below by
    /// and equals after balancing.
    pub fn path_norm(&self) -> f64 {
        self.input_norms()
            .iter()
            .zip(self.output_norms())
            .map(|(a, b)| a * b)
            .sum()
    }

    /// `Σ ‖v_j‖`, eq. (5)'s penalty without `λ`.
    pub fn output_l1(&self) -> f64 {
        self.output_norms().iter().sum()
    }

    /// `½Σ(‖u_j‖² + ‖v_j‖²) − Σ‖u_j‖‖v_j‖ ≥ 0`, zero exactly when every unit is balanced.
    pub fn balance_gap(&self) -> f64 {
        0.5 * self
            .input_norms()
            .iter()
            .zip(self.output_norms())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
    }

    /// Units with `‖u_j‖‖v_j‖ > threshold`.
    pub fn active_units(&self, threshold: f64) -> usize {
        self.input_norms()
            .iter()
            .zip(self.output_norms())
            .filter(|(a, b)| *a * *b > threshold)
            .count()
    }

    /// Every unit scaled by `(u_j, v_j) → (c_j u_j, v_j / c_j)`; with a ReLU or linear
    /// activation the function is unchanged for `c_j > 0`.
    pub fn rescaled(&self, scale: impl Fn(f64, f64) -> f64) -> Weights {
        let mut out = self.clone();
        for (j, (a, b)) in self
            .input_norms()
            .into_iter()
            .zip(self.output_norms())
            .enumerate()
        {
            if a == 0.0 || b == 0.0 {
                // A unit that contributes nothing: zero it, which only lowers every penalty.
                for i in 0..self.d {
                    out.u[i * self.h + j] = 0.0;
                }
                out.v[j * self.k..(j + 1) * self.k].fill(0.0);
                continue;
            }
            let c = scale(a, b);
            for i in 0..self.d {
                out.u[i * self.h + j] *= c;
            }
            for x in &mut out.v[j * self.k..(j + 1) * self.k] {
                *x /= c;
            }
        }
        out
    }

    /// Theorem 1's rescaling `ũ = √(‖v‖/‖u‖) u`, `ṽ = √(‖u‖/‖v‖) v`: same function,
    /// `‖ũ‖ = ‖ṽ‖`, and the weight-decay penalty drops to `Σ‖u_j‖‖v_j‖`.
    pub fn balanced(&self) -> Weights {
        self.rescaled(|a, b| (b / a).sqrt())
    }

    /// The same function with `‖u_j‖ = 1`: a feasible point of eq. (5) whose penalty
    /// `Σ‖ṽ_j‖` equals `Σ‖u_j‖‖v_j‖`.
    pub fn unit_inputs(&self) -> Weights {
        self.rescaled(|a, _| 1.0 / a)
    }
}

/// The data term `Σ_t Σ_c mask_tc L(y_tc, f_c(x_t))` of a two-layer network and its gradient.
pub trait Oracle {
    /// Fills `grad_u` (`d x h`) and `grad_v` (`h x k`) and returns the loss.
    fn loss_and_gradient(
        &mut self,
        w: &Weights,
        grad_u: &mut [f64],
        grad_v: &mut [f64],
    ) -> Result<f64, TheoryError>;

    /// The outputs on the oracle's inputs, `n x k` row-major.
    fn predictions(&mut self, w: &Weights) -> Result<Vec<f64>, TheoryError>;
}

/// The f64 reference implementation of the network and its gradient.
#[derive(Debug, Clone)]
pub struct HostOracle {
    /// Inputs, `n x d`.
    pub x: DMatrix<f64>,
    /// Targets, `n x k`.
    pub y: DMatrix<f64>,
    /// Weights of each target in the loss (matrix completion's observed set), `n x k`.
    pub mask: DMatrix<f64>,
    pub activation: Activation,
    pub loss: Loss,
}

impl HostOracle {
    pub fn new(x: DMatrix<f64>, y: DMatrix<f64>, activation: Activation, loss: Loss) -> Self {
        let mask = DMatrix::from_element(y.nrows(), y.ncols(), 1.0);
        HostOracle {
            x,
            y,
            mask,
            activation,
            loss,
        }
    }

    fn hidden(&self, w: &Weights) -> (DMatrix<f64>, DMatrix<f64>) {
        let pre = &self.x * w.u_matrix();
        let post = match self.activation {
            Activation::Relu => pre.map(|z| z.max(0.0)),
            Activation::Linear => pre.clone(),
        };
        (pre, post)
    }
}

impl Oracle for HostOracle {
    fn loss_and_gradient(
        &mut self,
        w: &Weights,
        grad_u: &mut [f64],
        grad_v: &mut [f64],
    ) -> Result<f64, TheoryError> {
        let (pre, post) = self.hidden(w);
        let out = &post * w.v_matrix();
        let mut loss = 0.0;
        let mut d_out = DMatrix::zeros(out.nrows(), out.ncols());
        for ((&f, &y), (&m, g)) in out
            .iter()
            .zip(self.y.iter())
            .zip(self.mask.iter().zip(d_out.iter_mut()))
        {
            loss += m * self.loss.value(f, y);
            *g = m * self.loss.derivative(f, y);
        }
        let gv = post.transpose() * &d_out;
        let mut d_hidden = &d_out * w.v_matrix().transpose();
        if self.activation == Activation::Relu {
            d_hidden.zip_apply(&pre, |g, z| {
                if z <= 0.0 {
                    *g = 0.0
                }
            });
        }
        let gu = self.x.transpose() * d_hidden;
        for i in 0..w.d {
            for j in 0..w.h {
                grad_u[i * w.h + j] = gu[(i, j)];
            }
        }
        for j in 0..w.h {
            for c in 0..w.k {
                grad_v[j * w.k + c] = gv[(j, c)];
            }
        }
        Ok(loss)
    }

    fn predictions(&mut self, w: &Weights) -> Result<Vec<f64>, TheoryError> {
        let out = self.hidden(w).1 * w.v_matrix();
        Ok((0..out.nrows())
            .flat_map(|t| (0..out.ncols()).map(move |c| (t, c)))
            .map(|(t, c)| out[(t, c)])
            .collect())
    }
}

/// How the optimizers run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescentSettings {
    pub lr: f64,
    /// Heavy-ball momentum (0 for plain gradient descent).
    pub momentum: f64,
    pub max_iterations: usize,
    /// Converged when the norm of the (proximal) gradient falls below this.
    pub gradient_tolerance: f64,
    /// Record the objective every this many iterations.
    pub record_every: usize,
}

impl DescentSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.lr.is_finite() && self.lr > 0.0) {
            p.push(format!("lr = {} must be positive", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            p.push(format!("momentum = {} must be in [0, 1)", self.momentum));
        }
        if self.max_iterations == 0 {
            p.push("max_iterations must be at least 1".into());
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance >= 0.0) {
            p.push(format!(
                "gradient_tolerance = {} must be non-negative",
                self.gradient_tolerance
            ));
        }
        if self.record_every == 0 {
            p.push("record_every must be at least 1".into());
        }
        p
    }
}

/// One recorded point of an optimization.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    pub iteration: usize,
    pub objective: f64,
    pub loss: f64,
    /// `½Σ(‖u_j‖² + ‖v_j‖²) − Σ‖u_j‖‖v_j‖`.
    pub balance_gap: f64,
    pub gradient_norm: f64,
}

/// Where an optimization ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descent {
    pub weights: Weights,
    pub objective: f64,
    pub loss: f64,
    pub iterations: usize,
    pub converged: bool,
    pub gradient_norm: f64,
    pub history: Vec<TracePoint>,
}

/// Eq. (4)'s objective: `loss + λ·½Σ(‖u_j‖² + ‖v_j‖²)`.
pub fn weight_decay_objective(loss: f64, w: &Weights, lambda: f64) -> f64 {
    loss + lambda * w.weight_decay_penalty()
}

/// Eq. (5)'s objective: `loss + λΣ‖v_j‖` (feasible when every `‖u_j‖ ≤ 1`).
pub fn l1_objective(loss: f64, w: &Weights, lambda: f64) -> f64 {
    loss + lambda * w.output_l1()
}

fn check_finite(iteration: usize, objective: f64) -> Result<(), TheoryError> {
    if objective.is_finite() && objective < 1e15 {
        Ok(())
    } else {
        Err(TheoryError::Diverged {
            iteration,
            objective,
        })
    }
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// `w += scale·(g_u, g_v)`.
fn step_along(w: &mut Weights, grad_u: &[f64], grad_v: &[f64], scale: f64) {
    for (x, g) in w.u.iter_mut().zip(grad_u).chain(w.v.iter_mut().zip(grad_v)) {
        *x += scale * g;
    }
}

/// What both optimizers do after evaluating an iterate: record it every `record_every`
/// iterations, finish once converged or out of iterations, stop when asked.
struct Recorder<'a> {
    settings: &'a DescentSettings,
    history: Vec<TracePoint>,
}

impl Recorder<'_> {
    /// `Some` when the optimization is over (with `w` as its result).
    fn after(
        &mut self,
        iteration: usize,
        w: &Weights,
        objective: f64,
        loss: f64,
        gradient_norm: f64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Descent>, TheoryError> {
        let converged = gradient_norm <= self.settings.gradient_tolerance;
        let done = converged || iteration >= self.settings.max_iterations;
        if iteration.is_multiple_of(self.settings.record_every) || done {
            self.history.push(TracePoint {
                iteration,
                objective,
                loss,
                balance_gap: w.balance_gap(),
                gradient_norm,
            });
        }
        if done {
            return Ok(Some(Descent {
                weights: w.clone(),
                objective,
                loss,
                iterations: iteration,
                converged,
                gradient_norm,
                history: std::mem::take(&mut self.history),
            }));
        }
        if stop() {
            return Err(TheoryError::Interrupted);
        }
        Ok(None)
    }
}

/// Eq. (4) by gradient descent with heavy-ball momentum on `loss + λ/2 Σ‖w‖²` (with `λ = 0`,
/// plain unregularized training). `stop` is polled every iteration.
pub fn train_weight_decay(
    oracle: &mut dyn Oracle,
    start: &Weights,
    lambda: f64,
    settings: &DescentSettings,
    stop: &dyn Fn() -> bool,
) -> Result<Descent, TheoryError> {
    let mut w = start.clone();
    let (mut gu, mut gv) = (vec![0.0; w.u.len()], vec![0.0; w.v.len()]);
    // The heavy-ball velocity, laid out like the weights.
    let mut velocity = Weights::zeros(w.d, w.h, w.k);
    let mut recorder = Recorder {
        settings,
        history: Vec::new(),
    };
    let mut iteration = 0;
    loop {
        let loss = oracle.loss_and_gradient(&w, &mut gu, &mut gv)?;
        let objective = weight_decay_objective(loss, &w, lambda);
        check_finite(iteration, objective)?;
        for (g, x) in gu.iter_mut().zip(&w.u).chain(gv.iter_mut().zip(&w.v)) {
            *g += lambda * x;
        }
        let gradient_norm = (norm(&gu).powi(2) + norm(&gv).powi(2)).sqrt();
        if let Some(done) = recorder.after(iteration, &w, objective, loss, gradient_norm, stop)? {
            return Ok(done);
        }
        for m in velocity.u.iter_mut().chain(velocity.v.iter_mut()) {
            *m *= settings.momentum;
        }
        step_along(&mut velocity, &gu, &gv, -settings.lr);
        step_along(&mut w, &velocity.u, &velocity.v, 1.0);
        iteration += 1;
    }
}

/// The proximal map of eq. (5)'s non-smooth part with step `t`: every `u_j` projected onto the
/// unit ball, every `v_j` group-soft-thresholded by `tλ`.
fn prox_l1_ball(w: &mut Weights, t_lambda: f64) {
    let norms = w.input_norms();
    for (j, a) in norms.into_iter().enumerate() {
        if a > 1.0 {
            for i in 0..w.d {
                w.u[i * w.h + j] /= a;
            }
        }
    }
    let out = w.output_norms();
    for (j, b) in out.into_iter().enumerate() {
        let keep = if b > 0.0 {
            (1.0 - t_lambda / b).max(0.0)
        } else {
            0.0
        };
        for x in &mut w.v[j * w.k..(j + 1) * w.k] {
            *x *= keep;
        }
    }
}

/// Eq. (5) by proximal gradient with momentum (extrapolation `y = x + β(x − x_prev)`, then a
/// proximal step from `y`). The start is first made feasible. Converged when the gradient
/// mapping `‖x − prox(x − η∇L(x))‖/η` falls below the tolerance.
pub fn train_l1_constrained(
    oracle: &mut dyn Oracle,
    start: &Weights,
    lambda: f64,
    settings: &DescentSettings,
    stop: &dyn Fn() -> bool,
) -> Result<Descent, TheoryError> {
    let mut x = start.clone();
    prox_l1_ball(&mut x, 0.0);
    let mut previous = x.clone();
    let (mut gu, mut gv) = (vec![0.0; x.u.len()], vec![0.0; x.v.len()]);
    let mut recorder = Recorder {
        settings,
        history: Vec::new(),
    };
    let mut iteration = 0;
    let eta = settings.lr;
    loop {
        // The loss, objective and gradient mapping at the current point.
        let loss = oracle.loss_and_gradient(&x, &mut gu, &mut gv)?;
        let objective = l1_objective(loss, &x, lambda);
        check_finite(iteration, objective)?;
        let mut probe = x.clone();
        step_along(&mut probe, &gu, &gv, -eta);
        prox_l1_ball(&mut probe, eta * lambda);
        let mapping: f64 = probe
            .u
            .iter()
            .zip(&x.u)
            .chain(probe.v.iter().zip(&x.v))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
            / eta;
        if let Some(done) = recorder.after(iteration, &x, objective, loss, mapping, stop)? {
            return Ok(done);
        }
        let next = if settings.momentum > 0.0 {
            let mut y = x.clone();
            let pairs = y.u.iter_mut().zip(x.u.iter().zip(&previous.u));
            for (a, (b, c)) in pairs.chain(y.v.iter_mut().zip(x.v.iter().zip(&previous.v))) {
                *a = b + settings.momentum * (b - c);
            }
            oracle.loss_and_gradient(&y, &mut gu, &mut gv)?;
            step_along(&mut y, &gu, &gv, -eta);
            prox_l1_ball(&mut y, eta * lambda);
            y
        } else {
            probe
        };
        previous = std::mem::replace(&mut x, next);
        iteration += 1;
    }
}

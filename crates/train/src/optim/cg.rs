//! Nonlinear conjugate gradient on Burn tensors (Nocedal & Wright, ch. 5.2): the direction
//! is Polak-Ribière+, `d₊ = −g₊ + β d` with `β = max(0, g₊ᵀ(g₊ − g) / ‖g‖²)`, restarted with
//! steepest descent whenever it is not a descent direction; the step satisfies the strong
//! Wolfe conditions ([`crate::optim::line_search`]). The objective is any function of one flat
//! tensor that returns its value and gradient: the network's full-batch loss by autodiff in
//! training, known functions in the tests.

use burn::tensor::Tensor;

use crate::optim::CgSettings;
use crate::optim::line_search::{Sample, SearchOutcome, WolfeSearch};

/// A function of a flat parameter tensor: its value and gradient at `x`.
pub trait Objective {
    type Error;
    fn evaluate(&mut self, x: &Tensor<1>) -> Result<(f64, Tensor<1>), Self::Error>;
}

/// `aᵀb`, read back as f64.
pub fn dot(a: &Tensor<1>, b: &Tensor<1>) -> f64 {
    a.clone().mul(b.clone()).sum().into_scalar::<f64>()
}

/// A trial point of a line search and the gradient there.
type PointAndGradient = (Tensor<1>, Tensor<1>);

/// Where the iteration stands: the point, its value and gradient, the direction and the step
/// the next line search tries first.
#[derive(Debug, Clone)]
pub struct CgState {
    pub x: Tensor<1>,
    pub value: f64,
    pub gradient: Tensor<1>,
    pub direction: Tensor<1>,
    /// The first step the next line search tries.
    pub next_step: f64,
    /// Function and gradient evaluations so far.
    pub evaluations: u64,
}

/// What one iteration did.
#[derive(Debug, Clone, PartialEq)]
pub struct CgIteration {
    /// The accepted step length along the direction (0: none).
    pub step: f64,
    /// The Polak-Ribière+ coefficient of the next direction (0: a restart).
    pub beta: f64,
    /// `f` and `gᵀd` before the step, and after it `f` and the new gradient along the old
    /// direction: what the Wolfe conditions compare.
    pub value_before: f64,
    pub slope_before: f64,
    pub value_after: f64,
    pub slope_after: f64,
    /// Whether the step satisfied both strong Wolfe conditions (else only decrease).
    pub wolfe: bool,
    /// Evaluations the iteration used.
    pub evaluations: usize,
    /// No step decreased the objective along steepest descent: the iteration is at its
    /// floating-point floor.
    pub stalled: bool,
}

impl CgState {
    /// The state at `x`: its value and gradient evaluated, steepest descent first.
    pub fn start<O: Objective>(
        objective: &mut O,
        x: Tensor<1>,
        settings: &CgSettings,
    ) -> Result<Self, O::Error> {
        let (value, gradient) = objective.evaluate(&x)?;
        Ok(CgState {
            x,
            value,
            direction: gradient.clone().neg(),
            gradient,
            next_step: settings.initial_step,
            evaluations: 1,
        })
    }

    /// The norm of the gradient at the current point.
    pub fn gradient_norm(&self) -> f64 {
        dot(&self.gradient, &self.gradient).sqrt()
    }

    /// One iteration: a line search along the direction, then the next direction.
    pub fn iterate<O: Objective>(
        &mut self,
        objective: &mut O,
        settings: &CgSettings,
    ) -> Result<CgIteration, O::Error> {
        let mut slope0 = dot(&self.gradient, &self.direction);
        if slope0 >= 0.0 {
            self.restart(settings);
            slope0 = dot(&self.gradient, &self.direction);
        }
        let (outcome, used) = self.search(objective, settings, slope0)?;
        self.evaluations += used as u64;
        let (sample, wolfe) = match outcome {
            SearchOutcome::Wolfe(s) => (s, true),
            SearchOutcome::Decrease(s) => (s, false),
            SearchOutcome::NoDecrease => return Ok(self.no_decrease(settings, slope0, used)),
        };
        let (x, gradient) = sample.point;
        // Polak-Ribière+ (Nocedal & Wright, eq. 5.44-5.45).
        let old = dot(&self.gradient, &self.gradient);
        let beta = (dot(&gradient, &gradient) - dot(&gradient, &self.gradient)) / old;
        let beta = if beta.is_finite() { beta.max(0.0) } else { 0.0 };
        let direction = gradient
            .clone()
            .neg()
            .add(self.direction.clone().mul_scalar(beta));
        let (value_before, step) = (self.value, sample.step);
        (self.x, self.value, self.gradient, self.direction) =
            (x, sample.value, gradient, direction);
        let mut beta = beta;
        let mut slope = dot(&self.gradient, &self.direction);
        if slope >= 0.0 {
            self.direction = self.gradient.clone().neg();
            slope = -dot(&self.gradient, &self.gradient);
            beta = 0.0;
        }
        // The next first step: the last one scaled by the change in slope (eq. 3.60).
        let next = step * slope0 / slope;
        self.next_step = if next.is_finite() && next > 0.0 {
            next
        } else {
            settings.initial_step
        };
        Ok(CgIteration {
            step,
            beta,
            value_before,
            slope_before: slope0,
            value_after: sample.value,
            slope_after: sample.slope,
            wolfe,
            evaluations: used,
            stalled: false,
        })
    }

    /// The line search along the direction from the current point.
    fn search<O: Objective>(
        &self,
        objective: &mut O,
        settings: &CgSettings,
        slope0: f64,
    ) -> Result<(SearchOutcome<PointAndGradient>, usize), O::Error> {
        let wolfe = WolfeSearch {
            c1: settings.c1,
            c2: settings.c2,
            max_evaluations: settings.max_line_search,
        };
        let (x, d) = (&self.x, &self.direction);
        let mut phi = |step: f64| -> Result<Sample<PointAndGradient>, O::Error> {
            let point = x.clone().add(d.clone().mul_scalar(step));
            let (value, gradient) = objective.evaluate(&point)?;
            Ok(Sample {
                step,
                value,
                slope: dot(&gradient, d),
                point: (point, gradient),
            })
        };
        wolfe.search(self.value, slope0, self.next_step, &mut phi)
    }

    /// No step decreased the objective: a conjugate direction restarts with steepest
    /// descent (the next iteration tries it); steepest descent itself has stalled.
    fn no_decrease(&mut self, settings: &CgSettings, slope0: f64, used: usize) -> CgIteration {
        let steepest = -slope0 == dot(&self.gradient, &self.gradient);
        self.restart(settings);
        CgIteration {
            step: 0.0,
            beta: 0.0,
            value_before: self.value,
            slope_before: slope0,
            value_after: self.value,
            slope_after: slope0,
            wolfe: false,
            evaluations: used,
            stalled: steepest,
        }
    }

    fn restart(&mut self, settings: &CgSettings) {
        self.direction = self.gradient.clone().neg();
        self.next_step = settings.initial_step;
    }
}

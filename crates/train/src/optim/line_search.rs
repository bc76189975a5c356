//! A line search for the strong Wolfe conditions (Nocedal & Wright, *Numerical
//! Optimization*, 2nd ed., Algorithms 3.5 and 3.6): along a descent direction, a step `α` with
//!
//! - sufficient decrease: `φ(α) ≤ φ(0) + c₁ α φ'(0)`, and
//! - curvature: `|φ'(α)| ≤ c₂ |φ'(0)|`,
//!
//! where `φ(α) = f(x + α d)`. The bracketing phase grows the step until it brackets such a
//! point; `zoom` narrows the bracket by safeguarded cubic interpolation.

/// One evaluated step: `φ(α)`, `φ'(α)` and whatever the caller keeps of the point (the
/// point itself and its gradient).
#[derive(Debug, Clone)]
pub struct Sample<P> {
    pub step: f64,
    pub value: f64,
    pub slope: f64,
    pub point: P,
}

/// The search's constants: `0 < c1 < c2 < 1`, and the evaluations it may use.
#[derive(Debug, Clone, Copy)]
pub struct WolfeSearch {
    pub c1: f64,
    pub c2: f64,
    pub max_evaluations: usize,
}

/// How a search ended.
#[derive(Debug)]
pub enum SearchOutcome<P> {
    /// A step satisfying both strong Wolfe conditions.
    Wolfe(Sample<P>),
    /// The evaluations ran out (or the bracket shrank to nothing): the best step found, which
    /// satisfies sufficient decrease but not the curvature condition.
    Decrease(Sample<P>),
    /// No step decreased the function: at its floating-point floor along this direction.
    NoDecrease,
}

impl WolfeSearch {
    fn armijo(&self, value0: f64, slope0: f64, s: &Sample<impl Sized>) -> bool {
        s.value <= value0 + self.c1 * s.step * slope0
    }

    fn curvature(&self, slope0: f64, s: &Sample<impl Sized>) -> bool {
        s.slope.abs() <= -self.c2 * slope0
    }

    /// Whether `s` satisfies both strong Wolfe conditions for `φ(0) = value0`,
    /// `φ'(0) = slope0`.
    pub fn accepts(&self, value0: f64, slope0: f64, s: &Sample<impl Sized>) -> bool {
        self.armijo(value0, slope0, s) && self.curvature(slope0, s)
    }

    /// Searches from `φ(0) = value0`, `φ'(0) = slope0 < 0`, trying `first` first; `phi`
    /// evaluates a step. Returns the outcome and the evaluations used.
    pub fn search<P: Clone, E>(
        &self,
        value0: f64,
        slope0: f64,
        first: f64,
        phi: &mut dyn FnMut(f64) -> Result<Sample<P>, E>,
    ) -> Result<(SearchOutcome<P>, usize), E> {
        let origin = (0.0, value0, slope0);
        let mut search = Search {
            wolfe: *self,
            origin,
            phi,
            evaluations: 0,
        };
        let outcome = search.bracket(first)?;
        Ok((outcome, search.evaluations))
    }
}

/// One search in progress: `φ(0)` and `φ'(0)` as `(0, value, slope)`, and the evaluations.
struct Search<'a, P, E> {
    wolfe: WolfeSearch,
    origin: (f64, f64, f64),
    phi: &'a mut dyn FnMut(f64) -> Result<Sample<P>, E>,
    evaluations: usize,
}

impl<P: Clone, E> Search<'_, P, E> {
    fn eval(&mut self, step: f64) -> Result<Sample<P>, E> {
        self.evaluations += 1;
        (self.phi)(step)
    }

    fn armijo(&self, s: &Sample<P>) -> bool {
        s.value.is_finite() && self.wolfe.armijo(self.origin.1, self.origin.2, s)
    }

    fn curvature(&self, s: &Sample<P>) -> bool {
        self.wolfe.curvature(self.origin.2, s)
    }

    /// `(step, value, slope)` of a bracket end (none: the origin).
    fn end(&self, s: &Option<Sample<P>>) -> (f64, f64, f64) {
        s.as_ref()
            .map_or(self.origin, |s| (s.step, s.value, s.slope))
    }

    /// Algorithm 3.5: grows the step from `first` until it brackets an acceptable one.
    fn bracket(&mut self, first: f64) -> Result<SearchOutcome<P>, E> {
        let mut previous: Option<Sample<P>> = None;
        let mut step = first;
        while self.evaluations < self.wolfe.max_evaluations {
            let s = self.eval(step)?;
            if !s.value.is_finite() {
                // Too far (the loss overflowed): back off towards the last finite step.
                let last = self.end(&previous).0;
                step = last + (step - last) / 4.0;
                continue;
            }
            let rose = previous.as_ref().is_some_and(|p| s.value >= p.value);
            if !self.armijo(&s) || rose {
                return self.zoom(previous, Some(s));
            }
            if self.curvature(&s) {
                return Ok(SearchOutcome::Wolfe(s));
            }
            if s.slope >= 0.0 {
                return self.zoom(Some(s), previous);
            }
            // Still descending: extrapolate, between 1.1 and 10 times the step.
            let (a, b) = (self.end(&previous), (s.step, s.value, s.slope));
            let next = cubic_minimizer(a, b).unwrap_or(2.0 * s.step);
            step = next.clamp(1.1 * s.step, 10.0 * s.step);
            previous = Some(s);
        }
        Ok(best(previous))
    }

    /// Algorithm 3.6: `low` satisfies sufficient decrease with the lowest value so far; the
    /// bracket between it and `high` holds a step satisfying both conditions.
    fn zoom(
        &mut self,
        mut low: Option<Sample<P>>,
        mut high: Option<Sample<P>>,
    ) -> Result<SearchOutcome<P>, E> {
        while self.evaluations < self.wolfe.max_evaluations {
            let (lo, hi) = (self.end(&low), self.end(&high));
            let (a, b) = (lo.0.min(hi.0), lo.0.max(hi.0));
            if b - a <= f64::EPSILON * b {
                break;
            }
            // Interpolate, safeguarded to the middle 80% of the bracket.
            let guess = match hi.1.is_finite() {
                true => cubic_minimizer(lo, hi).unwrap_or((a + b) / 2.0),
                false => (a + b) / 2.0,
            };
            let step = guess.clamp(a + 0.1 * (b - a), b - 0.1 * (b - a));
            let s = self.eval(step)?;
            if !self.armijo(&s) || s.value >= lo.1 {
                high = Some(s);
                continue;
            }
            if self.curvature(&s) {
                return Ok(SearchOutcome::Wolfe(s));
            }
            if s.slope * (hi.0 - lo.0) >= 0.0 {
                high = low.take();
            }
            low = Some(s);
        }
        Ok(best(low))
    }
}

fn best<P>(low: Option<Sample<P>>) -> SearchOutcome<P> {
    match low {
        Some(s) if s.step > 0.0 => SearchOutcome::Decrease(s),
        _ => SearchOutcome::NoDecrease,
    }
}

/// The minimizer of the cubic through two `(step, value, slope)` samples (Nocedal & Wright,
/// eq. 3.59), if it has one.
fn cubic_minimizer(a: (f64, f64, f64), b: (f64, f64, f64)) -> Option<f64> {
    let d1 = a.2 + b.2 - 3.0 * (a.1 - b.1) / (a.0 - b.0);
    let d2 = (d1 * d1 - a.2 * b.2).sqrt();
    if !d2.is_finite() {
        return None;
    }
    let d2 = if b.0 >= a.0 { d2 } else { -d2 };
    let x = b.0 - (b.0 - a.0) * (b.2 + d2 - d1) / (b.2 - a.2 + 2.0 * d2);
    x.is_finite().then_some(x)
}

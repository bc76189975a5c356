//! PAC-Bayes flatness (Jiang, Neyshabur, Mobahi, Krishnan & Bengio 2020, *Fantastic
//! Generalization Measures*, Appendix C): how much Gaussian noise on the weights a trained
//! network tolerates before its training accuracy falls by [`TARGET_DROP`].
//!
//! - `σ`: the largest standard deviation of isotropic noise `N(0, σ²)` on every weight at which
//!   the mean training accuracy over [`DRAWS`] noisy copies is within [`TOLERANCE`] of
//!   `accuracy − 0.1`, found by bisection on `[0, 2]` in at most [`SEARCH_DEPTH`] steps.
//!   Measures: `pacbayes.flatness = 1/σ²` (eq. 53), and the bound terms
//!   `pacbayes.init = ‖w − w₀‖²/(4σ²) + ln(m/σ) + 10` (eq. 48) and `pacbayes.orig`, the same
//!   with `‖w‖²` (eq. 49); `m` is the number of training examples.
//! - `σ'`, the magnitude-aware form: noise of standard deviation `σ'|wᵢ| + ε` on weight `i`
//!   (`ε` = [`MAGNITUDE_EPS`]). `pacbayes.mag.flatness = 1/σ'²` (eq. 61), and
//!   `pacbayes.mag.init = ¼ Σᵢ ln((ε² + (σ'² + 1)‖w − w₀‖²/ω) / (ε² + σ'²(wᵢ − w₀ᵢ)²)) +
//!   ln(m/σ') + 10` (eq. 56), `pacbayes.mag.orig` with `‖w‖²` in the numerator (eq. 57);
//!   `ω` is the number of weights.
//!
//! Equation numbers are those the public reference code (`nitarshan/robust-generalization-
//! measures`, `data/generation/measures.py`) gives. Where this follows the paper rather than
//! that code: the code passes `σ²` (and `σ²|w|² + ε²`) where a standard deviation is expected;
//! here the standard deviation is `σ` (and `σ|w| + ε`), as the paper defines it. Its values are
//! also reported as they are, not divided by `m` under a square root (a monotone map, which no
//! ranking sees).
//!
//! The draws are common random numbers: [`DRAWS`] unit-normal directions `Z` are drawn once
//! (seeded by the run's seed, stream `STREAM_FLATNESS`) and scaled by each trial `σ`, so the
//! estimated accuracy falls smoothly as `σ` grows and the same seed gives the same `σ` on
//! every backend. All draws go through one batched forward pass per chunk of the split
//! (`[DRAWS, d, H]` weights, as an ensemble's stacked evaluation).
//!
//! Sharpness with a searched box, the other half of Jiang et al.'s flatness family, is in
//! [`sharpness`] (eqs. 54 and 62).
//!
//! Computed post hoc by `realbias measures DIR --recompute` from saved networks, and at the
//! end of every run whose config sets `train.flatness = true` (`ledger`), with the same
//! values: both take the final network, its initial one, the training split and the seed.

pub mod sharpness;

use burn::tensor::{Device, Tensor, TensorData, activation::relu};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use realbias_data::Split;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::eval::{predicted_class, read_logits};

/// The fall of the training accuracy that defines `σ` (Jiang et al.: 0.1).
pub const TARGET_DROP: f64 = 0.1;
/// How close to [`TARGET_DROP`] the search stops (the reference code's 1e-2).
pub const TOLERANCE: f64 = 0.01;
/// Bisection steps at most (the reference code's 15), for σ and for the box's α.
pub const SEARCH_DEPTH: usize = 15;
/// Noisy copies whose mean accuracy is taken at each trial `σ` (the reference code's 10; 8
/// fit one batched pass of the widest zoo network in a few tens of MB).
pub const DRAWS: usize = 8;
/// `ε` of the magnitude-aware noise (the reference code's 1e-3).
pub const MAGNITUDE_EPS: f64 = 1e-3;
/// Upper end of the search interval (the reference code's 2).
pub const SIGMA_MAX: f64 = 2.0;
/// Random stream of the noise directions (sharpness uses 20).
const STREAM_FLATNESS: u64 = 21;
/// Examples per batched forward pass.
const CHUNK: usize = 500;

/// What one bisection found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SigmaSearch {
    pub sigma: f64,
    /// The mean accuracy's fall at `sigma` (within [`TOLERANCE`] of [`TARGET_DROP`] unless the
    /// search ran out of steps or of interval).
    pub drop: f64,
    pub steps: usize,
}

/// The flatness measures of one network (module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flatness {
    /// The unperturbed training accuracy the drops are taken from.
    pub accuracy: f64,
    pub isotropic: SigmaSearch,
    pub magnitude: SigmaSearch,
    pub pacbayes_flatness: f64,
    pub pacbayes_init: f64,
    pub pacbayes_orig: f64,
    pub pacbayes_mag_flatness: f64,
    pub pacbayes_mag_init: f64,
    pub pacbayes_mag_orig: f64,
    /// The box searches ([`sharpness`]) and `1/α²`, `1/α'²`.
    pub sharpness_box: sharpness::BoxSearch,
    pub sharpness_mag_box: sharpness::BoxSearch,
    pub sharpness_flatness: f64,
    pub sharpness_mag_flatness: f64,
    /// The seed of the noise directions and of the ascent's start, and how many draws.
    pub seed: u64,
    pub draws: usize,
    pub seconds: f64,
}

/// Bisection for the `x` in `bounds` whose `effect(x)` (growing with `x`) is within
/// `tolerance` of `target`, in at most [`SEARCH_DEPTH`] steps, each trying `midpoint` of the
/// interval: `(x, effect(x), steps)` of the last point tried. One search for both flatness
/// families: σ on a linear scale, the box's α on a log scale.
pub(crate) fn bisect(
    (mut lower, mut upper): (f64, f64),
    midpoint: fn(f64, f64) -> f64,
    (target, tolerance): (f64, f64),
    mut effect: impl FnMut(f64) -> Result<f64, TrainError>,
) -> Result<(f64, f64, usize), TrainError> {
    let mut found = (midpoint(lower, upper), f64::NAN, 0);
    for step in 1..=SEARCH_DEPTH {
        let x = midpoint(lower, upper);
        let value = effect(x)?;
        found = (x, value, step);
        if (value - target).abs() < tolerance {
            break;
        }
        match value > target {
            true => upper = x,
            false => lower = x,
        }
    }
    Ok(found)
}

/// Bisection for the `σ` at which `accuracy_at(σ)` is [`TARGET_DROP`] below `accuracy`.
pub fn search_sigma(
    accuracy: f64,
    mut accuracy_at: impl FnMut(f64) -> Result<f64, TrainError>,
) -> Result<SigmaSearch, TrainError> {
    let halfway = |a: f64, b: f64| (a + b) / 2.0;
    let drop_at = |sigma| Ok((accuracy - accuracy_at(sigma)?).abs());
    let (sigma, drop, steps) =
        bisect((0.0, SIGMA_MAX), halfway, (TARGET_DROP, TOLERANCE), drop_at)?;
    Ok(SigmaSearch { sigma, drop, steps })
}

/// A network on the host: `u` is `d x H`, `v` is `H x k`, row-major; `relu` off for the
/// linear networks of Section 4.
pub struct Weights<'a> {
    pub u: &'a [f32],
    pub v: &'a [f32],
    pub dims: (usize, usize, usize),
    pub relu: bool,
}

impl<'a> Weights<'a> {
    /// A view of a saved network's weights (`crate::weights::Weights`) of shape `dims`.
    pub fn of(w: &'a crate::weights::Weights, dims: (usize, usize, usize), relu: bool) -> Self {
        Weights {
            u: &w.u,
            v: &w.v,
            dims,
            relu,
        }
    }
}

/// The training split on the device, in chunks of `[1, rows, d]`, and the activation.
struct Chunks(Vec<(Tensor<3>, Vec<u8>)>, bool);

impl Chunks {
    fn new(split: &Split, relu_on: bool, device: &Device) -> Self {
        let chunks = (0..split.len())
            .step_by(CHUNK)
            .map(|start| {
                let part = split.slice(start..(start + CHUNK).min(split.len()));
                let rows = part.labels.len();
                let x = TensorData::new(part.features, [1, rows, split.dim]);
                (Tensor::from_data(x, device), part.labels)
            })
            .collect();
        Chunks(chunks, relu_on)
    }

    /// Each of the `[R, d, H]`, `[R, H, k]` networks' accuracy on the split.
    fn accuracies(&self, u: &Tensor<3>, v: &Tensor<3>) -> Result<Vec<f64>, TrainError> {
        let r = u.dims()[0];
        let mut correct = vec![0usize; r];
        let mut total = 0;
        for (x, labels) in &self.0 {
            let pre = x.clone().matmul(u.clone());
            let hidden = if self.1 { relu(pre) } else { pre };
            let logits = hidden.matmul(v.clone());
            let logits = read_logits(logits.try_into_vec_as(), r * labels.len())?;
            let k = logits.len() / (r * labels.len());
            for (m, member) in logits.chunks_exact(k * labels.len()).enumerate() {
                let rows = member.chunks_exact(k).zip(labels);
                correct[m] += rows.filter(|(row, y)| predicted_class(row) == **y).count();
            }
            total += labels.len();
        }
        Ok(correct
            .iter()
            .map(|&c| c as f64 / total.max(1) as f64)
            .collect())
    }
}

/// [`DRAWS`] unit-normal tensors shaped like `w` (`[DRAWS, rows, cols]`).
fn directions(rng: &mut ChaCha8Rng, (rows, cols): (usize, usize), device: &Device) -> Tensor<3> {
    let values: Vec<f32> = (0..DRAWS * rows * cols)
        .map(|_| StandardNormal.sample(&mut *rng))
        .collect();
    Tensor::from_data(TensorData::new(values, [DRAWS, rows, cols]), device)
}

/// The weights, their noise directions and the split, on the device.
struct Noisy {
    u: Tensor<3>,
    v: Tensor<3>,
    zu: Tensor<3>,
    zv: Tensor<3>,
    chunks: Chunks,
}

impl Noisy {
    fn new(net: &Weights, split: &Split, seed: u64, device: &Device) -> Self {
        let (d, h, k) = net.dims;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM_FLATNESS);
        let upload = |w: &[f32], shape: [usize; 3]| {
            Tensor::<3>::from_data(TensorData::new(w.to_vec(), shape), device)
        };
        Noisy {
            u: upload(net.u, [1, d, h]),
            v: upload(net.v, [1, h, k]),
            zu: directions(&mut rng, (d, h), device),
            zv: directions(&mut rng, (h, k), device),
            chunks: Chunks::new(split, net.relu, device),
        }
    }

    /// The unperturbed network's accuracy.
    fn accuracy(&self) -> Result<f64, TrainError> {
        Ok(self.chunks.accuracies(&self.u, &self.v)?[0])
    }

    /// The accuracy of each of the [`DRAWS`] copies with noise `σ·z` (isotropic) or
    /// `(σ|w| + ε)·z` (magnitude-aware).
    fn draw_accuracies(&self, sigma: f64, magnitude: bool) -> Result<Vec<f64>, TrainError> {
        let noisy = |w: &Tensor<3>, z: &Tensor<3>| match magnitude {
            true => {
                let scale = w.clone().abs().mul_scalar(sigma).add_scalar(MAGNITUDE_EPS);
                w.clone() + scale * z.clone()
            }
            false => w.clone() + z.clone().mul_scalar(sigma),
        };
        self.chunks
            .accuracies(&noisy(&self.u, &self.zu), &noisy(&self.v, &self.zv))
    }

    /// The mean of [`draw_accuracies`](Self::draw_accuracies).
    fn mean_accuracy(&self, sigma: f64, magnitude: bool) -> Result<f64, TrainError> {
        let accuracies = self.draw_accuracies(sigma, magnitude)?;
        Ok(accuracies.iter().sum::<f64>() / accuracies.len() as f64)
    }
}

/// The flatness measures of `net` (initial network `init`) trained on `split`, with the
/// noise directions of `seed`.
pub fn flatness(
    net: &Weights,
    init: &Weights,
    split: &Split,
    seed: u64,
    device: &Device,
) -> Result<Flatness, TrainError> {
    let start = std::time::Instant::now();
    let noisy = Noisy::new(net, split, seed, device);
    let accuracy = noisy.accuracy()?;
    let isotropic = search_sigma(accuracy, |s| noisy.mean_accuracy(s, false))?;
    let magnitude = search_sigma(accuracy, |s| noisy.mean_accuracy(s, true))?;
    let bounds = Bounds::of(net, init, split.len());
    let (sharpness_box, sharpness_mag_box) = sharpness::box_searches(net, split, seed, device)?;
    Ok(Flatness {
        accuracy,
        isotropic,
        magnitude,
        pacbayes_flatness: 1.0 / isotropic.sigma.powi(2),
        pacbayes_init: bounds.isotropic(bounds.distance_sq, isotropic.sigma),
        pacbayes_orig: bounds.isotropic(bounds.norm_sq, isotropic.sigma),
        pacbayes_mag_flatness: 1.0 / magnitude.sigma.powi(2),
        pacbayes_mag_init: bounds.magnitude(bounds.distance_sq, magnitude.sigma),
        pacbayes_mag_orig: bounds.magnitude(bounds.norm_sq, magnitude.sigma),
        sharpness_box,
        sharpness_mag_box,
        sharpness_flatness: 1.0 / sharpness_box.alpha.powi(2),
        sharpness_mag_flatness: 1.0 / sharpness_mag_box.alpha.powi(2),
        seed,
        draws: DRAWS,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What the PAC-Bayes bound terms need of the weights.
struct Bounds {
    /// `‖w‖²`, `‖w − w₀‖²`, each `(wᵢ − w₀ᵢ)²`, and `m`.
    norm_sq: f64,
    distance_sq: f64,
    offsets_sq: Vec<f64>,
    examples: f64,
}

impl Bounds {
    fn of(net: &Weights, init: &Weights, examples: usize) -> Self {
        let pairs = || {
            let w = net.u.iter().chain(net.v);
            w.zip(init.u.iter().chain(init.v))
                .map(|(&a, &b)| (a as f64, b as f64))
        };
        let offsets_sq: Vec<f64> = pairs().map(|(a, b)| (a - b).powi(2)).collect();
        Bounds {
            norm_sq: pairs().map(|(a, _)| a * a).sum(),
            distance_sq: offsets_sq.iter().sum(),
            offsets_sq,
            examples: examples.max(1) as f64,
        }
    }

    /// Eq. 48 / 49: `reference/(4σ²) + ln(m/σ) + 10`.
    fn isotropic(&self, reference_sq: f64, sigma: f64) -> f64 {
        reference_sq / (4.0 * sigma * sigma) + (self.examples / sigma).ln() + 10.0
    }

    /// Eq. 56 / 57 (the reference code's form: the denominator is the distance from `w₀`).
    fn magnitude(&self, reference_sq: f64, sigma: f64) -> f64 {
        let eps_sq = MAGNITUDE_EPS * MAGNITUDE_EPS;
        let omega = self.offsets_sq.len().max(1) as f64;
        let numerator = eps_sq + (sigma * sigma + 1.0) * reference_sq / omega;
        let sum: f64 = self
            .offsets_sq
            .iter()
            .map(|o| (numerator / (eps_sq + sigma * sigma * o)).ln())
            .sum();
        sum / 4.0 + (self.examples / sigma).ln() + 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        crate::backend::device().unwrap()
    }

    /// A known accuracy curve, `1 − σ/2`: the drop is 0.1 at `σ` = 0.2.
    #[test]
    fn bisection_finds_the_sigma_of_a_known_accuracy_curve() {
        let found = search_sigma(1.0, |s| Ok(1.0 - s / 2.0)).unwrap();
        assert!((found.drop - TARGET_DROP).abs() < TOLERANCE, "{found:?}");
        assert!((found.sigma - 0.2).abs() < 2.0 * TOLERANCE, "{found:?}");
        // A network no noise can hurt (at chance already) runs to the top of the interval.
        let flat = search_sigma(0.1, |_| Ok(0.1)).unwrap();
        assert_eq!(flat.steps, SEARCH_DEPTH);
        assert!(flat.sigma > SIGMA_MAX * (1.0 - 1e-3), "{flat:?}");
    }

    /// A 3-input, 2-unit, 2-class network on 9 points (`points` = 9) or more.
    fn tiny() -> (Vec<f32>, Vec<f32>, Split) {
        tiny_with(9)
    }

    fn tiny_with(points: usize) -> (Vec<f32>, Vec<f32>, Split) {
        let u = vec![1.0, -0.5, 0.3, 0.8, -0.7, 0.2];
        let v = vec![1.0, -1.0, -0.6, 0.9];
        let features: Vec<f32> = (0..3 * points)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0 + (i / 33) as f32 * 0.1)
            .collect();
        let labels = (0..points).map(|i| (i % 2) as u8).collect();
        let split = Split {
            dim: 3,
            features,
            labels,
        };
        (u, v, split)
    }

    /// The accuracy of `(u, v)` on `split`, by hand on the host.
    fn host_accuracy(u: &[f32], v: &[f32], split: &Split) -> f64 {
        let correct = (0..split.len())
            .filter(|&n| {
                let x = &split.features[n * 3..n * 3 + 3];
                let hidden: Vec<f32> = (0..2)
                    .map(|j| (0..3).map(|i| x[i] * u[i * 2 + j]).sum::<f32>().max(0.0))
                    .collect();
                let logits: Vec<f32> = (0..2)
                    .map(|c| (0..2).map(|j| hidden[j] * v[j * 2 + c]).sum())
                    .collect();
                predicted_class(&logits) == split.labels[n]
            })
            .count();
        correct as f64 / split.len() as f64
    }

    /// The batched device pass gives, draw by draw, the accuracy a brute-force host
    /// computation gives for the same noise (isotropic and magnitude-aware).
    #[test]
    fn the_batched_noisy_accuracy_matches_a_brute_force_one() {
        let (u, v, split) = tiny_with(60);
        let net = Weights {
            u: &u,
            v: &v,
            dims: (3, 2, 2),
            relu: true,
        };
        let noisy = Noisy::new(&net, &split, 5, &device());
        assert_eq!(noisy.accuracy().unwrap(), host_accuracy(&u, &v, &split));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        rng.set_stream(STREAM_FLATNESS);
        let mut draw = |n: usize| -> Vec<f32> {
            (0..DRAWS * n)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect()
        };
        let (zu, zv) = (draw(6), draw(4));
        let cases = [
            (0.3, false),
            (0.8, false),
            (0.2, true),
            (0.5, true),
            (1.0, true),
        ];
        for (sigma, magnitude) in cases {
            let scale = |w: f32| match magnitude {
                true => sigma as f32 * w.abs() + MAGNITUDE_EPS as f32,
                false => sigma as f32,
            };
            let by_hand: Vec<f64> = (0..DRAWS)
                .map(|m| {
                    let pu: Vec<f32> = (0..6).map(|i| u[i] + scale(u[i]) * zu[m * 6 + i]).collect();
                    let pv: Vec<f32> = (0..4).map(|i| v[i] + scale(v[i]) * zv[m * 4 + i]).collect();
                    host_accuracy(&pu, &pv, &split)
                })
                .collect();
            let got = noisy.draw_accuracies(sigma, magnitude).unwrap();
            assert_eq!(got, by_hand, "σ {sigma}, magnitude-aware {magnitude}");
        }
    }

    /// The same seed gives the same σ; the bound terms follow their equations.
    #[test]
    fn the_same_seed_gives_the_same_sigma_and_the_bounds_their_equations() {
        let (u, v, split) = tiny();
        let net = Weights {
            u: &u,
            v: &v,
            dims: (3, 2, 2),
            relu: true,
        };
        let zeros = (vec![0.0; 6], vec![0.0; 4]);
        let init = Weights {
            u: &zeros.0,
            v: &zeros.1,
            ..net
        };
        let a = flatness(&net, &init, &split, 3, &device()).unwrap();
        let b = flatness(&net, &init, &split, 3, &device()).unwrap();
        assert_eq!((a.isotropic, a.magnitude), (b.isotropic, b.magnitude));
        let w_sq: f64 = u.iter().chain(&v).map(|&x| (x as f64).powi(2)).sum();
        let s = a.isotropic.sigma;
        let want = w_sq / (4.0 * s * s) + (9.0 / s).ln() + 10.0;
        assert!((a.pacbayes_init - want).abs() < 1e-9 * want.abs());
        assert_eq!(a.pacbayes_init, a.pacbayes_orig, "w₀ = 0: distance = norm");
        assert!((a.pacbayes_flatness - 1.0 / (s * s)).abs() < 1e-9 / (s * s));
        let bounds = Bounds::of(&net, &init, 9);
        let sm = 0.5f64;
        let eps_sq = MAGNITUDE_EPS.powi(2);
        let by_hand: f64 = u
            .iter()
            .chain(&v)
            .map(|&w| {
                let num = eps_sq + (sm * sm + 1.0) * w_sq / 10.0;
                (num / (eps_sq + sm * sm * (w as f64).powi(2))).ln()
            })
            .sum::<f64>()
            / 4.0
            + (9.0 / sm).ln()
            + 10.0;
        let got = bounds.magnitude(w_sq, sm);
        assert!(
            (got - by_hand).abs() < 1e-9 * by_hand.abs(),
            "{got} vs {by_hand}"
        );
    }
}

//! Complexity measures of a trained network, the candidates for "which complexity, if not the
//! number of units, controls generalization": computed once per network at the end of a run
//! from its weights, its initial weights and its training set (never during training).
//!
//! Weights are stored as in the model crate: `U` is `d x H` (column `h` is unit `h`'s `u_h`),
//! `V` is `H x k` (row `h` is `v_h`). The network is `f(x) = Vᵀ[Uᵀx]_+`.

pub mod flatness;

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use realbias_data::Split;
use realbias_model::{TwoLayerConfig, TwoLayerNet, unit_norms};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::eval::{DeviceSplit, PatternFlips};

/// Each layer is perturbed by Gaussian noise of this Frobenius norm relative to the layer's
/// own (a fixed-size perturbation, as in Keskar et al. 2017's sharpness, there of a box).
pub const SHARPNESS_RELATIVE_SIZE: f64 = 0.05;
/// Seeded perturbations averaged.
pub const SHARPNESS_DRAWS: usize = 5;
/// Random stream of the perturbations (the data crate and the trainer use 1, 2 and 10).
const STREAM_SHARPNESS: u64 = 20;

/// The measures of one network. Optional values are undefined for this network (a margin
/// measure when the margin percentile is not positive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    pub hidden: usize,
    pub parameters: usize,
    /// `‖U‖_F`, `‖V‖_F` and their product.
    pub u_frobenius: f64,
    pub v_frobenius: f64,
    pub frobenius_product: f64,
    /// The paper's group norm `Σ_h ‖u_h‖‖v_h‖` (eq. 5's unit norm, the γ₂-like measure).
    pub group_norm: f64,
    /// The path-ℓ2 norm `√(Σ_{i,h,j} u_ih² v_hj²) = √(Σ_h ‖u_h‖²‖v_h‖²)`: the ℓ2 analogue of
    /// the group norm's ℓ1 sum over units.
    pub path_norm: f64,
    /// `‖U‖₂`, `‖V‖₂` (largest singular values) and their product.
    pub u_spectral: f64,
    pub v_spectral: f64,
    pub spectral_product: f64,
    /// Distances from initialization, `‖U − U₀‖_F` and `‖V − V₀‖_F`, and relative to the initial
    /// norms (Nagarajan & Kolter 2019).
    pub u_distance: f64,
    pub v_distance: f64,
    pub u_distance_relative: f64,
    pub v_distance_relative: f64,
    /// Percentiles of the training margin `f_y(x) − max_{j≠y} f_j(x)`.
    pub margin_p5: f64,
    pub margin_p10: f64,
    /// Norm measures over the squared 10th-percentile margin γ: `(‖U‖_F‖V‖_F / γ)²`,
    /// `(Σ_h‖u_h‖‖v_h‖ / γ)²`, `(path / γ)²`, `(‖U‖₂‖V‖₂ / γ)²`.
    pub frobenius_over_margin: Option<f64>,
    pub group_over_margin: Option<f64>,
    pub path_over_margin: Option<f64>,
    pub spectral_over_margin: Option<f64>,
    /// Bartlett, Foster & Telgarsky (2017), Theorem 1.1: `‖X‖_F R_A ln(W) / (γ n)` with
    /// `R_A = ‖U‖₂‖V‖₂ (Σ_i (‖A_iᵀ − M_iᵀ‖_{2,1} / ‖A_i‖₂)^{2/3})^{3/2}`, the reference
    /// matrices `M_i` the initial weights, ReLU's Lipschitz constant 1, `W` the widest layer.
    pub bartlett2017: Option<f64>,
    /// Neyshabur, Li, Bhojanapalli, LeCun & Srebro (2019, arXiv:1805.12076), Theorem 1:
    /// `√k ‖V‖_F (‖U − U₀‖_F ‖X‖_F + ‖U₀ᵀX‖_F) / (γ n) + √(H / n)`.
    pub neyshabur2018: Option<f64>,
    /// Mean over seeded draws of `(L(w + δ) − L(w)) / (1 + L(w))` (training cross-entropy;
    /// Keskar et al. 2017's normalization), `‖δ_layer‖_F` = [`SHARPNESS_RELATIVE_SIZE`] times
    /// the layer's norm.
    pub sharpness: f64,
    /// Hidden units whose ReLU activation pattern on the training set differs from the one at
    /// initialization on at least one example, as a fraction of H; and the fraction of
    /// (unit, example) pairs that flipped.
    pub pattern_changed_units: f64,
    pub pattern_flip_fraction: f64,
    /// What computing these took.
    pub seconds: f64,
    /// The PAC-Bayes flatness measures (`flatness`), computed post hoc from saved networks by
    /// `measures --recompute` (hundreds of forward passes: not at the end of every run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatness: Option<crate::measures::flatness::Flatness>,
}

/// A network's weights on the host, with its shape.
pub(crate) struct HostNet {
    pub u: Vec<f32>,
    pub v: Vec<f32>,
    pub d: usize,
    pub h: usize,
    pub k: usize,
}

impl HostNet {
    pub fn of(net: &TwoLayerNet) -> Result<Self, TrainError> {
        let (d, h, k) = net.dims();
        let (u, v) = net.weights()?;
        Ok(HostNet { u, v, d, h, k })
    }
}

/// `‖a − b‖_F` (`b = None`: `‖a‖_F`).
pub(crate) fn frobenius(a: &[f32], b: Option<&[f32]>) -> f64 {
    let diff = |i: usize| a[i] as f64 - b.map_or(0.0, |b| b[i] as f64);
    (0..a.len()).map(|i| diff(i).powi(2)).sum::<f64>().sqrt()
}

/// `Σ_c ‖(A − B)_{:,c}‖₂` for row-major `rows x cols` matrices: the (2,1) norm over columns.
fn norm_2_1(a: &[f32], b: &[f32], rows: usize, cols: usize) -> f64 {
    (0..cols)
        .map(|c| {
            (0..rows)
                .map(|r| (a[r * cols + c] as f64 - b[r * cols + c] as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum()
}

/// Random stream of the spectral norm's start vector.
const STREAM_SPECTRAL: u64 = 21;
/// Power iteration stops once `‖MᵀM x − ρ x‖ ≤ SPECTRAL_TOLERANCE ρ` (ρ the Rayleigh quotient
/// of the unit vector x): some eigenvalue of `MᵀM` is then within that residual of ρ
/// (Krylov-Weinstein), so σ² is known to 1e-7 relative.
const SPECTRAL_TOLERANCE: f64 = 1e-7;
const SPECTRAL_MAX_STEPS: usize = 10_000;

/// `MᵀM x` for a row-major `rows x cols` matrix.
fn gram_times(m: &[f32], rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0f64; cols];
    for r in 0..rows {
        let row = &m[r * cols..(r + 1) * cols];
        let y: f64 = row.iter().zip(x).map(|(&a, b)| a as f64 * b).sum();
        for (zc, &a) in z.iter_mut().zip(row) {
            *zc += a as f64 * y;
        }
    }
    z
}

/// The largest singular value of a row-major `rows x cols` matrix: power iteration on `MᵀM`
/// from a seeded random start (a fixed start such as all-ones can be orthogonal to the top
/// singular vector: the trained V's rows of `V − V₀` sum to 0), stopped when the residual of
/// the Rayleigh quotient is small, not when it stalls.
pub fn spectral_norm(m: &[f32], rows: usize, cols: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(rows as u64 * 1_000_003 + cols as u64);
    rng.set_stream(STREAM_SPECTRAL);
    let mut x: Vec<f64> = (0..cols).map(|_| StandardNormal.sample(&mut rng)).collect();
    let mut rho = 0.0;
    for _ in 0..SPECTRAL_MAX_STEPS {
        let length = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if length == 0.0 {
            return 0.0;
        }
        x.iter_mut().for_each(|v| *v /= length);
        let z = gram_times(m, rows, cols, &x);
        rho = x.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>();
        let residual = z
            .iter()
            .zip(&x)
            .map(|(zc, xc)| (zc - rho * xc).powi(2))
            .sum::<f64>()
            .sqrt();
        if residual <= SPECTRAL_TOLERANCE * rho.abs() || rho == 0.0 {
            break;
        }
        x = z;
    }
    rho.max(0.0).sqrt()
}

/// From the examples per hidden unit whose activation sign flipped (of `examples`): the
/// fraction of units with any flip, and the fraction of (unit, example) pairs flipped.
pub(crate) fn pattern_fractions(flips_per_unit: &[f64], examples: usize) -> (f64, f64) {
    let h = flips_per_unit.len().max(1) as f64;
    let changed = flips_per_unit.iter().filter(|&&c| c > 0.0).count() as f64;
    let flipped = flips_per_unit.iter().sum::<f64>() / (examples.max(1) as f64 * h);
    (changed / h, flipped)
}

/// The `q`-quantile of `values` (nearest rank, `values` non-empty).
pub(crate) fn percentile(values: &mut [f32], q: f64) -> f64 {
    values.sort_by(f32::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1] as f64
}

/// The measures that need only the weights.
fn weight_measures(net: &HostNet, init: &HostNet) -> Measures {
    let (d, h, k) = (net.d, net.h, net.k);
    let units = unit_norms(&net.u, &net.v, d, h, k);
    let (u_frobenius, v_frobenius) = (frobenius(&net.u, None), frobenius(&net.v, None));
    let (u_spectral, v_spectral) = (spectral_norm(&net.u, d, h), spectral_norm(&net.v, h, k));
    let (u_distance, v_distance) = (
        frobenius(&net.u, Some(&init.u)),
        frobenius(&net.v, Some(&init.v)),
    );
    let relative = |dist: f64, w: &[f32]| dist / frobenius(w, None).max(f64::MIN_POSITIVE);
    Measures {
        hidden: h,
        parameters: h * (d + k),
        u_frobenius,
        v_frobenius,
        frobenius_product: u_frobenius * v_frobenius,
        group_norm: units.iter().map(|(a, b)| a * b).sum(),
        path_norm: units
            .iter()
            .map(|(a, b)| (a * b).powi(2))
            .sum::<f64>()
            .sqrt(),
        u_spectral,
        v_spectral,
        spectral_product: u_spectral * v_spectral,
        u_distance,
        v_distance,
        u_distance_relative: relative(u_distance, &init.u),
        v_distance_relative: relative(v_distance, &init.v),
        margin_p5: f64::NAN,
        margin_p10: f64::NAN,
        frobenius_over_margin: None,
        group_over_margin: None,
        path_over_margin: None,
        spectral_over_margin: None,
        bartlett2017: None,
        neyshabur2018: None,
        sharpness: f64::NAN,
        pattern_changed_units: f64::NAN,
        pattern_flip_fraction: f64::NAN,
        seconds: 0.0,
        flatness: None,
    }
}

/// What the bounds need from the training set besides the margin.
struct DataTerms {
    /// `‖X‖_F` over the training examples.
    x_frobenius: f64,
    /// `‖U₀ᵀX‖_F`: the initial hidden pre-activations.
    init_preactivations: f64,
    examples: usize,
}

/// Fills in the margin-normalized measures and the two bounds from γ = the 10th percentile.
fn margin_measures(m: &mut Measures, net: &HostNet, init: &HostNet, data: &DataTerms) {
    let gamma = m.margin_p10;
    if gamma.is_nan() || gamma <= 0.0 {
        return;
    }
    let over = |x: f64| Some((x / gamma).powi(2));
    m.frobenius_over_margin = over(m.frobenius_product);
    m.group_over_margin = over(m.group_norm);
    m.path_over_margin = over(m.path_norm);
    m.spectral_over_margin = over(m.spectral_product);
    let n = data.examples as f64;
    let (d, h, k) = (net.d, net.h, net.k);
    // Bartlett et al. (2017), Theorem 1.1 (complexity term, constants dropped).
    let ratio = |dist: f64, sigma: f64| (dist / sigma.max(f64::MIN_POSITIVE)).powf(2.0 / 3.0);
    let r_a = m.spectral_product
        * (ratio(norm_2_1(&net.u, &init.u, d, h), m.u_spectral)
            + ratio(norm_2_1(&net.v, &init.v, h, k), m.v_spectral))
        .powf(1.5);
    let width = d.max(h).max(k) as f64;
    m.bartlett2017 = Some(data.x_frobenius * r_a * width.ln() / (gamma * n));
    // Neyshabur et al. (2019), Theorem 1 (constants and log factors dropped).
    let first = (k as f64).sqrt()
        * m.v_frobenius
        * (m.u_distance * data.x_frobenius + data.init_preactivations)
        / (gamma * n);
    m.neyshabur2018 = Some(first + (h as f64 / n).sqrt());
}

/// The seeded perturbations of the sharpness measure: [`SHARPNESS_DRAWS`] copies of the
/// weights `(u, v)`, each layer moved by Gaussian noise of [`SHARPNESS_RELATIVE_SIZE`] times
/// its Frobenius norm.
pub(crate) fn sharpness_perturbations(net: &HostNet, seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(STREAM_SHARPNESS);
    let mut perturb = |w: &[f32]| -> Vec<f32> {
        let noise: Vec<f64> = (0..w.len())
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let norm = noise
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        let scale = SHARPNESS_RELATIVE_SIZE * frobenius(w, None) / norm;
        w.iter()
            .zip(&noise)
            .map(|(&a, &e)| (a as f64 + scale * e) as f32)
            .collect()
    };
    (0..SHARPNESS_DRAWS)
        .map(|_| (perturb(&net.u), perturb(&net.v)))
        .collect()
}

/// What the measures of one network need from forward passes over its training split.
pub(crate) struct TrainingForwards {
    /// Every example's margin, in order.
    pub margins: Vec<f32>,
    /// The network's training loss.
    pub loss: f64,
    /// The sign flips against the initial network, and `‖X U₀‖_F`.
    pub flips: PatternFlips,
    /// The training loss of each of [`sharpness_perturbations`].
    pub perturbed_losses: Vec<f64>,
}

/// The inputs of [`measure`]: the trained and initial networks on the inference device, the
/// training split (host and device) and the seed of the sharpness draws.
pub struct MeasureInputs<'a> {
    pub net: &'a TwoLayerNet,
    pub init: &'a TwoLayerNet,
    pub split: &'a Split,
    pub train: &'a DeviceSplit,
    pub device: &'a burn::tensor::Device,
    pub seed: u64,
}

/// Every measure of `inputs.net`.
pub fn measure(inputs: &MeasureInputs) -> Result<Measures, TrainError> {
    let start = Instant::now();
    let (net, init) = (HostNet::of(inputs.net)?, HostNet::of(inputs.init)?);
    let train = inputs.train;
    let config = TwoLayerConfig {
        activation: inputs.net.activation,
        ..TwoLayerConfig::new(net.d, net.h, net.k)
    };
    let mut perturbed_losses = Vec::with_capacity(SHARPNESS_DRAWS);
    for (u, v) in sharpness_perturbations(&net, inputs.seed) {
        let perturbed = TwoLayerNet::from_weights(u, v, &config, inputs.device);
        perturbed_losses.push(train.evaluate(&perturbed)?.loss);
    }
    let forwards = TrainingForwards {
        margins: train.margins(inputs.net)?,
        loss: train.evaluate(inputs.net)?.loss,
        flips: train.pattern_flips(inputs.init, inputs.net)?,
        perturbed_losses,
    };
    Ok(measures_from((&net, &init), inputs.split, forwards, start))
}

/// Every measure of the network `net` (initial network `init`) trained on `split`, from its
/// forward passes `forwards`; `start`: when computing them began.
pub(crate) fn measures_from(
    (net, init): (&HostNet, &HostNet),
    split: &Split,
    mut forwards: TrainingForwards,
    start: Instant,
) -> Measures {
    let mut m = weight_measures(net, init);
    let margins = &mut forwards.margins;
    if !margins.is_empty() {
        m.margin_p5 = percentile(margins, 0.05);
        m.margin_p10 = percentile(margins, 0.10);
    }
    let patterns = &forwards.flips;
    (m.pattern_changed_units, m.pattern_flip_fraction) =
        pattern_fractions(&patterns.per_unit, split.len());
    let data = DataTerms {
        x_frobenius: frobenius(&split.features, None),
        init_preactivations: patterns.init_preactivation_frobenius,
        examples: split.len().max(1),
    };
    margin_measures(&mut m, net, init, &data);
    // Mean relative increase of the training loss under the perturbations.
    let base = forwards.loss;
    let total: f64 = forwards
        .perturbed_losses
        .iter()
        .map(|&l| (l - base) / (1.0 + base))
        .sum();
    m.sharpness = total / SHARPNESS_DRAWS as f64;
    m.seconds = start.elapsed().as_secs_f64();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(u: Vec<f32>, v: Vec<f32>, d: usize, h: usize, k: usize) -> HostNet {
        HostNet { u, v, d, h, k }
    }

    #[test]
    fn weight_measures_match_a_hand_computation() {
        // d = 2, H = 2, k = 1: u_1 = (3, 4), u_2 = (0, 1); v = (2, -1).
        let net = host(vec![3.0, 0.0, 4.0, 1.0], vec![2.0, -1.0], 2, 2, 1);
        let zero = host(vec![0.0; 4], vec![0.0; 2], 2, 2, 1);
        let m = weight_measures(&net, &zero);
        assert!((m.group_norm - (5.0 * 2.0 + 1.0 * 1.0)).abs() < 1e-12);
        assert!((m.path_norm - (100.0f64 + 1.0).sqrt()).abs() < 1e-12);
        assert!((m.u_frobenius - 26f64.sqrt()).abs() < 1e-12);
        assert!((m.v_frobenius - 5f64.sqrt()).abs() < 1e-12);
        // V is a column: its spectral norm is its length.
        assert!((m.v_spectral - 5f64.sqrt()).abs() < 1e-9);
        assert_eq!(m.u_distance, m.u_frobenius);
        assert_eq!(m.parameters, 6);
    }

    #[test]
    fn the_group_norm_is_invariant_to_theorem_1s_rescaling_and_bounds_the_path_norm() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| StandardNormal.sample(&mut rng))
                .map(|x: f64| x as f32)
                .collect()
        };
        let (d, h, k) = (5, 7, 3);
        let (mut u, mut v) = (draw(d * h), draw(h * k));
        let zero = host(vec![0.0; d * h], vec![0.0; h * k], d, h, k);
        let before = weight_measures(&host(u.clone(), v.clone(), d, h, k), &zero);
        realbias_model::balance_units(&mut u, &mut v, d, h, k);
        let after = weight_measures(&host(u, v, d, h, k), &zero);
        assert!((before.group_norm - after.group_norm).abs() < 1e-5 * before.group_norm);
        assert!((before.path_norm - after.path_norm).abs() < 1e-5 * before.path_norm);
        // ℓ2 ≤ ℓ1 ≤ √H ℓ2 over the units' products.
        assert!(before.path_norm <= before.group_norm + 1e-12);
        assert!(before.group_norm <= (h as f64).sqrt() * before.path_norm + 1e-9);
        // Rescaling moves the Frobenius norms but never below the group norm's bound.
        assert!(after.frobenius_product <= before.frobenius_product + 1e-6);
    }

    #[test]
    fn the_spectral_norm_matches_the_svd() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (rows, cols) in [(1, 1), (4, 9), (30, 7), (100, 256), (256, 10)] {
            let m: Vec<f32> = (0..rows * cols)
                .map(|_| StandardNormal.sample(&mut rng))
                .map(|x: f64| x as f32)
                .collect();
            let dm = nalgebra::DMatrix::from_fn(rows, cols, |r, c| m[r * cols + c] as f64);
            let svd = realbias_theory::trace::spectral_norm(&dm).unwrap();
            let power = spectral_norm(&m, rows, cols);
            assert!(
                (power - svd).abs() <= 1e-6 * svd,
                "{rows}x{cols}: {power} vs {svd}"
            );
        }
        assert_eq!(spectral_norm(&[0.0; 6], 2, 3), 0.0);
    }

    #[test]
    fn the_spectral_norm_does_not_depend_on_a_lucky_start() {
        // All-ones is in the null space of [[1,-1],[2,-2]] (σ = √10), and an eigenvector of
        // the other singular value of [[2,-1],[-1,2]] (σ = 3 and 1).
        let sigma = spectral_norm(&[1.0, -1.0, 2.0, -2.0], 2, 2);
        assert!((sigma - 10f64.sqrt()).abs() < 1e-9, "{sigma}");
        let sigma = spectral_norm(&[2.0, -1.0, -1.0, 2.0], 2, 2);
        assert!((sigma - 3.0).abs() < 1e-9, "{sigma}");
        // A trained V's update: every row sums to 0, as the softmax gradient's rows do.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (rows, cols) = (64, 10);
        let mut m: Vec<f32> = (0..rows * cols)
            .map(|_| StandardNormal.sample(&mut rng))
            .map(|x: f64| x as f32)
            .collect();
        for row in m.chunks_mut(cols) {
            let mean = row.iter().sum::<f32>() / cols as f32;
            row.iter_mut().for_each(|v| *v -= mean);
        }
        let dm = nalgebra::DMatrix::from_fn(rows, cols, |r, c| m[r * cols + c] as f64);
        let svd = realbias_theory::trace::spectral_norm(&dm).unwrap();
        let power = spectral_norm(&m, rows, cols);
        assert!((power - svd).abs() <= 1e-6 * svd, "{power} vs {svd}");
    }

    /// d = 3, H = 2, k = 2, small enough to do by hand:
    /// `U = [[3, 1], [4, 0], [1, 1]]` (units u₁ = (3, 4, 1), u₂ = (1, 0, 1)),
    /// `U₀ = [[0, 1], [0, 0], [1, 0]]`, so `U − U₀ = [[3, 0], [4, 0], [0, 1]]`: its columns
    /// have lengths 5 and 1 (the (2,1) norm 6), its rows 3, 4 and 1 (8: a transposed reading
    /// differs), `‖U − U₀‖_F = √26` while `‖U‖_F = √28`;
    /// `V = [[2, 0], [0, 1]]`, `V₀ = I`, so `‖V − V₀‖_{2,1} = 1`.
    /// `UᵀU = [[26, 4], [4, 2]]` has eigenvalues `14 ± 4√10`, so `‖U‖₂ = 2 + √10`; `‖V‖₂ = 2`.
    fn hand_net() -> (HostNet, HostNet, DataTerms) {
        let net = host(
            vec![3.0, 1.0, 4.0, 0.0, 1.0, 1.0],
            vec![2.0, 0.0, 0.0, 1.0],
            3,
            2,
            2,
        );
        let init = host(
            vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
            vec![1.0, 0.0, 0.0, 1.0],
            3,
            2,
            2,
        );
        // ‖X‖_F = 3 and ‖U₀ᵀX‖_F = 2 over n = 4 examples.
        let data = DataTerms {
            x_frobenius: 3.0,
            init_preactivations: 2.0,
            examples: 4,
        };
        (net, init, data)
    }

    fn close(what: &str, got: Option<f64>, want: f64) {
        let got = got.unwrap_or_else(|| panic!("{what}: undefined"));
        assert!(
            (got - want).abs() <= 1e-9 * want.abs(),
            "{what}: {got} vs {want}"
        );
    }

    #[test]
    fn margin_measures_and_bounds_match_a_hand_computation() {
        let (net, init, data) = hand_net();
        let mut m = weight_measures(&net, &init);
        close("‖U‖₂", Some(m.u_spectral), 2.0 + 10f64.sqrt());
        close("‖V‖₂", Some(m.v_spectral), 2.0);
        close("‖U − U₀‖_F", Some(m.u_distance), 26f64.sqrt());
        // Group norm √26·2 + √2·1; path norm √(26·4 + 2·1) = √106.
        close(
            "group norm",
            Some(m.group_norm),
            2.0 * 26f64.sqrt() + 2f64.sqrt(),
        );
        close("path norm", Some(m.path_norm), 106f64.sqrt());
        m.margin_p10 = 0.5; // γ: every ratio below is (x / 0.5)² = 4x²
        margin_measures(&mut m, &net, &init, &data);
        close("‖U‖_F²‖V‖_F²/γ²", m.frobenius_over_margin, 4.0 * 28.0 * 5.0);
        // 4(2√26 + √2)² = 4(106 + 8√13)
        close(
            "group²/γ²",
            m.group_over_margin,
            424.0 + 32.0 * 13f64.sqrt(),
        );
        close("path²/γ²", m.path_over_margin, 424.0);
        // 4(2(2 + √10))² = 16(14 + 4√10)
        close(
            "spectral²/γ²",
            m.spectral_over_margin,
            224.0 + 64.0 * 10f64.sqrt(),
        );
        // Bartlett et al.: ‖X‖_F R_A ln W / (γ n) with W = 3 and
        // R_A = ‖U‖₂‖V‖₂ ((6 / (2 + √10))^{2/3} + (1/2)^{2/3})^{3/2}:
        // 3 · 2(2 + √10) · S^{3/2} · ln 3 / 2 = 38.89655999619322.
        let sigma_u = 2.0 + 10f64.sqrt();
        let s = (6.0 / sigma_u).powf(2.0 / 3.0) + 0.5f64.powf(2.0 / 3.0);
        let bartlett = 3.0 * sigma_u * s.powf(1.5) * 3f64.ln();
        assert!((bartlett - 38.89655999619322).abs() < 1e-9);
        close("Bartlett et al. 2017", m.bartlett2017, bartlett);
        // Neyshabur et al.: √k ‖V‖_F (‖U − U₀‖_F ‖X‖_F + ‖U₀ᵀX‖_F) / (γ n) + √(H / n)
        // = √2 · √5 · (3√26 + 2) / 2 + √(1/2) = 28.05615768625057.
        let neyshabur = 10f64.sqrt() * (3.0 * 26f64.sqrt() + 2.0) / 2.0 + 0.5f64.sqrt();
        assert!((neyshabur - 28.05615768625057).abs() < 1e-9);
        close("Neyshabur et al. 2018", m.neyshabur2018, neyshabur);
    }

    #[test]
    fn margin_measures_are_undefined_without_a_positive_margin() {
        let (net, init, data) = hand_net();
        for gamma in [0.0, -0.5, f64::NAN] {
            let mut m = weight_measures(&net, &init);
            m.margin_p10 = gamma;
            margin_measures(&mut m, &net, &init, &data);
            assert_eq!(m.group_over_margin, None, "γ = {gamma}");
            assert_eq!(m.bartlett2017, None, "γ = {gamma}");
            assert_eq!(m.neyshabur2018, None, "γ = {gamma}");
        }
    }

    #[test]
    fn the_2_1_norm_sums_column_lengths() {
        // 2 x 2: columns (3, 4) and (0, 1) minus zero.
        assert!((norm_2_1(&[3.0, 0.0, 4.0, 1.0], &[0.0; 4], 2, 2) - 6.0).abs() < 1e-12);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f32> = (1..=20).rev().map(|x| x as f32).collect();
        assert_eq!(percentile(&mut v, 0.05), 1.0);
        assert_eq!(percentile(&mut v, 0.10), 2.0);
        assert_eq!(percentile(&mut v, 1.0), 20.0);
    }
}

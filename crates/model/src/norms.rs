//! Norm measures of a two-layer network, on plain weight slices (no Burn needed).
//!
//! `u` holds the input weights as `d x H` row-major (column `h` is the unit's `u_h`), `v` the
//! output weights as `H x k` row-major (row `h` is the unit's `v_h`).

use serde::{Deserialize, Serialize};

/// The norms the paper's argument is about, measured on one network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormMeasures {
    /// `‖U‖_F`.
    pub u_frobenius: f64,
    /// `‖V‖_F`.
    pub v_frobenius: f64,
    /// Theorem 1's weight-decay penalty `½(‖U‖_F² + ‖V‖_F²)`.
    pub weight_decay_penalty: f64,
    /// The rescaling-invariant group norm `Σ_h ‖u_h‖·‖v_h‖` (for k = 1, `Σ_h ‖u_h‖·|v_h|`).
    pub group_norm: f64,
    /// Number of weights, `H(d + k)`.
    pub parameters: usize,
}

/// Per-unit norms `(‖u_h‖, ‖v_h‖)`.
pub fn unit_norms(u: &[f32], v: &[f32], d: usize, h: usize, k: usize) -> Vec<(f64, f64)> {
    assert_eq!(u.len(), d * h, "u must be d x H");
    assert_eq!(v.len(), h * k, "v must be H x k");
    let mut u_sq = vec![0.0f64; h];
    for row in u.chunks_exact(h) {
        for (acc, &w) in u_sq.iter_mut().zip(row) {
            *acc += w as f64 * w as f64;
        }
    }
    u_sq.iter()
        .zip(v.chunks_exact(k))
        .map(|(&us, vrow)| {
            (
                us.sqrt(),
                vrow.iter()
                    .map(|&w| w as f64 * w as f64)
                    .sum::<f64>()
                    .sqrt(),
            )
        })
        .collect()
}

/// All measures at once.
pub fn norm_measures(u: &[f32], v: &[f32], d: usize, h: usize, k: usize) -> NormMeasures {
    let units = unit_norms(u, v, d, h, k);
    let u_sq: f64 = units.iter().map(|(a, _)| a * a).sum();
    let v_sq: f64 = units.iter().map(|(_, b)| b * b).sum();
    NormMeasures {
        u_frobenius: u_sq.sqrt(),
        v_frobenius: v_sq.sqrt(),
        weight_decay_penalty: 0.5 * (u_sq + v_sq),
        group_norm: units.iter().map(|(a, b)| a * b).sum(),
        parameters: h * (d + k),
    }
}

/// Theorem 1's rescaling: `ũ_h = √(‖v_h‖/‖u_h‖)·u_h`, `ṽ_h = √(‖u_h‖/‖v_h‖)·v_h`. It leaves the
/// network's function unchanged (ReLU is positively homogeneous) and balances every unit,
/// `‖ũ_h‖ = ‖ṽ_h‖`, which minimizes `½(‖U‖² + ‖V‖²)` over all such rescalings. Units with a
/// zero side are set to zero (they contribute nothing to the output).
pub fn balance_units(u: &mut [f32], v: &mut [f32], d: usize, h: usize, k: usize) {
    let units = unit_norms(u, v, d, h, k);
    for (unit, &(nu, nv)) in units.iter().enumerate() {
        let (su, sv) = if nu > 0.0 && nv > 0.0 {
            ((nv / nu).sqrt(), (nu / nv).sqrt())
        } else {
            (0.0, 0.0)
        };
        for i in 0..d {
            u[i * h + unit] = (u[i * h + unit] as f64 * su) as f32;
        }
        for w in &mut v[unit * k..(unit + 1) * k] {
            *w = (*w as f64 * sv) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn forward(u: &[f32], v: &[f32], x: &[f32], d: usize, h: usize, k: usize) -> Vec<f64> {
        let hidden: Vec<f64> = (0..h)
            .map(|j| {
                (0..d)
                    .map(|i| x[i] as f64 * u[i * h + j] as f64)
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect();
        (0..k)
            .map(|c| (0..h).map(|j| hidden[j] * v[j * k + c] as f64).sum())
            .collect()
    }

    #[test]
    fn hand_computed_measures() {
        // d = 2, H = 2, k = 1: u_1 = (3, 4), u_2 = (0, 1); v = (2, -0.5).
        let u = [3.0, 0.0, 4.0, 1.0];
        let v = [2.0, -0.5];
        let m = norm_measures(&u, &v, 2, 2, 1);
        assert!((m.u_frobenius - 26f64.sqrt()).abs() < 1e-9);
        assert!((m.v_frobenius - 4.25f64.sqrt()).abs() < 1e-9);
        assert!((m.weight_decay_penalty - 0.5 * (26.0 + 4.25)).abs() < 1e-9);
        assert!((m.group_norm - (5.0 * 2.0 + 1.0 * 0.5)).abs() < 1e-9);
        assert_eq!(m.parameters, 6);
    }

    fn net() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, Vec<f32>)> {
        (1usize..6, 1usize..8, 1usize..4).prop_flat_map(|(d, h, k)| {
            (
                Just(d),
                Just(h),
                Just(k),
                proptest::collection::vec(-2.0f32..2.0, d * h),
                proptest::collection::vec(-2.0f32..2.0, h * k),
                proptest::collection::vec(-1.0f32..1.0, d),
            )
        })
    }

    proptest! {
        /// Theorem 1's rescaling keeps the function and `Σ‖u_h‖‖v_h‖`, and brings
        /// `½(‖U‖² + ‖V‖²)` down to exactly that value (AM-GM), never below.
        #[test]
        fn rescaling_keeps_group_norm_and_minimizes_penalty(
            (d, h, k, u, v, x) in net(),
            scales in proptest::collection::vec(0.1f32..10.0, 8),
        ) {
            let before = norm_measures(&u, &v, d, h, k);
            prop_assert!(before.weight_decay_penalty >= before.group_norm - 1e-6);
            // Any per-unit rescaling (c·u_h, v_h/c) keeps the group norm.
            let (mut u2, mut v2) = (u.clone(), v.clone());
            for j in 0..h {
                let c = scales[j % scales.len()];
                for i in 0..d { u2[i * h + j] *= c; }
                for w in &mut v2[j * k..(j + 1) * k] { *w /= c; }
            }
            let scaled = norm_measures(&u2, &v2, d, h, k);
            prop_assert!((scaled.group_norm - before.group_norm).abs() < 1e-4 * (1.0 + before.group_norm));
            // Balancing attains the minimum, the group norm, and keeps the outputs.
            balance_units(&mut u2, &mut v2, d, h, k);
            let balanced = norm_measures(&u2, &v2, d, h, k);
            prop_assert!((balanced.weight_decay_penalty - before.group_norm).abs() < 1e-4 * (1.0 + before.group_norm));
            prop_assert!(balanced.weight_decay_penalty <= scaled.weight_decay_penalty + 1e-6);
            prop_assert!(balanced.weight_decay_penalty <= before.weight_decay_penalty + 1e-6);
            for (a, b) in forward(&u, &v, &x, d, h, k).iter().zip(forward(&u2, &v2, &x, d, h, k)) {
                prop_assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()));
            }
        }
    }
}

//! Kendall's rank correlation two ways: τ_b (ties corrected, for the overall columns) and the
//! τ of Jiang et al. (2020, *Fantastic Generalization Measures and Where to Find Them*, eq. 3),
//! in which a pair tied in either variable scores 0 and the denominator is every pair; and
//! their "granulated" form (eq. 4-5): per hyperparameter axis, the mean of eq. 3's τ over the
//! groups in which only that axis varies, and Ψ, the mean over every axis that varies.

use std::collections::BTreeMap;

/// Kendall's τ_b of the pairs `(x_i, y_i)`: `(n_c − n_d) / √((n₀ − n₁)(n₀ − n₂))` with `n₀` the
/// pairs, `n₁` / `n₂` the pairs tied in x / in y. `None` with fewer than two pairs or when
/// either side is constant.
pub fn tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
            match (dx == 0.0, dy == 0.0) {
                (true, true) => {
                    tied_x += 1;
                    tied_y += 1;
                }
                (true, false) => tied_x += 1,
                (false, true) => tied_y += 1,
                (false, false) if (dx > 0.0) == (dy > 0.0) => concordant += 1,
                (false, false) => discordant += 1,
            }
        }
    }
    let pairs = (n * n.saturating_sub(1) / 2) as i64;
    let denominator = (((pairs - tied_x) * (pairs - tied_y)) as f64).sqrt();
    (denominator > 0.0).then(|| (concordant - discordant) as f64 / denominator)
}

/// Jiang et al.'s τ (eq. 3): `Σ_{i<j} sign(Δx) sign(Δy) / (n(n − 1)/2)`. A pair tied in x or
/// in y scores 0, so a measure that is constant over the pairs has τ = 0 (not undefined).
/// `None` with fewer than two pairs.
pub fn tau_jiang(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let sign = |v: f64| (v > 0.0) as i64 - (v < 0.0) as i64;
    let mut sum = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            sum += sign(x[i] - x[j]) * sign(y[i] - y[j]);
        }
    }
    Some(sum as f64 / (n * (n - 1) / 2) as f64)
}

/// One network for the granulated τ: its measure, its target (the generalization gap, say) and
/// its value on each hyperparameter axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measure: f64,
    pub target: f64,
    pub axes: Vec<String>,
}

/// Per axis, the mean of eq. 3's τ ([`tau_jiang`]) over the groups of points that agree on
/// every other axis and take at least two values on this one (a group where it does not vary
/// says nothing about it); and Ψ, their mean over the axes that vary in some group (eq. 5).
/// A measure constant within a group scores 0 there, so it counts against Ψ. `None` for an
/// axis that varies in no group, and for Ψ when none does.
pub fn granulated(points: &[Point], axes: usize) -> (Vec<Option<f64>>, Option<f64>) {
    let per_axis: Vec<Option<f64>> = (0..axes).map(|axis| axis_tau(points, axis)).collect();
    let defined: Vec<f64> = per_axis.iter().flatten().copied().collect();
    let psi = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
    (per_axis, psi)
}

/// The mean τ over the groups in which only `axis` varies.
fn axis_tau(points: &[Point], axis: usize) -> Option<f64> {
    let mut groups: BTreeMap<Vec<&str>, Vec<&Point>> = BTreeMap::new();
    for p in points {
        let key = p
            .axes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != axis)
            .map(|(_, v)| v.as_str())
            .collect();
        groups.entry(key).or_default().push(p);
    }
    let taus: Vec<f64> = groups
        .values()
        .filter(|g| g.iter().any(|p| p.axes[axis] != g[0].axes[axis]))
        .filter_map(|g| {
            let x: Vec<f64> = g.iter().map(|p| p.measure).collect();
            let y: Vec<f64> = g.iter().map(|p| p.target).collect();
            tau_jiang(&x, &y)
        })
        .collect();
    (!taus.is_empty()).then(|| taus.iter().sum::<f64>() / taus.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tau_b_of_a_hand_worked_example_with_ties() {
        // Pairs: (1,2) C, (1,3) C, (1,4) C, (2,3) tied in x, (2,4) D, (3,4) tied in y:
        // (3 − 1) / √((6 − 1)(6 − 1)) = 0.4 (scipy.stats.kendalltau agrees).
        let t = tau_b(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 2.0]).unwrap();
        assert!((t - 0.4).abs() < 1e-12, "{t}");
        assert_eq!(tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(tau_b(&[1.0, 2.0, 3.0], &[1.0, 5.0, 9.0]), Some(1.0));
        assert_eq!(tau_b(&[1.0, 1.0], &[1.0, 2.0]), None, "constant x");
        assert_eq!(tau_b(&[1.0], &[1.0]), None);
    }

    #[test]
    fn granulated_tau_averages_within_groups_then_over_axes() {
        // Axis 0 (H) agrees with the target within each condition; axis 1 (condition)
        // disagrees within each H.
        let p = |m: f64, t: f64, h: &str, c: &str| Point {
            measure: m,
            target: t,
            axes: vec![h.into(), c.into()],
        };
        let points = vec![
            p(1.0, 1.0, "4", "a"),
            p(2.0, 2.0, "8", "a"),
            p(3.0, 0.5, "4", "b"),
            p(4.0, 0.9, "8", "b"),
        ];
        let (per_axis, psi) = granulated(&points, 2);
        assert_eq!(per_axis, vec![Some(1.0), Some(-1.0)]);
        assert_eq!(psi, Some(0.0));
    }

    #[test]
    fn jiangs_tau_scores_ties_as_zero_over_every_pair() {
        // The example above: 3 concordant, 1 discordant, 2 tied of 6 pairs: (3 − 1) / 6.
        let t = tau_jiang(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 2.0]).unwrap();
        assert!((t - 2.0 / 6.0).abs() < 1e-12, "{t}");
        assert_eq!(tau_jiang(&[5.0, 5.0, 5.0], &[1.0, 2.0, 3.0]), Some(0.0));
        assert_eq!(tau_jiang(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(tau_jiang(&[1.0], &[1.0]), None);
    }

    #[test]
    fn a_measure_constant_along_an_axis_scores_zero_on_it() {
        // 5 widths x 3 conditions; the measure is H itself and the gap falls with H in every
        // condition. Over H: τ = −1 in each condition. Over the condition (H fixed): the
        // measure is constant, τ = 0 (τ_b would be undefined and the group dropped). Ψ is
        // their mean, −0.5, not −1.
        let mut points = Vec::new();
        for (c, condition) in ["plain", "censored", "noise"].iter().enumerate() {
            for (i, h) in [4.0, 16.0, 64.0, 256.0, 1024.0].iter().enumerate() {
                points.push(Point {
                    measure: *h,
                    target: 0.5 - 0.05 * i as f64 + 0.01 * c as f64,
                    axes: vec![h.to_string(), condition.to_string()],
                });
            }
        }
        let (per_axis, psi) = granulated(&points, 2);
        assert_eq!(per_axis, vec![Some(-1.0), Some(0.0)]);
        assert_eq!(psi, Some(-0.5));
        // With one condition the condition axis does not vary: Ψ is the τ over H alone.
        let plain: Vec<Point> = points
            .iter()
            .filter(|p| p.axes[1] == "plain")
            .cloned()
            .collect();
        assert_eq!(granulated(&plain, 2), (vec![Some(-1.0), None], Some(-1.0)));
    }
}

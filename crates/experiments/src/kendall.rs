//! Kendall's rank correlation, with ties (τ_b), and the "granulated" form of Jiang et al.
//! (2020, *Fantastic Generalization Measures and Where to Find Them*, eq. 4-5): the mean over
//! hyperparameter axes of the mean τ over groups in which only that axis varies.

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

/// One network for the granulated τ: its measure, its target (the generalization gap, say) and
/// its value on each hyperparameter axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measure: f64,
    pub target: f64,
    pub axes: Vec<String>,
}

/// Per axis, the mean τ_b over the groups of points that agree on every other axis (groups
/// with fewer than two distinct values on the axis are left out); and their mean, Jiang et
/// al.'s Ψ. `None` where no group qualifies.
pub fn granulated(points: &[Point], axes: usize) -> (Vec<Option<f64>>, Option<f64>) {
    let per_axis: Vec<Option<f64>> = (0..axes)
        .map(|axis| {
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
                .filter_map(|g| {
                    let x: Vec<f64> = g.iter().map(|p| p.measure).collect();
                    let y: Vec<f64> = g.iter().map(|p| p.target).collect();
                    tau_b(&x, &y)
                })
                .collect();
            (!taus.is_empty()).then(|| taus.iter().sum::<f64>() / taus.len() as f64)
        })
        .collect();
    let defined: Vec<f64> = per_axis.iter().flatten().copied().collect();
    let psi = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
    (per_axis, psi)
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
}

//! Does the test error still change past a width, beyond the seed spread? Paired over seeds:
//! for two widths of one grid point and condition, the per-seed difference of the test error
//! (same seed: same subset, labels, noise and batch order), its mean and a 95% Student-t
//! interval. `paired.csv` has every pair of widths; `paired.md`, to stay readable, each width
//! with the next one and with the widest. The weight-decay condition is represented by its
//! selected λ at each width.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use realbias_train::RunResult;

use super::config::Condition;
use super::measures::representative;
use super::plan::PlannedRun;
use super::summary::Summary;

/// Two-sided 95% quantiles of Student's t for 1 ... 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The mean of paired differences and its 95% interval (`None` with fewer than two pairs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedMean {
    pub pairs: usize,
    pub mean: f64,
    pub half_width: f64,
}

impl PairedMean {
    pub fn of(differences: &[f64]) -> Option<PairedMean> {
        let n = differences.len();
        if n < 2 {
            return None;
        }
        let mean = differences.iter().sum::<f64>() / n as f64;
        let var = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = T_975.get(n - 2).copied().unwrap_or(1.96);
        Some(PairedMean {
            pairs: n,
            mean,
            half_width: t * (var / n as f64).sqrt(),
        })
    }

    /// Whether the interval excludes 0.
    pub fn significant(&self) -> bool {
        self.mean.abs() > self.half_width
    }
}

/// One comparison: from `from` to `to` units at one grid point and condition.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedRow {
    pub point: String,
    pub condition: Condition,
    pub from: usize,
    pub to: usize,
    /// Whether `paired.md` shows it: `to` is the width after `from`, or the widest.
    pub next_or_widest: bool,
    /// Test error at convergence, and with early stopping: `to` minus `from`.
    pub convergence: PairedMean,
    pub early_stop: PairedMean,
}

/// (test error at convergence, with early stopping) per seed and width, of one point and
/// condition.
type BySeed = BTreeMap<usize, BTreeMap<usize, (f64, f64)>>;

/// Every comparison with at least two seeds, in plan order.
pub fn compare(
    plan: &[PlannedRun],
    results: &[Option<RunResult>],
    summary: &Summary,
) -> Vec<PairedRow> {
    let keep = representative(plan, summary);
    let mut groups: Vec<((usize, Condition, String), BySeed)> = Vec::new();
    for ((p, r), k) in plan.iter().zip(results).zip(keep) {
        let Some(r) = r.as_ref().filter(|_| k) else {
            continue;
        };
        let key = (p.variant, p.condition, p.point.clone());
        let at = match groups.iter().position(|(g, _)| *g == key) {
            Some(at) => at,
            None => {
                groups.push((key, BTreeMap::new()));
                groups.len() - 1
            }
        };
        let errors = (r.test_error, r.early_stop_test_error);
        groups[at]
            .1
            .entry(p.hidden)
            .or_default()
            .insert(p.rep, errors);
    }
    groups
        .iter()
        .flat_map(|((_, condition, point), by_width)| rows(point, *condition, by_width))
        .collect()
}

/// Every pair of widths of one point and condition: first each width with the next and with
/// the widest (`paired.md`'s), then the others by width.
fn width_pairs(widths: &[usize]) -> Vec<(usize, usize, bool)> {
    let Some(&widest) = widths.last() else {
        return Vec::new();
    };
    let mut pairs: Vec<(usize, usize, bool)> =
        widths.windows(2).map(|w| (w[0], w[1], true)).collect();
    // Every width but the last two against the widest (the second-widest is paired above).
    pairs.extend(
        widths
            .iter()
            .rev()
            .skip(2)
            .rev()
            .map(|&h| (h, widest, true)),
    );
    for (i, &from) in widths.iter().enumerate() {
        let others = widths.iter().skip(i + 2).filter(|&&to| to != widest);
        pairs.extend(others.map(|&to| (from, to, false)));
    }
    pairs
}

/// The comparisons of one point and condition, over the seeds both widths have.
fn rows(point: &str, condition: Condition, by_width: &BySeed) -> Vec<PairedRow> {
    let widths: Vec<usize> = by_width.keys().copied().collect();
    width_pairs(&widths)
        .into_iter()
        .filter_map(|(from, to, next_or_widest)| {
            let (a, b) = (&by_width[&from], &by_width[&to]);
            let seeds: Vec<usize> = a.keys().filter(|s| b.contains_key(s)).copied().collect();
            let diff = |f: fn(&(f64, f64)) -> f64| -> Vec<f64> {
                seeds.iter().map(|s| f(&b[s]) - f(&a[s])).collect()
            };
            Some(PairedRow {
                point: point.to_string(),
                condition,
                from,
                to,
                next_or_widest,
                convergence: PairedMean::of(&diff(|e| e.0))?,
                early_stop: PairedMean::of(&diff(|e| e.1))?,
            })
        })
        .collect()
}

/// `paired.csv`: differences as fractions, one row per comparison.
pub fn csv(rows: &[PairedRow]) -> String {
    let mut s = String::from(
        "point,condition,from_hidden,to_hidden,pairs,test_error_diff_mean,test_error_diff_ci95,early_stop_test_error_diff_mean,early_stop_test_error_diff_ci95\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}",
            r.point,
            r.condition.name(),
            r.from,
            r.to,
            r.convergence.pairs,
            r.convergence.mean,
            r.convergence.half_width,
            r.early_stop.mean,
            r.early_stop.half_width
        );
    }
    s
}

fn points(m: &PairedMean) -> String {
    let mark = if m.significant() { " *" } else { "" };
    format!("{:+.2} ± {:.2}{mark}", 100.0 * m.mean, 100.0 * m.half_width)
}

/// `paired.md`: in percentage points, `*` where the 95% interval excludes 0.
pub fn markdown(name: &str, rows: &[PairedRow]) -> String {
    let mut s = format!(
        "# {name}: paired differences over seeds\n\nTest error of the wider network minus the narrower one, per seed (same subset, labels, noise and batch order), in percentage points: the mean over seeds ± the half-width of its 95% Student-t interval; `*`: the interval excludes 0. Negative: the wider network generalizes better. Each width against the next and the widest; `paired.csv` has every pair.\n\n| point | condition | from H | to H | seeds | Δ test error (convergence) | Δ test error (early stopping) |\n|---|---|---|---|---|---|---|\n"
    );
    for r in rows.iter().filter(|r| r.next_or_widest) {
        let point = if r.point.is_empty() { "–" } else { &r.point };
        let _ = writeln!(
            s,
            "| {point} | {} | {} | {} | {} | {} | {} |",
            r.condition.name(),
            r.from,
            r.to,
            r.convergence.pairs,
            points(&r.convergence),
            points(&r.early_stop)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_students_t_by_hand() {
        // Differences 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.303, half-width 4.303/√3.
        let m = PairedMean::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m.pairs, 3);
        assert!((m.mean - 2.0).abs() < 1e-12);
        assert!((m.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-12);
        assert!(!m.significant(), "2 ± 2.48 includes 0");
        assert!(PairedMean::of(&[2.0, 2.1, 1.9]).unwrap().significant());
        assert!(!PairedMean::of(&[-1.0, 1.0, 0.5]).unwrap().significant());
        assert_eq!(PairedMean::of(&[1.0]), None);
    }

    #[test]
    fn every_pair_of_widths_is_compared_and_the_markdown_shows_the_next_and_the_widest() {
        let pairs = width_pairs(&[8, 16, 32, 64, 128]);
        let shown: Vec<(usize, usize)> = pairs.iter().filter(|p| p.2).map(|p| (p.0, p.1)).collect();
        assert_eq!(
            shown,
            [
                (8, 16),
                (16, 32),
                (32, 64),
                (64, 128),
                (8, 128),
                (16, 128),
                (32, 128)
            ]
        );
        let mut all: Vec<(usize, usize)> = pairs.iter().map(|p| (p.0, p.1)).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), pairs.len(), "no pair twice");
        assert_eq!(all.len(), 10, "5 widths: 10 pairs");
        assert!(width_pairs(&[4]).is_empty() && width_pairs(&[]).is_empty());
        assert_eq!(width_pairs(&[4, 8]), [(4, 8, true)]);
    }

    #[test]
    fn widths_are_paired_by_seed_with_the_next_and_the_widest() {
        let mut by_width: BySeed = BTreeMap::new();
        for (h, base) in [(16, 0.10), (64, 0.08), (256, 0.07)] {
            for seed in 0..3 {
                let e = base + 0.001 * seed as f64;
                by_width.entry(h).or_default().insert(seed, (e, e + 0.01));
            }
        }
        // Seed 2 is missing at H = 256: its pairs with 256 use seeds 0 and 1 only.
        by_width.get_mut(&256).unwrap().remove(&2);
        let rows = rows("", Condition::Plain, &by_width);
        let pairs: Vec<(usize, usize, usize)> = rows
            .iter()
            .map(|r| (r.from, r.to, r.convergence.pairs))
            .collect();
        assert_eq!(pairs, vec![(16, 64, 3), (64, 256, 2), (16, 256, 2)]);
        assert!(rows.iter().all(|r| r.next_or_widest));
        assert!((rows[0].convergence.mean + 0.02).abs() < 1e-12);
        assert!(
            rows[0].convergence.half_width < 1e-12,
            "the same shift for every seed"
        );
    }
}

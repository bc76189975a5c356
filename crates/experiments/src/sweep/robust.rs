//! `realbias measures DIR... --robust`: Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang,
//! Mitliagkas & Roy (2020), *In Search of Robust Measures of Generalization*, on the networks
//! of one or many experiment folders.
//!
//! - A run's **hyperparameters** are its dataset, width, initialization scale, optimizer,
//!   labels (original, censored, censored-noise) and weight decay λ (0 outside the
//!   weight-decay condition); its repetition is its seed, not a hyperparameter.
//! - An **environment** is a pair of hyperparameter settings that differ in exactly one of
//!   them (its axis). Every run of one setting is paired with every run of the other.
//! - A pair's **sign-error** for a measure `c` and gaps `g` (test − training error of the final
//!   network) is `(1 − sign(c₁ − c₂)·sign(g₁ − g₂)) / 2`: 0 when the measure orders the two
//!   networks as their gaps, 1 when reversed, ½ when either is tied (a constant measure is ½
//!   everywhere).
//! - A pair's **weight** discounts gap differences within the test set's Monte-Carlo noise:
//!   `w = (ψ(|g₁ − g₂|) − ½)₊` with Hoeffding's `ψ(Δ) = (1 − 2·exp(−2n(Δ/2)²))₊²` and `n` the
//!   test set's size (the smaller of the pair's; 10,000 for MNIST and CIFAR-10), as in the
//!   authors' code (`coupled_networks/create_environments.py`).
//! - An environment's sign-error is its pairs' weighted mean; an environment whose pairs all
//!   weigh 0 is left out.
//! - Per measure: the mean over environments, the 90th percentile, the worst (max), and the
//!   effective number of environments `(Σ W_e)² / Σ W_e²` (`W_e` an environment's total weight);
//!   per axis, the worst over the environments of that axis.

use std::collections::BTreeMap;

use realbias_train::RunResult;
use realbias_train::measures::Measures;

use super::config::Condition;
use super::measures::MEASURES;
use super::plan::PlannedRun;
use crate::chart::{Figure, Mark, Panel, Series};

/// The hyperparameter axes, in table order.
pub const AXES: [&str; 6] = [
    "dataset",
    "width",
    "init scale",
    "optimizer",
    "labels",
    "weight decay",
];

type FlatnessGetter = fn(&realbias_train::measures::flatness::Flatness) -> f64;

/// The flatness measures (`flatness.rs`), defined for runs whose measures were recomputed.
const FLATNESS: [(&str, FlatnessGetter); 8] = [
    ("PAC-Bayes flatness 1/σ²", |f| f.pacbayes_flatness),
    ("PAC-Bayes bound (init)", |f| f.pacbayes_init),
    ("PAC-Bayes bound (orig)", |f| f.pacbayes_orig),
    ("PAC-Bayes mag. flatness 1/σ'²", |f| {
        f.pacbayes_mag_flatness
    }),
    ("PAC-Bayes mag. bound (init)", |f| f.pacbayes_mag_init),
    ("PAC-Bayes mag. bound (orig)", |f| f.pacbayes_mag_orig),
    ("sharpness flatness 1/α²", |f| f.sharpness_flatness),
    ("sharpness mag. flatness 1/α'²", |f| {
        f.sharpness_mag_flatness
    }),
];

/// Every measure the robust evaluation ranks: the 23 of the τ tables, then the flatness ones.
pub fn measure_names() -> Vec<&'static str> {
    MEASURES
        .iter()
        .map(|(n, _)| *n)
        .chain(FLATNESS.iter().map(|(n, _)| *n))
        .collect()
}

fn measure_values(m: &Measures) -> Vec<Option<f64>> {
    let flatness = FLATNESS
        .iter()
        .map(|(_, get)| m.flatness.as_ref().map(get).filter(|v| v.is_finite()));
    MEASURES
        .iter()
        .map(|(_, get)| get(m).filter(|v| v.is_finite()))
        .chain(flatness)
        .collect()
}

/// Writes `robust.md`, `robust.csv` and the CDF figure for `runs` into `out`; returns the
/// markdown, the files written and the figure's warnings.
pub fn write(
    out: &std::path::Path,
    title: &str,
    runs: &[RobustRun],
) -> Result<(String, crate::experiment::Finalized), crate::ExperimentError> {
    let rows = evaluate(runs);
    let text = markdown(title, runs.len(), &rows);
    let texts = vec![
        (out.join("robust.md"), text.clone()),
        (out.join("robust.csv"), csv(&rows)),
    ];
    let mut finalized = crate::experiment::Finalized {
        files: crate::store::save_texts(texts)?,
        skipped: Vec::new(),
        warnings: Vec::new(),
    };
    let (files, warnings) = crate::chart::draw_figures(out, vec![figure(title, &rows)])?;
    finalized.files.extend(files);
    finalized.warnings.extend(warnings);
    Ok((text, finalized))
}

/// One finished run, as the robust evaluation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustRun {
    /// One value per [`AXES`] entry.
    pub hyper: Vec<String>,
    /// Test − training error of the final network.
    pub gap: f64,
    pub test_examples: usize,
    /// One value per [`measure_names`] entry.
    pub values: Vec<Option<f64>>,
}

/// The run `p`'s result `r` for the robust evaluation (`None` without measures).
pub fn robust_run(p: &PlannedRun, r: &RunResult) -> Option<RobustRun> {
    let m = r.measures.as_ref()?;
    let labels = match p.condition {
        Condition::Plain | Condition::WeightDecay => "original",
        Condition::Censored => "censored",
        Condition::CensoredNoise => "censored-noise",
    };
    let c = &r.config;
    let hyper = vec![
        r.dataset.clone(),
        p.hidden.to_string(),
        c.model.init_scale.to_string(),
        c.optim.method.name().to_string(),
        labels.to_string(),
        p.weight_decay.unwrap_or(0.0).to_string(),
    ];
    Some(RobustRun {
        hyper,
        gap: r.test_error - r.train_error,
        test_examples: r.test_examples,
        values: measure_values(&m.at_convergence),
    })
}

/// Hoeffding's weight of a gap difference `delta` measured on `n` test examples.
pub fn hoeffding_weight(delta: f64, n: usize) -> f64 {
    let phi = 2.0 * (-2.0 * n as f64 * (delta.abs() / 2.0).powi(2)).exp();
    (1.0 - phi).max(0.0).powi(2)
}

/// A pair's weight: Hoeffding's, minus ½, floored at 0.
pub fn pair_weight(delta: f64, n: usize) -> f64 {
    (hoeffding_weight(delta, n) - 0.5).max(0.0)
}

/// `(1 − sign(c₁ − c₂)·sign(g₁ − g₂)) / 2`, with sign(0) = 0.
pub fn sign_error(c: (f64, f64), g: (f64, f64)) -> f64 {
    let sign = |x: f64| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    (1.0 - sign(c.0 - c.1) * sign(g.0 - g.1)) / 2.0
}

/// One environment's sums for one measure.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    loss: f64,
    weight: f64,
}

/// The environments of `runs`: `(axis, settings a, settings b)` -> per measure sums.
fn environments(runs: &[RobustRun], measures: usize) -> Vec<(usize, Vec<Sums>)> {
    let mut groups: BTreeMap<&[String], Vec<&RobustRun>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.hyper.as_slice()).or_default().push(r);
    }
    let settings: Vec<(&[String], Vec<&RobustRun>)> = groups.into_iter().collect();
    let mut out = Vec::new();
    for (i, (a, runs_a)) in settings.iter().enumerate() {
        for (b, runs_b) in &settings[i + 1..] {
            let differing: Vec<usize> = (0..a.len()).filter(|&k| a[k] != b[k]).collect();
            let [axis] = differing[..] else { continue };
            let mut sums = vec![Sums::default(); measures];
            for x in runs_a {
                for y in runs_b {
                    let w = pair_weight(x.gap - y.gap, x.test_examples.min(y.test_examples));
                    for (m, s) in sums.iter_mut().enumerate() {
                        if let (Some(cx), Some(cy)) = (x.values[m], y.values[m]) {
                            s.loss += w * sign_error((cx, cy), (x.gap, y.gap));
                            s.weight += w;
                        }
                    }
                }
            }
            out.push((axis, sums));
        }
    }
    out
}

/// One measure's robustness over the environments.
#[derive(Debug, Clone, PartialEq)]
pub struct Robustness {
    pub measure: &'static str,
    /// Environments with positive weight, and their effective number.
    pub environments: usize,
    pub effective_environments: f64,
    pub mean: Option<f64>,
    pub p90: Option<f64>,
    pub worst: Option<f64>,
    /// The worst per axis (`None`: no weighted environment on it).
    pub worst_by_axis: Vec<Option<f64>>,
    /// The mean per axis: where a measure fails often, not once.
    pub mean_by_axis: Vec<Option<f64>>,
    /// Every environment's sign-error, ascending (the CDF).
    pub errors: Vec<f64>,
}

/// Nearest-rank percentile of ascending `sorted`.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// Every measure's robustness over the environments of `runs`.
pub fn evaluate(runs: &[RobustRun]) -> Vec<Robustness> {
    let names = measure_names();
    let envs = environments(runs, names.len());
    names
        .iter()
        .enumerate()
        .map(|(m, &measure)| {
            let weighted: Vec<(usize, f64, f64)> = envs
                .iter()
                .filter(|(_, s)| s[m].weight > 0.0)
                .map(|(axis, s)| (*axis, s[m].loss / s[m].weight, s[m].weight))
                .collect();
            let mut errors: Vec<f64> = weighted.iter().map(|e| e.1).collect();
            errors.sort_by(f64::total_cmp);
            let total: f64 = weighted.iter().map(|e| e.2).sum();
            let squares: f64 = weighted.iter().map(|e| e.2 * e.2).sum();
            let on = |axis: usize| weighted.iter().filter(move |e| e.0 == axis).map(|e| e.1);
            let worst_on = |axis: usize| on(axis).reduce(f64::max);
            let mean_on = |axis: usize| {
                let n = on(axis).count();
                (n > 0).then(|| on(axis).sum::<f64>() / n as f64)
            };
            Robustness {
                measure,
                environments: errors.len(),
                effective_environments: if squares > 0.0 {
                    total * total / squares
                } else {
                    0.0
                },
                mean: (!errors.is_empty())
                    .then(|| errors.iter().sum::<f64>() / errors.len() as f64),
                p90: percentile(&errors, 0.9),
                worst: errors.last().copied(),
                worst_by_axis: (0..AXES.len()).map(worst_on).collect(),
                mean_by_axis: (0..AXES.len()).map(mean_on).collect(),
                errors,
            }
        })
        .collect()
}

fn cell(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.3}"))
}

/// `robust.csv`: one row per measure.
pub fn csv(rows: &[Robustness]) -> String {
    let axes: Vec<String> = AXES
        .iter()
        .map(|a| format!("worst_{}", a.replace(' ', "_")))
        .collect();
    let mut s = format!(
        "measure,environments,effective_environments,mean,p90,worst,{}\n",
        axes.join(",")
    );
    let num = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.6}"));
    for r in rows {
        let by_axis: Vec<String> = (r.worst_by_axis.iter().chain(&r.mean_by_axis))
            .map(|&x| num(x))
            .collect();
        s.push_str(&format!(
            "\"{}\",{},{:.3},{},{},{},{}\n",
            r.measure,
            r.environments,
            r.effective_environments,
            num(r.mean),
            num(r.p90),
            num(r.worst),
            by_axis.join(",")
        ));
    }
    s
}

/// `robust.md`: the table, most robust (lowest 90th percentile, then mean) first.
pub fn markdown(title: &str, runs: usize, rows: &[Robustness]) -> String {
    let mut sorted: Vec<&Robustness> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |r: &Robustness| {
            let or_worst = |x: Option<f64>| x.unwrap_or(f64::INFINITY);
            (or_worst(r.p90), or_worst(r.mean))
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let mut s = format!(
        "# {title}: which measure orders the networks like their generalization gap, everywhere?\n\n\
         {runs} runs. Sign-error of each measure in environments of two hyperparameter settings \
         that differ in one value (Dziugaite et al. 2020): 0 = ordered as their gaps, 1 = \
         reversed, 0.5 = tied or unrelated; pairs weighted by Hoeffding's confidence that their \
         gaps differ beyond the test set's noise. Sorted by the 90th percentile, then the mean. Per \
         axis: the mean / the worst over the environments that differ in that hyperparameter.\n\n\
         | measure | envs (effective) | mean | p90 | worst | {} |\n|---|---|---|---|---|{}\n",
        AXES.join(" | "),
        "---|".repeat(AXES.len())
    );
    for r in sorted {
        let by_axis: Vec<String> = (r.mean_by_axis.iter().zip(&r.worst_by_axis))
            .map(|(&mean, &worst)| match (mean, worst) {
                (Some(m), Some(w)) => format!("{m:.2} / {w:.2}"),
                _ => "—".into(),
            })
            .collect();
        s.push_str(&format!(
            "| {} | {} ({:.1}) | {} | {} | {} | {} |\n",
            r.measure,
            r.environments,
            r.effective_environments,
            cell(r.mean),
            cell(r.p90),
            cell(r.worst),
            by_axis.join(" | ")
        ));
    }
    s
}

/// The CDF of each measure's environment sign-errors (Dziugaite et al.'s Figure 1), the
/// measures split over panels of at most 8 curves.
pub fn figure(title: &str, rows: &[Robustness]) -> Figure {
    let drawn: Vec<&Robustness> = rows.iter().filter(|r| !r.errors.is_empty()).collect();
    let panels = drawn
        .chunks(8)
        .enumerate()
        .map(|(i, chunk)| Panel {
            title: format!("measures {}-{}", 8 * i + 1, 8 * i + chunk.len()),
            x_label: "sign-error of an environment".into(),
            y_label: "fraction of environments ≤ x".into(),
            series: chunk
                .iter()
                .enumerate()
                .map(|(c, r)| {
                    let n = r.errors.len() as f64;
                    let points = r
                        .errors
                        .iter()
                        .enumerate()
                        .map(|(j, &e)| (e, (j + 1) as f64 / n))
                        .collect();
                    Series::new(r.measure, points, Mark::Thin).colored(c)
                })
                .collect(),
            legend_left: true,
            new_row: i > 0 && i % 2 == 0,
            ..Panel::default()
        })
        .collect();
    (
        "robust",
        format!("{title}: CDF of sign-errors over environments"),
        panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic zoo: widths 1..=4 on two datasets, 3 seeds, gaps set by hand (far apart,
    /// so every pair weighs about ½).
    fn zoo(measure: impl Fn(f64) -> Option<f64>) -> Vec<RobustRun> {
        let mut runs = Vec::new();
        for dataset in ["a", "b"] {
            for width in 1..=4 {
                for seed in 0..3 {
                    let gap = 0.1 * width as f64
                        + if dataset == "b" { 0.05 } else { 0.0 }
                        + 0.001 * seed as f64;
                    let mut values = vec![None; measure_names().len()];
                    values[0] = measure(gap);
                    let mut hyper = vec!["x".to_string(); AXES.len()];
                    hyper[0] = dataset.into();
                    hyper[1] = width.to_string();
                    runs.push(RobustRun {
                        hyper,
                        gap,
                        test_examples: 10_000,
                        values,
                    });
                }
            }
        }
        runs
    }

    #[test]
    fn the_gap_itself_has_sign_error_0_its_negation_1_a_constant_one_half() {
        for (measure, want) in [
            (Box::new(Some) as Box<dyn Fn(f64) -> Option<f64>>, 0.0),
            (Box::new(|g: f64| Some(-g)), 1.0),
            (Box::new(|_| Some(3.0)), 0.5),
        ] {
            let r = &evaluate(&zoo(measure))[0];
            // Pairs of settings differing in one value: width (6 per dataset) + dataset (4).
            assert_eq!(r.environments, 16);
            for x in [r.mean, r.p90, r.worst] {
                assert!((x.unwrap() - want).abs() < 1e-12, "{r:?}");
            }
            assert_eq!(r.worst_by_axis[1], Some(want));
            assert_eq!(r.worst_by_axis[2], None, "no environment on the init axis");
        }
    }

    #[test]
    fn a_measure_that_fails_only_across_datasets_is_found_there() {
        // Orders the widths right, the datasets wrong.
        let runs = zoo(|g| Some(if (g * 10.0).fract() > 0.4 { g - 1.0 } else { g }));
        let r = &evaluate(&runs)[0];
        assert_eq!(r.worst_by_axis[1], Some(0.0), "{r:?}");
        assert_eq!(r.worst_by_axis[0], Some(1.0), "{r:?}");
    }

    #[test]
    fn pairs_within_the_test_sets_noise_weigh_nothing() {
        // Hoeffding: at n = 10,000 a difference of 0.1 points is noise, 5 points is not.
        assert_eq!(pair_weight(0.001, 10_000), 0.0);
        assert!((pair_weight(0.05, 10_000) - 0.5).abs() < 1e-4);
        let w = hoeffding_weight(0.03, 10_000);
        let by_hand = (1.0 - 2.0 * (-2.0f64 * 10_000.0 * 0.015 * 0.015).exp()).powi(2);
        assert!((w - by_hand).abs() < 1e-15);
        assert_eq!(sign_error((1.0, 1.0), (0.2, 0.1)), 0.5);
    }
}

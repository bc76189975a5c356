//! How a sweep's `[sweep.vary]` axes combine into points: the product (`grid`) or an
//! ablation (`one-at-a-time`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The axes: dotted key -> values, in key order.
pub type Axes = BTreeMap<String, Vec<toml::Value>>;

/// How the axes' values combine into points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Design {
    /// Every combination (the product).
    #[default]
    Grid,
    /// An ablation: the first value of every axis is the baseline; the points are the
    /// baseline and, for each axis, each later value with every other axis at its first.
    OneAtATime,
}

impl Design {
    pub fn is_grid(&self) -> bool {
        *self == Design::Grid
    }

    /// Which of a point's values name it: all in a grid; in an ablation those that differ
    /// from the `baseline` point.
    pub fn named(
        self,
        values: &[(String, toml::Value)],
        baseline: &[(String, toml::Value)],
    ) -> Vec<bool> {
        match self {
            Design::Grid => vec![true; values.len()],
            Design::OneAtATime => values.iter().zip(baseline).map(|(a, b)| a != b).collect(),
        }
    }

    /// The points of `axes` under this design.
    pub fn points(self, axes: &Axes) -> Vec<Vec<(String, toml::Value)>> {
        match self {
            Design::Grid => grid(axes),
            Design::OneAtATime => one_at_a_time(axes),
        }
    }
}

/// The baseline (every axis at its first value), then each later value of each axis alone.
fn one_at_a_time(axes: &Axes) -> Vec<Vec<(String, toml::Value)>> {
    let baseline: Vec<(String, toml::Value)> = axes
        .iter()
        .filter_map(|(k, vs)| Some((k.clone(), vs.first()?.clone())))
        .collect();
    let mut points = vec![baseline.clone()];
    for (i, (_, values)) in axes.iter().enumerate() {
        for v in values.iter().skip(1) {
            let mut point = baseline.clone();
            point[i].1 = v.clone();
            points.push(point);
        }
    }
    points
}

/// Every combination of the axes' values, the first axis varying slowest.
pub fn grid(axes: &Axes) -> Vec<Vec<(String, toml::Value)>> {
    let mut points: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in axes {
        points = points
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut next = point.clone();
                    next.push((key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    points
}

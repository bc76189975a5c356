//! Summaries of a prepared dataset, for `realbias data info`.

use serde::Serialize;

use crate::dataset::{Dataset, Split};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitInfo {
    pub size: usize,
    pub class_histogram: Vec<usize>,
    /// Mean over examples and features.
    pub feature_mean: f64,
    /// Standard deviation over examples and features.
    pub feature_std: f64,
    pub feature_min: f32,
    pub feature_max: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInfo {
    pub dataset: String,
    pub features: usize,
    pub classes: usize,
    pub train: SplitInfo,
    pub validation: SplitInfo,
    pub test: SplitInfo,
}

impl SplitInfo {
    pub fn of(split: &Split, classes: usize) -> Self {
        let n = split.features.len().max(1) as f64;
        let mean = split.features.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = split
            .features
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let (min, max) = split
            .features
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        SplitInfo {
            size: split.len(),
            class_histogram: split.class_histogram(classes),
            feature_mean: mean,
            feature_std: var.sqrt(),
            feature_min: min,
            feature_max: max,
        }
    }
}

impl DatasetInfo {
    pub fn of(dataset: &Dataset) -> Self {
        DatasetInfo {
            dataset: dataset.name.clone(),
            features: dataset.dim(),
            classes: dataset.classes,
            train: SplitInfo::of(&dataset.train, dataset.classes),
            validation: SplitInfo::of(&dataset.validation, dataset.classes),
            test: SplitInfo::of(&dataset.test, dataset.classes),
        }
    }
}

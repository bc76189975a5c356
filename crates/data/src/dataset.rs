//! Feature vectors and the paper's splits: what a network is trained and evaluated on.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::images::{RawDataset, RawImages};
use crate::resize::{Resizer, rgb_to_gray};

/// The paper's input side: images are "downsampled to 100 pixels", i.e. 10x10.
pub const PAPER_SIDE: usize = 10;
/// The paper's validation size, carved out of the training file (Figure 1 caption).
pub const PAPER_VALIDATION: usize = 10_000;

/// Per-feature normalization with statistics of the training split only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Features stay intensities in [0, 1] (the paper states no preprocessing beyond resizing).
    #[default]
    None,
    /// Subtract the training mean of each feature.
    Center,
    /// Subtract the training mean and divide by the training standard deviation.
    Standardize,
}

/// How raw images become feature vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureOptions {
    /// Side of the square the images are resized to (the paper: 10).
    pub side: usize,
    /// Keep colour channels (d = 3·side²) instead of converting to luma (d = side²).
    pub color: bool,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            side: PAPER_SIDE,
            color: false,
        }
    }
}

impl FeatureOptions {
    pub fn validate(&self) -> Result<()> {
        if self.side == 0 {
            return Err(DataError::invalid("features.side", "must be at least 1"));
        }
        Ok(())
    }
}

/// Labelled feature vectors, row-major `len x dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub dim: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Split {
        let mut features = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        Split {
            dim: self.dim,
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Examples `range` (contiguous).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Split {
        Split {
            dim: self.dim,
            features: self.features[range.start * self.dim..range.end * self.dim].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }

    fn concat(&self, other: &Split) -> Split {
        let mut s = self.clone();
        s.features.extend_from_slice(&other.features);
        s.labels.extend_from_slice(&other.labels);
        s
    }

    /// Number of examples of each class `0..classes`.
    pub fn class_histogram(&self, classes: usize) -> Vec<usize> {
        let mut h = vec![0; classes];
        for &l in &self.labels {
            h[l as usize] += 1;
        }
        h
    }

    /// Per-feature mean and (population) standard deviation.
    pub fn feature_moments(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.len().max(1) as f64;
        let mut mean = vec![0.0; self.dim];
        let mut sq = vec![0.0; self.dim];
        for i in 0..self.len() {
            for (j, &v) in self.row(i).iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += v as f64 * v as f64;
            }
        }
        for j in 0..self.dim {
            mean[j] /= n;
            sq[j] = (sq[j] / n - mean[j] * mean[j]).max(0.0).sqrt();
        }
        (mean, sq)
    }
}

/// Converts raw images to feature vectors in [0, 1]: luma (unless `color`), then area
/// averaging to `side x side`.
pub fn features_of(images: &RawImages, options: &FeatureOptions) -> Split {
    let (h, w, side) = (images.height, images.width, options.side);
    let resizer = Resizer::new(h, w, side, side);
    let plane = h * w;
    let keep_color = options.color && images.channels > 1;
    let dim = if keep_color {
        images.channels * side * side
    } else {
        side * side
    };
    let mut features = Vec::with_capacity(images.len() * dim);
    for i in 0..images.len() {
        let img = images.image(i);
        if keep_color || images.channels == 1 {
            for c in 0..images.channels {
                let p: Vec<f32> = img[c * plane..(c + 1) * plane]
                    .iter()
                    .map(|&b| b as f32 / 255.0)
                    .collect();
                features.extend(resizer.apply(&p));
            }
        } else {
            features.extend(resizer.apply(&rgb_to_gray(img, plane)));
        }
    }
    Split {
        dim,
        features,
        labels: images.labels.clone(),
    }
}

/// Which splits a label transformation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitSelection {
    pub train: bool,
    pub validation: bool,
    pub test: bool,
}

impl Default for SplitSelection {
    /// Label noise by default corrupts what is learned from and selected on; test stays clean.
    fn default() -> Self {
        SplitSelection {
            train: true,
            validation: true,
            test: false,
        }
    }
}

/// Which labels a noise draw changed, per split (indices into that split).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NoiseReport {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

impl NoiseReport {
    pub fn total(&self) -> usize {
        self.train.len() + self.validation.len() + self.test.len()
    }
}

/// A dataset ready for training: the paper's three splits of feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub classes: usize,
    pub train: Split,
    pub validation: Split,
    pub test: Split,
}

/// Independent random streams for the different uses of one seed.
fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

const STREAM_SUBSET: u64 = 1;
const STREAM_NOISE: u64 = 2;

impl Dataset {
    /// The paper's full splits: the last `validation` examples of the training file are the
    /// validation split (a fixed, seed-free choice, as in the common 50k/10k MNIST split), the
    /// rest training, and the test file the test split.
    pub fn from_raw(
        raw: &RawDataset,
        features: &FeatureOptions,
        validation: usize,
    ) -> Result<Self> {
        features.validate()?;
        if validation >= raw.train.len() {
            return Err(DataError::invalid(
                "validation size",
                format!(
                    "{validation} leaves no training examples out of {} in {}",
                    raw.train.len(),
                    raw.name
                ),
            ));
        }
        let all = features_of(&raw.train, features);
        let cut = all.len() - validation;
        Ok(Dataset {
            name: raw.name.clone(),
            classes: raw.classes,
            train: all.slice(0..cut),
            validation: all.slice(cut..all.len()),
            test: features_of(&raw.test, features),
        })
    }

    pub fn dim(&self) -> usize {
        self.train.dim
    }

    pub fn total_len(&self) -> usize {
        self.train.len() + self.validation.len() + self.test.len()
    }

    /// All examples, train then validation then test (the order of [`Dataset::relabel_all`]).
    pub fn all_examples(&self) -> Split {
        self.train.concat(&self.validation).concat(&self.test)
    }

    /// Figure 2's small subsets: `n_train` training and `n_validation` validation examples
    /// drawn without overlap, by `seed`, from the whole training file (train + validation);
    /// the test split is kept whole.
    pub fn subset(&self, n_train: usize, n_validation: usize, seed: u64) -> Result<Dataset> {
        let pool = self.train.concat(&self.validation);
        if n_train == 0 || n_train + n_validation > pool.len() {
            return Err(DataError::invalid(
                "subset sizes",
                format!(
                    "{n_train} training + {n_validation} validation examples requested, \
                     the training file of {} has {} (training needs at least 1)",
                    self.name,
                    pool.len()
                ),
            ));
        }
        let mut order: Vec<usize> = (0..pool.len()).collect();
        order.shuffle(&mut rng(seed, STREAM_SUBSET));
        Ok(Dataset {
            name: self.name.clone(),
            classes: self.classes,
            train: pool.select(&order[..n_train]),
            validation: pool.select(&order[n_train..n_train + n_validation]),
            test: self.test.clone(),
        })
    }

    /// Replaces every label (train, validation, test in that order), e.g. with the predictions
    /// of the small network that "censors" the data set.
    pub fn relabel_all(&mut self, labels: &[u8]) -> Result<()> {
        if labels.len() != self.total_len() {
            return Err(DataError::invalid(
                "relabeling",
                format!(
                    "{} labels given for {} examples",
                    labels.len(),
                    self.total_len()
                ),
            ));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= self.classes)
        {
            return Err(DataError::invalid(
                "relabeling",
                format!("label {l} at {i} is out of range 0..{}", self.classes - 1),
            ));
        }
        let (a, rest) = labels.split_at(self.train.len());
        let (b, c) = rest.split_at(self.validation.len());
        self.train.labels.copy_from_slice(a);
        self.validation.labels.copy_from_slice(b);
        self.test.labels.copy_from_slice(c);
        Ok(())
    }

    /// Changes exactly `round(fraction · n)` labels of each selected split to a different
    /// class drawn uniformly, by `seed`; returns which.
    pub fn add_label_noise(
        &mut self,
        fraction: f64,
        targets: SplitSelection,
        seed: u64,
    ) -> Result<NoiseReport> {
        check_fraction(fraction)?;
        let mut report = NoiseReport::default();
        let mut rng = rng(seed, STREAM_NOISE);
        let classes = self.classes;
        for (on, split, out) in [
            (targets.train, &mut self.train, &mut report.train),
            (
                targets.validation,
                &mut self.validation,
                &mut report.validation,
            ),
            (targets.test, &mut self.test, &mut report.test),
        ] {
            if on {
                *out = corrupt_labels(&mut split.labels, fraction, classes, &mut rng)?;
            }
        }
        Ok(report)
    }

    /// Normalizes every split with per-feature statistics of the training split.
    pub fn normalize(&mut self, normalization: Normalization) {
        let moments = self.train.feature_moments();
        self.normalize_with(normalization, moments);
    }

    /// Normalizes every split with the given per-feature `(mean, std)` (e.g. of another
    /// dataset's examples, so that two datasets share one input map).
    pub fn normalize_with(
        &mut self,
        normalization: Normalization,
        (mean, std): (Vec<f64>, Vec<f64>),
    ) {
        if normalization == Normalization::None {
            return;
        }
        // A constant feature (a border pixel that is always 0) is only centred.
        let scale: Vec<f32> = std
            .iter()
            .map(|&s| match normalization {
                Normalization::Standardize if s > 1e-8 => (1.0 / s) as f32,
                _ => 1.0,
            })
            .collect();
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        for split in [&mut self.train, &mut self.validation, &mut self.test] {
            for row in split.features.chunks_exact_mut(split.dim) {
                for ((v, m), s) in row.iter_mut().zip(&mean).zip(&scale) {
                    *v = (*v - m) * s;
                }
            }
        }
    }
}

fn check_fraction(fraction: f64) -> Result<()> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::invalid(
            "label noise",
            format!("fraction {fraction} not in [0, 1)"),
        ));
    }
    Ok(())
}

/// Changes exactly `round(fraction · n)` of `labels`, each to a uniformly drawn *different*
/// class; returns the changed indices in increasing order.
pub fn corrupt_labels(
    labels: &mut [u8],
    fraction: f64,
    classes: usize,
    rng: &mut impl rand::Rng,
) -> Result<Vec<usize>> {
    check_fraction(fraction)?;
    if classes < 2 {
        return Err(DataError::invalid(
            "label noise",
            "needs at least 2 classes",
        ));
    }
    let count = (fraction * labels.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(rng);
    let mut changed = order[..count].to_vec();
    changed.sort_unstable();
    for &i in &changed {
        let shift = rng.random_range(1..classes);
        labels[i] = ((labels[i] as usize + shift) % classes) as u8;
    }
    Ok(changed)
}

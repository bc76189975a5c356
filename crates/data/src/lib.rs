//! Datasets of Neyshabur, Tomioka & Srebro (2015), "In Search of the Real Inductive Bias":
//! MNIST (IDX) and CIFAR-10 (binary version) readers, the paper's 10x10 downsampling, its
//! train / validation / test splits and small subsets, "censored" relabeling and label noise.
//!
//! This crate has no deep-learning dependency so that it builds and tests in seconds.

pub mod bounded;
pub mod cifar;
pub mod dataset;
pub mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod idx;
pub mod images;
pub mod resize;
pub mod source;
pub mod stats;

pub use dataset::{
    Dataset, FeatureOptions, NoiseReport, Normalization, PAPER_SIDE, PAPER_VALIDATION, Split,
    SplitSelection, corrupt_labels, features_of,
};
pub use error::{DataError, Result};
pub use images::{RawDataset, RawImages};
pub use source::{DATA_ENV, DEFAULT_DATA_DIR, DatasetSource, resolve_data_dir};
pub use stats::{DatasetInfo, SplitInfo};

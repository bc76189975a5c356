//! The data a training config names: the paper's splits of the dataset, then the run's own
//! subset, label noise and normalization.

use std::path::Path;

use realbias_data::{Dataset, resolve_data_dir};

use crate::TrainError;
use crate::config::{DataConfig, NormalizationStatistics};

/// Reads and prepares the data a config describes: paper splits, optional subset, label
/// noise, normalization. `data_dir` overrides `REALBIAS_DATA` / `datasets/`.
pub fn prepare_data(
    config: &DataConfig,
    data_dir: Option<&Path>,
    seed: u64,
) -> Result<Dataset, TrainError> {
    derive_data(&load_full(config, data_dir)?, config, seed)
}

/// The paper's full splits of the configured dataset, before any subset, noise or
/// normalization (what censoring relabels).
pub fn load_full(config: &DataConfig, data_dir: Option<&Path>) -> Result<Dataset, TrainError> {
    let raw = config.dataset.load(&resolve_data_dir(data_dir))?;
    Ok(Dataset::from_raw(
        &raw,
        &config.features,
        config.validation,
    )?)
}

/// One run's data from the full splits: the seeded subset, label noise, normalization (with
/// the statistics of the run's training split, or of every example of `full`).
pub fn derive_data(full: &Dataset, config: &DataConfig, seed: u64) -> Result<Dataset, TrainError> {
    let mut data = match config.subset {
        Some(s) => full.subset(s.train, s.validation, seed)?,
        None => full.clone(),
    };
    if data.train.is_empty() {
        return Err(TrainError::EmptyTraining {
            dataset: data.name.clone(),
        });
    }
    if data.validation.is_empty() {
        return Err(TrainError::EmptyValidation {
            dataset: data.name.clone(),
        });
    }
    if config.label_noise > 0.0 {
        data.add_label_noise(config.label_noise, config.noise_targets, seed)?;
    }
    match config.normalization_statistics {
        NormalizationStatistics::Training => data.normalize(config.normalization),
        NormalizationStatistics::All => {
            let moments = full.all_examples().feature_moments();
            data.normalize_with(config.normalization, moments);
        }
    }
    Ok(data)
}

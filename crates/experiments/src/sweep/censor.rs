//! Censored labels (Figure 2): a small network of H0 units trained on the entire dataset, its
//! predictions replacing every label. Trained once per experiment folder and cached under a key
//! of everything that determines the labels.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use realbias_data::{Dataset, Split};
use realbias_model::TwoLayerNet;
use realbias_train::config::TrainConfig;
use realbias_train::eval::DeviceSplit;
use realbias_train::run_files::files::write_atomic;
use realbias_train::{Progress, StopReason, TrainError, Trainer};
use serde::{Deserialize, Serialize};

use crate::ExperimentError;

/// The censored labels of the whole dataset and how they came about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CensorInfo {
    pub censor_hidden: usize,
    pub seed: u64,
    pub examples: usize,
    /// Fraction of examples whose censored label differs from the true one.
    pub disagreement: f64,
    pub epochs: usize,
    pub stop_reason: StopReason,
    pub train_error: f64,
    /// Fraction of examples where the censoring network's largest output was tied (a
    /// bias-free ReLU net outputs all zeros where every unit is off): their label is the
    /// lowest tied class. `None` in caches from before it was recorded.
    #[serde(default)]
    pub ties: Option<f64>,
}

/// Everything that determines the censored labels, as text: the censoring network's resolved
/// training config and the data's identity (sizes and a fingerprint of every feature and
/// label). Recorded as `key.toml` beside the labels; the folder is named by its hash.
pub fn censor_key(config: &TrainConfig, full: &Dataset) -> Result<String, TrainError> {
    let mut anonymous = config.clone();
    anonymous.name = None; // the experiment's name does not change the labels
    // An empty key would make every censoring config share one cache.
    let training = toml::to_string(&anonymous).map_err(|e| TrainError::Encode {
        what: "the censoring network's config (the cache key)".into(),
        message: e.to_string(),
    })?;
    let mut fingerprint = Fnv::default();
    for split in [&full.train, &full.validation, &full.test] {
        for v in &split.features {
            fingerprint.write(&v.to_bits().to_le_bytes());
        }
        fingerprint.write(&split.labels);
    }
    Ok(format!(
        "# What determines the censored labels; they are recomputed when any of it changes.\n\
         [data]\nname = {:?}\nclasses = {}\ndim = {}\ntrain = {}\nvalidation = {}\ntest = {}\n\
         fingerprint = \"{:016x}\"\n\n[censor]\n{training}",
        full.name,
        full.classes,
        full.dim(),
        full.train.len(),
        full.validation.len(),
        full.test.len(),
        fingerprint.0
    ))
}

/// 64-bit FNV-1a: a stable hash (the standard library's may change between releases).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The cache folder of the labels `key` describes, under `experiment_dir/censor/`.
pub fn censor_dir(
    experiment_dir: &Path,
    config: &TrainConfig,
    full: &Dataset,
    key: &str,
) -> PathBuf {
    let mut hash = Fnv::default();
    hash.write(key.as_bytes());
    experiment_dir.join("censor").join(format!(
        "{}-h0-{}-{:016x}",
        full.name, config.model.hidden, hash.0
    ))
}

/// Labels cached in `dir` for exactly `key`, if they are there and whole.
fn cached_labels(dir: &Path, key: &str, full: &Dataset) -> Option<(Vec<u8>, CensorInfo)> {
    if std::fs::read_to_string(dir.join("key.toml")).ok()? != key {
        return None;
    }
    let labels = std::fs::read(dir.join("labels.bin")).ok()?;
    let info = std::fs::read_to_string(dir.join("censor.json")).ok()?;
    let info = serde_json::from_str::<CensorInfo>(&info).ok()?;
    let whole =
        labels.len() == full.total_len() && labels.iter().all(|&l| (l as usize) < full.classes);
    whole.then_some((labels, info))
}

/// Trains the H0 network on the entire dataset (train + validation + test, as in the paper)
/// and returns its predictions for every example, cached in `dir` (from [`censor_dir`]) under
/// `key` (from [`censor_key`]: everything that determines them). `None` when the user stopped
/// the training (nothing is cached then).
pub fn censor_labels<P: Progress + Send + 'static>(
    config: &TrainConfig,
    full: &Dataset,
    (dir, key): (&Path, &str),
    device: &Device,
    progress: P,
) -> Result<Option<(Vec<u8>, CensorInfo)>, ExperimentError> {
    if let Some(cached) = cached_labels(dir, key, full) {
        return Ok(Some(cached));
    }
    let (_, labels, info) = censor(config, full, device, progress)?;
    if info.stop_reason == StopReason::Interrupted {
        return Ok(None);
    }
    write_atomic(&dir.join("labels.bin"), &labels)?;
    crate::store::save(&dir.join("censor.json"), &info)?;
    // The key last: a folder without it is never taken for a finished cache.
    write_atomic(&dir.join("key.toml"), key.as_bytes())?;
    Ok(Some((labels, info)))
}

/// Trains the censoring network on every example of `full` (normalized as the config says)
/// and returns it with its predicted labels (train, validation, test order) and a report.
pub fn censor<P: Progress + Send + 'static>(
    config: &TrainConfig,
    full: &Dataset,
    device: &Device,
    progress: P,
) -> Result<(TwoLayerNet, Vec<u8>, CensorInfo), TrainError> {
    let empty = Split {
        dim: full.dim(),
        features: Vec::new(),
        labels: Vec::new(),
    };
    let mut everything = Dataset {
        name: full.name.clone(),
        classes: full.classes,
        train: full.all_examples(),
        validation: empty.clone(),
        test: empty,
    };
    everything.normalize(config.data.normalization);
    let everything = std::sync::Arc::new(everything);
    let checked = config.clone().check()?;
    let run = Trainer::new(&checked, everything.clone(), device).run(progress)?;
    let (labels, ties) = DeviceSplit::new(&everything.train, config.train.eval_batch, device)
        .predict_with_ties(&run.final_net)?;
    let truth = &everything.train.labels;
    let disagree = labels.iter().zip(truth).filter(|(a, b)| a != b).count();
    let info = CensorInfo {
        censor_hidden: config.model.hidden,
        seed: config.train.seed,
        examples: labels.len(),
        disagreement: disagree as f64 / labels.len().max(1) as f64,
        epochs: run.result.epochs,
        stop_reason: run.result.stop_reason,
        train_error: run.result.train_error,
        ties: Some(ties as f64 / labels.len().max(1) as f64),
    };
    Ok((run.final_net, labels, info))
}

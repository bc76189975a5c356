//! One run's training state: everything its next epoch depends on, defined once for a single
//! run and an ensemble member alike, and saved as the run's checkpoint
//! (`checkpoint.safetensors` beside its `result.json`).
//!
//! The state is the weights, the momentum buffers, the epochs done (which fix the next step
//! size and momentum), the best-validation network and its epoch, the stop rule's streak and
//! the history so far. The batch-order generator is not stored: it is rebuilt from the seed
//! and advanced by one permutation per epoch done, which gives exactly the orders an
//! uninterrupted run draws. The initial network is drawn again from the seed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TrainError;
use crate::config::TrainConfig;
use crate::run_files::record::EpochRecord;
use crate::run_files::tensor_file::{
    NamedMatrix, Sealing, TensorFile, file_error, write_with_bytes,
};
use crate::weights::Weights;

/// A run's checkpoint, in its folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// The version of the training arithmetic. Bump it with any change that changes a run's
/// numbers: a checkpoint of another version is refused, since resuming it would give a run
/// that neither version produces.
pub const TRAINING_CODE_VERSION: u32 = 1;

/// Format 2 is sealed by an integrity digest (`tensor_file`); format 1 was not.
const FORMAT: &str = "realbias-checkpoint-2";
const UNSEALED_FORMAT: &str = "realbias-checkpoint-1";

/// The state of an optimizer other than SGD: named pairs of tensors shaped like the weights,
/// an opaque record (L-BFGS's, as Burn writes it) and scalars.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    pub tensors: Vec<(String, Weights)>,
    pub record: Option<Vec<u8>>,
    pub scalars: std::collections::BTreeMap<String, f64>,
}

impl OptimizerState {
    /// The tensor pair `name`, an error naming it when it is missing.
    pub fn pair(&self, name: &str) -> Result<&Weights, TrainError> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w)
            .ok_or_else(|| missing_state(name))
    }

    /// The scalar `name`, an error naming it when it is missing.
    pub fn scalar(&self, name: &str) -> Result<f64, TrainError> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| missing_state(name))
    }
}

fn missing_state(name: &str) -> TrainError {
    TrainError::CorruptCheckpoint {
        why: format!("the optimizer state has no {name:?}"),
    }
}

/// The scalar part of an [`OptimizerState`] and the names of its tensors, as the checkpoint's
/// `optimizer` metadata.
#[derive(Debug, Serialize, Deserialize)]
struct OptimizerMetadata {
    tensors: Vec<String>,
    record: bool,
    scalars: std::collections::BTreeMap<String, f64>,
}

/// Everything the next epoch of a run depends on (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct RunCheckpoint {
    pub weights: Weights,
    /// The momentum buffers (none before the first step).
    pub velocity: Option<Weights>,
    /// The state of another optimizer than SGD (none for SGD).
    pub optimizer: Option<OptimizerState>,
    pub best: Weights,
    pub ledger: SavedLedger,
}

impl RunCheckpoint {
    /// Epochs done (the last one in the history): the next one is `epoch() + 1`.
    pub fn epoch(&self) -> usize {
        self.ledger.history.last().map_or(0, |r| r.epoch)
    }
}

/// The scalar part of the state, stored as the checkpoint's JSON metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedLedger {
    pub best_epoch: usize,
    pub best_validation_error: f64,
    /// Consecutive converged epochs so far (the stop rule's streak).
    pub streak: usize,
    /// Wall-clock seconds the run had taken.
    pub elapsed_seconds: f64,
    pub history: Vec<EpochRecord>,
}

/// Where a run keeps its checkpoint, and whether one that cannot resume it may be discarded
/// (`--force`) rather than refused.
#[derive(Debug, Clone)]
pub struct CheckpointSlot {
    pub dir: PathBuf,
    pub discard_mismatched: bool,
}

/// The settings that decide a run's numbers: the config without the ones that only say how
/// it is kept (`train.checkpoint_seconds`, `train.save_networks`, `train.tensorboard`) and
/// whether the flatness measures are added at its end (`train.flatness`: a recompute adds the
/// same values later).
pub fn outcome_settings(config: &TrainConfig) -> TrainConfig {
    let mut c = config.clone();
    let defaults = crate::config::TrainSettings::default();
    c.train.checkpoint_seconds = defaults.checkpoint_seconds;
    c.train.save_networks = defaults.save_networks;
    c.train.flatness = defaults.flatness;
    c.train.tensorboard = defaults.tensorboard;
    c
}

/// The settings that decide a run's numbers, as JSON: what a checkpoint must match and what
/// a saved network's config digest is taken of.
pub(crate) fn config_json(config: &TrainConfig) -> Result<String, TrainError> {
    serde_json::to_string(&outcome_settings(config)).map_err(|e| TrainError::Encode {
        what: "the run's config".into(),
        message: e.to_string(),
    })
}

impl CheckpointSlot {
    pub fn path(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_FILE)
    }

    /// Writes `state` of the run `config` (atomically: a kill mid-write keeps the last one).
    pub fn save(&self, config: &TrainConfig, state: &RunCheckpoint) -> Result<(), TrainError> {
        let path = self.path();
        let (d, h, k) = dims(config, state);
        let names: Vec<(String, String)> = optimizer_names(state);
        let mut matrices = vec![
            matrix("weights.u", [d, h], &state.weights.u),
            matrix("weights.v", [h, k], &state.weights.v),
            matrix("best.u", [d, h], &state.best.u),
            matrix("best.v", [h, k], &state.best.v),
        ];
        if let Some(b) = &state.velocity {
            matrices.push(matrix("velocity.u", [d, h], &b.u));
            matrices.push(matrix("velocity.v", [h, k], &b.v));
        }
        for ((name_u, name_v), (_, w)) in names.iter().zip(optimizer_pairs(state)) {
            matrices.push(matrix(name_u, [d, h], &w.u));
            matrices.push(matrix(name_v, [h, k], &w.v));
        }
        let encode = |message| TrainError::Encode {
            what: path.display().to_string(),
            message,
        };
        let bookkeeping = exact_json(&state.ledger).map_err(encode)?;
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("training_code".into(), TRAINING_CODE_VERSION.to_string()),
            (
                "git_revision".into(),
                crate::run_files::provenance::BUILD_REVISION.into(),
            ),
            ("config".into(), config_json(config)?),
            // For a reader of the file; the state's epoch is its history's last.
            ("epoch".into(), state.epoch().to_string()),
            ("bookkeeping".into(), bookkeeping),
        ]);
        let mut blobs = Vec::new();
        if let Some(o) = &state.optimizer {
            let meta = OptimizerMetadata {
                tensors: o.tensors.iter().map(|(n, _)| n.clone()).collect(),
                record: o.record.is_some(),
                scalars: o.scalars.clone(),
            };
            metadata.insert("optimizer".into(), exact_json(&meta).map_err(encode)?);
            if let Some(record) = &o.record {
                blobs.push((OPTIMIZER_RECORD, record.as_slice()));
            }
        }
        write_with_bytes(&path, &matrices, &blobs, metadata)
    }

    /// The checkpoint of the run `config` (a network `d x h x k`), if there is one that can
    /// resume it. One written by another config or training code is an error, or, when
    /// `discard_mismatched`, removed (the run then starts again).
    pub fn load(
        &self,
        config: &TrainConfig,
        dims: (usize, usize, usize),
    ) -> Result<Option<RunCheckpoint>, TrainError> {
        Ok(self.load_reporting(config, dims)?.0)
    }

    /// [`load`](Self::load), and why a checkpoint was discarded (under `discard_mismatched`),
    /// so that `--force` can say what it threw away.
    pub fn load_reporting(
        &self,
        config: &TrainConfig,
        (d, h, k): (usize, usize, usize),
    ) -> Result<(Option<RunCheckpoint>, Option<String>), TrainError> {
        let path = self.path();
        let limit = checkpoint_limit(config, (d, h, k));
        let read = TensorFile::read(&path, limit).and_then(|file| match file {
            Some(file) => parse(&file, config, (d, h, k)).map(Some),
            None => Ok(None),
        });
        match read {
            Err(TrainError::File { message, .. }) if !self.discard_mismatched => {
                Err(TrainError::CheckpointMismatch {
                    path,
                    why: format!("it cannot be read ({message})"),
                })
            }
            Err(e @ (TrainError::File { .. } | TrainError::CheckpointMismatch { .. }))
                if self.discard_mismatched =>
            {
                crate::run_files::files::remove(&path)?;
                Ok((None, Some(discard_reason(e))))
            }
            other => Ok((other?, None)),
        }
    }

    /// Removes the checkpoint (the run's `result.json` is written).
    pub fn remove(&self) -> Result<(), TrainError> {
        crate::run_files::files::remove(&self.path())
    }
}

/// Why a discarded checkpoint could not resume the run, without the advice to discard it.
fn discard_reason(e: TrainError) -> String {
    match e {
        TrainError::CheckpointMismatch { why, .. } => why,
        TrainError::File { message, .. } => format!("it cannot be read ({message})"),
        other => other.to_string(),
    }
}

/// The most bytes a checkpoint of the run `config` (a `d x h x k` network) can hold: its
/// weight-shaped tensors (the weights, the best network and the method's state) and its header.
fn checkpoint_limit(config: &TrainConfig, (d, h, k): (usize, usize, usize)) -> u64 {
    let weights = 4 * (d * h + h * k) as u64;
    let history = config.optim.lbfgs_settings().history_size;
    let copies = 2 + config.optim.method.saved_state().weight_copies(history);
    copies * weights + crate::run_files::tensor_file::header_budget(config.train.max_epochs)
}

/// The checkpoint's tensor holding an optimizer's opaque record.
const OPTIMIZER_RECORD: &str = "optimizer.record";

/// The file names of the optimizer's tensor pairs: `optimizer.{name}.u` and `.v`.
fn optimizer_names(state: &RunCheckpoint) -> Vec<(String, String)> {
    optimizer_pairs(state)
        .map(|(n, _)| (format!("optimizer.{n}.u"), format!("optimizer.{n}.v")))
        .collect()
}

fn optimizer_pairs(state: &RunCheckpoint) -> impl Iterator<Item = &(String, Weights)> {
    state.optimizer.iter().flat_map(|o| o.tensors.iter())
}

/// The optimizer state in `file`, if it holds one.
fn read_optimizer(
    file: &TensorFile,
    dims: (usize, usize, usize),
) -> Result<Option<OptimizerState>, TrainError> {
    let Some(text) = file.metadata()?.remove("optimizer") else {
        return Ok(None);
    };
    let meta: OptimizerMetadata = from_exact_json(&text)
        .map_err(|e| file_error(file.path(), format!("metadata \"optimizer\": {e}")))?;
    let tensors = meta
        .tensors
        .into_iter()
        .map(|n| {
            Ok((
                n.clone(),
                Weights::read(file, &format!("optimizer.{n}"), dims)?,
            ))
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    let record = match meta.record {
        true => Some(file.bytes(OPTIMIZER_RECORD)?),
        false => None,
    };
    Ok(Some(OptimizerState {
        tensors,
        record,
        scalars: meta.scalars,
    }))
}

fn matrix<'a>(name: &'a str, shape: [usize; 2], values: &'a [f32]) -> NamedMatrix<'a> {
    NamedMatrix {
        name,
        shape,
        values,
    }
}

fn dims(config: &TrainConfig, state: &RunCheckpoint) -> (usize, usize, usize) {
    let h = config.model.hidden.max(1);
    (state.weights.u.len() / h, h, state.weights.v.len() / h)
}

/// Refuses a checkpoint of another format, or one without its integrity digest. Format 1
/// (before digests) is refused rather than trusted: a checkpoint is only a run in flight, and
/// `--force` discards it so that the run starts again.
fn check_format(file: &TensorFile) -> Result<(), TrainError> {
    let mismatch = |why: String| TrainError::CheckpointMismatch {
        path: file.path().to_path_buf(),
        why,
    };
    match file.sealing(FORMAT, UNSEALED_FORMAT)? {
        Ok(Sealing::Sealed) => Ok(()),
        Ok(Sealing::Unsealed) => Err(mismatch(format!(
            "it was written before checkpoints carried an integrity digest (format \
             {UNSEALED_FORMAT:?}), so it cannot be trusted"
        ))),
        Err(why) => Err(mismatch(why)),
    }
}

/// The state in `file`, checked against the run `config`.
fn parse(
    file: &TensorFile,
    config: &TrainConfig,
    (d, h, k): (usize, usize, usize),
) -> Result<RunCheckpoint, TrainError> {
    let path = file.path();
    let mismatch = |why: String| TrainError::CheckpointMismatch {
        path: path.to_path_buf(),
        why,
    };
    check_format(file)?;
    let code = file.metadata_value("training_code")?;
    if code != TRAINING_CODE_VERSION.to_string() {
        return Err(mismatch(format!(
            "it was written by training code version {code}, this is version {TRAINING_CODE_VERSION}"
        )));
    }
    let stored = file.metadata_value("config")?;
    let current = config_json(config)?;
    if stored != current {
        return Err(mismatch(format!(
            "it was written for another config (differs in {})",
            config_difference(&stored, &current)
        )));
    }
    let bookkeeping: SavedLedger = from_exact_json(&file.metadata_value("bookkeeping")?)
        .map_err(|e| file_error(path, format!("metadata \"bookkeeping\": {e}")))?;
    if bookkeeping.history.is_empty() {
        return Err(file_error(path, "its history is empty".into()));
    }
    let dims = (d, h, k);
    let velocity = match file.has("velocity.u") {
        true => Some(Weights::read(file, "velocity", dims)?),
        false => None,
    };
    let state = RunCheckpoint {
        weights: Weights::read(file, "weights", dims)?,
        velocity,
        optimizer: read_optimizer(file, dims)?,
        best: Weights::read(file, "best", dims)?,
        ledger: bookkeeping,
    };
    match missing_method_state(&state, config.optim.method) {
        Some(what) => Err(mismatch(format!(
            "it has done {} epochs of optim.method = \"{}\" but holds no {what}",
            state.epoch(),
            config.optim.method.name()
        ))),
        None => Ok(state),
    }
}

/// What of its method's state a checkpoint after at least one epoch lacks, if anything: an
/// SGD checkpoint without its velocity resumed silently without momentum, an L-BFGS one
/// without its record could not be cleared by `--force`.
fn missing_method_state(state: &RunCheckpoint, method: crate::optim::Method) -> Option<String> {
    if state.epoch() == 0 {
        return None; // stopped before the first step: no optimizer state yet
    }
    let layout = method.saved_state();
    if layout.velocity {
        return state.velocity.is_none().then(|| "velocity".into());
    }
    let Some(o) = &state.optimizer else {
        return Some("optimizer state".into());
    };
    let tensor = layout.tensors.iter().find(|n| o.pair(n).is_err());
    let scalar = layout.scalars.iter().find(|n| o.scalar(n).is_err());
    match (tensor, scalar) {
        (Some(n), _) => Some(format!("optimizer tensor {n:?}")),
        (None, Some(n)) => Some(format!("optimizer scalar {n:?}")),
        (None, None) if layout.record && o.record.is_none() => Some("optimizer record".into()),
        (None, None) => None,
    }
}

/// The dotted keys whose values differ between two configs' JSON.
fn config_difference(a: &str, b: &str) -> String {
    let (Ok(a), Ok(b)) = (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) else {
        return "a form this version cannot read".into();
    };
    let keys = crate::config::differing_keys(&a, &b);
    match keys.is_empty() {
        true => "its encoding".into(),
        false => keys.join(", "),
    }
}

/// JSON in which every floating-point number is written as its bits (`"f64:<hex>"`), so the
/// state reads back bit for bit (JSON's decimal floats need not).
fn exact_json<T: Serialize>(value: &T) -> Result<String, String> {
    let mut tree = serde_json::to_value(value).map_err(|e| e.to_string())?;
    map_floats(&mut tree, &|v| match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map(|x| Value::String(format!("f64:{:016x}", x.to_bits()))),
        _ => None,
    });
    serde_json::to_string(&tree).map_err(|e| e.to_string())
}

fn from_exact_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut tree: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    map_floats(&mut tree, &|v| match v {
        Value::String(s) => s
            .strip_prefix("f64:")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .and_then(|bits| serde_json::Number::from_f64(f64::from_bits(bits)))
            .map(Value::Number),
        _ => None,
    });
    serde_json::from_value(tree).map_err(|e| e.to_string())
}

/// Replaces every leaf of `tree` that `f` maps.
fn map_floats(tree: &mut Value, f: &dyn Fn(&Value) -> Option<Value>) {
    match tree {
        Value::Array(items) => items.iter_mut().for_each(|v| map_floats(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| map_floats(v, f)),
        leaf => {
            if let Some(new) = f(leaf) {
                *leaf = new;
            }
        }
    }
}

/// Whether `dir` holds a checkpoint.
pub fn has_checkpoint(dir: &Path) -> bool {
    dir.join(CHECKPOINT_FILE).is_file()
}

/// When the next checkpoint is due: `train.checkpoint_seconds` after the last one.
pub(crate) struct CheckpointTimer {
    every: std::time::Duration,
    last: std::time::Instant,
}

impl CheckpointTimer {
    pub fn new(settings: &crate::config::TrainSettings) -> Self {
        CheckpointTimer {
            every: std::time::Duration::from_secs_f64(settings.checkpoint_seconds.max(0.0)),
            last: std::time::Instant::now(),
        }
    }

    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    pub fn restart(&mut self) {
        self.last = std::time::Instant::now();
    }
}

//! `realbias train` configs: TOML files with unknown keys refused and every value validated
//! before a run starts; defaults are the paper's.

use std::path::{Path, PathBuf};

use realbias_data::{
    DatasetSource, FeatureOptions, Normalization, PAPER_VALIDATION, SplitSelection,
};
use realbias_model::{Activation, TwoLayerConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::optim::{Method, OptimConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("--set {0}: expected KEY=VALUE with a dotted key, e.g. optim.lr=0.05")]
    BadSet(String),
    /// The file alone is valid; its `--set` overrides are not.
    #[error("--set {sets} (the config file {path} is valid without it): {message}")]
    FromSet {
        sets: String,
        path: PathBuf,
        message: String,
    },
    #[error("{path}: invalid config:\n  - {}", problems.join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// A config built or changed in code (a sweep's run, a benchmark) that fails its check.
    #[error("the config of run {name:?} is invalid:\n  - {}", problems.join("\n  - "))]
    Unchecked { name: String, problems: Vec<String> },
}

impl ConfigError {
    pub fn parse(path: &Path, message: impl std::fmt::Display) -> Self {
        ConfigError::Parse {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// `parse(sets)`, its error blamed on the `--set` overrides when the file parses without
/// them: a bad `--set` is reported as a `--set`, not as a fault of the file.
pub fn blaming_sets<T>(
    path: &Path,
    sets: &[String],
    parse: impl Fn(&[String]) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let error = match parse(sets) {
        Err(e) if !sets.is_empty() && parse(&[]).is_ok() => e,
        other => return other,
    };
    let message = match error {
        ConfigError::Parse { message, .. } => message,
        ConfigError::Invalid { problems, .. } => {
            format!("invalid config:\n  - {}", problems.join("\n  - "))
        }
        other => other.to_string(),
    };
    Err(ConfigError::FromSet {
        sets: sets.join(" --set "),
        path: path.to_path_buf(),
        message: message.trim_end().to_string(),
    })
}

/// A config file's text.
pub fn read_config(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Longest folder name most file systems take (bytes).
pub const MAX_FOLDER_NAME: usize = 255;

/// Why `name` cannot be a folder name inside the output folder, if it cannot: it must be one
/// path component that stays where it is put (no separator, no `..`, no leading dot, no
/// control character), so nothing is ever written outside `--out`.
pub fn folder_name_problem(key: &str, name: &str) -> Option<String> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.contains(['/', '\\']) {
        "contains a path separator"
    } else if name.starts_with('.') {
        "starts with a dot (`.` and `..` would escape or hide the folder)"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else if name.len() > MAX_FOLDER_NAME {
        "is longer than 255 bytes"
    } else {
        return None;
    };
    Some(format!(
        "{key} = {name:?} {why}: it names one folder inside --out, e.g. \"fig2-mnist\""
    ))
}

/// Parses TOML `text` into a table and applies the `--set` overrides to it.
pub fn parse_table(text: &str, path: &Path, sets: &[String]) -> Result<toml::Table, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::parse(path, e))?;
    for s in sets {
        apply_set(&mut table, s)?;
    }
    Ok(table)
}

/// Parses a config table into `T` and checks it, all problems reported at once.
pub fn parse_checked<T: DeserializeOwned>(
    table: toml::Table,
    path: &Path,
    problems: impl Fn(&T) -> Vec<String>,
) -> Result<T, ConfigError> {
    let config: T = table
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::parse(path, e))?;
    let found = problems(&config);
    if found.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::parse(path, found.join("; ")))
    }
}

/// Figure 2's small subsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetConfig {
    pub train: usize,
    pub validation: usize,
}

/// `[data]`: which dataset and how it is split and transformed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `{ kind = "mnist" }`, `{ kind = "cifar10" }` or `{ kind = "idx", path = "..." }`.
    pub dataset: DatasetSource,
    /// Validation examples carved from the end of the training file (10,000).
    #[serde(default = "paper_validation")]
    pub validation: usize,
    /// Draw this many training and validation examples from the training file (Figure 2).
    #[serde(default)]
    pub subset: Option<SubsetConfig>,
    #[serde(default)]
    pub features: FeatureOptions,
    /// Per-feature normalization with training-split statistics. Default `center`: the
    /// network has no biases, so with raw, all-positive intensities every hidden unit sees a
    /// shared offset `⟨u_h, x̄⟩`; subtracting the training mean removes it (docs/src/choices.md).
    #[serde(default = "default_normalization")]
    pub normalization: Normalization,
    /// Whose statistics normalize: the run's own training split (default) or every example
    /// of the dataset before any subset (the censoring network's input map, so that a
    /// bias-free student can represent the censoring function exactly).
    #[serde(default, skip_serializing_if = "NormalizationStatistics::is_default")]
    pub normalization_statistics: NormalizationStatistics,
    /// Fraction of labels changed to another class (Figure 2 uses 0.05 on censored data).
    #[serde(default)]
    pub label_noise: f64,
    #[serde(default)]
    pub noise_targets: SplitSelection,
}

/// See [`DataConfig::normalization_statistics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormalizationStatistics {
    #[default]
    Training,
    All,
}

impl NormalizationStatistics {
    fn is_default(&self) -> bool {
        *self == NormalizationStatistics::Training
    }
}

fn paper_validation() -> usize {
    PAPER_VALIDATION
}

fn default_normalization() -> Normalization {
    Normalization::Center
}

/// `[model]`: the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub hidden: usize,
    pub activation: Activation,
    pub init_std_u: Option<f64>,
    pub init_std_v: Option<f64>,
    /// Multiplies both initial standard deviations (1: `U ~ N(0, 1/d)`, `V ~ N(0, 1/H)`);
    /// small values start in the "rich" regime, large ones in the "lazy" (kernel) one.
    #[serde(skip_serializing_if = "is_one")]
    pub init_scale: f64,
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            hidden: 256,
            activation: Activation::Relu,
            init_std_u: None,
            init_std_v: None,
            init_scale: 1.0,
        }
    }
}

impl ModelConfig {
    pub fn network(&self, inputs: usize, outputs: usize) -> TwoLayerConfig {
        TwoLayerConfig {
            inputs,
            hidden: self.hidden,
            outputs,
            activation: self.activation,
            init_std_u: self.init_std_u,
            init_std_v: self.init_std_v,
            init_scale: self.init_scale,
        }
    }
}

/// `[train]`: seed, stopping and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// Seeds the subset draw, label noise, initialization and batch order (separate streams).
    pub seed: u64,
    /// Hard cap on epochs.
    pub max_epochs: usize,
    /// "Converged" once the training error is 0 and the training loss below this...
    /// (the paper's step size decays by 0.99 per epoch, so the total step length is bounded
    /// and the loss plateaus rather than reaching 0: the tolerance is loose on purpose)
    pub converge_loss: f64,
    /// ...for this many consecutive epochs.
    pub converge_epochs: usize,
    /// Also evaluate the test split every epoch (it is always evaluated at the end).
    pub eval_test_every_epoch: bool,
    /// Examples per forward pass when evaluating. 1,000 rather than more: at H = 4096 a
    /// 5,000-example batch's hidden layer (80 MB) falls out of cache and the per-epoch
    /// evaluation took 1.7x as long (`realbias bench`).
    pub eval_batch: usize,
    /// Compute the complexity measures of the final and early-stopped networks at the end of
    /// the run (`measures` in `result.json`).
    pub measures: bool,
    /// Seconds between checkpoints of the run's whole training state (at epoch ends; 0: after
    /// every epoch). A killed run resumes from its last checkpoint to the result it would
    /// have had uninterrupted. Does not change the run's numbers.
    #[serde(skip_serializing_if = "is_default_checkpoint_seconds")]
    pub checkpoint_seconds: f64,
    /// Save the initial, final and early-stopped networks as `network.safetensors` beside
    /// `result.json`. Does not change the run's numbers.
    #[serde(skip_serializing_if = "is_true")]
    pub save_networks: bool,
    /// Also compute the flatness measures of the final network at the end of the run
    /// (`flatness` in `result.json`'s measures: PAC-Bayes σ and σ', the searched boxes α and
    /// α'). Off by default: they cost forward passes over the training split (7.6 s at
    /// H = 2048 on Figure 2's 2,000 examples, about as much as training it).
    /// `realbias measures DIR --recompute` adds them to finished runs from their saved
    /// networks, with the same values. Does not change the training's numbers.
    #[serde(skip_serializing_if = "is_false")]
    pub flatness: bool,
    /// Also write the run's history as a TensorBoard event file, `tb/` in its folder, so that
    /// `tensorboard --logdir DIR` shows every run under DIR: after every epoch for a run
    /// trained alone, when it finishes for an ensemble's member. Does not change the run's
    /// numbers.
    #[serde(skip_serializing_if = "is_false")]
    pub tensorboard: bool,
}

/// A minute: at H = 4096 on full MNIST a checkpoint takes well under a second.
pub const DEFAULT_CHECKPOINT_SECONDS: f64 = 60.0;

fn is_default_checkpoint_seconds(v: &f64) -> bool {
    *v == DEFAULT_CHECKPOINT_SECONDS
}

fn is_true(v: &bool) -> bool {
    *v
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            seed: 0,
            max_epochs: 500,
            converge_loss: 0.02,
            converge_epochs: 20,
            eval_test_every_epoch: false,
            eval_batch: 1000,
            measures: true,
            checkpoint_seconds: DEFAULT_CHECKPOINT_SECONDS,
            save_networks: true,
            flatness: false,
            tensorboard: false,
        }
    }
}

/// One training run, fully described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub train: TrainSettings,
}

/// A [`TrainConfig`] whose values passed [`TrainConfig::check`]: the only config the training
/// entry points ([`crate::Trainer::new`], [`crate::train`], [`crate::Member`]) accept, after
/// linfa's `ParamGuard`. It reads as a `TrainConfig` (`Deref`) but cannot be changed: to
/// change a setting, take the config back ([`CheckedConfig::into_inner`]) and check it again.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig(TrainConfig);

impl CheckedConfig {
    /// The config, to change and check again.
    pub fn into_inner(self) -> TrainConfig {
        self.0
    }
}

impl std::ops::Deref for CheckedConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

/// Sets `key` (dotted path) to `value` (a TOML value; a bare word is taken as a string).
fn apply_set(table: &mut toml::Table, assignment: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadSet(assignment.to_string());
    let (key, raw) = assignment.split_once('=').ok_or_else(bad)?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => t.remove("v").ok_or_else(bad)?,
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    set_dotted(table, &parts, value).map_err(|_| bad())
}

/// Sets the value at the dotted path `parts` of `table`, creating tables on the way; `Err`
/// names the part that holds a value other than a table.
pub fn set_dotted<'a>(
    table: &mut toml::Table,
    parts: &[&'a str],
    value: toml::Value,
) -> Result<(), &'a str> {
    let Some((last, path)) = parts.split_last() else {
        return Ok(());
    };
    let mut node = table;
    for part in path {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        node = entry.as_table_mut().ok_or(*part)?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

impl TrainConfig {
    /// Reads `path`, applies `--set` overrides, parses and validates.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        let text = read_config(path)?;
        blaming_sets(path, sets, |sets| Self::parse(&text, path, sets))
    }

    /// Parses TOML `text` (`path` names it in errors), applies overrides and validates.
    pub fn parse(text: &str, path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::parse(path, e);
        // Without overrides, parse the text itself so errors carry line and column. The table
        // as written (overrides applied) is kept for the keys it names.
        let (mut config, table): (TrainConfig, toml::Table) = if sets.is_empty() {
            (
                toml::from_str(text).map_err(parse_err)?,
                parse_table(text, path, &[])?,
            )
        } else {
            let table = parse_table(text, path, sets)?;
            let config = toml::Value::Table(table.clone())
                .try_into()
                .map_err(parse_err)?;
            (config, table)
        };
        let written = table.get("optim").and_then(|o| o.as_table());
        let mut problems = config.problems();
        for p in written.map_or(Vec::new(), |o| config.optim.foreign_keys_written(o, &[])) {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        config.optim.fill_method_table();
        Ok(config)
    }

    /// Every problem at once, so a user fixes a config in one go.
    pub fn problems(&self) -> Vec<String> {
        self.problems_allowing(&[])
    }

    /// [`problems`](Self::problems) with the `[optim]` keys `allowed` to belong to another
    /// method (see [`OptimConfig::problems_allowing`]).
    pub fn problems_allowing(&self, allowed: &[&str]) -> Vec<String> {
        let mut p = self.optim.problems_allowing(allowed);
        if self.model.hidden == 0 {
            p.push("model.hidden must be at least 1".into());
        }
        for (name, std) in [
            ("model.init_std_u", self.model.init_std_u),
            ("model.init_std_v", self.model.init_std_v),
        ] {
            if let Some(s) = std
                && !(s.is_finite() && s >= 0.0)
            {
                p.push(format!("{name} = {s} must be >= 0"));
            }
        }
        let scale = self.model.init_scale;
        if !(scale.is_finite() && scale > 0.0) {
            p.push(format!("model.init_scale = {scale} must be > 0"));
        }
        let d = &self.data;
        if !(0.0..1.0).contains(&d.label_noise) {
            p.push(format!(
                "data.label_noise = {} must be in [0, 1)",
                d.label_noise
            ));
        }
        if d.features.side == 0 {
            p.push("data.features.side must be at least 1".into());
        }
        if let Some(s) = d.subset
            && s.train == 0
        {
            p.push("data.subset.train must be at least 1".into());
        }
        // Early stopping picks the network of lowest validation error: with no validation
        // examples every error is 0 and the "early-stopped" network is the initialization.
        match d.subset {
            Some(s) if s.validation == 0 => p.push(
                "data.subset.validation must be at least 1 (early stopping selects on the validation split)".into(),
            ),
            None if d.validation == 0 => p.push(
                "data.validation must be at least 1 (early stopping selects on the validation split)".into(),
            ),
            _ => {}
        }
        let t = &self.train;
        if t.max_epochs == 0 {
            p.push("train.max_epochs must be at least 1".into());
        }
        if !(t.converge_loss >= 0.0 && t.converge_loss.is_finite()) {
            p.push(format!(
                "train.converge_loss = {} must be >= 0",
                t.converge_loss
            ));
        }
        if t.converge_epochs == 0 {
            p.push("train.converge_epochs must be at least 1".into());
        }
        if t.eval_batch == 0 {
            p.push("train.eval_batch must be at least 1".into());
        }
        if t.flatness && !t.measures {
            p.push(
                "train.flatness = true needs train.measures = true (the flatness measures are kept among the measures)".into(),
            );
        }
        if !(t.checkpoint_seconds >= 0.0 && t.checkpoint_seconds.is_finite()) {
            p.push(format!(
                "train.checkpoint_seconds = {} must be >= 0 (0: after every epoch)",
                t.checkpoint_seconds
            ));
        }
        p
    }

    /// The config as one a run may train with, or every problem of its values. Settings of
    /// another method than `optim.method` are not problems here (they are refused where a
    /// config file is read, and a sweep's shared config holds every method's): no run reads them.
    pub fn check(self) -> Result<CheckedConfig, ConfigError> {
        let every_method_key: Vec<&str> = Method::ALL
            .iter()
            .flat_map(|m| m.own_keys().iter().copied())
            .collect();
        let problems = self.problems_allowing(&every_method_key);
        if problems.is_empty() {
            return Ok(CheckedConfig(self));
        }
        Err(ConfigError::Unchecked {
            name: self.name.clone().unwrap_or_else(|| "(unnamed)".into()),
            problems,
        })
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }
}

/// The dotted keys whose values differ between two configs as JSON trees (a key missing from
/// one counts as differing), in order: what an error about a changed config names.
pub fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let mut keys = Vec::new();
    collect_differing_keys(a, b, String::new(), &mut keys);
    keys
}

fn collect_differing_keys(
    a: &serde_json::Value,
    b: &serde_json::Value,
    prefix: String,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let key = match prefix.is_empty() {
                    true => name.clone(),
                    false => format!("{prefix}.{name}"),
                };
                let missing = Value::Null;
                let (p, q) = (
                    x.get(name).unwrap_or(&missing),
                    y.get(name).unwrap_or(&missing),
                );
                collect_differing_keys(p, q, key, out);
            }
        }
        _ if a != b => out.push(prefix),
        _ => {}
    }
}

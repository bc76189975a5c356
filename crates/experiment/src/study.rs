//! What the theory experiments (Sections 3 and 4) share: the folder they own, one JSON file per
//! finished fit (so an interrupted run resumes where it stopped), and progress reporting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ConfigError;
use crate::experiment::{EXPERIMENT_FILE, ExperimentError};
use crate::output::write_atomic;
use crate::plot::PlotError;
use crate::train::TrainError;

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Write(#[from] TrainError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("{what}: {source}")]
    Theory {
        what: String,
        #[source]
        source: realbias_theory::TheoryError,
    },
    #[error(
        "interrupted: {finished} of {total} fits finished; run the same command again to resume"
    )]
    Interrupted { finished: usize, total: usize },
}

impl StudyError {
    pub fn theory(what: impl Into<String>) -> impl FnOnce(realbias_theory::TheoryError) -> Self {
        let what = what.into();
        move |source| StudyError::Theory { what, source }
    }
}

/// Records `config_text` as the folder's config, refusing a folder made by another config
/// unless `force` (whose finished fits are then discarded: they answer another question).
pub fn claim(dir: &Path, config_text: &str, force: bool) -> Result<(), StudyError> {
    let path = dir.join(EXPERIMENT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == config_text => return Ok(()),
        Ok(_) if !force => return Err(ExperimentError::ConfigChanged { path }.into()),
        Ok(_) => {
            let fits = dir.join("fits");
            if fits.exists() {
                std::fs::remove_dir_all(&fits).map_err(|source| TrainError::Write {
                    path: fits.clone(),
                    source,
                })?;
            }
        }
        Err(_) => {}
    }
    write_atomic(&path, config_text.as_bytes())?;
    Ok(())
}

/// A finished fit's saved result, if it is there and parses.
pub fn cached<T: DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StudyError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes a text file atomically and returns its path.
pub fn save_text(path: PathBuf, text: &str) -> Result<PathBuf, StudyError> {
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Progress of a theory experiment.
pub trait StudyProgress: Sync {
    /// A fit is about to start (`index` of `total`).
    fn started(&self, index: usize, total: usize, label: &str);
    /// A fit finished (or was found finished) with a one-line outcome.
    fn finished(&self, index: usize, total: usize, label: &str, outcome: &str, cached: bool);
    /// A note (a convex baseline solved, say).
    fn note(&self, text: &str);
    fn stop_flag(&self) -> &AtomicBool;
    fn stop_requested(&self) -> bool {
        self.stop_flag().load(Ordering::Relaxed)
    }
}

/// Progress that prints nothing (tests).
pub struct Quiet(pub AtomicBool);

impl Default for Quiet {
    fn default() -> Self {
        Quiet(AtomicBool::new(false))
    }
}

impl StudyProgress for Quiet {
    fn started(&self, _: usize, _: usize, _: &str) {}
    fn finished(&self, _: usize, _: usize, _: &str, _: &str, _: bool) {}
    fn note(&self, _: &str) {}
    fn stop_flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// `x` rounded for a file name (`1e-3` → `0.001`).
pub fn tag(x: f64) -> String {
    format!("{x}")
}

/// Any config `realbias run` takes: a width sweep (no `kind`), or one of the theory
/// experiments (`kind = "matrix-factorization"` or `kind = "convex-nn"`).
pub enum AnyConfig {
    Sweep(Box<crate::sweep::ExperimentConfig>),
    Factorization(Box<crate::factorization::FactorizationConfig>),
    ConvexNn(Box<crate::convex_nn::ConvexNnConfig>),
}

impl AnyConfig {
    pub fn load(path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        Self::parse(&crate::config::read_config(path)?, path, sets)
    }

    pub fn parse(text: &str, path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        let table = crate::config::parse_table(text, path, sets)?;
        match table.get("kind").map(|k| k.as_str()) {
            None => Ok(AnyConfig::Sweep(Box::new(
                crate::sweep::ExperimentConfig::parse(text, path, sets)?,
            ))),
            Some(Some(crate::factorization::KIND)) => Ok(AnyConfig::Factorization(Box::new(
                crate::factorization::FactorizationConfig::parse(table, path)?,
            ))),
            Some(Some(crate::convex_nn::KIND)) => Ok(AnyConfig::ConvexNn(Box::new(
                crate::convex_nn::ConvexNnConfig::parse(table, path)?,
            ))),
            Some(other) => Err(ConfigError::parse(
                path,
                format!(
                    "unknown kind {other:?}: use \"{}\" or \"{}\", or leave kind out for a width sweep",
                    crate::factorization::KIND,
                    crate::convex_nn::KIND
                ),
            )),
        }
    }

    /// The config of an experiment folder `realbias run` made.
    pub fn load_folder(dir: &Path) -> Result<Self, ExperimentError> {
        let path = dir.join(EXPERIMENT_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|_| ExperimentError::NotAnExperiment(dir.to_path_buf()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::parse(&path, e))?;
        if table.contains_key("kind") {
            Ok(Self::parse(&text, &path, &[])?)
        } else {
            // Sweep folders store the resolved sweep config, read by its own loader.
            Ok(AnyConfig::Sweep(Box::new(crate::experiment::load_folder(
                dir,
            )?)))
        }
    }
}

/// Parses a theory experiment's table and checks it, all problems reported at once.
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

/// Where a fit stands in the plan.
pub struct FitSlot<'a> {
    /// 1-based position and plan length, for the progress lines.
    pub index: usize,
    pub total: usize,
    pub label: String,
    /// The fit's result file.
    pub path: PathBuf,
    /// Fits finished before this one (for the interruption message).
    pub finished: usize,
    pub progress: &'a dyn StudyProgress,
}

/// One fit, resumably: the saved result if there is one, else `train` it and save it. An
/// interruption inside `train` becomes [`StudyError::Interrupted`].
pub fn fit_once<T: Serialize + DeserializeOwned>(
    slot: FitSlot<'_>,
    outcome: impl Fn(&T) -> String,
    train: impl FnOnce() -> Result<T, StudyError>,
) -> Result<T, StudyError> {
    let FitSlot {
        index,
        total,
        label,
        path,
        finished,
        progress,
    } = slot;
    if let Some(r) = cached::<T>(&path) {
        progress.finished(index, total, &label, &outcome(&r), true);
        return Ok(r);
    }
    progress.started(index, total, &label);
    let r = match train() {
        Err(StudyError::Theory {
            source: realbias_theory::TheoryError::Interrupted,
            ..
        }) => return Err(StudyError::Interrupted { finished, total }),
        other => other?,
    };
    save(&path, &r)?;
    progress.finished(index, total, &label, &outcome(&r), false);
    Ok(r)
}

//! `realbias run`: an experiment config from plan to summary and figures, resumably.
//!
//! Layout: `OUT/<experiment>/experiment.toml` (the resolved config the folder belongs to),
//! `<condition>/h<H>/rep<R>/[wd<λ>/]{result.json,history.csv}`, `censor/` (the cached
//! censoring labels), and `summary.csv`, `weight-decay-grid.csv`, `errors.{png,svg}`,
//! `norms.{png,svg}`, `report.md`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::config::ConfigError;
use crate::output::write_atomic;
use crate::plot::{PlotError, plot_errors, plot_norms};
use crate::summary::{Summary, summarize};
use crate::sweep::{
    CensorInfo, ExperimentConfig, PlannedRun, SweepOutcome, SweepProgress, execute, finished,
    prepare,
};
use crate::train::{Progress, TrainError};

pub const EXPERIMENT_FILE: &str = "experiment.toml";

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error(
        "{path} was made by a different config; rerun with --force to reuse the folder (finished runs whose config changed are retrained), or choose another --out"
    )]
    ConfigChanged { path: PathBuf },
    #[error(
        "{0}: no experiment here (no {EXPERIMENT_FILE}); give the folder `realbias run` wrote, e.g. runs/<experiment>"
    )]
    NotAnExperiment(PathBuf),
}

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    pub jobs: usize,
    /// Threads per job (rayon pool of each worker).
    pub threads: usize,
    pub force: bool,
}

/// What a finished (or interrupted) `run` leaves.
#[derive(Debug)]
pub struct RunReport {
    pub experiment_dir: PathBuf,
    pub outcome: SweepOutcome,
    pub censor: Option<CensorInfo>,
    pub summary: Option<Summary>,
    pub files: Vec<PathBuf>,
    /// Set when the figures could not be drawn (the summary is still written).
    pub plot_warning: Option<String>,
}

fn serialized(config: &ExperimentConfig) -> String {
    toml::to_string(config).unwrap_or_default()
}

/// Checks (or records) which config the experiment folder belongs to.
pub fn claim_folder(
    config: &ExperimentConfig,
    dir: &Path,
    force: bool,
) -> Result<(), ExperimentError> {
    let path = dir.join(EXPERIMENT_FILE);
    let text = serialized(config);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => return Ok(()),
        Ok(_) if !force => return Err(ExperimentError::ConfigChanged { path }),
        _ => {}
    }
    write_atomic(&path, text.as_bytes())?;
    Ok(())
}

/// Reads the config an experiment folder was made with.
pub fn load_folder(dir: &Path) -> Result<ExperimentConfig, ExperimentError> {
    let path = dir.join(EXPERIMENT_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| ExperimentError::NotAnExperiment(dir.to_path_buf()))?;
    toml::from_str(&text).map_err(|e| {
        ExperimentError::Config(ConfigError::Parse {
            path,
            message: e.to_string(),
        })
    })
}

/// Plans the runs of `config` under `out` (the experiment folder is `out/<name>`).
pub fn plan(config: &ExperimentConfig, out: &Path) -> (PathBuf, Vec<PlannedRun>) {
    let dir = out.join(&config.name);
    let runs = config.plan(&dir);
    (dir, runs)
}

/// The summary of whatever has finished in the folder, and its markdown report.
pub fn report(config: &ExperimentConfig, dir: &Path) -> (Summary, String) {
    let runs = config.plan(dir);
    let results: Vec<_> = runs.iter().map(|r| finished(&r.dir)).collect();
    let summary = summarize(&runs, &results);
    let finished_runs = results.iter().filter(|r| r.is_some()).count();
    let text = format!(
        "# {}\n\n{} of {} runs finished. Errors in %, mean ± standard deviation over repetitions.\n\n{}",
        config.name,
        finished_runs,
        runs.len(),
        summary.markdown()
    );
    (summary, text)
}

/// Summarizes whatever has finished in the folder and writes the tables and figures.
pub fn finalize(
    config: &ExperimentConfig,
    dir: &Path,
) -> Result<(Summary, Vec<PathBuf>, Option<String>), ExperimentError> {
    let (summary, report) = report(config, dir);
    let mut files = vec![dir.join("summary.csv"), dir.join("report.md")];
    write_atomic(&files[0], summary.csv().as_bytes())?;
    write_atomic(&files[1], report.as_bytes())?;
    if !summary.grid.is_empty() {
        let grid = dir.join("weight-decay-grid.csv");
        write_atomic(&grid, summary.grid_csv().as_bytes())?;
        files.push(grid);
    }
    let dataset = config.base.data.dataset.name();
    let mut warning = None;
    let title = format!("{}: {dataset}, error vs hidden units", config.name);
    match plot_errors(&dir.join("errors"), &summary, &title) {
        Ok(f) => files.extend(f),
        Err(e @ (PlotError::NoFont | PlotError::Empty)) => warning = Some(e.to_string()),
        Err(e) => return Err(e.into()),
    }
    let title = format!("{}: {dataset}, norms vs hidden units", config.name);
    if warning.is_none() {
        files.extend(plot_norms(&dir.join("norms"), &summary, &title)?);
    }
    Ok((summary, files, warning))
}

/// Runs (or resumes) a whole experiment.
pub fn run(
    config: &ExperimentConfig,
    out: &Path,
    options: &RunOptions,
    device: &Device,
    progress: &dyn SweepProgress,
    censor_progress: &mut dyn Progress,
) -> Result<RunReport, ExperimentError> {
    let (dir, runs) = plan(config, out);
    claim_folder(config, &dir, options.force)?;
    if options.force {
        // A finished run whose recorded config differs from the plan's is stale: retrain it.
        for r in &runs {
            if finished(&r.dir).is_some_and(|res| res.config != r.config) {
                let _ = std::fs::remove_file(r.dir.join("result.json"));
            }
        }
    }
    let (data, censor) = prepare(
        config,
        &dir,
        options.data_dir.as_deref(),
        device,
        censor_progress,
    )?;
    let outcome = execute(
        &runs,
        &data,
        device,
        options.jobs,
        options.threads,
        progress,
    )?;
    let (summary, files, plot_warning) = if outcome.unfinished == 0 {
        let (s, f, w) = finalize(config, &dir)?;
        (Some(s), f, w)
    } else {
        (None, Vec::new(), None)
    };
    Ok(RunReport {
        experiment_dir: dir,
        outcome,
        censor,
        summary,
        files,
        plot_warning,
    })
}

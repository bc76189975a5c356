//! `realbias data info | preview | fetch`, the `--data-dir` / `--fetch` arguments every
//! data-reading command takes, and fetching on first use.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use realbias_data::fetch::{Fetched, default_bases, fetch_dataset};
use realbias_data::{
    Dataset, DatasetInfo, DatasetSource, FeatureOptions, PAPER_VALIDATION, resolve_data_dir,
};
use realbias_experiments::store::read_result;
use realbias_train::RunResult;
use realbias_train::data::prepare_data;
use realbias_train::run_files::splits::write_splits;

#[derive(Args, Clone)]
pub struct DataDir {
    /// Data folder (default: $REALBIAS_DATA, else ./datasets).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Download a missing dataset from its publisher (checksummed) before starting.
    #[arg(long, global = true)]
    pub fetch: bool,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Split sizes, feature count, class histograms and feature statistics.
    Info {
        /// mnist, cifar10 or idx:PATH
        dataset: DatasetSource,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Keep colour (d = 300) instead of grayscale.
        #[arg(long)]
        color: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// A PNG of original images beside their 10x10 versions.
    Preview {
        /// mnist or cifar10
        dataset: DatasetSource,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Number of examples.
        #[arg(long, default_value_t = 24)]
        count: usize,
        /// Keep the colour channels (CIFAR-10) instead of grayscale.
        #[arg(long)]
        color: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// The exact normalized splits a finished run saw (its subset, label noise and
    /// normalization), as one safetensors file for Python: train/validation/test `.x` and `.y`.
    Export {
        /// The run's folder (with its result.json).
        run_dir: PathBuf,
        /// The safetensors file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Download from the publishers' sites, checksummed and resumable.
    Fetch {
        /// mnist or cifar10
        dataset: String,
        /// Base URL to download from instead of the publishers' (repeatable; tried in order).
        #[arg(long)]
        mirror: Vec<String>,
        #[command(flatten)]
        dir: DataDir,
    },
}

pub fn command(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Info {
            dataset,
            json,
            color,
            dir,
        } => info(&dataset, &dir, json, color),
        DataCommand::Preview {
            dataset,
            out,
            count,
            color,
            dir,
        } => preview(&dataset, &dir, &out, count, color),
        DataCommand::Export { run_dir, out, dir } => export(&run_dir, &out, &dir),
        DataCommand::Fetch {
            dataset,
            mirror,
            dir,
        } => fetch(&dataset, dir.data_dir.as_deref(), mirror),
    }
}

/// `realbias data export`: the run's data derived again from its recorded config and seed,
/// exactly as training derived it.
fn export(run_dir: &Path, out: &Path, dir: &DataDir) -> Result<()> {
    let result_path = run_dir.join("result.json");
    let result: RunResult = match read_result(&result_path) {
        Ok(Some(r)) => r,
        Ok(None) => anyhow::bail!(
            "{}: no such file; give a finished run's folder",
            result_path.display()
        ),
        Err(e) => anyhow::bail!("{}: {e}", result_path.display()),
    };
    if result.true_labels.is_some() {
        anyhow::bail!(
            "{}: a censored run, trained on labels of its experiment's censoring network (the experiment folder's censor/); export takes runs trained on the dataset's own labels",
            run_dir.display()
        );
    }
    if out.exists() {
        anyhow::bail!(
            "{}: already exists; remove it or choose another --out",
            out.display()
        );
    }
    let config = &result.config;
    let data = with_fetch(dir, || {
        Ok(prepare_data(
            &config.data,
            dir.data_dir.as_deref(),
            config.train.seed,
        )?)
    })?;
    let metadata = std::collections::HashMap::from([
        ("run".to_string(), run_dir.display().to_string()),
        ("seed".to_string(), config.train.seed.to_string()),
    ]);
    write_splits(out, &data, metadata)?;
    println!(
        "{}: train {} / validation {} / test {} examples of {} features (the splits {} trained on)",
        out.display(),
        data.train.len(),
        data.validation.len(),
        data.test.len(),
        data.dim(),
        run_dir.display()
    );
    Ok(())
}

fn features(color: bool) -> FeatureOptions {
    FeatureOptions {
        color,
        ..FeatureOptions::default()
    }
}

fn info(source: &DatasetSource, dir: &DataDir, json: bool, color: bool) -> Result<()> {
    let raw = with_fetch(dir, || {
        Ok(source.load(&resolve_data_dir(dir.data_dir.as_deref()))?)
    })?;
    let dataset = Dataset::from_raw(&raw, &features(color), PAPER_VALIDATION)?;
    let info = DatasetInfo::of(&dataset);
    if json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    println!(
        "{}: {} features, {} classes",
        info.dataset, info.features, info.classes
    );
    for (name, s) in [
        ("train", &info.train),
        ("validation", &info.validation),
        ("test", &info.test),
    ] {
        println!(
            "  {name:<10} {:>6} examples  mean {:.4}  std {:.4}  classes {:?}",
            s.size, s.feature_mean, s.feature_std, s.class_histogram
        );
    }
    Ok(())
}

fn preview(
    source: &DatasetSource,
    dir: &DataDir,
    out: &Path,
    count: usize,
    color: bool,
) -> Result<()> {
    let raw = with_fetch(dir, || {
        Ok(source.load(&resolve_data_dir(dir.data_dir.as_deref()))?)
    })?;
    let features = features(color);
    let img = crate::preview::preview_grid(&raw.train, &features, count, 6);
    img.save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {} ({} examples: original | {}x{} as the network sees it)",
        out.display(),
        count.min(raw.train.len()),
        features.side,
        features.side
    );
    Ok(())
}

fn fetch(dataset: &str, data_dir: Option<&Path>, mirror: Vec<String>) -> Result<()> {
    let data_dir = resolve_data_dir(data_dir);
    let bases = if mirror.is_empty() {
        default_bases(dataset)
    } else {
        mirror
            .into_iter()
            .map(|m| if m.ends_with('/') { m } else { format!("{m}/") })
            .collect()
    };
    let progress = std::io::stderr().is_terminal();
    for f in fetch_dataset(dataset, &data_dir, &bases, progress)? {
        match f {
            Fetched::AlreadyPresent(p) => println!("present, checksum ok: {}", p.display()),
            Fetched::Downloaded(p) => println!("downloaded, checksum ok: {}", p.display()),
        }
    }
    Ok(())
}

/// The dataset a "not found" error asks to fetch, anywhere in the error's chain.
fn missing_dataset(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        let data = cause
            .downcast_ref::<realbias_data::DataError>()
            .or_else(
                || match cause.downcast_ref::<realbias_train::TrainError>() {
                    Some(realbias_train::TrainError::Data(d)) => Some(d),
                    _ => None,
                },
            )
            .or_else(
                || match cause.downcast_ref::<realbias_experiments::ExperimentError>() {
                    Some(realbias_experiments::ExperimentError::Train(
                        realbias_train::TrainError::Data(d),
                    )) => Some(d),
                    _ => None,
                },
            );
        match data {
            Some(realbias_data::DataError::NotFound { fetch_name, .. }) => Some(fetch_name.clone()),
            _ => None,
        }
    })
}

/// Runs `work`; with `--fetch`, a dataset it finds missing is downloaded (with a progress bar)
/// and `work` runs again.
pub fn with_fetch<T>(dir: &DataDir, mut work: impl FnMut() -> Result<T>) -> Result<T> {
    match work() {
        Err(e) if dir.fetch => {
            let Some(name) = missing_dataset(&e) else {
                return Err(e);
            };
            println!("{name} is not in the data folder: fetching it (--fetch)");
            fetch(&name, dir.data_dir.as_deref(), Vec::new())?;
            work()
        }
        other => other,
    }
}

//! `realbias plot`, `realbias report` and `realbias measures`: an experiment folder's tables
//! and figures redone from its saved results, without training.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use realbias_experiments::experiment::{self, Context, MISSING_FILE, Missing};
use realbias_experiments::registry;
use realbias_experiments::sweep::Sweep;
use realbias_train::backend;

use super::data::{DataDir, with_fetch};

/// What `measures --recompute` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Recompute {
    pub on: bool,
    /// Also the runs that already carry the flatness measures.
    pub force: bool,
    /// Runs recomputed at once.
    pub jobs: usize,
}

/// Prints a long job's notes (one line a run), so a recompute is never silent.
struct Notes;

impl realbias_experiments::progress::ExperimentProgress for Notes {
    fn note(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// `--recompute`: every finished run's measures from its saved networks; how many runs kept
/// their old measures.
fn recompute_measures(
    sweep: &mut Sweep,
    dir: &Path,
    recompute: Recompute,
    data: &DataDir,
) -> Result<usize> {
    let device = backend::device()?;
    let ctx = Context {
        dir: dir.to_path_buf(),
        device: &device,
        data_dir: data.data_dir.as_deref(),
        progress: std::sync::Arc::new(Notes),
        force: recompute.force,
    };
    let jobs = recompute.jobs;
    let done = with_fetch(data, || Ok(sweep.recompute_measures(&ctx, jobs)?))?;
    eprintln!(
        "recomputed the measures of {} runs from their saved networks",
        done.rewritten
    );
    if done.already > 0 {
        eprintln!(
            "left {} runs that already carry the flatness measures as they were (--force redoes them)",
            done.already
        );
    }
    for kept in &done.kept {
        eprintln!("warning: kept the old measures of {kept}");
    }
    for run in &done.unchecked {
        eprintln!(
            "warning: {run}: its network.safetensors predates integrity digests (format 1): read unchecked"
        );
    }
    Ok(done.kept.len())
}

pub fn plot(dir: &Path, partial: bool) -> Result<()> {
    let experiment = registry::load_folder(dir)?;
    let (finalized, missing) = experiment::finalize_folder(experiment.as_ref(), dir)?;
    for s in &finalized.skipped {
        eprintln!("warning: left out: {s}");
    }
    for f in &finalized.files {
        println!("wrote {}", f.display());
    }
    if !finalized.warnings.is_empty() {
        bail!("figures not drawn: {}", finalized.warnings.join("; "));
    }
    refuse_partial(dir, &missing, partial)
}

pub fn report(dir: &Path, partial: bool) -> Result<()> {
    let experiment = registry::load_folder(dir)?;
    let (text, missing) = experiment::report_folder(experiment.as_ref(), dir)?;
    print!("{text}");
    refuse_partial(dir, &missing, partial)
}

/// A folder whose plan has not finished is an error unless `--partial` accepts it, so a lost
/// shard cannot pass for a finished experiment (the Slurm finalize job fails on it).
fn refuse_partial(dir: &Path, missing: &Missing, partial: bool) -> Result<()> {
    if missing.is_complete() {
        return Ok(());
    }
    let mut listing = format!(
        "{}: partial, {} of {} units finished; missing:",
        dir.display(),
        missing.planned - missing.units.len(),
        missing.planned
    );
    for unit in missing.units.iter().take(20) {
        listing.push_str(&format!("\n  {}  ({})", unit.label, unit.result.display()));
    }
    if missing.units.len() > 20 {
        let more = missing.units.len() - 20;
        listing.push_str(&format!("\n  ... and {more} more (all in {MISSING_FILE})"));
    }
    if partial {
        eprintln!("warning: {listing}");
        return Ok(());
    }
    bail!(
        "{listing}\nthe files written are marked partial; --partial accepts that, `realbias status {}` shows the units",
        dir.display()
    )
}

/// `measures DIR... --robust`: the sign-error evaluation over every folder's runs.
pub fn robust_measures(
    dirs: &[std::path::PathBuf],
    recompute: Recompute,
    out: Option<&Path>,
    data: &DataDir,
) -> Result<()> {
    let out = match (out, dirs) {
        (Some(out), _) => out.to_path_buf(),
        (None, [dir]) => dir.clone(),
        (None, _) => bail!("--robust over several folders needs --out DIR for robust.md"),
    };
    let mut runs = Vec::new();
    let mut kept = 0;
    for dir in dirs {
        let mut sweep = registry::load_sweep(dir)?;
        if recompute.on {
            kept += recompute_measures(&mut sweep, dir, recompute, data)?;
        }
        let (found, broken) = sweep.robust_runs(dir);
        for b in broken {
            eprintln!("warning: left out: {b}");
        }
        eprintln!("{}: {} runs with measures", dir.display(), found.len());
        runs.extend(found);
    }
    if runs.is_empty() {
        bail!("no finished run with measures in {} folder(s)", dirs.len());
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let names: Vec<String> = dirs
        .iter()
        .map(|d| {
            d.file_name()
                .map_or(d.display().to_string(), |n| n.to_string_lossy().into())
        })
        .collect();
    let (markdown, finalized) =
        realbias_experiments::sweep::robust::write(&out, &names.join(" + "), &runs)?;
    print!("{markdown}");
    report_written(&finalized, kept)
}

/// Says what a ranking wrote; an error when a recompute kept old measures (`kept` runs), as
/// the tables above then mix recomputed and old values.
fn report_written(finalized: &experiment::Finalized, kept: usize) -> Result<()> {
    for s in &finalized.skipped {
        eprintln!("warning: left out: {s}");
    }
    for w in &finalized.warnings {
        eprintln!("warning: figure not drawn: {w}");
    }
    for f in &finalized.files {
        eprintln!("wrote {}", f.display());
    }
    if kept > 0 {
        bail!("--recompute kept the old measures of {kept} run(s) (the warnings above say why)");
    }
    Ok(())
}

pub fn measures(dir: &Path, recompute: Recompute, data: &DataDir) -> Result<()> {
    let mut sweep = registry::load_sweep(dir)?;
    let kept = match recompute.on {
        true => recompute_measures(&mut sweep, dir, recompute, data)?,
        false => 0,
    };
    let Some((markdown, finalized)) = sweep.measures(dir)? else {
        bail!(
            "{}: no finished run carries complexity measures (results from before they were recorded): add --recompute to compute them from the runs' saved networks, or re-run the sweep where none were saved",
            dir.display()
        );
    };
    print!("{markdown}");
    report_written(&finalized, kept)
}

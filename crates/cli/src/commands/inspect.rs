//! `realbias plot`, `realbias report` and `realbias measures`: an experiment folder's tables
//! and figures redone from its saved results, without training.

use std::path::Path;

use anyhow::{Result, bail};
use realbias_experiments::experiment::Context;
use realbias_experiments::progress::Quiet;
use realbias_experiments::registry;
use realbias_experiments::sweep::Sweep;
use realbias_train::backend;

use super::data::{DataDir, with_fetch};

/// `--recompute`: every finished run's measures from its saved networks.
fn recompute_measures(sweep: &mut Sweep, dir: &Path, data: &DataDir) -> Result<()> {
    let device = backend::device()?;
    let ctx = Context {
        dir: dir.to_path_buf(),
        device: &device,
        data_dir: data.data_dir.as_deref(),
        progress: &Quiet,
        force: false,
    };
    let done = with_fetch(data, || Ok(sweep.recompute_measures(&ctx)?))?;
    eprintln!(
        "recomputed the measures of {} runs from their saved networks",
        done.rewritten
    );
    for kept in &done.kept {
        eprintln!("warning: kept the old measures of {kept}");
    }
    Ok(())
}

pub fn plot(dir: &Path) -> Result<()> {
    let experiment = registry::load_folder(dir)?;
    let finalized = experiment.finalize(dir)?;
    for s in &finalized.skipped {
        eprintln!("warning: left out: {s}");
    }
    for f in &finalized.files {
        println!("wrote {}", f.display());
    }
    if !finalized.warnings.is_empty() {
        bail!("figures not drawn: {}", finalized.warnings.join("; "));
    }
    Ok(())
}

pub fn report(dir: &Path) -> Result<()> {
    print!("{}", registry::load_folder(dir)?.report(dir)?);
    Ok(())
}

pub fn measures(dir: &Path, recompute: bool, data: &DataDir) -> Result<()> {
    let mut sweep = registry::load_sweep(dir)?;
    if recompute {
        recompute_measures(&mut sweep, dir, data)?;
    }
    let Some((markdown, finalized)) = sweep.measures(dir)? else {
        bail!(
            "{}: no finished run carries complexity measures (results from before they were recorded): add --recompute to compute them from the runs' saved networks, or re-run the sweep where none were saved",
            dir.display()
        );
    };
    print!("{markdown}");
    for s in &finalized.skipped {
        eprintln!("warning: left out: {s}");
    }
    for w in &finalized.warnings {
        eprintln!("warning: figure not drawn: {w}");
    }
    for f in &finalized.files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

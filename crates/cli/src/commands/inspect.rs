//! `realbias plot`, `realbias report` and `realbias measures`: an experiment folder's tables
//! and figures redone from its saved results, without training.

use std::path::Path;

use anyhow::{Result, bail};
use realbias_experiments::registry;

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

pub fn measures(dir: &Path) -> Result<()> {
    let sweep = registry::load_sweep(dir)?;
    let Some((markdown, finalized)) = sweep.measures(dir)? else {
        bail!(
            "{}: no finished run carries complexity measures (results from before they were recorded); re-run the sweep to get them",
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

//! `realbias plot` and `realbias report`: an experiment folder's tables and figures redone from
//! its saved results, without training.

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

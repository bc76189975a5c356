//! `realbias tensorboard DIR`: every run's `history.csv` under `DIR` as a TensorBoard event
//! file, so that `tensorboard --logdir OUT` shows the learning curves of a sweep's runs.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use realbias_train::run_files::tensorboard::write_events;

/// How deep run folders are looked for (a sweep's are `<point>/<condition>/h<H>/rep<R>[/wd..]`).
const MAX_DEPTH: usize = 12;

/// Writes `OUT/<run folder relative to DIR>/events.out.tfevents.*` for every folder under
/// `dir` that holds a `history.csv` (default `OUT`: `DIR/tb`).
pub fn command(dir: &Path, out: Option<&Path>) -> Result<()> {
    if !dir.is_dir() {
        bail!("{}: not a folder", dir.display());
    }
    let out = out.map_or_else(|| dir.join("tb"), Path::to_path_buf);
    let mut runs = Vec::new();
    find_runs(dir, &out, 0, &mut runs);
    runs.sort();
    if runs.is_empty() {
        bail!(
            "{}: no run folder (with a history.csv) under it",
            dir.display()
        );
    }
    for run in &runs {
        let relative = run.strip_prefix(dir).unwrap_or(run);
        write_events(run, &out.join(relative))?;
    }
    println!(
        "{} runs written under {}; view them with: tensorboard --logdir {}",
        runs.len(),
        out.display(),
        out.display()
    );
    Ok(())
}

/// The folders under `dir` (itself included) with a `history.csv`, not following links and
/// not entering `skip` (the output folder).
fn find_runs(dir: &Path, skip: &Path, depth: usize, runs: &mut Vec<PathBuf>) {
    if dir.join("history.csv").is_file() {
        runs.push(dir.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && depth < MAX_DEPTH && path != skip {
            find_runs(&path, skip, depth + 1, runs);
        }
    }
}

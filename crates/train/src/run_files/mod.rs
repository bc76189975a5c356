//! A finished run's folder: `history.csv`, `network.safetensors` and `result.json`, written in
//! that order (the result last, so a folder with one holds a finished run), and the checkpoint
//! removed. Kept apart from `record` (the result's format) so that neither `record` nor
//! `state` depends on the networks file.

pub mod files;
pub mod networks;
pub mod provenance;
pub mod record;
pub mod splits;
pub mod state;
pub mod tensor_file;
pub mod tensorboard;

use std::path::Path;

use crate::TrainError;
use crate::run_files::record::FinishedRun;

/// Writes `history.csv`, its TensorBoard events (`tb/`, with `train.tensorboard`) and the
/// networks (`network.safetensors`, unless `train.save_networks` is off), then `result.json`
/// last: a folder with a `result.json` holds a finished run. Its checkpoint is then removed.
pub fn write_run(dir: &Path, run: &FinishedRun) -> Result<(), TrainError> {
    let history = crate::run_files::record::history_csv(&run.history);
    let history_path = dir.join("history.csv");
    crate::run_files::files::write_atomic(&history_path, history.as_bytes())?;
    if run.result.config.train.tensorboard {
        crate::run_files::tensorboard::write_history_events(&history, &history_path, dir)?;
    }
    if run.result.config.train.save_networks {
        crate::run_files::networks::write_networks(dir, run)?;
    }
    crate::run_files::record::write_result(dir, &run.result)?;
    crate::run_files::files::remove(&dir.join(crate::run_files::state::CHECKPOINT_FILE))
}

//! Result files, written atomically: a reader never sees half a file, and an interrupted
//! write leaves the previous version (or nothing) in place.

use std::io::Write;
use std::path::Path;

use crate::train::{EpochRecord, RunOutput, TrainError};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let err = |source| TrainError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("out".into(), |n| n.to_string_lossy())
    ));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

const HEADER: &str = "epoch,lr,momentum,train_loss,train_error,validation_loss,validation_error,test_error,u_frobenius,v_frobenius,weight_decay_penalty,group_norm,train_seconds,eval_seconds,wall_seconds";

/// `history.csv`: one row per epoch, epoch 0 being the initial network.
pub fn history_csv(history: &[EpochRecord]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in history {
        let test = r.test_error.map_or(String::new(), |t| format!("{t}"));
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4}\n",
            r.epoch,
            r.lr,
            r.momentum,
            r.train_loss,
            r.train_error,
            r.validation_loss,
            r.validation_error,
            test,
            r.u_frobenius,
            r.v_frobenius,
            r.weight_decay_penalty,
            r.group_norm,
            r.train_seconds,
            r.eval_seconds,
            r.wall_seconds
        ));
    }
    s
}

/// Writes `history.csv`, then `result.json` last: a folder with a `result.json` holds a
/// finished run.
pub fn write_run(dir: &Path, run: &RunOutput) -> Result<(), TrainError> {
    write_atomic(
        &dir.join("history.csv"),
        history_csv(&run.history).as_bytes(),
    )?;
    let json = serde_json::to_string_pretty(&run.result).unwrap_or_default();
    write_atomic(&dir.join("result.json"), json.as_bytes())
}

//! The record of one run: `history.csv` (one row per epoch) and `result.json` (everything a
//! figure needs), written atomically, `result.json` last.

use std::path::Path;

use realbias_model::{NormMeasures, TwoLayerNet};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::config::TrainConfig;
use crate::files::write_atomic;
use crate::measures::Measures;

/// One row of `history.csv`. Epoch 0 is the initial network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub train_loss: f64,
    pub train_error: f64,
    pub validation_loss: f64,
    pub validation_error: f64,
    pub test_error: Option<f64>,
    pub u_frobenius: f64,
    pub v_frobenius: f64,
    pub weight_decay_penalty: f64,
    pub group_norm: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub wall_seconds: f64,
}

impl EpochRecord {
    /// The epoch in one line, as the command line prints it.
    pub fn summary_line(&self) -> String {
        let test = self
            .test_error
            .map_or(String::new(), |t| format!("  test err {:>6.2}%", 100.0 * t));
        format!(
            "epoch {:>4}  lr {:.4}  mom {:.2}  train loss {:.5}  train err {:>6.2}%  val err {:>6.2}%{test}  Σ‖u‖‖v‖ {:.2}  {:.2}s",
            self.epoch,
            self.lr,
            self.momentum,
            self.train_loss,
            100.0 * self.train_error,
            100.0 * self.validation_error,
            self.group_norm,
            self.train_seconds + self.eval_seconds
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Zero training error and training loss under the tolerance for the configured epochs.
    Converged,
    MaxEpochs,
    /// The training loss became NaN or infinite.
    Diverged,
    /// Stopped by the user (Ctrl-C); the run is incomplete.
    Interrupted,
}

/// Everything a figure needs from one run (`result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub train_error: f64,
    pub train_loss: f64,
    pub validation_error: f64,
    /// Test error of the final network ("at convergence").
    pub test_error: f64,
    /// The epoch with the lowest validation error (the first such epoch).
    pub early_stop_epoch: usize,
    pub early_stop_validation_error: f64,
    /// Test error of the network at `early_stop_epoch` ("with early stopping").
    pub early_stop_test_error: f64,
    /// Training error of that network (results from before it was recorded have none).
    #[serde(default)]
    pub early_stop_train_error: Option<f64>,
    /// First epoch with zero training error, if any.
    pub epochs_to_zero_train_error: Option<usize>,
    pub epochs: usize,
    pub stop_reason: StopReason,
    pub wall_seconds: f64,
    pub seconds_per_epoch: f64,
    pub hidden: usize,
    pub seed: u64,
    pub backend: String,
    pub git_revision: String,
    pub dataset: String,
    pub train_examples: usize,
    pub validation_examples: usize,
    pub test_examples: usize,
    pub norms: NormMeasures,
    pub u_frobenius: f64,
    pub v_frobenius: f64,
    pub weight_decay_penalty: f64,
    pub group_norm: f64,
    pub parameters: usize,
    pub config: TrainConfig,
    /// The complexity measures (results from before they existed have none).
    #[serde(default)]
    pub measures: Option<RunMeasures>,
}

/// The measures of the network at the end of the run and of the early-stopped one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeasures {
    pub at_convergence: Measures,
    pub early_stop: Measures,
}

/// The output of [`train`]: the result and the per-epoch history.
pub struct RunOutput {
    pub result: RunResult,
    pub history: Vec<EpochRecord>,
    pub final_net: TwoLayerNet,
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

/// The source revision, for the record; "unknown" outside a git checkout.
pub fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

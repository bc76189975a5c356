//! The record of one run: `history.csv` (one row per epoch) and `result.json` (everything a
//! figure needs), written atomically, `result.json` last.

use std::path::Path;

use realbias_model::{NormMeasures, TwoLayerNet};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::config::TrainConfig;
use crate::measures::Measures;
use crate::run_files::files::write_atomic;

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
    /// Training dynamics: `‖U − U₀‖_F / ‖U₀‖_F` and the same for `V` (0 at epoch 0).
    #[serde(default)]
    pub u_distance_relative: f64,
    #[serde(default)]
    pub v_distance_relative: f64,
    /// The 5th percentile of the training margins `f_y(x) − max_{j≠y} f_j(x)`.
    #[serde(default)]
    pub margin_p5: f64,
    /// Hidden units whose ReLU pattern on the training set differs from initialization on at
    /// least one example (fraction of H), and flipped (unit, example) pairs (fraction); `None`
    /// where the initial patterns were too large to keep (see `ledger::PATTERN_LIMIT`).
    #[serde(default)]
    pub pattern_changed_units: Option<f64>,
    #[serde(default)]
    pub pattern_flip_fraction: Option<f64>,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub wall_seconds: f64,
}

impl EpochRecord {
    /// The epoch in one line, as the command line prints it.
    pub fn summary_line(&self) -> String {
        self.line(true)
    }

    /// [`summary_line`](Self::summary_line) without the validation error, for a run that has
    /// no validation split (the censoring network).
    pub fn training_line(&self) -> String {
        self.line(false)
    }

    fn line(&self, validation: bool) -> String {
        let validation = match validation {
            true => format!("  val err {:>6.2}%", 100.0 * self.validation_error),
            false => String::new(),
        };
        let test = self
            .test_error
            .map_or(String::new(), |t| format!("  test err {:>6.2}%", 100.0 * t));
        format!(
            "epoch {:>4}  lr {:.4}  mom {:.2}  train loss {:.5}  train err {:>6.2}%{validation}{test}  Σ‖u‖‖v‖ {:.2}  {:.2}s",
            self.epoch,
            self.lr,
            self.momentum,
            self.train_loss,
            100.0 * self.train_error,
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
    /// A full-batch method found no step that decreases the loss along steepest descent (it
    /// is at its floating-point floor) before it met the convergence tolerance.
    Stalled,
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
    /// The revision the binary was built from ([`crate::run_files::provenance::BUILD_REVISION`]).
    pub git_revision: String,
    /// The CPU, kernels and threads the run used (results from before it was recorded have
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::run_files::provenance::Machine>,
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
    /// A run on substituted labels (censored): how its final network's test predictions
    /// compare with the dataset's true labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_labels: Option<TrueLabels>,
    /// Trained as a member of an ensemble of this many runs (batched on the device; its
    /// numbers are those of the run alone, its times its share of the ensemble's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble_members: Option<usize>,
    /// Full-training-set function and gradient evaluations (the full-batch methods; SGD and
    /// Adam make one pass over the training split per epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_evaluations: Option<u64>,
}

/// A network trained on substituted labels, judged against the true test labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrueLabels {
    /// Test error against the true labels.
    pub test_error: f64,
    /// Test examples whose substituted label differs from the true one.
    pub disagreements: usize,
    /// On those examples: the fraction the network labels as the truth, and as the
    /// substitute (`None` when there are none).
    pub agrees_with_truth: Option<f64>,
    pub agrees_with_substitute: Option<f64>,
}

impl TrueLabels {
    /// Compares `predicted` with the `truth` and the `substitute` labels it was trained on.
    pub fn compare(predicted: &[u8], truth: &[u8], substitute: &[u8]) -> TrueLabels {
        let n = predicted.len().min(truth.len()).min(substitute.len());
        let wrong = (0..n).filter(|&i| predicted[i] != truth[i]).count();
        let disputed: Vec<usize> = (0..n).filter(|&i| truth[i] != substitute[i]).collect();
        let share = |labels: &[u8]| {
            let hits = disputed
                .iter()
                .filter(|&&i| predicted[i] == labels[i])
                .count();
            (!disputed.is_empty()).then(|| hits as f64 / disputed.len() as f64)
        };
        TrueLabels {
            test_error: wrong as f64 / n.max(1) as f64,
            disagreements: disputed.len(),
            agrees_with_truth: share(truth),
            agrees_with_substitute: share(substitute),
        }
    }
}

/// The measures of the network at the end of the run and of the early-stopped one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeasures {
    pub at_convergence: Measures,
    pub early_stop: Measures,
}

/// A trained run: its result, its per-epoch history and its networks.
pub struct FinishedRun {
    pub result: RunResult,
    pub history: Vec<EpochRecord>,
    pub final_net: TwoLayerNet,
    pub initial_net: TwoLayerNet,
    pub early_stop_net: TwoLayerNet,
}

const HEADER: &str = "epoch,lr,momentum,train_loss,train_error,validation_loss,validation_error,test_error,u_frobenius,v_frobenius,weight_decay_penalty,group_norm,u_distance_relative,v_distance_relative,margin_p5,pattern_changed_units,pattern_flip_fraction,train_seconds,eval_seconds,wall_seconds";

/// `history.csv`: one row per epoch, epoch 0 being the initial network.
pub fn history_csv(history: &[EpochRecord]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in history {
        let optional = |v: Option<f64>| v.map_or(String::new(), |t| format!("{t}"));
        let test = optional(r.test_error);
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4}\n",
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
            r.u_distance_relative,
            r.v_distance_relative,
            r.margin_p5,
            optional(r.pattern_changed_units),
            optional(r.pattern_flip_fraction),
            r.train_seconds,
            r.eval_seconds,
            r.wall_seconds
        ));
    }
    s
}

/// Writes (or rewrites) `result.json` in `dir`, atomically.
pub fn write_result(dir: &Path, result: &RunResult) -> Result<(), TrainError> {
    let path = dir.join("result.json");
    let json = serde_json::to_string_pretty(result).map_err(|e| TrainError::Encode {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_atomic(&path, json.as_bytes())
}

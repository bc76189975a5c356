//! Full-split evaluation: a split uploaded once, evaluated in chunks in inference mode, the
//! logits reduced on the host in f64 so every backend is measured the same way.

use burn::tensor::{Bool, Device, Tensor, TensorData};
use realbias_data::Split;
use realbias_model::TwoLayerNet;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Mean cross-entropy and error rate of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub error: f64,
}

/// The class a row of logits predicts: the first maximum, as argmax does everywhere. It is
/// the one rule for errors and for censored labels, so a censoring network's own error on
/// the labels it produced is exactly 0 (a bias-free ReLU net outputs all-zero logits, a tie,
/// on inputs where every unit is off).
pub(crate) fn predicted_class(row: &[f32]) -> u8 {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = c;
        }
    }
    best as u8
}

/// A split uploaded once to the evaluation device, in chunks.
pub struct DeviceSplit {
    chunks: Vec<(Tensor<2>, Vec<u8>)>,
    len: usize,
}

impl DeviceSplit {
    pub fn new(split: &Split, chunk: usize, device: &Device) -> Self {
        let chunks = (0..split.len())
            .step_by(chunk.max(1))
            .map(|start| {
                let end = (start + chunk).min(split.len());
                let part = split.slice(start..end);
                let x = Tensor::from_data(
                    TensorData::new(part.features, [end - start, split.dim]),
                    device,
                );
                (x, part.labels)
            })
            .collect();
        DeviceSplit {
            chunks,
            len: split.len(),
        }
    }

    /// Examples in the split.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The predicted class of every example, in order (ties go to the lowest class).
    pub fn predict(&self, net: &TwoLayerNet) -> Result<Vec<u8>, TrainError> {
        Ok(self.predict_with_ties(net)?.0)
    }

    /// [`predict`](Self::predict), and how many examples had a tie for the largest logit
    /// (decided for the lowest class).
    pub fn predict_with_ties(&self, net: &TwoLayerNet) -> Result<(Vec<u8>, usize), TrainError> {
        let mut out = Vec::with_capacity(self.len);
        let mut ties = 0;
        for (x, labels) in &self.chunks {
            let logits = read_logits(net.forward(x.clone()).try_into_vec_as(), labels.len())?;
            let k = logits.len() / labels.len();
            for row in logits.chunks_exact(k) {
                let class = predicted_class(row);
                let top = row[class as usize];
                ties += usize::from(row.iter().filter(|&&v| v == top).count() > 1);
                out.push(class);
            }
        }
        Ok((out, ties))
    }

    /// The margin `f_y(x) − max_{j≠y} f_j(x)` of every example, in order.
    pub fn margins(&self, net: &TwoLayerNet) -> Result<Vec<f32>, TrainError> {
        let mut out = Vec::with_capacity(self.len);
        for (x, labels) in &self.chunks {
            let logits = read_logits(net.forward(x.clone()).try_into_vec_as(), labels.len())?;
            let k = logits.len() / labels.len();
            for (row, &label) in logits.chunks_exact(k).zip(labels) {
                out.push(margin_of_row(row, label));
            }
        }
        Ok(out)
    }

    /// How the ReLU patterns of `net` differ from those of `init` on this split: per hidden
    /// unit, the examples whose pre-activation changed sign (0 / positive); and `‖X U₀‖_F`.
    pub fn pattern_flips(
        &self,
        init: &TwoLayerNet,
        net: &TwoLayerNet,
    ) -> Result<PatternFlips, TrainError> {
        let (_, h, _) = net.dims();
        let mut per_unit = vec![0.0f64; h];
        let mut init_sq = 0.0f64;
        for (x, _) in &self.chunks {
            let pre0 = x.clone().matmul(init.u.val());
            let pre = x.clone().matmul(net.u.val());
            let flips = (pre0.clone().greater_elem(0.0).float() - pre.greater_elem(0.0).float())
                .abs()
                .sum_dim(0);
            let flips = read_values(flips.try_into_vec_as(), h, "activation patterns")?;
            for (acc, f) in per_unit.iter_mut().zip(flips) {
                *acc += f as f64;
            }
            let sq = read_values(
                pre0.powf_scalar(2.0).sum().try_into_vec_as(),
                1,
                "pre-activations",
            )?;
            init_sq += sq[0] as f64;
        }
        Ok(PatternFlips {
            per_unit,
            init_preactivation_frobenius: init_sq.sqrt(),
        })
    }

    /// Evaluates `net` (in inference mode) on the whole split; logits are reduced on the host
    /// in f64 so every backend is measured the same way.
    pub fn evaluate(&self, net: &TwoLayerNet) -> Result<Evaluation, TrainError> {
        let mut tally = Tally::new(false);
        for (x, labels) in &self.chunks {
            let logits = read_logits(net.forward(x.clone()).try_into_vec_as(), labels.len())?;
            tally.add(&logits, labels);
        }
        Ok(tally.evaluation())
    }
}

/// One evaluation of the training split with what the dynamics need: the margins of every
/// example and, when the initial patterns are kept, the sign flips per hidden unit.
pub struct TrainingEvaluation {
    pub evaluation: Evaluation,
    pub margins: Vec<f32>,
    pub flips_per_unit: Option<Vec<f64>>,
}

impl DeviceSplit {
    /// The activation pattern (pre-activation > 0) of `net` on every chunk, kept on the device
    /// to compare later networks with.
    pub fn patterns(&self, net: &TwoLayerNet) -> Vec<Tensor<2, Bool>> {
        self.chunks
            .iter()
            .map(|(x, _)| net.preactivations(x.clone()).greater_elem(0.0))
            .collect()
    }

    /// [`evaluate`](Self::evaluate) plus the margins and, given `initial` patterns (from
    /// [`patterns`](Self::patterns)), the examples per unit whose sign changed: one forward
    /// pass for all of it.
    pub fn evaluate_dynamics(
        &self,
        net: &TwoLayerNet,
        initial: Option<&[Tensor<2, Bool>]>,
    ) -> Result<TrainingEvaluation, TrainError> {
        let (_, h, _) = net.dims();
        let mut tally = Tally::new(true);
        let mut flips = initial.map(|_| vec![0.0f64; h]);
        for (i, (x, labels)) in self.chunks.iter().enumerate() {
            let pre = net.preactivations(x.clone());
            if let (Some(acc), Some(init)) = (flips.as_mut(), initial) {
                let changed = pre.clone().greater_elem(0.0).not_equal(init[i].clone());
                let per_unit = read_values(
                    changed.float().sum_dim(0).try_into_vec_as(),
                    h,
                    "activation patterns",
                )?;
                for (a, f) in acc.iter_mut().zip(per_unit) {
                    *a += f as f64;
                }
            }
            let logits = read_logits(net.output(pre).try_into_vec_as(), labels.len())?;
            tally.add(&logits, labels);
        }
        Ok(tally.training(flips))
    }
}

/// A split's loss, errors and (optionally) margins, summed chunk by chunk in example order: the
/// one reduction of logits every evaluation uses, a single run's or an ensemble's member's,
/// so both give the same bits.
pub(crate) struct Tally {
    loss: f64,
    errors: usize,
    examples: usize,
    keep_margins: bool,
    margins: Vec<f32>,
}

impl Tally {
    /// An empty tally that also keeps every example's margin when `margins` is set.
    pub fn new(margins: bool) -> Self {
        Tally {
            loss: 0.0,
            errors: 0,
            examples: 0,
            keep_margins: margins,
            margins: Vec::new(),
        }
    }

    /// Adds one chunk: the logits (row-major, one row per label) of the examples `labels`.
    pub fn add(&mut self, logits: &[f32], labels: &[u8]) {
        let k = logits.len() / labels.len().max(1);
        for (row, &label) in logits.chunks_exact(k.max(1)).zip(labels) {
            self.loss += cross_entropy_of_row(row, label);
            self.errors += usize::from(predicted_class(row) != label);
            if self.keep_margins {
                self.margins.push(margin_of_row(row, label));
            }
        }
        self.examples += labels.len();
    }

    /// Adds the examples of `other` (a later stretch of the same split), without margins.
    pub fn absorb(&mut self, other: Tally) {
        self.loss += other.loss;
        self.errors += other.errors;
        self.examples += other.examples;
    }

    /// Mean loss and error rate of the examples added.
    pub fn evaluation(&self) -> Evaluation {
        let n = self.examples.max(1) as f64;
        Evaluation {
            loss: self.loss / n,
            error: self.errors as f64 / n,
        }
    }

    /// The training split's evaluation: this tally with its margins and the sign flips.
    pub fn training(self, flips_per_unit: Option<Vec<f64>>) -> TrainingEvaluation {
        TrainingEvaluation {
            evaluation: self.evaluation(),
            margins: self.margins,
            flips_per_unit,
        }
    }
}

/// `f_y(x) − max_{j≠y} f_j(x)` of one row of logits.
fn margin_of_row(row: &[f32], label: u8) -> f32 {
    let y = label as usize;
    let other = (0..row.len())
        .filter(|&j| j != y)
        .map(|j| row[j])
        .fold(f32::NEG_INFINITY, f32::max);
    row[y] - other
}

/// See [`DeviceSplit::pattern_flips`].
pub struct PatternFlips {
    /// Examples whose pre-activation at unit `h` changed sign, per unit.
    pub per_unit: Vec<f64>,
    /// `‖X U₀‖_F`: the initial network's hidden pre-activations on the split.
    pub init_preactivation_frobenius: f64,
}

/// A read-back of exactly `expected` values.
pub(crate) fn read_values<E: std::fmt::Debug>(
    read: Result<Vec<f32>, E>,
    expected: usize,
    what: &'static str,
) -> Result<Vec<f32>, TrainError> {
    match read {
        Ok(v) if v.len() == expected => Ok(v),
        Ok(v) => Err(TrainError::ReadBack {
            what,
            message: format!("{} values where {expected} were expected", v.len()),
        }),
        Err(e) => Err(TrainError::ReadBack {
            what,
            message: format!("{e:?}"),
        }),
    }
}

/// `log Σ exp(z) − z_label` in f64.
fn cross_entropy_of_row(row: &[f32], label: u8) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max
        + row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    lse - row[label as usize] as f64
}

/// The logits of `rows` examples read back from the device: a failed read-back, or one that
/// is not a whole number (≥ 1) of values per example, is an error, never an empty result.
pub(crate) fn read_logits<E: std::fmt::Debug>(
    read: Result<Vec<f32>, E>,
    rows: usize,
) -> Result<Vec<f32>, TrainError> {
    let logits = read.map_err(|e| TrainError::ReadBack {
        what: "logits",
        message: format!("{e:?}"),
    })?;
    if rows == 0 || logits.is_empty() || !logits.len().is_multiple_of(rows) {
        return Err(TrainError::ReadBack {
            what: "logits",
            message: format!("{} values for {rows} examples", logits.len()),
        });
    }
    Ok(logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_back_is_an_error_not_an_empty_vector() {
        let failed: Result<Vec<f32>, &str> = Err("device lost");
        let e = read_logits(failed, 3).unwrap_err();
        assert!(e.to_string().contains("device lost"), "{e}");
        let short: Result<Vec<f32>, &str> = Ok(Vec::new());
        assert!(read_logits(short, 3).is_err());
        let ragged: Result<Vec<f32>, &str> = Ok(vec![0.0; 7]);
        assert!(read_logits(ragged, 3).is_err());
        let good: Result<Vec<f32>, &str> = Ok(vec![0.0; 6]);
        assert_eq!(read_logits(good, 3).unwrap().len(), 6);
    }

    #[test]
    fn cross_entropy_of_a_row_matches_the_formula() {
        let row = [1.0f32, 2.0, 3.0];
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((cross_entropy_of_row(&row, 0) - (lse - 1.0)).abs() < 1e-12);
        assert!((cross_entropy_of_row(&row, 2) - (lse - 3.0)).abs() < 1e-12);
    }
}

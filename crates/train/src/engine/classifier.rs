//! The network with its training loss: the mean softmax cross-entropy, as one fused autodiff
//! node or as Burn's own operations for reference, and the training data on the device.

use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use realbias_data::Split;
use realbias_model::{Activation, TwoLayerNet};
use serde::Serialize;

use crate::TrainError;

/// The network with weights `u` and `v` as they are (on their device).
pub(crate) fn network(u: Tensor<2>, v: Tensor<2>, activation: Activation) -> TwoLayerNet {
    TwoLayerNet {
        u: Param::from_tensor(u),
        v: Param::from_tensor(v),
        activation,
    }
}

/// The network with weights `u` and `v` (on a device without autodiff) tracked by autodiff,
/// for a gradient.
pub(crate) fn tracked(u: Tensor<2>, v: Tensor<2>, activation: Activation) -> TwoLayerNet {
    network(u.autodiff(), v.autodiff(), activation)
}

/// The gradients of a [`tracked`] network's `u` and `v` in `grads`.
pub(crate) fn weight_gradients(
    net: &TwoLayerNet,
    grads: &Gradients,
) -> Result<(Tensor<2>, Tensor<2>), TrainError> {
    let gradient = |w: &Param<Tensor<2>>| {
        w.val().grad(grads).ok_or(TrainError::Internal {
            what: "gradient",
            message: "the loss gave no gradient for the weights".into(),
        })
    };
    Ok((gradient(&net.u)?, gradient(&net.v)?))
}

/// The network and the loss a training step differentiates: softmax cross-entropy on its
/// logits.
pub(crate) struct Classifier {
    pub net: TwoLayerNet,
    /// Which implementation of the loss the training step differentiates.
    pub loss: LossPath,
}

/// How a training step computes the loss and its gradient. Both give the same numbers up to
/// floating-point rounding (`tests/training.rs` trains both on a fixed seed and compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossPath {
    /// One autodiff node with a hand-written backward pass (`crate::engine::fused`): what every run
    /// uses.
    #[default]
    Fused,
    /// Burn's own operations and `CrossEntropyLoss`, differentiated operation by operation:
    /// the reference the fused path is checked against.
    Composed,
}

impl LossPath {
    pub fn name(self) -> &'static str {
        match self {
            LossPath::Fused => "fused",
            LossPath::Composed => "composed",
        }
    }
}

impl std::str::FromStr for LossPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [LossPath::Fused, LossPath::Composed]
            .into_iter()
            .find(|path| path.name() == s)
            .ok_or_else(|| format!("unknown loss path {s:?}: use fused or composed"))
    }
}

/// A mini-batch: features `B x d` and one-hot targets `B x k`.
pub struct Batch {
    pub x: Tensor<2>,
    pub targets: Tensor<2>,
}

/// Training splits kept on the device for a whole run: features and one-hot targets, one
/// block of rows per split (one split for a single run, one per member of an ensemble). Each
/// epoch uploads one index tensor; every batch is gathered on the device from it, so no
/// step builds or uploads data on the host.
pub(crate) struct TrainingSet {
    x: Tensor<2>,
    targets: Tensor<2>,
    /// Rows per split (every split has the same number).
    examples: usize,
}

impl TrainingSet {
    /// `splits` stacked row-wise on `device`; they must have the same size and dimension.
    pub fn new(splits: &[&Split], classes: usize, device: &Device) -> TrainingSet {
        let examples = splits.first().map_or(0, |s| s.len());
        let dim = splits.first().map_or(0, |s| s.dim);
        let rows = splits.len() * examples;
        let mut xs = Vec::with_capacity(rows * dim);
        let mut targets = vec![0f32; rows * classes];
        for (i, split) in splits.iter().enumerate() {
            xs.extend_from_slice(&split.features);
            for (r, &label) in split.labels.iter().enumerate() {
                targets[(i * examples + r) * classes + label as usize] = 1.0;
            }
        }
        TrainingSet {
            x: Tensor::from_data(TensorData::new(xs, [rows, dim]), device),
            targets: Tensor::from_data(TensorData::new(targets, [rows, classes]), device),
            examples,
        }
    }

    /// An epoch's rows, batch-major: for every batch of `batch` positions of the shuffled
    /// orders, the rows of each `(split, order)` in turn (split: its block in the stack).
    pub fn epoch_rows(
        &self,
        orders: &[(usize, &[usize])],
        batch: usize,
        device: &Device,
    ) -> Tensor<1, Int> {
        let mut rows = Vec::with_capacity(orders.len() * self.examples);
        for (start, len) in crate::engine::batches::batch_ranges(self.examples, batch) {
            for &(split, order) in orders {
                let offset = split * self.examples;
                rows.extend(
                    order[start..start + len]
                        .iter()
                        .map(|&i| (offset + i) as i64),
                );
            }
        }
        let n = rows.len();
        Tensor::from_data(TensorData::new(rows, [n]), device)
    }

    /// The rows `rows` of the stack.
    pub fn batch(&self, rows: Tensor<1, Int>) -> Batch {
        Batch {
            x: self.x.clone().select(0, rows.clone()),
            targets: self.targets.clone().select(0, rows),
        }
    }
}

impl Classifier {
    /// The mean loss of a batch, by the configured path.
    pub fn loss(&self, batch: Batch) -> Tensor<1> {
        match self.loss {
            LossPath::Fused => {
                crate::engine::fused::two_layer_loss(&self.net, batch.x, batch.targets)
            }
            LossPath::Composed => {
                let labels = class_indices(&batch.targets);
                cross_entropy(self.net.forward(batch.x), labels)
            }
        }
    }
}

/// The class of each one-hot row of `targets`.
fn class_indices(targets: &Tensor<2>) -> Tensor<1, Int> {
    targets.clone().argmax(1).squeeze_dim::<1>(1)
}

/// Burn's `CrossEntropyLoss` of `logits` against class indices.
fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, labels)
}

//! The network a `Learner` trains: Burn's `TrainStep` / `InferenceStep` over the fused loss.

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use realbias_model::{Activation, TwoLayerNet};

use super::dashboard::{InferenceItem, StepItem};
use crate::engine::optimizer_record::{U_PARAM, V_PARAM};

use crate::engine::classifier::{Batch, Classifier, LossPath};

/// The network a `Learner` trains, with the loss its training step differentiates.
#[derive(Module, Debug)]
pub struct PaperModel {
    pub net: TwoLayerNet,
    #[module(skip)]
    pub loss: LossPath,
}

impl PaperModel {
    /// The model with weights `u` and `v` (on an inference device), tracked by autodiff,
    /// under the fixed parameter ids the optimizer's record is keyed by.
    pub(super) fn new(u: Tensor<2>, v: Tensor<2>, activation: Activation, loss: LossPath) -> Self {
        let tracked = |w: Tensor<2>| w.autodiff().require_grad();
        let net = TwoLayerNet {
            u: Param::initialized(ParamId::from(U_PARAM), tracked(u)),
            v: Param::initialized(ParamId::from(V_PARAM), tracked(v)),
            activation,
        };
        PaperModel { net, loss }
    }
}

impl TrainStep for PaperModel {
    type Input = Batch;
    type Output = StepItem;

    /// The gradient of the batch's mean loss, without reading anything back.
    fn step(&self, batch: Batch) -> TrainOutput<StepItem> {
        let model = Classifier {
            net: self.net.clone(),
            loss: self.loss,
        };
        let grads = model.loss(batch).backward();
        TrainOutput::new(self, grads, StepItem::Step)
    }
}

impl InferenceStep for PaperModel {
    type Input = Tensor<2>;
    type Output = InferenceItem;

    /// The logits of a batch of features.
    fn step(&self, x: Tensor<2>) -> InferenceItem {
        InferenceItem::Logits(Box::new(self.net.forward(x)))
    }
}

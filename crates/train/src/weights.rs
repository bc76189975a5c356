//! A network's weights (or any pair of weight-shaped tensors) on the host: what checkpoints,
//! saved networks and the flatness measures read and write.

use crate::TrainError;
use crate::run_files::tensor_file::TensorFile;

/// A network's weights on the host: `u` is `d x H`, `v` is `H x k`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub u: Vec<f32>,
    pub v: Vec<f32>,
}

impl Weights {
    /// The `d x h` and `h x k` tensors of these weights on `device`.
    pub(crate) fn upload(
        &self,
        (d, h, k): (usize, usize, usize),
        device: &burn::tensor::Device,
    ) -> (burn::tensor::Tensor<2>, burn::tensor::Tensor<2>) {
        use burn::tensor::{Tensor, TensorData};
        (
            Tensor::from_data(TensorData::new(self.u.clone(), [d, h]), device),
            Tensor::from_data(TensorData::new(self.v.clone(), [h, k]), device),
        )
    }

    /// The weights of `net`, read back from the device.
    pub fn of(net: &realbias_model::TwoLayerNet) -> Result<Self, TrainError> {
        Weights::from_device(&net.u.val(), &net.v.val())
    }

    /// A pair of tensors (weights, or momentum buffers; any rank, read whole) from the device.
    pub(crate) fn from_device<const D: usize>(
        u: &burn::tensor::Tensor<D>,
        v: &burn::tensor::Tensor<D>,
    ) -> Result<Self, TrainError> {
        let read = |t: &burn::tensor::Tensor<D>| {
            let n = t.dims().iter().product();
            realbias_model::checked_read(t.clone().try_into_vec_as::<f32>(), n)
        };
        Ok(Weights {
            u: read(u)?,
            v: read(v)?,
        })
    }

    /// The pair `{prefix}.u` (`d x h`) and `{prefix}.v` (`h x k`) of `file`.
    pub(crate) fn read(
        file: &TensorFile,
        prefix: &str,
        (d, h, k): (usize, usize, usize),
    ) -> Result<Self, TrainError> {
        Ok(Weights {
            u: file.matrix(&format!("{prefix}.u"), [d, h])?,
            v: file.matrix(&format!("{prefix}.v"), [h, k])?,
        })
    }
}

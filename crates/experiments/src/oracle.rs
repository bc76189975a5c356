//! The theory experiments' networks are the product's Burn module: [`BurnOracle`] answers the
//! theory crate's loss-and-gradient questions with `TwoLayerNet` (any activation) and Burn's
//! autodiff on the chosen backend, in f32. The optimizers keep their iterates in f64.

use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor, TensorData};
use nalgebra::DMatrix;
use realbias_model::{Activation as ModelActivation, TwoLayerConfig, TwoLayerNet};
use realbias_theory::TheoryError;
use realbias_theory::network::{Activation, Loss, Oracle, Weights};

/// Inputs, targets and loss weights on an autodiff device.
pub struct BurnOracle {
    x: Tensor<2>,
    y: Tensor<2>,
    mask: Tensor<2>,
    activation: Activation,
    loss: Loss,
    device: Device,
}

fn upload(m: &DMatrix<f64>, device: &Device) -> Tensor<2> {
    let rows = m.nrows();
    let cols = m.ncols();
    let data: Vec<f32> = (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| m[(i, j)] as f32)
        .collect();
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

fn download<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TheoryError> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| TheoryError::InvalidProblem(format!("reading a tensor back: {e:?}")))
}

impl BurnOracle {
    /// `device` is the inference device; the oracle differentiates on its autodiff twin.
    pub fn new(
        x: &DMatrix<f64>,
        y: &DMatrix<f64>,
        mask: &DMatrix<f64>,
        activation: Activation,
        loss: Loss,
        device: &Device,
    ) -> Self {
        let device = device.clone().autodiff();
        BurnOracle {
            x: upload(x, &device),
            y: upload(y, &device),
            mask: upload(mask, &device),
            activation,
            loss,
            device,
        }
    }

    fn network(&self, w: &Weights) -> TwoLayerNet {
        let mut config = TwoLayerConfig::new(w.d, w.h, w.k);
        config.activation = match self.activation {
            Activation::Relu => ModelActivation::Relu,
            Activation::Linear => ModelActivation::Linear,
        };
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        TwoLayerNet::from_weights(f32s(&w.u), f32s(&w.v), &config, &self.device)
    }
}

impl Oracle for BurnOracle {
    fn loss_and_gradient(
        &mut self,
        w: &Weights,
        grad_u: &mut [f64],
        grad_v: &mut [f64],
    ) -> Result<f64, TheoryError> {
        let net = self.network(w);
        let out = net.forward(self.x.clone());
        let per_entry = match self.loss {
            Loss::Squared => (out - self.y.clone()).powi_scalar(2).mul_scalar(0.5),
            Loss::Logistic => softplus(out.mul(self.y.clone()).neg(), 1.0),
        };
        let loss = per_entry.mul(self.mask.clone()).sum();
        let grads = loss.backward();
        let value = download(loss.inner())?;
        let missing = || TheoryError::InvalidProblem("autodiff returned no gradient".into());
        let gu = download(net.u.val().grad(&grads).ok_or_else(missing)?)?;
        let gv = download(net.v.val().grad(&grads).ok_or_else(missing)?)?;
        for (a, b) in grad_u.iter_mut().zip(gu) {
            *a = b as f64;
        }
        for (a, b) in grad_v.iter_mut().zip(gv) {
            *a = b as f64;
        }
        Ok(value[0] as f64)
    }

    fn predictions(&mut self, w: &Weights) -> Result<Vec<f64>, TheoryError> {
        let out = self.network(w).forward(self.x.clone());
        Ok(download(out.inner())?.into_iter().map(f64::from).collect())
    }
}

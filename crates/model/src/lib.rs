//! The network of Neyshabur, Tomioka & Srebro (2015), eq. (1): `y = V [U x]_+`, one hidden
//! layer of `H` rectified linear units, no biases. With a linear activation it is the matrix
//! factorization `y = V Uᵀ x` of the paper's Section 3 (eq. 2).

pub mod norms;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

pub use norms::{NormMeasures, balance_units, norm_measures, unit_norms};

/// Errors of the model crate: invalid configurations.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// Reading the weights back from the device failed or returned the wrong amount of data.
    #[error("reading the weights back from the device failed: {0}")]
    ReadBack(String),
}

/// The hidden units' activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `[z]_+ = max(z, 0)`, the paper's network (eq. 1).
    #[default]
    Relu,
    /// The identity: a matrix factorization (eq. 2).
    Linear,
}

/// The two-layer network's shape and initialization.
///
/// The paper initializes "with weights generated randomly from the Gaussian distribution" and
/// gives no scale. The default is a fan-in scale for each layer, `U ~ N(0, 1/d)` and
/// `V ~ N(0, 1/H)`: the hidden pre-activations and the outputs then have a size independent of
/// `d` and `H`, so the paper's step size 0.1 trains every width from 4 to 8192 without
/// diverging, and wide networks start near the zero function rather than with outputs that
/// grow like `√H`. `init_std_u` / `init_std_v` override either scale, and `init_scale`
/// multiplies both (whichever they are): the knob between the "lazy" regime (large scale, the
/// weights barely move) and the "rich" one (small scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoLayerConfig {
    /// Input dimension `d` (100 for the paper's 10x10 images).
    pub inputs: usize,
    /// Hidden units `H`.
    pub hidden: usize,
    /// Outputs `k` (10 classes).
    pub outputs: usize,
    #[serde(default)]
    pub activation: Activation,
    /// Standard deviation of `U`'s entries; default `1/√d`.
    #[serde(default)]
    pub init_std_u: Option<f64>,
    /// Standard deviation of `V`'s entries; default `1/√H`.
    #[serde(default)]
    pub init_std_v: Option<f64>,
    /// Multiplies both standard deviations (1: the documented default).
    #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
    pub init_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

fn is_unit_scale(s: &f64) -> bool {
    *s == 1.0
}

impl TwoLayerConfig {
    pub fn new(inputs: usize, hidden: usize, outputs: usize) -> Self {
        TwoLayerConfig {
            inputs,
            hidden,
            outputs,
            activation: Activation::Relu,
            init_std_u: None,
            init_std_v: None,
            init_scale: 1.0,
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        if self.inputs == 0 || self.hidden == 0 || self.outputs == 0 {
            return bad(format!(
                "inputs ({}), hidden ({}) and outputs ({}) must all be at least 1",
                self.inputs, self.hidden, self.outputs
            ));
        }
        for (name, std) in [
            ("init_std_u", self.init_std_u),
            ("init_std_v", self.init_std_v),
            ("init_scale", Some(self.init_scale)),
        ] {
            if let Some(s) = std
                && !(s.is_finite() && s >= 0.0)
            {
                return bad(format!(
                    "{name} = {s} must be a finite, non-negative number"
                ));
            }
        }
        Ok(())
    }

    /// The standard deviations actually used for `(U, V)`.
    pub fn init_stds(&self) -> (f64, f64) {
        (
            self.init_scale * self.init_std_u.unwrap_or(1.0 / (self.inputs as f64).sqrt()),
            self.init_scale * self.init_std_v.unwrap_or(1.0 / (self.hidden as f64).sqrt()),
        )
    }

    /// A network with Gaussian weights drawn on the host from `seed`, so that the same seed
    /// gives the same initial network on every backend.
    pub fn init(&self, seed: u64, device: &Device) -> Result<TwoLayerNet, ModelError> {
        self.validate()?;
        let (std_u, std_v) = self.init_stds();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |n: usize, std: f64| -> Vec<f32> {
            match Normal::new(0.0, std) {
                Ok(normal) => (0..n).map(|_| normal.sample(&mut rng) as f32).collect(),
                Err(_) => vec![0.0; n],
            }
        };
        let u = draw(self.inputs * self.hidden, std_u);
        let v = draw(self.hidden * self.outputs, std_v);
        Ok(TwoLayerNet::from_weights(u, v, self, device))
    }
}

/// `y = V [U x]_+` with `U` stored transposed (`d x H`, column `h` is unit `h`'s input
/// weights `u_h`) so that a batch `X (B x d)` maps to `[X U]_+ V`, and `V` stored `H x k`
/// (row `h` is `v_h`).
#[derive(Module, Debug)]
pub struct TwoLayerNet {
    pub u: Param<Tensor<2>>,
    pub v: Param<Tensor<2>>,
    #[module(skip)]
    pub activation: Activation,
}

impl TwoLayerNet {
    /// A network with the given weights (`u`: `d x H` row-major, `v`: `H x k` row-major).
    pub fn from_weights(
        u: Vec<f32>,
        v: Vec<f32>,
        config: &TwoLayerConfig,
        device: &Device,
    ) -> Self {
        let (d, h, k) = (config.inputs, config.hidden, config.outputs);
        let u = Tensor::from_data(TensorData::new(u, [d, h]), device);
        let v = Tensor::from_data(TensorData::new(v, [h, k]), device);
        TwoLayerNet {
            u: Param::from_tensor(u),
            v: Param::from_tensor(v),
            activation: config.activation,
        }
    }

    /// Logits for a batch `x` of shape `B x d`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.output(self.preactivations(x))
    }

    /// The hidden pre-activations `X U` of a batch (`B x H`).
    pub fn preactivations(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.u.val())
    }

    /// Logits from hidden pre-activations: `[pre]_+ V`.
    pub fn output(&self, pre: Tensor<2>) -> Tensor<2> {
        let hidden = match self.activation {
            Activation::Relu => burn::tensor::activation::relu(pre),
            Activation::Linear => pre,
        };
        hidden.matmul(self.v.val())
    }

    /// `(d, H, k)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        let [d, h] = self.u.val().dims();
        let [_, k] = self.v.val().dims();
        (d, h, k)
    }

    /// The weights on the host: (`U` as `d x H`, `V` as `H x k`), row-major.
    pub fn weights(&self) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        let (d, h, k) = self.dims();
        let u = checked_read(self.u.val().try_into_vec_as::<f32>(), d * h)?;
        let v = checked_read(self.v.val().try_into_vec_as::<f32>(), h * k)?;
        Ok((u, v))
    }

    /// The norm measures of the current weights.
    pub fn norms(&self) -> Result<NormMeasures, ModelError> {
        let (d, h, k) = self.dims();
        let (u, v) = self.weights()?;
        Ok(norm_measures(&u, &v, d, h, k))
    }
}

/// A read-back of `expected` values: a failure or a wrong length is an error, never an empty
/// vector that a later computation would trip over.
pub fn checked_read<E: std::fmt::Debug>(
    read: Result<Vec<f32>, E>,
    expected: usize,
) -> Result<Vec<f32>, ModelError> {
    match read {
        Ok(values) if values.len() == expected => Ok(values),
        Ok(values) => Err(ModelError::ReadBack(format!(
            "{} values where {expected} were expected",
            values.len()
        ))),
        Err(e) => Err(ModelError::ReadBack(format!("{e:?}"))),
    }
}

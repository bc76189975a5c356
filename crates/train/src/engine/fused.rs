//! The training loss of the two-layer network as one autodiff node.
//!
//! Composed from Burn's tensor operations, one training step of `y = V [U x]_+` with softmax
//! cross-entropy records some twenty autodiff nodes (matmuls, ReLU, log-softmax, gather, mean,
//! and their backward steps), and at small widths the per-node bookkeeping costs more than the
//! arithmetic (`experiments/performance/`). This backend extension computes the mean loss in
//! one node whose backward pass is written by hand: with `δ = (softmax(z) − t)/B`,
//! `∂V = hᵀ δ`, `∂U = xᵀ (δ Vᵀ ⊙ [h > 0])`. The inner arithmetic still runs on the selected
//! backend's own kernels, so it works on every backend; only the graph is smaller.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use realbias_model::{Activation, TwoLayerNet};

/// The fused loss as a backend operation. Every compiled backend gets the forward pass from
/// the default body; `Autodiff` gets the hand-written backward pass below.
#[backend_extension(Flex: cfg(feature = "flex"), NdArray: cfg(feature = "ndarray"), Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait TwoLayerLossOps: Backend {
    /// Mean softmax cross-entropy of the logits `[x u]_+ v` (or `x u v` when `relu` is false)
    /// against the target distributions `targets` (`B x k`, rows of one-hot labels in
    /// training); a one-element tensor.
    fn two_layer_loss(
        x: FloatTensor<Self>,
        u: FloatTensor<Self>,
        v: FloatTensor<Self>,
        targets: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        forward::<Self>(x, u, v, targets, relu).loss
    }
}

#[cfg(feature = "flex")]
impl TwoLayerLossOps for burn::backend::Flex {}
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
impl TwoLayerLossOps for burn::backend::NdArray {}
#[cfg(feature = "wgpu")]
impl TwoLayerLossOps for burn::backend::Cube {}

/// What the forward pass leaves for the backward pass.
struct Forward<B: Backend> {
    /// The mean loss, shape `[1]`.
    loss: FloatTensor<B>,
    /// The hidden layer after the activation, `B x H`.
    hidden: FloatTensor<B>,
    /// `log softmax(z)`, `B x k`.
    log_probs: FloatTensor<B>,
}

fn forward<B: Backend>(
    x: FloatTensor<B>,
    u: FloatTensor<B>,
    v: FloatTensor<B>,
    targets: FloatTensor<B>,
    relu: bool,
) -> Forward<B> {
    let pre = B::float_matmul(x, u);
    let hidden = if relu { B::relu(pre) } else { pre };
    let logits = B::float_matmul(hidden.clone(), v);
    // log softmax, shifted by the row maximum so exp cannot overflow.
    let max = B::float_max_dim(logits.clone(), 1);
    let shifted = B::float_sub(logits, max);
    let log_sum = B::float_log(B::float_sum_dim(B::float_exp(shifted.clone()), 1));
    let log_probs = B::float_sub(shifted, log_sum);
    let batch = log_probs.shape()[0].max(1);
    // −(1/B) Σ_i Σ_c t_ic log p_ic
    let loss = B::float_mul_scalar(
        B::float_sum(B::float_mul(log_probs.clone(), targets)),
        (-1.0 / batch as f64).into(),
    );
    Forward {
        loss,
        hidden,
        log_probs,
    }
}

/// The backward step of [`TwoLayerLossOps::two_layer_loss`] on the autodiff backend.
#[derive(Debug)]
struct TwoLayerLossBackward;

/// Saved by the forward pass; `u` and `targets` only when a gradient needs them.
#[derive(Debug, Clone)]
struct Saved<B: Backend> {
    x: FloatTensor<B>,
    u: Option<FloatTensor<B>>,
    v: FloatTensor<B>,
    targets: FloatTensor<B>,
    hidden: FloatTensor<B>,
    log_probs: FloatTensor<B>,
    relu: bool,
}

impl<B: Backend> Backward<B, 4> for TwoLayerLossBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_u, node_v, node_targets] = ops.parents;
        let s = ops.state;
        // The incoming gradient of the scalar loss, shaped to broadcast over B x k.
        let upstream = B::float_reshape(grads.consume::<B>(&ops.node), [1, 1].into());
        let batch = s.log_probs.shape()[0].max(1);
        let per_example = B::float_div_scalar(upstream, (batch as f64).into());

        if let Some(node) = node_targets {
            // ∂L/∂t = −log p / B
            let grad = B::float_neg(B::float_mul(s.log_probs.clone(), per_example.clone()));
            grads.register::<B>(node.id, grad);
        }
        if node_x.is_none() && node_u.is_none() && node_v.is_none() {
            return;
        }
        // δ = (softmax(z) − t) · g / B
        let delta = B::float_mul(
            B::float_sub(B::float_exp(s.log_probs), s.targets),
            per_example,
        );
        if let Some(node) = node_v {
            let grad = B::float_matmul(B::float_transpose(s.hidden.clone()), delta.clone());
            grads.register::<B>(node.id, grad);
        }
        if node_x.is_none() && node_u.is_none() {
            return;
        }
        let grad_hidden = B::float_matmul(delta, B::float_transpose(s.v));
        let grad_pre = if s.relu {
            B::relu_backward(s.hidden, grad_hidden)
        } else {
            grad_hidden
        };
        if let Some(node) = node_u {
            let grad = B::float_matmul(B::float_transpose(s.x), grad_pre.clone());
            grads.register::<B>(node.id, grad);
        }
        if let (Some(node), Some(u)) = (node_x, s.u) {
            let grad = B::float_matmul(grad_pre, B::float_transpose(u));
            grads.register::<B>(node.id, grad);
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> TwoLayerLossOps for Autodiff<B, C> {
    fn two_layer_loss(
        x: FloatTensor<Self>,
        u: FloatTensor<Self>,
        v: FloatTensor<Self>,
        targets: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        let x_tracked = x.is_tracked();
        let (x, x_node) = x.into_parts();
        let (u, u_node) = u.into_parts();
        let (v, v_node) = v.into_parts();
        let (targets, targets_node) = targets.into_parts();
        match TwoLayerLossBackward
            .prepare::<C>([x_node, u_node, v_node, targets_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let saved_u = x_tracked.then(|| u.clone());
                let f = forward::<B>(x.clone(), u, v.clone(), targets.clone(), relu);
                let saved = Saved {
                    x,
                    u: saved_u,
                    v,
                    targets,
                    hidden: f.hidden,
                    log_probs: f.log_probs,
                    relu,
                };
                prep.finish(saved, f.loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(x, u, v, targets, relu).loss),
        }
    }
}

/// The mean softmax cross-entropy of `net` on a batch `x` (`B x d`) against `targets`
/// (`B x k` target distributions, one-hot rows for labels), as one autodiff node.
pub fn two_layer_loss(net: &TwoLayerNet, x: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let loss = <Dispatch as TwoLayerLossOps>::two_layer_loss(
        x.into_dispatch(),
        net.u.val().into_dispatch(),
        net.v.val().into_dispatch(),
        targets.into_dispatch(),
        net.activation == Activation::Relu,
    );
    Tensor::from_dispatch(loss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Device, TensorData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use realbias_model::TwoLayerConfig;

    fn random(rng: &mut ChaCha8Rng, shape: [usize; 2], device: &Device) -> Tensor<2> {
        let values: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.try_into_vec_as().unwrap()
    }

    fn gradients(loss: Tensor<1>, params: &[Tensor<2>]) -> Vec<Vec<f32>> {
        let grads = loss.backward();
        params
            .iter()
            .map(|p| host(p.grad(&grads).unwrap()))
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 2e-5 * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// Loss and every gradient of the fused node equal those of Burn's composed operations,
    /// for both activations, a one-hot target and a soft one.
    #[test]
    fn fused_loss_and_gradients_match_the_composed_operations() {
        let device = Device::flex().autodiff();
        let (b, d, h, k) = (7, 5, 6, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for activation in [Activation::Relu, Activation::Linear] {
            let mut config = TwoLayerConfig::new(d, h, k);
            config.activation = activation;
            let net = config.init(5, &device).unwrap();
            let x = random(&mut rng, [b, d], &device).require_grad();
            let labels: Vec<i64> = (0..b).map(|i| (i * 3 % k) as i64).collect();
            let one_hot: Vec<f32> = (0..b * k)
                .map(|j| f32::from(labels[j / k] == (j % k) as i64))
                .collect();
            let soft = random(&mut rng, [b, k], &device).abs();
            let soft = soft.clone() / soft.sum_dim(1);
            let targets_list = [
                Tensor::<2>::from_data(TensorData::new(one_hot, [b, k]), &device),
                soft,
            ];
            for (t, targets) in targets_list.into_iter().enumerate() {
                let targets = targets.require_grad();
                let fused = two_layer_loss(&net, x.clone(), targets.clone());
                // −(1/B) Σ t log softmax, by Burn's operations.
                let composed = (log_softmax(net.forward(x.clone()), 1) * targets.clone())
                    .sum()
                    .neg()
                    / b as f32;
                let what = format!("{activation:?}, targets {t}");
                assert_close(
                    &fused.clone().try_into_vec_as::<f32>().unwrap(),
                    &composed.clone().try_into_vec_as::<f32>().unwrap(),
                    &format!("loss ({what})"),
                );
                let params = [net.u.val(), net.v.val(), x.clone(), targets.clone()];
                let gf = gradients(fused.mul_scalar(1.7), &params);
                let gc = gradients(composed.mul_scalar(1.7), &params);
                for (i, name) in ["u", "v", "x", "targets"].iter().enumerate() {
                    assert_close(&gf[i], &gc[i], &format!("∂{name} ({what})"));
                }
            }
        }
        // With integer labels, the composed path is Burn's CrossEntropyLoss itself.
        let net = TwoLayerConfig::new(d, h, k).init(1, &device).unwrap();
        let x = random(&mut rng, [b, d], &device);
        let labels: Vec<usize> = (0..b).map(|i| (i * 5 + 1) % k).collect();
        let one_hot: Vec<f32> = (0..b * k)
            .map(|j| f32::from(labels[j / k] == j % k))
            .collect();
        let fused = two_layer_loss(
            &net,
            x.clone(),
            Tensor::from_data(TensorData::new(one_hot, [b, k]), &device),
        );
        let burn_loss = CrossEntropyLossConfig::new().init(&device).forward(
            net.forward(x),
            Tensor::from_data(
                TensorData::new(labels.iter().map(|&l| l as i64).collect(), [b]),
                &device,
            ),
        );
        let (f, c) = (
            fused.into_scalar::<f32>() as f64,
            burn_loss.into_scalar::<f32>() as f64,
        );
        assert!((f - c).abs() < 1e-6 * c.abs().max(1.0), "{f} vs {c}");
    }

    /// Without autodiff the op is the plain forward pass.
    #[test]
    fn forward_only_on_the_inner_backend() {
        let device = Device::flex();
        let net = TwoLayerConfig::new(3, 4, 2).init(0, &device).unwrap();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0], [1, 3]), &device);
        let t = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0], [1, 2]), &device);
        let logits = host(net.forward(x.clone()));
        let max = logits[0].max(logits[1]);
        let lse = max + ((logits[0] - max).exp() + (logits[1] - max).exp()).ln();
        let want = lse - logits[1];
        let got = two_layer_loss(&net, x, t).into_scalar::<f32>();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}

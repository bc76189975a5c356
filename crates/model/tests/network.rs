//! The Burn module against a hand computation.

use burn::tensor::{Device, Tensor, TensorData};
use realbias_model::{Activation, TwoLayerConfig};

fn device() -> Device {
    Device::flex()
}

#[test]
fn forward_is_v_relu_u_x_without_biases() {
    // d = 2, H = 3, k = 2.
    let u = vec![1.0, -1.0, 0.5, 2.0, 1.0, -0.5]; // rows: input 0, input 1; columns: units
    let v = vec![1.0, 0.0, 0.0, 1.0, 2.0, -1.0];
    let mut config = TwoLayerConfig::new(2, 3, 2);
    let net = realbias_model::TwoLayerNet::from_weights(u.clone(), v.clone(), &config, &device());
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 1.0, 0.0, 0.0, -1.0, 2.0], [3, 2]),
        &device(),
    );
    let y: Vec<f32> = net.forward(x.clone()).try_into_vec_as().unwrap();
    // x = (1, 1): pre = (3, 0, 0) -> relu (3, 0, 0) -> y = 3·v_1 = (3, 0).
    // x = (0, 0): y = 0. x = (-1, 2): pre = (3, 3, -1.5) -> (3, 3, 0) -> (3, 3).
    assert_eq!(y, vec![3.0, 0.0, 0.0, 0.0, 3.0, 3.0]);
    config.activation = Activation::Linear;
    let linear = realbias_model::TwoLayerNet::from_weights(u, v, &config, &device());
    let y: Vec<f32> = linear.forward(x).try_into_vec_as().unwrap();
    // x = (-1, 2): pre = (3, 3, -1.5) -> y = (3 - 3, 3 + 1.5) = (0, 4.5).
    assert_eq!(&y[4..], &[0.0, 4.5]);
}

#[test]
fn initialization_is_seeded_gaussian_with_fan_in_scales() {
    let config = TwoLayerConfig::new(100, 4096, 10);
    let a = config.init(7, &device()).unwrap();
    let b = config.init(7, &device()).unwrap();
    let c = config.init(8, &device()).unwrap();
    assert_eq!(a.weights().unwrap(), b.weights().unwrap());
    assert_ne!(a.weights().unwrap().0, c.weights().unwrap().0);
    let (u, v) = a.weights().unwrap();
    let std =
        |w: &[f32]| (w.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std(&u) - 0.1).abs() < 0.002, "U std {}", std(&u));
    assert!((std(&v) - 1.0 / 64.0).abs() < 0.0005, "V std {}", std(&v));
    assert_eq!(a.norms().unwrap().parameters, 4096 * 110);
    assert_eq!(a.dims(), (100, 4096, 10));
}

#[test]
fn invalid_configs_are_refused() {
    assert!(TwoLayerConfig::new(100, 0, 10).init(0, &device()).is_err());
    let mut c = TwoLayerConfig::new(100, 4, 10);
    c.init_std_u = Some(f64::NAN);
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("init_std_u"), "{err}");
}

#[test]
fn a_failed_or_short_read_back_is_an_error() {
    use realbias_model::{ModelError, checked_read};
    let failed: Result<Vec<f32>, &str> = Err("device lost");
    assert!(
        matches!(checked_read(failed, 4), Err(ModelError::ReadBack(m)) if m.contains("device lost"))
    );
    let empty: Result<Vec<f32>, &str> = Ok(Vec::new());
    assert!(matches!(
        checked_read(empty, 4),
        Err(ModelError::ReadBack(_))
    ));
    let whole: Result<Vec<f32>, &str> = Ok(vec![1.0; 4]);
    assert_eq!(checked_read(whole, 4).unwrap(), vec![1.0; 4]);
}

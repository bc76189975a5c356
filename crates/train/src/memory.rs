//! A run's memory, checked before anything is allocated: a width that cannot fit is a clear
//! error instead of an allocation failure (which aborts the process).

use crate::TrainError;
use crate::config::TrainConfig;

/// Examples per forward and backward pass of the full-batch objective: the whole training
/// split up to this many (Figure 2's 2,000 in one pass), in chunks of it beyond, so that a
/// full-batch run's memory stays that of a 10,000-example batch.
pub const FULL_BATCH_CHUNK: usize = 10_000;

/// Copies of the weights alive during training: the autodiff parameters, their gradients, the
/// momentum buffers, the inference copy evaluated each epoch, the best-validation copy, the
/// host-side draw at initialization and its upload, with some slack for the optimizer's
/// temporaries.
const WEIGHT_COPIES: f64 = 10.0;

/// Bytes a run needs, roughly: the weight copies plus the hidden activations of the largest
/// batch (forward, backward and the ReLU mask; a full-batch method's pass at most
/// [`FULL_BATCH_CHUNK`] examples).
fn estimate_bytes(inputs: usize, hidden: usize, outputs: usize, config: &TrainConfig) -> f64 {
    let params = (inputs as f64 + outputs as f64) * hidden as f64;
    let mut rows = config.optim.batch_size.max(config.train.eval_batch);
    if config.optim.method.is_full_batch() {
        // The full-batch objective's passes (at most this many examples each).
        rows = rows.max(FULL_BATCH_CHUNK);
    }
    let rows = rows as f64;
    4.0 * (WEIGHT_COPIES * params + 3.0 * rows * hidden as f64)
}

/// `MemAvailable` of `/proc/meminfo`, where there is one.
fn available_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Refuses a run that needs more memory than the machine has available.
pub fn check(
    inputs: usize,
    hidden: usize,
    outputs: usize,
    config: &TrainConfig,
) -> Result<(), TrainError> {
    let needed = estimate_bytes(inputs, hidden, outputs, config);
    match shortfall(needed) {
        Some((needed_gib, available_gib)) => Err(TrainError::Memory {
            hidden,
            needed_gib,
            available_gib,
        }),
        None => Ok(()),
    }
}

/// `(needed, available)` in GiB when `needed` bytes exceed the available memory.
fn shortfall(needed: f64) -> Option<(f64, f64)> {
    let gib = |b: f64| b / (1u64 << 30) as f64;
    available_bytes()
        .filter(|&available| needed > available)
        .map(|available| (gib(needed), gib(available)))
}

/// Bytes an ensemble of `members` runs needs: each member's weights (as a run alone), its
/// splits on the device and on the host, and its block of the training stack.
pub fn ensemble_bytes(
    members: usize,
    (inputs, classes): (usize, usize),
    examples: usize,
    config: &TrainConfig,
) -> f64 {
    let weights = estimate_bytes(inputs, config.model.hidden, classes, config);
    let data = 4.0 * (inputs + classes) as f64 * examples as f64;
    members as f64 * (weights + 3.0 * data)
}

/// The most members of `config`'s width (inputs and classes: `shape`) on `examples`
/// examples (training, validation and test together) that fit in a quarter of the
/// available memory (two jobs' ensembles then take half and leave the rest to everything
/// else); at least 1, at most `cap`.
pub fn ensemble_capacity(
    shape: (usize, usize),
    examples: usize,
    config: &TrainConfig,
    cap: usize,
) -> usize {
    let one = ensemble_bytes(1, shape, examples, config);
    match available_bytes() {
        Some(available) => ((0.25 * available / one) as usize).clamp(1, cap.max(1)),
        None => cap.max(1),
    }
}

/// Refuses an ensemble of `members` runs like `config` on `data` that needs more memory
/// than the machine has available.
pub fn check_ensemble(
    members: usize,
    data: &realbias_data::Dataset,
    config: &TrainConfig,
) -> Result<(), TrainError> {
    let examples = data.train.len() + data.validation.len() + data.test.len();
    let shape = (data.dim(), data.classes);
    let needed = ensemble_bytes(members, shape, examples, config);
    match shortfall(needed) {
        Some((needed_gib, available_gib)) => Err(TrainError::EnsembleMemory {
            members,
            hidden: config.model.hidden,
            needed_gib,
            available_gib,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's defaults on MNIST.
    fn default_config() -> TrainConfig {
        let text = "[data]\ndataset = { kind = \"mnist\" }\n";
        TrainConfig::parse(text, std::path::Path::new("t.toml"), &[]).unwrap()
    }

    #[test]
    fn the_estimate_grows_with_h_and_refuses_absurd_widths() {
        let config = default_config();
        let small = estimate_bytes(100, 256, 10, &config);
        // H = 256: 28,160 weights; well under 100 MB.
        assert!(small > 4.0 * 28_160.0 && small < 1e8, "{small}");
        assert!(estimate_bytes(100, 512, 10, &config) > small);
        if available_bytes().is_some() {
            let e = check(100, 100_000_000_000, 10, &config).unwrap_err();
            assert!(e.to_string().contains("H = 100000000000"), "{e}");
            check(100, 256, 10, &config).unwrap();
        }
    }

    #[test]
    fn an_ensemble_needs_its_members_data_and_is_capped() {
        let config = default_config();
        let one = ensemble_bytes(1, (784, 10), 14_000, &config);
        // Three copies of 14,000 examples of 794 floats, plus the weights: ~133 MB.
        assert!(one > 3.0 * 4.0 * 794.0 * 14_000.0 && one < 1.5e8, "{one}");
        assert!((ensemble_bytes(35, (784, 10), 14_000, &config) - 35.0 * one).abs() < 1.0);
        let small = ensemble_capacity((784, 10), 14_000, &config, 64);
        let large = ensemble_capacity((784, 10), 1_400_000_000, &config, 64);
        assert!(
            (1..=64).contains(&small) && large <= small,
            "{small} {large}"
        );
        assert_eq!(
            ensemble_capacity((784, 10), 14_000, &config, 3).min(3),
            small.min(3)
        );
    }
}

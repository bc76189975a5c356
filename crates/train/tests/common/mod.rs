//! Synthetic data and helpers shared by the training tests.
#![allow(dead_code)]

use std::path::Path;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use realbias_data::{Dataset, Split};
use realbias_train::config::{CheckedConfig, TrainConfig};
use realbias_train::{EpochRecord, FinishedRun, RunResult};

pub fn device() -> Device {
    realbias_train::backend::device().unwrap()
}

/// A rayon pool of `threads` threads: an ensemble installed in it trains as that many shards.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

pub fn config(text: &str) -> TrainConfig {
    TrainConfig::parse(text, Path::new("test.toml"), &[]).unwrap()
}

/// `n` points in d = 10 labelled (3 classes) by a random ReLU network with 5 hidden units.
pub fn teacher_split(n: usize, rng: &mut ChaCha8Rng, teacher: &(Vec<f64>, Vec<f64>)) -> Split {
    let (d, h, k) = (10, 5, 3);
    let mut features = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let hidden: Vec<f64> = (0..h)
            .map(|j| {
                (0..d)
                    .map(|i| x[i] * teacher.0[i * h + j])
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect();
        let y: Vec<f64> = (0..k)
            .map(|c| (0..h).map(|j| hidden[j] * teacher.1[j * k + c]).sum())
            .collect();
        let label = (0..k).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
        features.extend(x.iter().map(|&v| v as f32));
        labels.push(label as u8);
    }
    Split {
        dim: d,
        features,
        labels,
    }
}

pub fn teacher_data(seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let teacher = (
        (0..50).map(|_| rng.random_range(-1.0..1.0)).collect(),
        (0..15).map(|_| rng.random_range(-1.0..1.0)).collect(),
    );
    Dataset {
        name: "teacher".into(),
        classes: 3,
        train: teacher_split(200, &mut rng, &teacher),
        validation: teacher_split(200, &mut rng, &teacher),
        test: teacher_split(500, &mut rng, &teacher),
    }
}

/// `data` with the labels of another teacher (every split).
pub fn relabelled(data: &Dataset, seed: u64) -> Dataset {
    let other = teacher_data(seed);
    let labels: Vec<u8> = [&other.train, &other.validation, &other.test]
        .iter()
        .flat_map(|s| s.labels.iter().copied())
        .collect();
    let mut data = data.clone();
    data.relabel_all(&labels).unwrap();
    data
}

/// The run's numbers without its wall-clock times and the machine it ran on (a resumed run
/// may run on other threads: an ensemble's shard gets a share of them).
pub fn timeless(run: &FinishedRun) -> (RunResult, Vec<EpochRecord>) {
    let mut result = run.result.clone();
    (result.wall_seconds, result.seconds_per_epoch) = (0.0, 0.0);
    result.machine = None;
    if let Some(m) = result.measures.as_mut() {
        (m.at_convergence.seconds, m.early_stop.seconds) = (0.0, 0.0);
    }
    let history = run
        .history
        .iter()
        .map(|e| EpochRecord {
            train_seconds: 0.0,
            eval_seconds: 0.0,
            wall_seconds: 0.0,
            ..e.clone()
        })
        .collect();
    (result, history)
}

/// Rewrites the tensor file at `path` as a writer before integrity digests did: the same
/// tensors, metadata `format` = `format`, no digest.
pub fn rewrite_unsealed(path: &Path, format: &str) {
    let bytes = std::fs::read(path).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap_or_default();
    metadata.remove(realbias_train::run_files::tensor_file::DIGEST_KEY);
    metadata.insert("format".into(), format.into());
    let encoded = safetensors::serialize(parsed.tensors(), Some(metadata)).unwrap();
    std::fs::write(path, encoded).unwrap();
}

/// `c` as a config a run accepts (the tests change configs after parsing them).
pub fn checked(c: &TrainConfig) -> CheckedConfig {
    c.clone().check().unwrap()
}

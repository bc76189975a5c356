//! The readers on the real files in `REALBIAS_DATA` (else `../shared/datasets`). Ignored by a
//! plain `cargo test` (listed with the reason); `-- --include-ignored` runs them, and then a
//! missing folder fails them.

use realbias_data::{
    DATA_ENV, Dataset, DatasetInfo, DatasetSource, FeatureOptions, PAPER_VALIDATION,
};
use realbias_fixtures::real_data_dir;

/// The fixtures look the folder up under the same variable the data crate reads.
#[test]
fn the_fixtures_read_the_data_crates_variable() {
    assert_eq!(DATA_ENV, "REALBIAS_DATA");
}

#[test]
#[ignore = "needs the real MNIST files (REALBIAS_DATA); run with -- --include-ignored"]
fn mnist_has_the_paper_splits_and_official_class_counts() {
    let dir = real_data_dir("mnist");
    let raw = DatasetSource::Mnist.load(&dir).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (60_000, 10_000));
    let d = Dataset::from_raw(&raw, &FeatureOptions::default(), PAPER_VALIDATION).unwrap();
    let info = DatasetInfo::of(&d);
    assert_eq!(
        (info.train.size, info.validation.size, info.test.size),
        (50_000, 10_000, 10_000)
    );
    assert_eq!(info.features, 100);
    let file: Vec<usize> = info
        .train
        .class_histogram
        .iter()
        .zip(&info.validation.class_histogram)
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(
        file,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        info.test.class_histogram,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    for s in [&info.train, &info.validation, &info.test] {
        assert!(s.feature_min >= 0.0 && s.feature_max <= 1.0);
        // MNIST's mean intensity is ~0.13 and downsampling preserves it.
        assert!((s.feature_mean - 0.13).abs() < 0.01, "{}", s.feature_mean);
    }
}

#[test]
#[ignore = "needs the real CIFAR-10 files (REALBIAS_DATA); run with -- --include-ignored"]
fn cifar10_has_the_paper_splits_and_balanced_test_classes() {
    let dir = real_data_dir("cifar10");
    let raw = DatasetSource::Cifar10.load(&dir).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (50_000, 10_000));
    let d = Dataset::from_raw(&raw, &FeatureOptions::default(), PAPER_VALIDATION).unwrap();
    let info = DatasetInfo::of(&d);
    assert_eq!(
        (info.train.size, info.validation.size, info.test.size),
        (40_000, 10_000, 10_000)
    );
    assert_eq!(info.features, 100);
    assert_eq!(info.test.class_histogram, [1000; 10]);
    let file: Vec<usize> = info
        .train
        .class_histogram
        .iter()
        .zip(&info.validation.class_histogram)
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(file, [5000; 10]);
    for s in [&info.train, &info.validation, &info.test] {
        assert!(s.feature_min >= 0.0 && s.feature_max <= 1.0);
        assert!((0.4..0.55).contains(&s.feature_mean), "{}", s.feature_mean);
    }
}

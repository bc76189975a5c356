//! The paper's splits, subsets, relabeling and label noise.

use realbias_fixtures as common;

use std::collections::HashSet;

use realbias_data::{Dataset, DatasetSource, FeatureOptions, Normalization, Split, SplitSelection};

/// A dataset whose single feature is the example's id (train 0.., validation 1000.., test 2000..).
fn numbered(train: usize, validation: usize, test: usize) -> Dataset {
    let split = |n: usize, base: usize| Split {
        dim: 1,
        features: (0..n).map(|i| (base + i) as f32).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    };
    Dataset {
        name: "numbered".into(),
        classes: 10,
        train: split(train, 0),
        validation: split(validation, 1000),
        test: split(test, 2000),
    }
}

#[test]
fn full_splits_take_the_last_examples_of_the_training_file_for_validation() {
    let dir = tempfile::tempdir().unwrap();
    common::write_mnist(&dir.path().join("mnist"), 50, 20, true);
    let raw = DatasetSource::Mnist.load(dir.path()).unwrap();
    let d = Dataset::from_raw(&raw, &FeatureOptions::default(), 15).unwrap();
    assert_eq!(
        (d.train.len(), d.validation.len(), d.test.len(), d.dim()),
        (35, 15, 20, 100)
    );
    assert_eq!(d.validation.labels, raw.train.labels[35..]);
    assert!(d.train.features.iter().all(|v| (0.0..=1.0).contains(v)));
    let err = Dataset::from_raw(&raw, &FeatureOptions::default(), 50)
        .unwrap_err()
        .to_string();
    assert!(err.contains("leaves no training examples"), "{err}");
    let color = FeatureOptions {
        side: 10,
        color: true,
    };
    assert_eq!(
        Dataset::from_raw(&raw, &color, 15).unwrap().dim(),
        100,
        "MNIST has one channel"
    );
}

#[test]
fn subsets_are_disjoint_seeded_and_keep_the_test_split() {
    let d = numbered(600, 400, 50);
    let s = d.subset(200, 300, 7).unwrap();
    assert_eq!((s.train.len(), s.validation.len()), (200, 300));
    assert_eq!(s.test, d.test);
    let train: HashSet<u32> = s.train.features.iter().map(|&v| v as u32).collect();
    let val: HashSet<u32> = s.validation.features.iter().map(|&v| v as u32).collect();
    assert_eq!(train.len(), 200);
    assert_eq!(val.len(), 300);
    assert!(train.is_disjoint(&val));
    // Drawn from the whole training file (train + validation), never the test split.
    assert!(
        train
            .iter()
            .chain(&val)
            .all(|&id| id < 1400 && !(600..1000).contains(&id))
    );
    assert!(val.iter().any(|&id| id < 600) && train.iter().any(|&id| id >= 1000));
    // Labels travel with their examples.
    for (i, &id) in s.train.features.iter().enumerate() {
        let id = id as usize;
        let local = if id >= 1000 { id - 1000 } else { id };
        assert_eq!(s.train.labels[i] as usize, local % 10);
    }
    assert_eq!(d.subset(200, 300, 7).unwrap(), s, "same seed, same subset");
    assert_ne!(
        d.subset(200, 300, 8).unwrap().train,
        s.train,
        "another seed, another subset"
    );
    assert!(d.subset(900, 101, 0).is_err());
    assert!(d.subset(0, 10, 0).is_err());
}

#[test]
fn label_noise_changes_exactly_the_rounded_fraction_to_other_classes() {
    let d = numbered(1000, 333, 200);
    let mut noisy = d.clone();
    let report = noisy
        .add_label_noise(0.05, SplitSelection::default(), 3)
        .unwrap();
    assert_eq!(report.train.len(), 50);
    assert_eq!(report.validation.len(), 17, "round(0.05 * 333) = 17");
    assert!(report.test.is_empty());
    assert_eq!(noisy.test, d.test, "test stays clean by default");
    for (before, after, changed) in [
        (&d.train, &noisy.train, &report.train),
        (&d.validation, &noisy.validation, &report.validation),
    ] {
        let differ: Vec<usize> = (0..before.len())
            .filter(|&i| before.labels[i] != after.labels[i])
            .collect();
        assert_eq!(
            &differ, changed,
            "exactly the reported labels changed, each to another class"
        );
        assert!(after.labels.iter().all(|&l| l < 10));
    }
    let mut again = d.clone();
    assert_eq!(
        again
            .add_label_noise(0.05, SplitSelection::default(), 3)
            .unwrap(),
        report
    );
    assert_eq!(again, noisy);

    let mut all = d.clone();
    let every = SplitSelection {
        train: true,
        validation: true,
        test: true,
    };
    assert_eq!(all.add_label_noise(0.1, every, 1).unwrap().test.len(), 20);
    assert!(all.add_label_noise(1.0, every, 1).is_err());
    assert!(all.add_label_noise(-0.1, every, 1).is_err());
}

#[test]
fn noise_targets_are_uniform_over_the_other_classes() {
    let mut labels = vec![3u8; 90_000];
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    let changed = realbias_data::corrupt_labels(&mut labels, 0.5, 10, &mut rng).unwrap();
    assert_eq!(changed.len(), 45_000);
    let mut counts = [0usize; 10];
    for &i in &changed {
        counts[labels[i] as usize] += 1;
    }
    assert_eq!(counts[3], 0);
    for (c, &n) in counts.iter().enumerate().filter(|&(c, _)| c != 3) {
        assert!((n as f64 - 5000.0).abs() < 300.0, "class {c}: {n}");
    }
}

#[test]
fn relabel_all_replaces_every_split_in_order_and_checks_its_input() {
    let mut d = numbered(5, 3, 2);
    let labels = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0];
    d.relabel_all(&labels).unwrap();
    assert_eq!(d.train.labels, [9, 8, 7, 6, 5]);
    assert_eq!(d.validation.labels, [4, 3, 2]);
    assert_eq!(d.test.labels, [1, 0]);
    assert_eq!(d.all_examples().labels, labels);
    let err = d.relabel_all(&labels[..9]).unwrap_err().to_string();
    assert!(err.contains("9 labels given for 10 examples"), "{err}");
    let err = d
        .relabel_all(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 10])
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 10 at 9 is out of range"), "{err}");
    assert_eq!(
        d.test.labels,
        [1, 0],
        "a refused relabeling changes nothing"
    );
}

#[test]
fn normalization_uses_training_statistics_only() {
    let mut d = numbered(100, 10, 10);
    d.normalize(Normalization::Standardize);
    let (mean, std) = d.train.feature_moments();
    assert!(
        mean[0].abs() < 1e-4 && (std[0] - 1.0).abs() < 1e-4,
        "{mean:?} {std:?}"
    );
    // Test example 2000 standardized with the training mean 49.5 and std sqrt(833.25).
    let want = (2000.0 - 49.5) / 833.25f64.sqrt();
    assert!((d.test.features[0] as f64 - want).abs() < 1e-3);
    let mut c = numbered(100, 10, 10);
    c.normalize(Normalization::Center);
    assert!((c.validation.features[0] - (1000.0 - 49.5)).abs() < 1e-3);
}

//! Configs: paper defaults, unknown keys and bad values refused with the file named.

use std::path::Path;

use realbias_train::config::{ConfigError, TrainConfig};

const MINIMAL: &str = "[data]\ndataset = { kind = \"mnist\" }\n";

#[test]
fn defaults_are_the_papers() {
    let c = TrainConfig::parse(MINIMAL, Path::new("c.toml"), &[]).unwrap();
    assert_eq!(c.optim.batch_size, 100);
    assert_eq!((c.optim.lr, c.optim.lr_decay), (0.1, 0.99));
    assert_eq!(
        (
            c.optim.momentum,
            c.optim.momentum_step,
            c.optim.momentum_max
        ),
        (0.5, 0.02, 0.9)
    );
    assert_eq!(c.optim.weight_decay, 0.0);
    assert_eq!(c.data.validation, 10_000);
    assert_eq!(c.data.features.side, 10);
    assert_eq!(c.data.subset, None);
}

#[test]
fn an_unknown_key_names_the_key_and_the_file() {
    let text = "[data]\ndataset = { kind = \"mnist\" }\n[model]\nhiden = 5\n";
    let err = TrainConfig::parse(text, Path::new("configs/typo.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("configs/typo.toml") && err.contains("hiden"),
        "{err}"
    );
    let text = "[data]\ndataset = { kind = \"mnst\" }\n";
    let err = TrainConfig::parse(text, Path::new("x.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("mnst"), "{err}");
}

#[test]
fn impossible_values_are_all_reported_before_anything_runs() {
    let text = format!(
        "{MINIMAL}[model]\nhidden = 0\n[optim]\nlr = -1\nmomentum = 1.0\nbatch_size = 0\n[data.x]\n"
    );
    let err = TrainConfig::parse(&text, Path::new("bad.toml"), &[]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { .. }),
        "unknown table data.x: {err}"
    );
    let text = format!(
        "{MINIMAL}label_noise = 1.5\n[model]\nhidden = 0\n[optim]\nlr = -1\nmomentum = 1.0\nbatch_size = 0\n"
    );
    let err = TrainConfig::parse(&text, Path::new("bad.toml"), &[]).unwrap_err();
    let ConfigError::Invalid { path, problems } = err else {
        panic!("{err}")
    };
    assert_eq!(path, Path::new("bad.toml"));
    for needle in [
        "model.hidden",
        "optim.lr",
        "optim.momentum",
        "optim.batch_size",
        "data.label_noise",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle} missing from {problems:?}"
        );
    }
}

#[test]
fn set_overrides_any_field_and_is_validated() {
    let sets = vec![
        "model.hidden=1024".to_string(),
        "optim.lr=0.05".into(),
        "data.subset={ train = 20, validation = 10 }".into(),
    ];
    let c = TrainConfig::parse(MINIMAL, Path::new("c.toml"), &sets).unwrap();
    assert_eq!(c.model.hidden, 1024);
    assert_eq!(c.optim.lr, 0.05);
    assert_eq!(c.data.subset.unwrap().validation, 10);
    let err = TrainConfig::parse(MINIMAL, Path::new("c.toml"), &["optim.lrr=1".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("lrr"), "{err}");
    assert!(TrainConfig::parse(MINIMAL, Path::new("c.toml"), &["novalue".into()]).is_err());
    assert!(
        TrainConfig::parse(MINIMAL, Path::new("c.toml"), &["train.max_epochs=0".into()]).is_err()
    );
}

#[test]
fn every_committed_train_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("train-") && name.ends_with(".toml") {
            TrainConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn an_empty_validation_split_is_refused_before_anything_runs() {
    // Every validation error would be 0 and the "early-stopped" network the initialization.
    for (set, key) in [
        (
            "data.subset={ train = 500, validation = 0 }",
            "data.subset.validation",
        ),
        ("data.validation=0", "data.validation"),
    ] {
        let err = TrainConfig::parse(MINIMAL, Path::new("c.toml"), &[set.to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml") && err.contains(key), "{set}: {err}");
    }
    let ok = "data.subset={ train = 500, validation = 1 }".to_string();
    TrainConfig::parse(MINIMAL, Path::new("c.toml"), &[ok]).unwrap();
}

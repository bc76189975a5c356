//! Experiment configs: every committed one parses and plans; impossible sweeps are refused
//! before anything runs.

use std::path::Path;

use realbias_experiments::sweep::{Condition, ExperimentConfig};

#[test]
fn every_committed_experiment_config_parses_and_plans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let load =
        |name: &str| ExperimentConfig::load(&dir.join(name), &[]).unwrap_or_else(|e| panic!("{e}"));
    let fig2 = load("fig2-mnist.toml");
    assert_eq!(fig2.sweep.repetitions, 5);
    assert_eq!(fig2.sweep.censor_hidden, Some(4));
    assert_eq!(
        fig2.base.data.subset.map(|s| (s.train, s.validation)),
        Some((2000, 2000))
    );
    let plan = fig2.plan(Path::new("out"));
    let per = |c: Condition| plan.iter().filter(|r| r.condition == c).count();
    let widths = fig2.sweep.hidden.len();
    assert_eq!(per(Condition::Plain), widths * 5);
    assert_eq!(
        per(Condition::WeightDecay),
        widths * 5 * fig2.sweep.weight_decay_grid.len()
    );
    assert!(
        plan.iter()
            .filter(|r| r.condition == Condition::CensoredNoise)
            .all(|r| r.config.data.label_noise == 0.05)
    );
    assert_eq!(load("fig2-cifar10.toml").sweep.censor_hidden, Some(16));
    let fig1 = load("fig1-mnist.toml");
    assert_eq!(fig1.base.data.subset, None, "Figure 1 uses the full data");
    assert_eq!(*fig1.sweep.hidden.last().unwrap(), 4096);
    load("fig1-cifar10.toml");
    load("quickstart.toml");
    let err = ExperimentConfig::load(&dir.join("train-mnist-small.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no [sweep] section"), "{err}");
    let err = ExperimentConfig::parse(
        "[data]\ndataset = { kind = \"mnist\" }\n[sweep]\nhidden = [4]\nconditions = [\"censored\"]\nhiden = 3\n",
        Path::new("s.toml"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("hiden") && err.contains("s.toml"), "{err}");
}

#[test]
fn repeated_widths_conditions_or_lambdas_are_config_errors() {
    let base = "[data]\ndataset = { kind = \"mnist\" }\n[sweep]\nhidden = [8, 16]\nconditions = [\"plain\", \"weight-decay\"]\n";
    let parse = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        ExperimentConfig::parse(base, Path::new("dup.toml"), &sets)
    };
    parse(&[]).unwrap();
    let err = parse(&["sweep.hidden=[8, 8, 16]"]).unwrap_err().to_string();
    assert!(
        err.contains("sweep.hidden lists 8 twice") && err.contains("dup.toml"),
        "{err}"
    );
    let err = parse(&["sweep.conditions=[\"plain\", \"plain\"]"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sweep.conditions lists plain twice"), "{err}");
    let err = parse(&["sweep.weight_decay_grid=[0.001, 0.001]"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("weight_decay_grid lists 0.001 twice"), "{err}");
}

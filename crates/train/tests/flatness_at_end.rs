//! `train.flatness = true`: every kind of run (a single SGD run, a full-batch method, an
//! ensemble's members) ends with the flatness measures of its final network, equal to the
//! ones `measures --recompute` computes from its saved networks; the key leaves the run's
//! config digest (and so its networks' binding and its checkpoint) alone.

mod common;

use common::{checked, config, device, teacher_data};
use realbias_train::config::TrainConfig;
use realbias_train::measures::flatness::Flatness;
use realbias_train::run_files::networks::{NETWORK_FILE, config_digest, read_networks};
use realbias_train::run_files::write_run;
use realbias_train::{FinishedRun, Member, Quiet, train, train_ensemble};

fn run_config(method: &str, seed: u64, flatness: bool) -> TrainConfig {
    config(&format!(
        "[data]\ndataset = {{ kind = \"mnist\" }}\n[model]\nhidden = 16\n\
         [optim]\nmethod = \"{method}\"\n[train]\nseed = {seed}\nmax_epochs = 12\nflatness = {flatness}\n"
    ))
}

/// The flatness measures `run` carries, against those recomputed from its saved networks.
fn carries_the_recomputed_flatness(run: &FinishedRun, label: &str) -> Flatness {
    let c = &run.result.config;
    let data = teacher_data(5);
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), run).unwrap();
    let dims = (data.dim(), c.model.hidden, data.classes);
    let networks = read_networks(&dir.path().join(NETWORK_FILE), c, dims).unwrap();
    let mut recomputed = networks.flatness(c, &data, &device()).unwrap();
    let measures = run.result.measures.as_ref().expect("measures");
    let mut at_end = measures.at_convergence.flatness.clone().expect(label);
    (at_end.seconds, recomputed.seconds) = (0.0, 0.0);
    assert_eq!(at_end, recomputed, "{label}");
    assert!(at_end.isotropic.sigma > 0.0 && at_end.sharpness_box.alpha > 0.0);
    assert!(
        measures.early_stop.flatness.is_none(),
        "the final network's only"
    );
    at_end
}

#[test]
fn every_kind_of_run_ends_with_the_flatness_a_recompute_gives() {
    let data = teacher_data(5);
    for method in ["sgd", "cg"] {
        let run = train(
            &checked(&run_config(method, 1, true)),
            &data,
            &device(),
            Quiet,
        )
        .unwrap();
        carries_the_recomputed_flatness(&run, method);
    }
    let configs = [run_config("sgd", 2, true), run_config("sgd", 3, true)].map(|c| checked(&c));
    let members: Vec<Member> = configs.iter().map(|c| Member::new(c, &data)).collect();
    let runs = train_ensemble(&members, &device(), &mut Quiet).unwrap();
    assert_eq!(runs.len(), 2);
    let found: Vec<Flatness> = runs
        .iter()
        .map(|r| carries_the_recomputed_flatness(r, "ensemble member"))
        .collect();
    assert_ne!(
        found[0].isotropic, found[1].isotropic,
        "each member its own"
    );
}

#[test]
fn the_flatness_key_is_off_by_default_and_outside_the_config_digest() {
    let data = teacher_data(5);
    let (on, off) = (run_config("sgd", 1, true), run_config("sgd", 1, false));
    assert_eq!(
        off,
        config(
            "[data]\ndataset = { kind = \"mnist\" }\n[model]\nhidden = 16\n[train]\nseed = 1\nmax_epochs = 12\n"
        )
    );
    assert_eq!(config_digest(&on).unwrap(), config_digest(&off).unwrap());
    let plain = train(&checked(&off), &data, &device(), Quiet).unwrap();
    let measures = plain.result.measures.expect("measures are on by default");
    assert!(measures.at_convergence.flatness.is_none());
    // Off, it is not written into the run's config at all (committed results stay as they are).
    assert!(!serde_json::to_string(&off).unwrap().contains("flatness"));
}

#[test]
fn flatness_without_measures_is_a_config_error_naming_both_keys() {
    let text =
        "[data]\ndataset = { kind = \"mnist\" }\n[train]\nmeasures = false\nflatness = true\n";
    let e = TrainConfig::parse(text, std::path::Path::new("run.toml"), &[]).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("train.flatness") && message.contains("train.measures"),
        "{message}"
    );
    assert!(message.contains("run.toml"), "{message}");
}

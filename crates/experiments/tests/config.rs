//! Experiment configs: every committed one parses and plans; impossible sweeps are refused
//! before anything runs.

use std::path::Path;

use realbias_experiments::registry;
use realbias_experiments::sweep::{Condition, ExperimentConfig};
use realbias_train::optim::Method;

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
    // The protocol studies: one-at-a-time ablations and a grid.
    let ablation = load("ablation-censored-mnist.toml");
    assert_eq!(ablation.variants.len(), 6);
    assert_eq!(ablation.variants[0].label(), "baseline");
    assert_eq!(ablation.sweep.repetitions, 5, "the paper's five");
    let init_scale = load("init-scale.toml");
    assert_eq!(init_scale.variants.len(), 4);
    assert_eq!(init_scale.sweep.repetitions, 5);
    let bump = load("fig1-cifar10-bump.toml");
    assert_eq!(bump.base.data.subset, None, "Figure 1 uses the full data");
    assert_eq!(
        (bump.sweep.repetitions, bump.base.train.max_epochs),
        (3, 500)
    );
    let narrow = load("fig1-mnist-narrow.toml");
    assert_eq!(narrow.plan(Path::new("out")).len(), 3 * 4 * 2);
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

/// Counts that size an allocation are bounded before anything is planned: ten million
/// repetitions used to abort the process on an 8.7 GB allocation.
#[test]
fn absurd_repetitions_and_run_counts_are_config_errors() {
    let base = "[data]\ndataset = { kind = \"mnist\" }\n[sweep]\nhidden = [8, 16]\nconditions = [\"plain\"]\n";
    let parse = |sets: &[String]| {
        ExperimentConfig::parse(base, Path::new("big.toml"), sets).map_err(|e| e.to_string())
    };
    let err = parse(&["sweep.repetitions=10000000".into()]).unwrap_err();
    assert!(
        err.contains("sweep.repetitions = 10000000") && err.contains("big.toml"),
        "{err}"
    );
    parse(&["sweep.repetitions=1000".into()]).unwrap();
    // 2,000 widths x 600 repetitions x 1 condition.
    let widths: Vec<String> = (1..=2000).map(|h| h.to_string()).collect();
    let many = format!("sweep.hidden=[{}]", widths.join(", "));
    let err = parse(&[many, "sweep.repetitions=600".into()]).unwrap_err();
    assert!(err.contains("plans 1200000 runs"), "{err}");
}

const VARY_BASE: &str = "name = \"v\"\n[data]\ndataset = { kind = \"mnist\" }\n[sweep]\nhidden = [8, 16]\nconditions = [\"plain\", \"censored\"]\ncensor_hidden = 4\n";

fn vary(axes: &str) -> Result<ExperimentConfig, String> {
    let text = format!("{VARY_BASE}[sweep.vary]\n{axes}");
    ExperimentConfig::parse(&text, Path::new("vary.toml"), &[]).map_err(|e| e.to_string())
}

#[test]
fn a_two_axis_grid_plans_every_combination_in_its_own_folder() {
    let c = vary("\"model.init_scale\" = [0.1, 1.0]\n\"sweep.censor_max_epochs\" = [100, 500]\n")
        .unwrap();
    let labels: Vec<String> = c.variants.iter().map(|v| v.label()).collect();
    assert_eq!(
        labels,
        [
            "init_scale=0.1, censor_max_epochs=100",
            "init_scale=0.1, censor_max_epochs=500",
            "init_scale=1.0, censor_max_epochs=100",
            "init_scale=1.0, censor_max_epochs=500"
        ]
    );
    assert_eq!(c.variants[1].base.model.init_scale, 0.1);
    assert_eq!(c.variants[1].sweep.censor_max_epochs, Some(500));
    let plan = c.plan(Path::new("out"));
    assert_eq!(plan.len(), 4 * 2 * 2, "points x conditions x widths");
    let run = plan
        .iter()
        .find(|r| r.variant == 1 && r.condition == Condition::Censored && r.hidden == 16)
        .unwrap();
    assert_eq!(
        run.dir,
        Path::new("out/init_scale-0.1_censor_max_epochs-500/censored/h16/rep0")
    );
    assert_eq!(run.config.model.init_scale, 0.1);
    // The censoring network keeps the default scale: only the students change.
    let censors = c.censor_configs();
    assert_eq!(censors[1].as_ref().unwrap().train.max_epochs, 500);
    assert_eq!(censors[1].as_ref().unwrap().model.init_scale, 1.0);
    assert_eq!(censors[0], censors[2], "same labels for both scales");
}

#[test]
fn an_optimizer_axis_gives_each_method_its_own_settings_and_the_same_censored_labels() {
    let tables = "[optim.cg]\nc2 = 0.2\n[optim.adam]\nlr = 0.005\n";
    let text = format!(
        "{VARY_BASE}[sweep.vary]\n\"optim.method\" = [\"sgd\", \"cg\", \"lbfgs\", \"adam\"]\n{tables}"
    );
    let c = ExperimentConfig::parse(&text, Path::new("m.toml"), &[]).unwrap();
    let labels: Vec<String> = c.variants.iter().map(|v| v.label()).collect();
    assert_eq!(
        labels,
        ["method=sgd", "method=cg", "method=lbfgs", "method=adam"]
    );
    let optim = |i: usize| &c.variants[i].base.optim;
    assert_eq!(optim(0).method, Method::Sgd);
    assert!(
        optim(0).cg.is_none() && optim(0).adam.is_none(),
        "{:?}",
        optim(0)
    );
    assert_eq!(optim(1).method, Method::Cg);
    assert_eq!(optim(1).cg.as_ref().map(|t| t.c2), Some(0.2));
    assert!(optim(1).adam.is_none());
    // L-BFGS's table is filled with its defaults, so its runs record the values used.
    assert_eq!(optim(2).lbfgs.as_ref().map(|t| t.history_size), Some(100));
    assert_eq!(optim(3).adam.as_ref().map(|t| t.lr), Some(0.005));
    let plan = c.plan(Path::new("out"));
    let run = plan
        .iter()
        .find(|r| r.variant == 1 && r.hidden == 16)
        .unwrap();
    assert_eq!(run.dir, Path::new("out/method-cg/plain/h16/rep0"));
    assert_eq!(run.config.optim.method, Method::Cg);
    // One censoring network (the paper's SGD) labels every method's runs.
    let censors = c.censor_configs();
    assert!(censors.iter().all(|x| x == &censors[0]), "{censors:?}");
    assert_eq!(censors[0].as_ref().unwrap().optim.method, Method::Sgd);
    // The recorded config resolves to the same points.
    let recorded = toml::to_string(&c).unwrap();
    let again = ExperimentConfig::from_recorded(&recorded, Path::new("experiment.toml")).unwrap();
    assert_eq!(again.variants, c.variants);
    // An unknown method, and a table of a method the axis does not list, are errors.
    let err = vary("\"optim.method\" = [\"sgd\", \"newton\"]\n").unwrap_err();
    assert!(err.contains("newton"), "{err}");
    let text = format!("{VARY_BASE}[sweep.vary]\n\"optim.method\" = [\"sgd\", \"cg\"]\n{tables}");
    let err = ExperimentConfig::parse(&text, Path::new("m.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("optim.adam"), "{err}");
}

#[test]
fn a_recorded_grid_of_another_method_than_sgd_resolves_again() {
    // experiment.toml serializes SGD's defaults under a CG base too; `realbias plot` and a
    // resumed run read it back (configs/cg-line-search.toml's shape).
    let text = "name = \"c\"\n[data]\ndataset = { kind = \"mnist\" }\n[optim]\nmethod = \"cg\"\n\
        [sweep]\nhidden = [8, 16]\nconditions = [\"plain\"]\n[sweep.vary]\n\"optim.cg.c2\" = [0.1, 0.4]\n";
    let c = ExperimentConfig::parse(text, Path::new("c.toml"), &[]).unwrap();
    let recorded = toml::to_string(&c).unwrap();
    assert!(recorded.contains("momentum_max"), "{recorded}");
    let again = ExperimentConfig::from_recorded(&recorded, Path::new("experiment.toml")).unwrap();
    assert_eq!(again.variants, c.variants);
    let c2: Vec<f64> = again
        .variants
        .iter()
        .map(|v| v.base.optim.cg_settings().c2)
        .collect();
    assert_eq!(c2, [0.1, 0.4]);
}

#[test]
fn one_at_a_time_changes_a_single_axis_from_the_baseline() {
    let text = format!(
        "{VARY_BASE}vary_design = \"one-at-a-time\"\n[sweep.vary]\n\"model.init_scale\" = [1.0, 0.1, 0.01]\n\"train.converge_epochs\" = [20, 1000]\n"
    );
    let c = ExperimentConfig::parse(&text, Path::new("v.toml"), &[]).unwrap();
    let labels: Vec<String> = c.variants.iter().map(|v| v.label()).collect();
    assert_eq!(
        labels,
        [
            "baseline",
            "init_scale=0.1",
            "init_scale=0.01",
            "converge_epochs=1000"
        ]
    );
    assert_eq!(c.variants[3].base.model.init_scale, 1.0);
    assert_eq!(c.variants[3].base.train.converge_epochs, 1000);
    assert_eq!(c.variants[0].dir_name(), "baseline");
}

#[test]
fn bad_axes_are_errors_before_anything_runs() {
    let err = vary("\"model.init_scal\" = [0.1]\n").unwrap_err();
    assert!(
        err.contains("init_scal") && err.contains("vary.toml") && err.contains("[sweep.vary]"),
        "unknown key: {err}"
    );
    let err = vary("\"model.init_scale\" = [\"small\"]\n").unwrap_err();
    assert!(
        err.contains("model.init_scale = \"small\"") && err.contains("invalid type"),
        "wrong type: {err}"
    );
    let err = vary("\"model.init_scale\" = [-1.0]\n").unwrap_err();
    assert!(err.contains("must be > 0"), "invalid value: {err}");
    let err = vary("\"sweep.hidden\" = [[4], [8]]\n").unwrap_err();
    assert!(err.contains("cannot vary"), "{err}");
    let err = vary("\"data.dataset\" = [\"mnist\"]\n").unwrap_err();
    assert!(err.contains("changes the dataset"), "{err}");
    let err = vary("\"model.init_scale\" = []\n").unwrap_err();
    assert!(err.contains("lists no values"), "{err}");
    let err = vary("\"model.init_scale\" = [0.1, 0.1]\n").unwrap_err();
    assert!(err.contains("lists 0.1 twice"), "{err}");
    let err = vary("init_scale = [0.1]\n").unwrap_err();
    assert!(err.contains("not a dotted config key"), "{err}");
}

#[test]
fn an_experiment_name_is_one_folder_inside_out() {
    let sweep = "[data]\ndataset = { kind = \"mnist\" }\n[sweep]\nhidden = [8]\n";
    let parse = |text: &str, file: &str| {
        registry::parse(text, Path::new(file), &[]).map(|e| e.name().to_string())
    };
    assert_eq!(
        parse(&format!("name = \"fig-2\"\n{sweep}"), "s.toml").unwrap(),
        "fig-2"
    );
    assert_eq!(parse(sweep, "from-stem.toml").unwrap(), "from-stem");
    for (name, why) in [
        ("../escape", "path separator"),
        ("/tmp/abs", "path separator"),
        ("a\\\\b", "path separator"),
        ("..", "starts with a dot"),
        (".", "starts with a dot"),
        (".hidden", "starts with a dot"),
        ("", "is empty"),
        ("tab\\there", "control character"),
    ] {
        let text = format!("name = \"{name}\"\n{sweep}");
        let err = parse(&text, "s.toml").unwrap_err().to_string();
        assert!(
            err.contains("s.toml") && err.contains("name = ") && err.contains(why),
            "{name:?}: {err}"
        );
    }
    let long = format!("name = \"{}\"\n{sweep}", "n".repeat(256));
    assert!(
        parse(&long, "s.toml")
            .unwrap_err()
            .to_string()
            .contains("255 bytes")
    );
    // The file's stem stands in for a missing name, and is held to the same rule.
    let err = parse(sweep, ".dot.toml").unwrap_err().to_string();
    assert!(err.contains("config file's name"), "{err}");
    // Every kind, not only sweeps.
    for file in ["sec3-matrix-completion.toml", "sec4-convex.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let sets = ["name=\"../up\"".to_string()];
        let err = registry::parse(&text, &path, &sets)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("path separator"), "{file}: {err}");
    }
}

#[test]
fn an_axis_that_changes_no_run_is_a_config_error() {
    let plain = "name = \"v\"\n[data]\ndataset = { kind = \"mnist\" }\n[sweep]\nhidden = [8, 16]\n";
    let with = |head: &str, axes: &str| {
        let text = format!("{head}[sweep.vary]\n{axes}");
        ExperimentConfig::parse(&text, Path::new("axes.toml"), &[]).map_err(|e| e.to_string())
    };
    for (axes, why) in [
        ("\"model.hidden\" = [8, 32]\n", "sweep.hidden"),
        ("\"sweep.ensemble\" = [\"auto\", \"off\"]\n", "read once"),
        ("\"sweep.censor_hidden\" = [4, 8]\n", "no condition"),
        ("\"sweep.censor_max_epochs\" = [10, 20]\n", "no condition"),
        (
            "\"sweep.weight_decay_grid\" = [[0.1], [0.2]]\n",
            "no condition",
        ),
        ("\"model.init_scale\" = [1, 1.0]\n", "identical runs"),
        (
            "\"train.checkpoint_seconds\" = [30, 30.0]\n",
            "identical runs",
        ),
    ] {
        let err = with(plain, axes).unwrap_err();
        assert!(
            err.contains("axes.toml") && err.contains(why),
            "{axes}: {err}"
        );
    }
    let decayed = plain.replace("[sweep]\n", "[sweep]\nconditions = [\"weight-decay\"]\n");
    let err = with(&decayed, "\"optim.weight_decay\" = [0.0, 0.1]\n").unwrap_err();
    assert!(err.contains("weight_decay_grid"), "{err}");
    let censored = plain.replace(
        "[sweep]\n",
        "[sweep]\nconditions = [\"censored\"]\ncensor_hidden = 4\n",
    );
    let err = with(&censored, "\"sweep.censor_noise\" = [0.05, 0.1]\n").unwrap_err();
    assert!(err.contains("no condition"), "{err}");
    // A point whose folder name no file system takes is refused before anything is written.
    let keys = [
        "model.init_std_u",
        "model.init_std_v",
        "optim.momentum_step",
        "optim.momentum_max",
        "optim.lr_decay",
        "train.converge_loss",
        "train.checkpoint_seconds",
        "optim.lr",
        "optim.momentum",
        "model.init_scale",
        "data.label_noise",
    ];
    let long: String = keys
        .iter()
        .map(|k| format!("\"{k}\" = [0.0123456789012345]\n"))
        .collect();
    let err = with(plain, &long).unwrap_err();
    assert!(err.contains("more than the 255"), "{err}");
    with(
        plain,
        &long
            .replacen("\"data.label_noise\" = [0.0123456789012345]\n", "", 1)
            .replacen("\"optim.momentum\" = [0.0123456789012345]\n", "", 1)
            .replacen("\"optim.lr\" = [0.0123456789012345]\n", "", 1)
            .replacen("\"model.init_scale\" = [0.0123456789012345]\n", "", 1),
    )
    .unwrap();
    // The same axes are fine where a run does use them.
    with(&censored, "\"sweep.censor_hidden\" = [4, 8]\n").unwrap();
    with(plain, "\"optim.weight_decay\" = [0.0, 0.1]\n").unwrap();
    with(plain, "\"model.init_scale\" = [1, 0.5]\n").unwrap();
}

//! Sections 3 and 4 through the Burn module: the oracle's gradients against the f64
//! reference, and both experiments end to end on small configs.

use std::path::Path;

use burn::tensor::Device;
use nalgebra::DMatrix;
use realbias_experiments::convex_nn::{self, ConvexNn, ConvexNnConfig};
use realbias_experiments::experiment::{
    self, Context, Experiment, ExperimentOptions, ExperimentReport,
};
use realbias_experiments::factorization::{Factorization, FactorizationConfig, Regime};
use realbias_experiments::oracle::BurnOracle;
use realbias_experiments::progress::{ExperimentProgress, Quiet};
use realbias_experiments::registry;
use realbias_theory::convex_nn::toy_regression;
use realbias_theory::network::{Activation, HostOracle, Loss, Oracle, Weights};

fn device() -> Device {
    Device::flex()
}

/// The Burn module's autodiff gradients equal the f64 reference's to f32 precision.
#[test]
fn burn_oracle_matches_the_host_reference() {
    let (x, y) = toy_regression(9, 3, 0.1, 2);
    let signs: Vec<f64> = y.iter().map(|t| t.signum()).collect();
    let mut mask = DMatrix::from_element(9, 1, 1.0);
    mask[(3, 0)] = 0.0;
    for (activation, loss, targets) in [
        (Activation::Relu, Loss::Squared, &y),
        (Activation::Relu, Loss::Logistic, &signs),
        (Activation::Linear, Loss::Squared, &y),
    ] {
        let t = DMatrix::from_column_slice(9, 1, targets);
        let mut host = HostOracle::new(x.clone(), t.clone(), activation, loss);
        host.mask = mask.clone();
        let mut burn = BurnOracle::new(&x, &t, &mask, activation, loss, &device());
        let w = Weights::gaussian(3, 5, 1, 0.8, 0.8, 4);
        let (mut hu, mut hv) = (vec![0.0; 15], vec![0.0; 5]);
        let (mut bu, mut bv) = (vec![0.0; 15], vec![0.0; 5]);
        let lh = host.loss_and_gradient(&w, &mut hu, &mut hv).unwrap();
        let lb = burn.loss_and_gradient(&w, &mut bu, &mut bv).unwrap();
        assert!(
            (lh - lb).abs() < 1e-5 * (1.0 + lh),
            "{activation:?} {loss:?}: {lh} vs {lb}"
        );
        for (a, b) in hu.iter().chain(&hv).zip(bu.iter().chain(&bv)) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                "{activation:?} {loss:?}: {a} vs {b}"
            );
        }
        let ph = host.predictions(&w).unwrap();
        let pb = burn.predictions(&w).unwrap();
        for (a, b) in ph.iter().zip(&pb) {
            assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()));
        }
    }
}

fn factorization_config(text: &str) -> FactorizationConfig {
    let table: toml::Table = toml::from_str(text).unwrap();
    FactorizationConfig::parse(table, Path::new("test.toml")).unwrap()
}

fn convex_config(text: &str) -> ConvexNnConfig {
    let table: toml::Table = toml::from_str(text).unwrap();
    ConvexNnConfig::parse(table, Path::new("test.toml")).unwrap()
}

/// Runs an experiment into `out` on one worker.
fn run(
    exp: &mut dyn Experiment,
    out: &Path,
    progress: std::sync::Arc<dyn ExperimentProgress>,
) -> Result<ExperimentReport, realbias_experiments::ExperimentError> {
    let device = device();
    let options = ExperimentOptions::local(out, 1, 1, false);
    let ctx = Context {
        dir: out.join(exp.name()),
        device: &device,
        data_dir: None,
        progress,
        force: options.force,
    };
    experiment::run(exp, &options, &ctx)
}

const SEC3: &str = r#"
kind = "matrix-factorization"
name = "sec3"
[problem]
n = 16
rank = 2
observed = [150]
seed = 3
[factorization]
inner = [1, 4]
init_scales = [0.001]
lambda = 0.5
penalty_init_scale = 0.1
seed = 1
[optim]
lr = 0.02
momentum = 0.9
max_iterations = 20000
gradient_tolerance = 1e-7
record_every = 1000
"#;

/// Section 3 end to end: the penalized factorization reaches the certified convex optimum at
/// k = 4 but not at k = 1, files are written, and a second run reuses every saved fit.
#[test]
fn matrix_factorization_experiment_reaches_the_trace_norm_optimum() {
    let mut exp = Factorization::new(factorization_config(SEC3));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("sec3");
    let report = run(&mut exp, out.path(), std::sync::Arc::new(Quiet)).unwrap();
    assert_eq!(report.outcome.trained, 4);
    let (fits, baselines, broken) = exp.load_results(&dir);
    assert!(broken.is_empty());
    assert_eq!(fits.len(), 4);
    assert!(baselines[0].regularized.certified);
    assert!(baselines[0].interpolant.certified);
    let gap = |k: usize| {
        fits.iter()
            .find(|f| f.inner == k && matches!(f.regime, Regime::Penalized { .. }))
            .and_then(|f| f.objective_gap)
            .unwrap()
    };
    assert!(gap(4).abs() < 1e-5, "k = 4: gap {:e}", gap(4));
    assert!(gap(1) > 1e-2, "k = 1: gap {:e}", gap(1));
    for f in &fits {
        // Eq. (3): no factorization costs less than the trace norm of its product.
        assert!(f.factor_cost >= f.trace_norm * (1.0 - 1e-6));
    }
    for file in [
        "summary.csv",
        "report.md",
        "baselines.json",
        "errors.png",
        "trace-norm.svg",
        "objective-gap.png",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    // Resume: the saved fits are read back, not retrained.
    let again = run(&mut exp, out.path(), std::sync::Arc::new(Quiet)).unwrap();
    assert_eq!((again.outcome.trained, again.outcome.skipped), (0, 4));
    assert_eq!(exp.load_results(&dir).0, fits);
}

const SEC4: &str = r#"
kind = "convex-nn"
name = "sec4"
[problem]
examples = 10
dims = [2]
noise = 0.2
lambda = 0.1
seed = 5
sampled_patterns = 100
[network]
hidden = [2, 20]
inits = 3
init_std = 0.5
seed = 0
active_fraction = 0.001
[selecting]
library_sizes = [8, 512]
seed = 1
[theorem1]
hidden = [20]
losses = ["squared", "logistic"]
[optim]
lr = 0.005
momentum = 0.9
max_iterations = 60000
gradient_tolerance = 1e-7
record_every = 1000
"#;

/// Section 4 end to end on a fixed d = 2 problem: the convex optimum is certified and its
/// constraints hold, the weight-decay network with H = 2n reaches it within 1e-3 (relative)
/// and never goes below it, and eq. (4) and eq. (5) agree.
#[test]
fn weight_decay_network_reaches_the_certified_convex_optimum() {
    let config = convex_config(SEC4);
    let mut exp = ConvexNn::new(config.clone());
    let out = tempfile::tempdir().unwrap();
    run(&mut exp, out.path(), std::sync::Arc::new(Quiet)).unwrap();
    let (fits, convex, broken) = exp.load_results(&out.path().join("sec4"));
    assert!(broken.is_empty());
    let c = &convex[0];
    assert!(c.exact && c.max_violation < 1e-7);
    assert!(((c.solver_primal - c.solver_dual) / c.objective).abs() < 1e-6);
    // The selecting view only bounds the optimum from above, closer with the larger library.
    let sel = &c.selecting;
    assert_eq!(sel.len(), 2);
    assert!(sel.iter().all(|r| r.relative_gap > -1e-6));
    assert!(sel[1].objective <= sel[0].objective * (1.0 + 1e-7));
    let rows = convex_nn::corollary_rows(&fits, &convex);
    for r in &rows {
        assert!(
            r.relative_gap > -1e-5,
            "H = {}: below the certified optimum",
            r.hidden
        );
    }
    let wide = rows.iter().find(|r| r.hidden == 20).unwrap();
    assert!(
        wide.relative_gap < 1e-3,
        "H = 20: gap {:e}",
        wide.relative_gap
    );
    assert!(wide.merged_units <= 11);
    assert!((wide.l1_objective - wide.best_objective).abs() < 1e-4 * wide.best_objective);
    for t in convex_nn::theorem1_rows(&config, &fits) {
        let rel = (t.objective_eq5_trained - t.objective_eq4) / t.objective_eq4;
        assert!(
            rel.abs() < 1e-3,
            "{} loss: eq. (5) {} vs eq. (4) {}",
            t.loss,
            t.objective_eq5_trained,
            t.objective_eq4
        );
        assert!(
            t.max_prediction_difference < 0.05,
            "{} loss: predictions differ by {}",
            t.loss,
            t.max_prediction_difference
        );
    }
    for file in [
        "summary.csv",
        "theorem1.csv",
        "report.md",
        "corollary.png",
        "training.png",
        "function.svg",
        "selecting.png",
    ] {
        assert!(
            out.path().join("sec4").join(file).exists(),
            "{file} missing"
        );
    }
}

#[test]
fn theory_configs_are_checked_before_anything_runs() {
    let bad = |text: &str| {
        registry::parse(text, Path::new("bad.toml"), &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = bad(&SEC3.replace("rank = 2", "rank = 2\nrnak = 3"));
    assert!(e.contains("bad.toml") && e.contains("rnak"), "{e}");
    let e = bad(&SEC3.replace("observed = [150]", "observed = [256]"));
    assert!(e.contains("observed"), "{e}");
    let e = bad(&SEC4.replace("lambda = 0.1", "lambda = -1.0"));
    assert!(e.contains("lambda"), "{e}");
    let e = bad(&SEC4.replace("kind = \"convex-nn\"", "kind = \"convex\""));
    assert!(e.contains("unknown kind"), "{e}");
    // The shipped configs parse.
    for path in [
        "../../configs/sec3-matrix-completion.toml",
        "../../configs/sec4-convex.toml",
    ] {
        registry::load(Path::new(path), &[]).unwrap();
    }
}

/// Ctrl-C during a fit: the run stops with its units unfinished, keeps the fits already
/// saved and writes none for the interrupted one; the next run finishes the rest.
#[test]
fn an_interrupted_theory_run_resumes() {
    struct Stopped;
    impl ExperimentProgress for Stopped {
        fn stop_requested(&self) -> bool {
            true
        }
    }
    let mut exp = Factorization::new(factorization_config(SEC3));
    let out = tempfile::tempdir().unwrap();
    let report = run(&mut exp, out.path(), std::sync::Arc::new(Stopped)).unwrap();
    assert_eq!(
        (report.outcome.trained, report.outcome.unfinished),
        (0, 4),
        "a stopped run trains nothing"
    );
    assert!(
        report.finalized.is_none(),
        "no summary while fits are missing"
    );
    let fits = out.path().join("sec3").join("fits");
    assert_eq!(std::fs::read_dir(&fits).map_or(0, |d| d.count()), 0);
    let done = run(&mut exp, out.path(), std::sync::Arc::new(Quiet)).unwrap();
    assert_eq!(done.outcome.trained, 4);
    assert_eq!(exp.load_results(&out.path().join("sec3")).0.len(), 4);
}

//! Sweeps: resume, interruption, λ selection, censoring, plots.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use realbias_experiment::experiment::{self, ExperimentError, RunOptions};
use realbias_experiment::plot::{plot_errors, plot_norms};
use realbias_experiment::summary::summarize;
use realbias_experiment::sweep::{
    Condition, ExperimentConfig, PlannedRun, SweepProgress, censor, finished,
};
use realbias_experiment::train::{DeviceSplit, Quiet, RunResult, load_full};

fn device() -> burn::tensor::Device {
    realbias_experiment::backend::device().unwrap()
}

fn tiny_config(data: &Path, extra: &str) -> ExperimentConfig {
    let text = format!(
        "name = \"tiny\"\n[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 40\nsubset = {{ train = 60, validation = 30 }}\n\
         [optim]\nbatch_size = 10\n[train]\nmax_epochs = 8\n[sweep]\nhidden = [2, 8]\nrepetitions = 2\n{extra}",
        data.display()
    );
    ExperimentConfig::parse(&text, Path::new("tiny.toml"), &[]).unwrap()
}

fn options() -> RunOptions {
    RunOptions {
        data_dir: None,
        jobs: 1,
        threads: 1,
        force: false,
    }
}

/// Counts trained runs and can ask the sweep to stop after `stop_after` of them.
struct Counter {
    trained: AtomicUsize,
    stop_after: usize,
    stop: AtomicBool,
}

impl Counter {
    fn new(stop_after: usize) -> Self {
        Counter {
            trained: AtomicUsize::new(0),
            stop_after,
            stop: AtomicBool::new(false),
        }
    }
}

impl SweepProgress for Counter {
    fn finished(&self, _run: &PlannedRun, _r: &RunResult, skipped: bool) {
        if !skipped && self.trained.fetch_add(1, Ordering::Relaxed) + 1 >= self.stop_after {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs a whole experiment to the end.
fn run_all(config: &ExperimentConfig, out: &Path) -> experiment::RunReport {
    let progress = Counter::new(usize::MAX);
    experiment::run(config, out, &options(), &device(), &progress, &mut Quiet).unwrap()
}

fn summary_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("summary.csv")).unwrap()
}

#[test]
fn a_second_run_trains_nothing_and_writes_the_same_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config(&data, "");
    let out = tmp.path().join("runs");
    let first = Counter::new(usize::MAX);
    let report = experiment::run(&config, &out, &options(), &device(), &first, &mut Quiet).unwrap();
    assert_eq!(
        (
            report.outcome.trained,
            report.outcome.skipped,
            report.outcome.unfinished
        ),
        (4, 0, 0)
    );
    let dir = out.join("tiny");
    let before = summary_bytes(&dir);
    let csv = String::from_utf8(before.clone()).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 2,
        "one row per (condition, H):\n{csv}"
    );
    assert!(
        csv.lines().nth(1).unwrap().starts_with("plain,2,2,"),
        "{csv}"
    );

    let second = Counter::new(usize::MAX);
    let report =
        experiment::run(&config, &out, &options(), &device(), &second, &mut Quiet).unwrap();
    assert_eq!((report.outcome.trained, report.outcome.skipped), (0, 4));
    assert_eq!(second.trained.load(Ordering::Relaxed), 0);
    assert_eq!(summary_bytes(&dir), before, "byte-identical summary");
}

#[test]
fn an_interrupted_sweep_resumes_to_the_uninterrupted_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config(&data, "");

    let whole = tmp.path().join("whole");
    run_all(&config, &whole);

    let parts = tmp.path().join("parts");
    let stopper = Counter::new(1);
    let report =
        experiment::run(&config, &parts, &options(), &device(), &stopper, &mut Quiet).unwrap();
    assert_eq!(report.outcome.trained, 1);
    assert_eq!(report.outcome.unfinished, 3);
    assert!(
        report.summary.is_none(),
        "no summary while runs are missing"
    );
    let (_, plan) = experiment::plan(&config, &parts);
    let done: Vec<usize> = (0..plan.len())
        .filter(|&i| finished(&plan[i].dir).is_some())
        .collect();
    assert_eq!(done.len(), 1);
    // The most expensive run goes first: H = 8, repetition 0.
    assert_eq!((plan[done[0]].hidden, plan[done[0]].rep), (8, 0));
    let kept = std::fs::read(plan[done[0]].dir.join("result.json")).unwrap();
    let mut others = (0..plan.len()).filter(|&i| i != done[0]);
    let (partial, corrupt) = (others.next().unwrap(), others.next().unwrap());
    // A run killed part-way leaves a history but no result; a torn write, a bad result.
    std::fs::create_dir_all(&plan[partial].dir).unwrap();
    std::fs::write(plan[partial].dir.join("history.csv"), "epoch\n0\n").unwrap();
    std::fs::create_dir_all(&plan[corrupt].dir).unwrap();
    std::fs::write(plan[corrupt].dir.join("result.json"), "{ truncated").unwrap();

    let resume = Counter::new(usize::MAX);
    let report =
        experiment::run(&config, &parts, &options(), &device(), &resume, &mut Quiet).unwrap();
    assert_eq!((report.outcome.trained, report.outcome.skipped), (3, 1));
    assert_eq!(
        std::fs::read(plan[done[0]].dir.join("result.json")).unwrap(),
        kept,
        "finished runs are never rewritten"
    );
    assert_eq!(
        summary_bytes(&parts.join("tiny")),
        summary_bytes(&whole.join("tiny"))
    );
}

#[test]
fn a_changed_config_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let out = tmp.path().join("runs");
    let config = tiny_config(&data, "");
    let mut short = config.clone();
    short.sweep.hidden = vec![2];
    run_all(&short, &out);
    let err = experiment::run(
        &config,
        &out,
        &options(),
        &device(),
        &Counter::new(usize::MAX),
        &mut Quiet,
    )
    .unwrap_err();
    assert!(
        matches!(err, ExperimentError::ConfigChanged { .. }),
        "{err}"
    );
    let forced = RunOptions {
        force: true,
        ..options()
    };
    let report = experiment::run(
        &config,
        &out,
        &forced,
        &device(),
        &Counter::new(usize::MAX),
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(
        (report.outcome.trained, report.outcome.skipped),
        (2, 2),
        "unchanged runs are reused"
    );
}

#[test]
fn weight_decay_selection_picks_the_validation_best_lambda_per_h() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config(
        &data,
        "conditions = [\"weight-decay\"]\nweight_decay_grid = [0.001, 0.01, 0.1]\n",
    );
    let plan = config.plan(Path::new("unused"));
    assert_eq!(plan.len(), 2 * 2 * 3);
    // A real result as a template, with made-up validation and test errors per λ.
    let tiny_data =
        realbias_experiment::train::prepare_data(&plan[0].config.data, None, 0).unwrap();
    let template =
        realbias_experiment::train::train(&plan[0].config, &tiny_data, &device(), &mut Quiet)
            .unwrap()
            .result;
    let val = |h: usize, lambda: f64, rep: usize| -> f64 {
        // H = 2: λ = 0.01 is best on average; H = 8: λ = 0.1 is best on average though
        // λ = 0.001 wins one repetition.
        if h == 2 {
            if lambda == 0.01 { 0.10 } else { 0.20 }
        } else if lambda == 0.1 {
            0.05 + 0.04 * rep as f64
        } else if lambda == 0.001 {
            if rep == 0 { 0.01 } else { 0.30 }
        } else {
            0.25
        }
    };
    let results: Vec<Option<RunResult>> = plan
        .iter()
        .map(|r| {
            let mut res = template.clone();
            res.early_stop_validation_error = val(r.hidden, r.weight_decay.unwrap(), r.rep);
            res.test_error = res.early_stop_validation_error + 0.01;
            Some(res)
        })
        .collect();
    let summary = summarize(&plan, &results);
    let chosen: Vec<(usize, Option<f64>)> = summary
        .rows
        .iter()
        .map(|r| (r.hidden, r.weight_decay))
        .collect();
    assert_eq!(chosen, vec![(2, Some(0.01)), (8, Some(0.1))]);
    assert!(
        (summary.rows[1].test_error.mean - 0.08).abs() < 1e-12,
        "the row reports the chosen λ's runs"
    );
    assert_eq!(summary.grid.len(), 6);
    assert_eq!(summary.grid.iter().filter(|g| g.selected).count(), 2);
    assert!(summary.grid_csv().contains("8,1e-1,2,"));
}

#[test]
fn censored_labels_are_exactly_learnable_by_the_censoring_network() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_noise_idx(&data, 300, 100);
    let config = tiny_config(
        &data,
        "conditions = [\"censored\"]\ncensor_hidden = 3\ncensor_max_epochs = 20\n",
    );
    let censor_config = config.censor_config().unwrap();
    assert_eq!(censor_config.model.hidden, 3);
    assert_eq!(
        censor_config.data.subset, None,
        "the censoring network sees the entire dataset"
    );
    let full = load_full(&config.base.data, None).unwrap();
    let (net, labels, info) = censor(&censor_config, &full, &device(), &mut Quiet).unwrap();
    assert_eq!(labels.len(), full.total_len());
    assert!(
        info.disagreement > 0.2,
        "random labels cannot be fitted by 3 units: {}",
        info.disagreement
    );
    // The H0 network's own error on the censored labels is 0.
    let mut censored = full.clone();
    censored.relabel_all(&labels).unwrap();
    let mut all = censored.all_examples();
    let mut normalized = realbias_data::Dataset {
        name: "all".into(),
        classes: full.classes,
        train: all.clone(),
        validation: all.slice(0..0),
        test: all.slice(0..0),
    };
    normalized.normalize(censor_config.data.normalization);
    all = normalized.train;
    let err = DeviceSplit::new(&all, 1000, &device()).evaluate(&net).error;
    assert_eq!(err, 0.0);
    // Through a sweep, the censoring is trained once and cached.
    let out = tmp.path().join("runs");
    let first = run_all(&config, &out);
    let cached: Vec<PathBuf> = std::fs::read_dir(out.join("tiny/censor"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1);
    assert!(cached[0].join("labels.bin").is_file());
    let again = run_all(&config, &out);
    assert_eq!(first.censor, again.censor);
    let runs = config.plan(&out.join("tiny"));
    assert!(
        runs.iter()
            .all(|r| r.condition == Condition::Censored && finished(&r.dir).is_some())
    );
}

#[test]
fn plots_are_drawn_from_a_fixed_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config(
        &data,
        "conditions = [\"plain\", \"censored\"]\ncensor_hidden = 2\n",
    );
    let out = tmp.path().join("runs");
    let report = run_all(&config, &out);
    let summary = report.summary.unwrap();
    for files in [
        plot_errors(&tmp.path().join("e"), &summary, "errors").unwrap(),
        plot_norms(&tmp.path().join("n"), &summary, "norms").unwrap(),
    ] {
        let png = image::open(&files[0]).unwrap();
        assert_eq!((png.width(), png.height()), (1120, 460), "two panels");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("hidden units H"));
    }
}

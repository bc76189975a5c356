//! Sweeps: resume, interruption, λ selection, censoring, plots.

use realbias_fixtures as common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use realbias_experiments::ExperimentError;
use realbias_experiments::experiment::{self, Context, ExperimentOptions, ExperimentReport, Unit};
use realbias_experiments::progress::ExperimentProgress;
use realbias_experiments::store::cached;
use realbias_experiments::sweep::{Condition, ExperimentConfig, Sweep, censor, summarize};
use realbias_train::data::load_full;
use realbias_train::eval::DeviceSplit;
use realbias_train::{Quiet, RunResult};

fn device() -> burn::tensor::Device {
    realbias_train::backend::device().unwrap()
}

/// A finished run's result, if its folder holds a valid `result.json`.
fn finished(dir: &Path) -> Option<RunResult> {
    cached(&dir.join("result.json"))
}

fn tiny_config(data: &Path, extra: &str) -> ExperimentConfig {
    tiny_config_with(data, "", extra)
}

/// The tiny sweep with `train` lines added to its `[train]` and `sweep` lines to its `[sweep]`.
fn tiny_config_with(data: &Path, train: &str, sweep: &str) -> ExperimentConfig {
    let text = format!(
        "name = \"tiny\"\n[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 40\nsubset = {{ train = 60, validation = 30 }}\n\
         [optim]\nbatch_size = 10\n[train]\nmax_epochs = 8\n{train}[sweep]\nhidden = [2, 8]\nrepetitions = 2\n{sweep}",
        data.display()
    );
    ExperimentConfig::parse(&text, Path::new("tiny.toml"), &[]).unwrap()
}

fn options(out: &Path) -> ExperimentOptions {
    ExperimentOptions::local(out, 1, 1, false)
}

/// Runs (or resumes) the sweep of `config` into `out` with `options`.
fn run_with(
    config: &ExperimentConfig,
    options: &ExperimentOptions,
    progress: Arc<dyn ExperimentProgress>,
) -> Result<ExperimentReport, ExperimentError> {
    let device = device();
    let ctx = Context {
        dir: options.out.join(&config.name),
        device: &device,
        data_dir: None,
        progress,
        force: options.force,
    };
    experiment::run(&mut Sweep::new(config.clone()), options, &ctx)
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

impl ExperimentProgress for Counter {
    fn finished(&self, _unit: &Unit, _outcome: &str, skipped: bool) {
        if !skipped && self.trained.fetch_add(1, Ordering::Relaxed) + 1 >= self.stop_after {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs a whole experiment to the end.
fn run_all(config: &ExperimentConfig, out: &Path) -> ExperimentReport {
    run_with(config, &options(out), Arc::new(Counter::new(usize::MAX))).unwrap()
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
    let first = Arc::new(Counter::new(usize::MAX));
    let report = run_with(&config, &options(&out), first.clone()).unwrap();
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

    let second = Arc::new(Counter::new(usize::MAX));
    let report = run_with(&config, &options(&out), second.clone()).unwrap();
    assert_eq!((report.outcome.trained, report.outcome.skipped), (0, 4));
    assert_eq!(second.trained.load(Ordering::Relaxed), 0);
    assert_eq!(summary_bytes(&dir), before, "byte-identical summary");
}

/// Runs trained as ensembles (the default on the CPU at these widths; plain, weight-decay,
/// censored and noisy censored runs of one width share one) save the results the same runs
/// get one by one; a sweep stopped after the first ensemble resumes to the same summary.
#[test]
fn ensembles_save_the_results_of_single_runs_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let sweep = "conditions = [\"plain\", \"weight-decay\", \"censored\", \"censored-noise\"]\n\
                 weight_decay_grid = [1e-4, 1e-3]\ncensor_hidden = 2\ncensor_max_epochs = 3\n";
    let together = tiny_config(&data, sweep);
    let alone = tiny_config(&data, &format!("{sweep}ensemble = \"off\"\n"));
    run_all(&alone, &tmp.path().join("alone"));
    let parts = tmp.path().join("parts");
    let report = run_with(&together, &options(&parts), Arc::new(Counter::new(1))).unwrap();
    // 2 widths x (2 plain + 2 x 2 weight-decay + 2 censored + 2 noisy) runs: 10 an ensemble.
    assert_eq!(
        (report.outcome.trained, report.outcome.unfinished),
        (10, 10)
    );
    let report = run_with(
        &together,
        &options(&parts),
        Arc::new(Counter::new(usize::MAX)),
    )
    .unwrap();
    assert_eq!((report.outcome.trained, report.outcome.skipped), (10, 10));
    let (a, b) = (
        String::from_utf8(summary_bytes(&tmp.path().join("alone/tiny"))).unwrap(),
        String::from_utf8(summary_bytes(&parts.join("tiny"))).unwrap(),
    );
    assert_eq!(a, b, "the same summary");
    assert!(a.contains("\ncensored-noise,8,2,"), "{a}");
    for run in &together.plan(&parts.join("tiny")) {
        let r = finished(&run.dir).unwrap();
        assert_eq!(r.ensemble_members, Some(10), "{}", run.label());
        assert_eq!(r.true_labels.is_some(), run.condition.is_censored());
    }
}

/// `sweep.ensemble = "on"` trains a width that `"auto"` trains run by run on the CPU (H = 48)
/// as one ensemble; with 2 threads it is split into two shards, whose members the sweep saves
/// from the calling thread. The summary is the runs' alone.
#[test]
fn ensembles_on_train_every_width_together_and_save_the_runs_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let wide = |mode: &str| {
        let mut config = tiny_config(&data, &format!("ensemble = \"{mode}\"\n"));
        config.sweep.hidden = vec![48];
        config.sweep.repetitions = 3;
        config
    };
    let alone = tmp.path().join("alone");
    run_all(&wide("auto"), &alone);
    let together = tmp.path().join("together");
    let two_threads = ExperimentOptions::local(&together, 1, 2, false);
    let report = run_with(
        &wide("on"),
        &two_threads,
        Arc::new(Counter::new(usize::MAX)),
    )
    .unwrap();
    assert_eq!(report.outcome.trained, 3);
    // On the CPU "auto" trains H = 48 run by run; on a GPU as an ensemble too.
    let auto = realbias_train::backend::ensembles_help(48).then_some(3);
    for (config, dir, members) in [
        (wide("auto"), &alone, auto),
        (wide("on"), &together, Some(3)),
    ] {
        for run in &config.plan(&dir.join("tiny")) {
            let r = finished(&run.dir).unwrap();
            assert_eq!(r.ensemble_members, members, "{}", run.label());
        }
    }
    assert_eq!(
        summary_bytes(&together.join("tiny")),
        summary_bytes(&alone.join("tiny"))
    );
}

#[test]
fn an_interrupted_sweep_resumes_to_the_uninterrupted_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    // Runs one by one, so the stop lands between runs (ensembles: the next test).
    let config = tiny_config(&data, "ensemble = \"off\"\n");

    let whole = tmp.path().join("whole");
    run_all(&config, &whole);

    let parts = tmp.path().join("parts");
    let stopper = Arc::new(Counter::new(1));
    let report = run_with(&config, &options(&parts), stopper.clone()).unwrap();
    assert_eq!(report.outcome.trained, 1);
    assert_eq!(report.outcome.unfinished, 3);
    assert!(
        report.finalized.is_none() && !parts.join("tiny/summary.csv").exists(),
        "no summary while runs are missing"
    );
    let plan = config.plan(&parts.join("tiny"));
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

    let resume = Arc::new(Counter::new(usize::MAX));
    let report = run_with(&config, &options(&parts), resume.clone()).unwrap();
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
fn a_grown_config_extends_the_folder_and_a_changed_one_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let out = tmp.path().join("runs");
    let config = tiny_config(&data, "");
    let mut short = config.clone();
    short.sweep.hidden = vec![2];
    run_all(&short, &out);
    // More widths plan every finished run as before: the folder grows, no --force.
    let report = run_with(&config, &options(&out), Arc::new(Counter::new(usize::MAX))).unwrap();
    assert_eq!(
        (report.outcome.trained, report.outcome.skipped),
        (2, 2),
        "the finished runs are kept"
    );
    // Dropping a width is another config.
    let mut other = config.clone();
    other.sweep.hidden = vec![2, 16];
    let err = run_with(&other, &options(&out), Arc::new(Counter::new(usize::MAX))).unwrap_err();
    assert!(
        matches!(&err, ExperimentError::ConfigChanged { keys, .. } if keys == "sweep.hidden"),
        "the error names the key that differs: {err}"
    );
    let forced = ExperimentOptions {
        force: true,
        ..options(&out)
    };
    let report = run_with(&other, &forced, Arc::new(Counter::new(usize::MAX))).unwrap();
    assert_eq!(
        (report.outcome.trained, report.outcome.skipped),
        (2, 2),
        "unchanged runs are reused"
    );
    // A setting that changes every run is never an extension.
    let mut slower = other.clone();
    slower.base.optim.lr = 0.05;
    slower.sweep.hidden = vec![2, 16, 32];
    let err = run_with(&slower, &options(&out), Arc::new(Counter::new(usize::MAX))).unwrap_err();
    assert!(
        matches!(&err, ExperimentError::ConfigChanged { keys, .. } if keys == "optim.lr, sweep.hidden"),
        "the error names the keys that differ: {err}"
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
    let tiny_data = realbias_train::data::prepare_data(&plan[0].config.data, None, 0).unwrap();
    let template = realbias_train::train(
        &plan[0].config.clone().check().unwrap(),
        &tiny_data,
        &device(),
        Quiet,
    )
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
    let (net, labels, info) = censor(&censor_config, &full, &device(), Quiet).unwrap();
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
    let err = DeviceSplit::new(&all, 1000, &device())
        .evaluate(&net)
        .unwrap()
        .error;
    assert_eq!(err, 0.0);
    // Through a sweep, the censoring is trained once and cached.
    let out = tmp.path().join("runs");
    let first = Arc::new(Notes::default());
    run_with(&config, &options(&out), first.clone()).unwrap();
    assert!(first.trained_censoring(), "{:?}", first.0.lock().unwrap());
    let cache_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir(out.join("tiny/censor"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let cache = cache_dirs();
    assert_eq!(cache.len(), 1);
    let labels_written = || {
        std::fs::metadata(cache[0].join("labels.bin"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let written = labels_written();
    let info = std::fs::read(cache[0].join("censor.json")).unwrap();
    // A run left to do needs the labels again: they must come from the cache, with no
    // censoring network trained (seen in the progress, not in deterministic bytes).
    let runs = config.plan(&out.join("tiny"));
    std::fs::remove_file(runs[0].dir.join("result.json")).unwrap();
    let second = Arc::new(Notes::default());
    let report = run_with(&config, &options(&out), second.clone()).unwrap();
    assert_eq!(report.outcome.trained, 1);
    assert!(
        !second.trained_censoring(),
        "read from the cache, not retrained: {:?}",
        second.0.lock().unwrap()
    );
    assert_eq!(cache_dirs(), cache);
    assert_eq!(labels_written(), written, "labels.bin was not rewritten");
    assert_eq!(std::fs::read(cache[0].join("censor.json")).unwrap(), info);
    assert!(
        runs.iter()
            .all(|r| r.condition == Condition::Censored && finished(&r.dir).is_some())
    );
}

/// Collects the notes about shared work (the censoring network's epochs among them).
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl ExperimentProgress for Notes {
    fn note(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
}

impl Notes {
    fn trained_censoring(&self) -> bool {
        let notes = self.0.lock().unwrap();
        notes.iter().any(|n| n.contains("censoring network, epoch"))
    }
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
    let finalized = report.finalized.unwrap();
    assert!(finalized.warnings.is_empty(), "{:?}", finalized.warnings);
    let one_panel = realbias_experiments::chart::PANEL_SIZE;
    // Two conditions: errors has a row of zoomed panels above the full ones; norms a note
    // below its title (a few lines).
    for (stem, rows, note) in [("errors", 2, false), ("norms", 1, true)] {
        let png = image::open(report.dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(png.width(), 2 * one_panel.0, "two panels a row");
        let below_panels = png.height() - rows * one_panel.1;
        assert_eq!(below_panels > 0, note, "{stem}: {below_panels} px of note");
        assert!(below_panels < 120, "{stem}: {below_panels} px of note");
        let svg = std::fs::read_to_string(report.dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("hidden units H"));
    }
    // Every measure of both networks is ranked, with τ within each condition.
    let csv = std::fs::read_to_string(report.dir.join("measures.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with("tau_b_gap_within_plain,tau_b_gap_within_censored"),
        "{header}"
    );
    let measures = realbias_experiments::sweep::MEASURES.len();
    assert_eq!(csv.lines().count(), 1 + 2 * measures, "{csv}");
    assert!(
        csv.contains("at convergence,\"group norm Σ‖u_h‖‖v_h‖\",8,"),
        "{csv}"
    );
    assert!(report.dir.join("measures.png").is_file());
    // A diverged run's finite measures paired with a chance-level error say nothing: it is
    // left out of the rankings, and the table says so.
    let run = &config.plan(&report.dir)[0];
    let path = run.dir.join("result.json");
    let mut result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    result["stop_reason"] = "diverged".into();
    std::fs::write(&path, serde_json::to_string(&result).unwrap()).unwrap();
    let (markdown, _) = Sweep::new(config.clone())
        .measures(&report.dir)
        .unwrap()
        .unwrap();
    let csv = std::fs::read_to_string(report.dir.join("measures.csv")).unwrap();
    assert!(
        csv.contains("at convergence,\"group norm Σ‖u_h‖‖v_h‖\",7,"),
        "{csv}"
    );
    assert!(
        markdown.contains(&format!("1 diverged run(s) left out: {}", run.label())),
        "{markdown}"
    );
}

/// A two-axis `[sweep.vary]` grid: stopped part-way and resumed, it ends with the summary of
/// an uninterrupted run, one row per (point, condition, H), each point's censoring network
/// trained once and the axis values applied to the runs.
#[test]
fn a_two_axis_grid_resumes_to_one_summary_row_per_point() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config(
        &data,
        "ensemble = \"off\"\nconditions = [\"plain\", \"censored\"]\ncensor_hidden = 2\ncensor_max_epochs = 3\n\
         [sweep.vary]\n\"model.init_scale\" = [0.5, 1.0]\n\"sweep.censor_max_epochs\" = [2, 3]\n",
    );
    let whole = tmp.path().join("whole");
    run_all(&config, &whole);
    let parts = tmp.path().join("parts");
    let report = run_with(&config, &options(&parts), Arc::new(Counter::new(5))).unwrap();
    assert_eq!((report.outcome.trained, report.outcome.unfinished), (5, 27));
    let report = run_with(
        &config,
        &options(&parts),
        Arc::new(Counter::new(usize::MAX)),
    )
    .unwrap();
    assert_eq!((report.outcome.trained, report.outcome.skipped), (27, 5));
    let dir = parts.join("tiny");
    assert_eq!(summary_bytes(&dir), summary_bytes(&whole.join("tiny")));
    let csv = String::from_utf8(summary_bytes(&dir)).unwrap();
    assert!(
        csv.starts_with("model.init_scale,sweep.censor_max_epochs,condition,hidden,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 4 * 2 * 2, "{csv}");
    assert!(csv.contains("\n0.5,2,censored,8,2,"), "{csv}");
    assert!(dir.join("vary.png").is_file());
    // `realbias plot` re-plans the grid from the folder's recorded config.
    std::fs::remove_file(dir.join("summary.csv")).unwrap();
    let recorded = realbias_experiments::registry::load_folder(&dir).unwrap();
    recorded.finalize(&dir).unwrap();
    assert_eq!(summary_bytes(&dir), summary_bytes(&whole.join("tiny")));
    let censors = std::fs::read_dir(dir.join("censor")).unwrap().count();
    assert_eq!(
        censors, 2,
        "one censoring network per censor_max_epochs, not per point"
    );
    let run = config
        .plan(&dir)
        .into_iter()
        .find(|r| r.variant == 0 && r.condition == Condition::Censored)
        .unwrap();
    let result = finished(&run.dir).unwrap();
    assert_eq!(result.config.model.init_scale, 0.5);
    let truth = result
        .true_labels
        .expect("censored runs are judged on the truth too");
    assert!((0.0..=1.0).contains(&truth.test_error));
}

/// `--recompute` restores tampered measures from the saved networks, and names (and leaves
/// alone) a run whose networks are gone.
#[test]
fn recomputed_measures_restore_tampered_ones_and_name_runs_without_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config(
        &data,
        "conditions = [\"plain\", \"censored\"]\ncensor_hidden = 4\ncensor_max_epochs = 5\n",
    );
    let out = tmp.path().join("runs");
    run_all(&config, &out);
    let dir = out.join("tiny");
    let plan = config.plan(&dir);
    let read = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap()
    };
    let original: Vec<serde_json::Value> = plan.iter().map(|r| read(&r.dir)).collect();
    for (run, result) in plan.iter().zip(&original) {
        let mut tampered = result.clone();
        tampered["measures"]["at_convergence"]["path_norm"] = serde_json::json!(-1.0);
        tampered["measures"]["early_stop"]["margin_p5"] = serde_json::json!(-1.0);
        std::fs::write(run.dir.join("result.json"), tampered.to_string()).unwrap();
    }
    let lost = &plan[1].dir;
    std::fs::remove_file(lost.join("network.safetensors")).unwrap();
    let device = device();
    let ctx = Context {
        dir: dir.clone(),
        device: &device,
        data_dir: None,
        progress: Arc::new(realbias_experiments::progress::Quiet),
        force: false,
    };
    // On two threads: each run's values are still those it had at the end of training.
    let done = Sweep::new(config.clone())
        .recompute_measures(&ctx, 2)
        .unwrap();
    assert_eq!(done.rewritten, plan.len() - 1);
    assert_eq!(done.kept.len(), 1, "{:?}", done.kept);
    assert!(
        done.kept[0].contains("network.safetensors"),
        "{:?}",
        done.kept
    );
    let timeless = |mut v: serde_json::Value| {
        for net in ["at_convergence", "early_stop"] {
            v["measures"][net]["seconds"] = serde_json::Value::Null;
        }
        v
    };
    for (i, run) in plan.iter().enumerate() {
        let now = read(&run.dir);
        if &run.dir == lost {
            assert_eq!(now["measures"]["at_convergence"]["path_norm"], -1.0);
        } else {
            // The recompute adds the flatness measures (flatness.rs tests their values).
            let mut now = now;
            let added = now["measures"]["at_convergence"]
                .as_object_mut()
                .unwrap()
                .remove("flatness");
            assert!(added.is_some_and(|f| f["isotropic"]["sigma"].as_f64().unwrap() > 0.0));
            assert_eq!(
                timeless(now),
                timeless(original[i].clone()),
                "{}",
                run.dir.display()
            );
        }
    }
    // A second recompute resumes: what already carries the flatness measures is left as it is;
    // with force it is done again.
    let before: Vec<serde_json::Value> = plan.iter().map(|r| read(&r.dir)).collect();
    let again = Sweep::new(config.clone())
        .recompute_measures(&ctx, 1)
        .unwrap();
    assert_eq!((again.rewritten, again.already), (0, plan.len() - 1));
    let after: Vec<serde_json::Value> = plan.iter().map(|r| read(&r.dir)).collect();
    assert_eq!(before, after);
    let forced = Context { force: true, ..ctx };
    let redone = Sweep::new(config.clone())
        .recompute_measures(&forced, 2)
        .unwrap();
    assert_eq!((redone.rewritten, redone.already), (plan.len() - 1, 0));
}

#[test]
fn learning_curves_are_drawn_only_when_the_histories_have_per_epoch_test_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let at_end = tiny_config(&data, "");
    run_all(&at_end, &tmp.path().join("end"));
    let dir = tmp.path().join("end").join("tiny");
    assert!(dir.join("errors.png").is_file());
    assert!(
        !dir.join("curves.png").exists(),
        "no test error per epoch, no curves"
    );
    let every = tiny_config_with(&data, "eval_test_every_epoch = true\n", "");
    run_all(&every, &tmp.path().join("every"));
    let dir = tmp.path().join("every").join("tiny");
    let png = image::open(dir.join("curves.png")).unwrap();
    assert!(dir.join("curves.svg").is_file());
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    for label in [
        "plain: test error per epoch",
        "plain: training error per epoch",
        "H = 2",
        "H = 8",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
    assert!(
        png.height() > png.width() / 2,
        "two rows: test above training"
    );
}

/// Counts the epochs at which a run in flight (no `result.json` yet) already had its
/// TensorBoard events, and the runs that finished with them.
#[derive(Default)]
struct EventsWatch {
    in_flight: AtomicUsize,
    epochs: AtomicUsize,
}

impl ExperimentProgress for EventsWatch {
    fn status(&self, _worker: usize, unit: &Unit, _text: &str) {
        let dir = unit.result.parent().unwrap();
        self.epochs.fetch_add(1, Ordering::Relaxed);
        let events = dir
            .join("tb")
            .join(realbias_train::run_files::tensorboard::EVENT_FILE);
        if events.is_file() && !unit.result.exists() {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn a_sweeps_runs_with_tensorboard_write_their_events_while_they_train() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_tiny_idx(&data, 200, 40);
    let config = tiny_config_with(&data, "tensorboard = true\n", "ensemble = \"off\"\n");
    let watch = Arc::new(EventsWatch::default());
    let report = run_with(&config, &options(&tmp.path().join("runs")), watch.clone()).unwrap();
    assert_eq!(report.outcome.trained, 4);
    // Each epoch's events are written before its status line, while the run has no result.
    let (in_flight, epochs) = (
        watch.in_flight.load(Ordering::Relaxed),
        watch.epochs.load(Ordering::Relaxed),
    );
    assert!(epochs >= 4 * 2, "{epochs} status lines");
    assert_eq!(
        in_flight, epochs,
        "every epoch's status came after its events"
    );
    for run in config.plan(&report.dir) {
        let events = std::fs::read(
            run.dir
                .join("tb")
                .join(realbias_train::run_files::tensorboard::EVENT_FILE),
        )
        .unwrap();
        let history_path = run.dir.join("history.csv");
        let history = std::fs::read_to_string(&history_path).unwrap();
        let expected =
            realbias_train::run_files::tensorboard::events_of_history(&history, &history_path)
                .unwrap();
        assert_eq!(
            events,
            expected,
            "{}: the finished run's events",
            run.dir.display()
        );
    }
}

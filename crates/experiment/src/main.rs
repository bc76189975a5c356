//! `realbias`: the command line. A thin layer over the library crates.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use realbias_data::{
    Dataset, DatasetInfo, DatasetSource, FeatureOptions, PAPER_VALIDATION, resolve_data_dir,
};
use realbias_experiment::config::TrainConfig;
use realbias_experiment::dashboard::TuiDashboard;
use realbias_experiment::experiment::{self, RunOptions};
use realbias_experiment::output::{history_csv, write_atomic, write_run};
use realbias_experiment::study::{AnyConfig, StudyError, StudyProgress};
use realbias_experiment::sweep::{PlannedRun, SweepProgress};
use realbias_experiment::train::RunResult;
use realbias_experiment::train::{EpochRecord, Progress, StopReason, prepare_data, train};
use realbias_experiment::{backend, bench, convex_nn, factorization, preview};

#[derive(Parser)]
#[command(
    name = "realbias",
    version,
    about = "Reproduce and extend Neyshabur, Tomioka & Srebro (2015), \"In Search of the Real Inductive Bias\""
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, preview and download datasets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// One training run of the paper's protocol.
    Train(TrainArgs),
    /// A whole experiment: a width sweep (a config with a [sweep] section), or Section 3's
    /// matrix factorization / Section 4's convex neural net (`kind = ...`): plan, train,
    /// summarize, plot. Re-running the same command resumes: finished runs are skipped.
    Run(RunArgs),
    /// Redraw the figures of an experiment folder from its saved results.
    Plot {
        /// The experiment folder (OUT/<experiment>).
        dir: PathBuf,
    },
    /// Print an experiment folder's summary as a markdown table.
    Report { dir: PathBuf },
    /// Training throughput of the real training path on synthetic data, against this
    /// machine's measured matrix-multiply peak.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Hidden widths to time.
    #[arg(long, value_delimiter = ',', default_value = "16,256,1024,4096")]
    hidden: Vec<usize>,
    /// Training examples per epoch (the paper's MNIST training split: 50,000).
    #[arg(long, default_value_t = 50_000)]
    examples: usize,
    /// Validation examples evaluated every epoch with the training set (MNIST: 10,000).
    #[arg(long, default_value_t = 10_000)]
    validation: usize,
    /// Epochs per width (the medians are reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Threads (the run's rayon pool).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// One JSON object per line, one per width.
    #[arg(long)]
    json: bool,
    /// The loss implementation: `fused` (one autodiff node, what training uses) or
    /// `composed` (Burn's operations one by one, the reference).
    #[arg(long, default_value = "fused")]
    loss: realbias_experiment::train::LossPath,
}

#[derive(Args)]
struct RunArgs {
    /// The experiment config (see configs/).
    config: PathBuf,
    /// Where experiment folders go.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Runs trained at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Threads per run (default: cores / jobs).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the plan and exit.
    #[arg(long)]
    dry_run: bool,
    /// Reuse a folder made by a different config.
    #[arg(long)]
    force: bool,
    /// Override any config value, e.g. --set sweep.repetitions=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Args)]
struct DataDir {
    /// Data folder (default: $REALBIAS_DATA, else ./datasets).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Split sizes, feature count, class histograms and feature statistics.
    Info {
        /// mnist, cifar10 or idx:PATH
        dataset: DatasetSource,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Keep colour (d = 300) instead of grayscale.
        #[arg(long)]
        color: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// A PNG of original images beside their 10x10 versions.
    Preview {
        dataset: DatasetSource,
        #[arg(long)]
        out: PathBuf,
        /// Number of examples.
        #[arg(long, default_value_t = 24)]
        count: usize,
        #[arg(long)]
        color: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Download from the publishers' sites, checksummed and resumable.
    Fetch {
        /// mnist or cifar10
        dataset: String,
        /// Base URL to download from instead of the publishers' (repeatable; tried in order).
        #[arg(long)]
        mirror: Vec<String>,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// The run's TOML config (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Hidden units H (overrides model.hidden).
    #[arg(long)]
    hidden: Option<usize>,
    /// Seed (overrides train.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder (default: runs/<config name>/h<H>-seed<S>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override any config value, e.g. --set optim.lr=0.05 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// One line per epoch even on a terminal, instead of the dashboard.
    #[arg(long)]
    plain: bool,
    #[command(flatten)]
    dir: DataDir,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data { command } => data(command),
        Command::Train(args) => train_command(args),
        Command::Run(args) => run_command(args),
        Command::Plot { dir } => plot_command(&dir),
        Command::Report { dir } => report_command(&dir),
        Command::Bench(args) => bench_command(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_dataset(source: &DatasetSource, dir: Option<&Path>, color: bool) -> Result<Dataset> {
    let raw = source.load(&resolve_data_dir(dir))?;
    let features = FeatureOptions {
        color,
        ..FeatureOptions::default()
    };
    Ok(Dataset::from_raw(&raw, &features, PAPER_VALIDATION)?)
}

fn data(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Info {
            dataset,
            json,
            color,
            dir,
        } => {
            let d = load_dataset(&dataset, dir.data_dir.as_deref(), color)?;
            let info = DatasetInfo::of(&d);
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "{}: {} features, {} classes",
                    info.dataset, info.features, info.classes
                );
                for (name, s) in [
                    ("train", &info.train),
                    ("validation", &info.validation),
                    ("test", &info.test),
                ] {
                    println!(
                        "  {name:<10} {:>6} examples  mean {:.4}  std {:.4}  classes {:?}",
                        s.size, s.feature_mean, s.feature_std, s.class_histogram
                    );
                }
            }
        }
        DataCommand::Preview {
            dataset,
            out,
            count,
            color,
            dir,
        } => {
            let raw = dataset.load(&resolve_data_dir(dir.data_dir.as_deref()))?;
            let features = FeatureOptions {
                color,
                ..FeatureOptions::default()
            };
            let img = preview::preview_grid(&raw.train, &features, count, 6);
            img.save(&out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} ({} examples: original | {}x{} as the network sees it)",
                out.display(),
                count.min(raw.train.len()),
                features.side,
                features.side
            );
        }
        DataCommand::Fetch {
            dataset,
            mirror,
            dir,
        } => {
            let data_dir = resolve_data_dir(dir.data_dir.as_deref());
            let bases = if mirror.is_empty() {
                realbias_data::fetch::default_bases(&dataset)
            } else {
                mirror
                    .into_iter()
                    .map(|m| if m.ends_with('/') { m } else { format!("{m}/") })
                    .collect()
            };
            let progress = std::io::stderr().is_terminal();
            for f in realbias_data::fetch::fetch_dataset(&dataset, &data_dir, &bases, progress)? {
                match f {
                    realbias_data::fetch::Fetched::AlreadyPresent(p) => {
                        println!("present, checksum ok: {}", p.display())
                    }
                    realbias_data::fetch::Fetched::Downloaded(p) => {
                        println!("downloaded, checksum ok: {}", p.display())
                    }
                }
            }
        }
    }
    Ok(())
}

/// How a run shows itself: Burn's dashboard on a terminal, one line per epoch otherwise
/// (or with `--plain`), with a batch progress bar when plain lines go to a terminal.
enum View {
    Dashboard(Box<TuiDashboard>),
    Bar(ProgressBar),
    Lines,
}

struct CliProgress {
    view: View,
    interrupted: Arc<AtomicBool>,
    out: PathBuf,
    history: Vec<EpochRecord>,
}

fn epoch_line(r: &EpochRecord) -> String {
    let test = r
        .test_error
        .map_or(String::new(), |t| format!("  test err {:>6.2}%", 100.0 * t));
    format!(
        "epoch {:>4}  lr {:.4}  mom {:.2}  train loss {:.5}  train err {:>6.2}%  val err {:>6.2}%{test}  Σ‖u‖‖v‖ {:.2}  {:.2}s",
        r.epoch,
        r.lr,
        r.momentum,
        r.train_loss,
        100.0 * r.train_error,
        100.0 * r.validation_error,
        r.group_norm,
        r.train_seconds + r.eval_seconds
    )
}

impl Progress for CliProgress {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        match &mut self.view {
            View::Dashboard(d) => d.batch(epoch, batch, batches),
            View::Bar(bar) => {
                if batch == 1 {
                    bar.set_length(batches as u64);
                    bar.set_message(format!("epoch {epoch}"));
                }
                bar.set_position(batch as u64);
            }
            View::Lines => {}
        }
    }

    fn epoch(&mut self, record: &EpochRecord) {
        match &mut self.view {
            View::Dashboard(d) => d.epoch(record),
            View::Bar(bar) => bar.println(epoch_line(record)),
            View::Lines => println!("{}", epoch_line(record)),
        }
        // Keep the history on disk as it grows, so an interruption loses nothing measured.
        self.history.push(record.clone());
        let _ = write_atomic(
            &self.out.join("history.csv"),
            history_csv(&self.history).as_bytes(),
        );
    }

    fn interrupted(&self) -> bool {
        let from_dashboard = matches!(&self.view, View::Dashboard(d) if d.stop_requested());
        from_dashboard || self.interrupted.load(Ordering::Relaxed)
    }
}

fn train_command(args: TrainArgs) -> Result<()> {
    let mut sets = args.sets.clone();
    if let Some(h) = args.hidden {
        sets.push(format!("model.hidden={h}"));
    }
    if let Some(s) = args.seed {
        sets.push(format!("train.seed={s}"));
    }
    let config = TrainConfig::load(&args.config, &sets)?;
    let name = config.name.clone().unwrap_or_else(|| {
        args.config
            .file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(&name).join(format!(
            "h{}-seed{}",
            config.model.hidden, config.train.seed
        ))
    });
    if out.join("result.json").exists() {
        bail!(
            "{} already holds a finished run (result.json); choose another --out or remove it",
            out.display()
        );
    }
    let device = backend::device()?;
    println!(
        "realbias train: {name}, H = {}, seed {}, {}",
        config.model.hidden,
        config.train.seed,
        backend::describe(&device)
    );
    let data = prepare_data(
        &config.data,
        args.dir.data_dir.as_deref(),
        config.train.seed,
    )?;
    println!(
        "data: {} with {} train / {} validation / {} test examples, d = {}; results in {}",
        data.name,
        data.train.len(),
        data.validation.len(),
        data.test.len(),
        data.dim(),
        out.display()
    );
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130); // a second Ctrl-C does not wait for the epoch to end
        }
        eprintln!("\ninterrupt: stopping after this epoch (Ctrl-C again to quit now)");
    });
    let view = match (std::io::stdout().is_terminal(), args.plain) {
        (true, false) => View::Dashboard(Box::new(TuiDashboard::new(
            &format!("{name} H={}", config.model.hidden),
            config.train.max_epochs,
        ))),
        (true, true) => {
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} batches  {per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            View::Bar(bar)
        }
        (false, _) => View::Lines,
    };
    let mut progress = CliProgress {
        view,
        interrupted,
        out: out.clone(),
        history: Vec::new(),
    };
    let run = train(&config, &data, &device, &mut progress);
    // Give the terminal back before printing anything more.
    match std::mem::replace(&mut progress.view, View::Lines) {
        View::Dashboard(d) => d.finish(),
        View::Bar(bar) => bar.finish_and_clear(),
        View::Lines => {}
    }
    let run = run?;
    let r = &run.result;
    if r.stop_reason == StopReason::Interrupted {
        println!(
            "interrupted after {} epochs; history so far in {}",
            r.epochs,
            out.join("history.csv").display()
        );
        std::process::exit(130);
    }
    write_run(&out, &run)?;
    println!(
        "stopped ({:?}) after {} epochs in {:.1}s: train error {:.2}%, test error {:.2}% at convergence, {:.2}% with early stopping (epoch {}); zero training error first at epoch {}",
        r.stop_reason,
        r.epochs,
        r.wall_seconds,
        100.0 * r.train_error,
        100.0 * r.test_error,
        100.0 * r.early_stop_test_error,
        r.early_stop_epoch,
        r.epochs_to_zero_train_error
            .map_or("never".into(), |e| e.to_string())
    );
    println!(
        "wrote {} and {}",
        out.join("result.json").display(),
        out.join("history.csv").display()
    );
    Ok(())
}

/// Overall progress bar plus one line per worker on a terminal; one line per run otherwise.
struct SweepView {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    workers: Vec<ProgressBar>,
    total: usize,
    done: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl SweepView {
    fn new(total: usize, jobs: usize, stop: Arc<AtomicBool>) -> Self {
        if !std::io::stdout().is_terminal() {
            return SweepView {
                multi: None,
                overall: None,
                workers: Vec::new(),
                total,
                done: AtomicUsize::new(0),
                stop,
            };
        }
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "runs {pos}/{len} {bar:40} elapsed {elapsed_precise}, eta {eta_precise}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let workers = (0..jobs)
            .map(|_| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar
            })
            .collect();
        SweepView {
            multi: Some(multi),
            overall: Some(overall),
            workers,
            total,
            done: AtomicUsize::new(0),
            stop,
        }
    }

    fn line(&self, text: String) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => println!("{text}"),
        }
    }

    fn finish(&self) {
        for w in &self.workers {
            w.finish_and_clear();
        }
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
    }
}

impl SweepProgress for SweepView {
    fn started(&self, worker: usize, run: &PlannedRun) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_message(format!("{}: starting", run.label()));
        }
    }

    fn epoch(
        &self,
        worker: usize,
        run: &PlannedRun,
        epoch: usize,
        train_error: f64,
        validation_error: f64,
    ) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_message(format!(
                "{}: epoch {epoch}/{}  train err {:.2}%  val err {:.2}%",
                run.label(),
                run.config.train.max_epochs,
                100.0 * train_error,
                100.0 * validation_error
            ));
        }
    }

    fn finished(&self, run: &PlannedRun, r: &RunResult, skipped: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(o) = &self.overall {
            o.set_position(done as u64);
        }
        if skipped {
            return;
        }
        self.line(format!(
            "[{done}/{}] {}: train err {:.2}%  test err {:.2}% (early stop {:.2}%, epoch {})  {} epochs, {:?}, {:.1}s",
            self.total,
            run.label(),
            100.0 * r.train_error,
            100.0 * r.test_error,
            100.0 * r.early_stop_test_error,
            r.early_stop_epoch,
            r.epochs,
            r.stop_reason,
            r.wall_seconds
        ));
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The censoring network's training, shown as one line per 10 epochs.
struct CensorProgress;

impl Progress for CensorProgress {
    fn epoch(&mut self, r: &EpochRecord) {
        if r.epoch.is_multiple_of(10) {
            println!("  censoring network, {}", epoch_line(r));
        }
    }
}

fn ctrl_c_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: stopping the runs in flight (unfinished runs restart next time; Ctrl-C again to quit now)"
        );
    });
    stop
}

/// Progress of the theory experiments: one line per fit, a spinner while one trains.
struct StudyView {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl StudyView {
    fn new(stop: Arc<AtomicBool>) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        StudyView { bar, stop }
    }
}

impl StudyProgress for StudyView {
    fn started(&self, index: usize, total: usize, label: &str) {
        self.bar.set_message(format!(
            "[{index}/{total}] {label}: training (Ctrl-C stops; finished fits are kept)"
        ));
    }

    fn finished(&self, index: usize, total: usize, label: &str, outcome: &str, cached: bool) {
        let from = if cached { " (saved earlier)" } else { "" };
        self.bar
            .println(format!("[{index}/{total}] {label}: {outcome}{from}"));
    }

    fn note(&self, text: &str) {
        self.bar.println(text);
    }

    fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }
}

fn print_files(files: &[PathBuf], warning: Option<&String>) {
    if let Some(w) = warning {
        eprintln!("warning: figures not drawn: {w}");
    }
    for f in files {
        println!("wrote {}", f.display());
    }
}

fn run_study(config: AnyConfig, args: &RunArgs) -> Result<()> {
    let device = backend::device()?;
    println!("{}", backend::describe(&device));
    let view = StudyView::new(ctrl_c_flag());
    let outcome = match &config {
        AnyConfig::Factorization(c) => {
            println!(
                "experiment {} -> {} ({} fits)",
                c.name,
                args.out.join(&c.name).display(),
                c.plan().len()
            );
            factorization::run(c, &args.out, args.force, &device, &view).map(|r| {
                view.bar.finish_and_clear();
                println!(
                    "\n{}",
                    factorization::report_markdown(&c.name, &r.fits, &r.baselines)
                );
                print_files(&r.files, r.plot_warning.as_ref());
            })
        }
        AnyConfig::ConvexNn(c) => {
            println!(
                "experiment {} -> {} ({} fits)",
                c.name,
                args.out.join(&c.name).display(),
                c.plan().len()
            );
            convex_nn::run(c, &args.out, args.force, &device, &view).map(|r| {
                view.bar.finish_and_clear();
                let rows = convex_nn::corollary_rows(&r.fits, &r.convex);
                let theorem = convex_nn::theorem1_rows(c, &r.fits);
                println!(
                    "\n{}",
                    convex_nn::report_markdown(c, &rows, &theorem, &r.convex)
                );
                print_files(&r.files, r.plot_warning.as_ref());
            })
        }
        AnyConfig::Sweep(_) => unreachable!("sweeps run through run_command"),
    };
    view.bar.finish_and_clear();
    match outcome {
        Err(e @ StudyError::Interrupted { .. }) => {
            eprintln!("{e}");
            std::process::exit(130);
        }
        other => Ok(other?),
    }
}

fn run_command(args: RunArgs) -> Result<()> {
    let config = match AnyConfig::load(&args.config, &args.sets)? {
        AnyConfig::Sweep(c) => *c,
        study => {
            if args.dry_run {
                match &study {
                    AnyConfig::Factorization(c) => {
                        c.plan().iter().for_each(|f| println!("  {}", f.label()))
                    }
                    AnyConfig::ConvexNn(c) => {
                        c.plan().iter().for_each(|f| println!("  {}", f.label()))
                    }
                    AnyConfig::Sweep(_) => {}
                }
                return Ok(());
            }
            return run_study(study, &args);
        }
    };
    let (dir, runs) = experiment::plan(&config, &args.out);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.max(1);
    let threads = args.threads.unwrap_or((cores / jobs).max(1));
    let done = runs
        .iter()
        .filter(|r| realbias_experiment::sweep::finished(&r.dir).is_some())
        .count();
    let train_n = |r: &PlannedRun| {
        r.config
            .data
            .subset
            .map_or(60_000usize.saturating_sub(r.config.data.validation), |s| {
                s.train
            })
    };
    let total_cost: f64 = runs.iter().map(|r| r.cost(train_n(r))).sum();
    println!("experiment {} -> {}", config.name, dir.display());
    println!(
        "plan: {} runs ({} finished already, {} to train), {} at a time with {} thread(s) each",
        runs.len(),
        done,
        runs.len() - done,
        jobs,
        threads
    );
    for c in &config.sweep.conditions {
        let of: Vec<&PlannedRun> = runs.iter().filter(|r| r.condition == *c).collect();
        let cost: f64 = of.iter().map(|r| r.cost(train_n(r))).sum();
        println!(
            "  {:<15} {:>4} runs  H = {:?}  ~{:.0}% of the estimated cost",
            c.name(),
            of.len(),
            config.sweep.hidden,
            100.0 * cost / total_cost.max(1.0)
        );
    }
    if args.dry_run {
        for r in &runs {
            println!(
                "  {}  {}",
                r.dir.display(),
                if realbias_experiment::sweep::finished(&r.dir).is_some() {
                    "finished"
                } else {
                    "to train"
                }
            );
        }
        return Ok(());
    }
    let device = backend::device()?;
    println!("{}", backend::describe(&device));
    let stop = ctrl_c_flag();
    let view = SweepView::new(runs.len(), jobs, stop.clone());
    let options = RunOptions {
        data_dir: args.dir.data_dir.clone(),
        jobs,
        threads,
        force: args.force,
    };
    let report = experiment::run(
        &config,
        &args.out,
        &options,
        &device,
        &view,
        &mut CensorProgress,
    );
    view.finish();
    let report = report?;
    if let Some(c) = &report.censor {
        println!(
            "censored labels: H0 = {} network ({} epochs, {:?}) disagrees with the true labels on {:.2}% of {} examples",
            c.censor_hidden,
            c.epochs,
            c.stop_reason,
            100.0 * c.disagreement,
            c.examples
        );
    }
    let o = report.outcome;
    if o.unfinished > 0 {
        println!(
            "interrupted: {} trained, {} already finished, {} unfinished; run the same command again to resume",
            o.trained, o.skipped, o.unfinished
        );
        std::process::exit(130);
    }
    println!("{} runs trained, {} already finished", o.trained, o.skipped);
    if let Some(s) = &report.summary {
        println!("\n{}", s.markdown());
    }
    if let Some(w) = &report.plot_warning {
        eprintln!("warning: figures not drawn: {w}");
    }
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn bench_command(args: BenchArgs) -> Result<()> {
    let settings = bench::BenchSettings {
        hidden: args.hidden,
        examples: args.examples,
        validation: args.validation,
        epochs: args.epochs,
        threads: args.threads,
        inputs: 100,
        classes: 10,
        batch_size: 100,
        loss: args.loss,
    };
    let device = backend::device()?;
    if !args.json {
        println!("{}", backend::describe(&device));
        println!(
            "{} examples (+{} validation) per epoch, d = 100, k = 10, batch 100, f32, {} thread(s), median of {} epochs, {} loss",
            settings.examples,
            settings.validation,
            settings.threads,
            settings.epochs,
            settings.loss.name()
        );
        println!(
            "{:>6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}",
            "H", "epoch s", "eval s", "eval/ep", "µs/step", "GFLOP/s", "% peak"
        );
    }
    let json = args.json;
    let rows = bench::run(&settings, &device, &mut |r| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            println!(
                "{:>6} {:>10.4} {:>10.4} {:>8.0}% {:>9.1} {:>9.1} {:>7.1}%",
                r.hidden,
                r.epoch_seconds,
                r.eval_seconds,
                100.0 * r.eval_overhead,
                r.step_micros,
                r.gflops,
                r.percent_of_peak
            );
        }
    })?;
    if !json && let Some(r) = rows.first() {
        println!(
            "measured matrix-multiply peak (same backend, best of 5 over {} shapes; {}x{} by {}x{}): {:.1} GFLOP/s",
            bench::PEAK_SHAPES.len(),
            r.peak_shape[0],
            r.peak_shape[1],
            r.peak_shape[1],
            r.peak_shape[2],
            r.peak_gflops
        );
    }
    Ok(())
}

fn plot_command(dir: &Path) -> Result<()> {
    let config = match AnyConfig::load_folder(dir)? {
        AnyConfig::Sweep(c) => *c,
        AnyConfig::Factorization(c) => {
            let (fits, baselines) = factorization::load_results(&c, dir);
            let (files, warning) = factorization::finalize(dir, &fits, &baselines)?;
            if let Some(w) = warning {
                bail!("figures not drawn: {w}");
            }
            print_files(&files, None);
            return Ok(());
        }
        AnyConfig::ConvexNn(c) => {
            let (fits, convex) = convex_nn::load_results(&c, dir);
            let (files, warning) = convex_nn::finalize(&c, dir, &fits, &convex)?;
            if let Some(w) = warning {
                bail!("figures not drawn: {w}");
            }
            print_files(&files, None);
            return Ok(());
        }
    };
    let (_, files, warning) = experiment::finalize(&config, dir)?;
    if let Some(w) = warning {
        bail!("figures not drawn: {w}");
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn report_command(dir: &Path) -> Result<()> {
    let config = match AnyConfig::load_folder(dir)? {
        AnyConfig::Sweep(c) => *c,
        AnyConfig::Factorization(c) => {
            let (fits, baselines) = factorization::load_results(&c, dir);
            print!(
                "{}",
                factorization::report_markdown(&c.name, &fits, &baselines)
            );
            return Ok(());
        }
        AnyConfig::ConvexNn(c) => {
            let (fits, convex) = convex_nn::load_results(&c, dir);
            let rows = convex_nn::corollary_rows(&fits, &convex);
            let theorem = convex_nn::theorem1_rows(&c, &fits);
            print!(
                "{}",
                convex_nn::report_markdown(&c, &rows, &theorem, &convex)
            );
            return Ok(());
        }
    };
    print!("{}", experiment::report(&config, dir).1);
    Ok(())
}

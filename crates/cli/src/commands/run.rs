//! `realbias run`: any experiment config from plan to summary and figures, resumably.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use realbias_experiments::experiment::{
    self, Context, DryRun, Experiment, ExperimentOptions, ExperimentReport,
};
use realbias_experiments::progress::Quiet;
use realbias_experiments::registry;
use realbias_experiments::shard::Shard;
use realbias_experiments::store::Claim;
use realbias_train::backend;

use super::data::{DataDir, with_fetch};
use crate::views::experiment::ExperimentView;

#[derive(Args)]
pub struct RunArgs {
    /// The experiment config (see configs/).
    config: PathBuf,
    /// Where experiment folders go.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Runs trained at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,
    /// Threads per run (default: cores / jobs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Check everything and print what the run would do (units per condition and H, shared
    /// work, an estimate of the time), then exit.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: also list every unit.
    #[arg(long)]
    verbose: bool,
    /// Reuse a folder made by a different config (results it would not produce are retrained).
    #[arg(long)]
    force: bool,
    /// Override any config value, e.g. --set sweep.repetitions=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run only shard I of N of the plan (0 <= I < N), balanced by estimated cost; other
    /// processes may run the other shards in the same folder at the same time.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// With --shard: write the summary and figures if the whole plan has finished.
    #[arg(long)]
    finalize: bool,
    /// Claim the folder and do the shared work (censoring labels), then stop.
    #[arg(long)]
    prepare_only: bool,
    #[command(flatten)]
    dir: DataDir,
}

impl RunArgs {
    fn options(&self) -> ExperimentOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = self.jobs as usize;
        ExperimentOptions {
            out: self.out.clone(),
            data_dir: self.dir.data_dir.clone(),
            jobs,
            threads: self.threads.map_or((cores / jobs).max(1), |t| t as usize),
            force: self.force,
            shard: self.shard,
            finalize: self.shard.is_none() || self.finalize,
            prepare_only: self.prepare_only,
        }
    }
}

pub fn command(args: RunArgs) -> Result<()> {
    let mut exp = registry::load(&args.config, &args.sets)?;
    let options = args.options();
    let device = backend::device()?;
    let dir = options.out.join(exp.name());
    if args.dry_run {
        let ctx = Context {
            dir: dir.clone(),
            device: &device,
            data_dir: options.data_dir.as_deref(),
            progress: std::sync::Arc::new(Quiet),
            force: options.force,
        };
        let plan = with_fetch(&args.dir, || {
            Ok(experiment::dry_run(exp.as_mut(), &options, &ctx)?)
        })?;
        return print_dry_run(exp.as_ref(), &plan, &options, args.verbose);
    }
    println!("experiment {} -> {}", exp.name(), dir.display());
    println!("{}", backend::describe(&device));
    let units = exp.plan(&dir).len();
    let view = std::sync::Arc::new(ExperimentView::new(units, options.jobs));
    let ctx = Context {
        dir,
        device: &device,
        data_dir: options.data_dir.as_deref(),
        progress: view.clone(),
        force: options.force,
    };
    let report = with_fetch(&args.dir, || {
        Ok(experiment::run(exp.as_mut(), &options, &ctx)?)
    });
    view.finish();
    let mut report = report?;
    if args.prepare_only {
        println!(
            "prepared {}: the folder is claimed and the shared work done",
            report.dir.display()
        );
        return Ok(());
    }
    let failures = std::mem::take(&mut report.failures);
    for f in &failures {
        eprintln!("failed: {f}");
    }
    let result = summarize(&args, exp.as_ref(), report);
    if !failures.is_empty() {
        // Every other unit ran; the failed ones keep their reason in failed.txt.
        anyhow::bail!(
            "{} unit(s) failed on their own (listed above, and by `realbias status`); every other unit ran",
            failures.len()
        );
    }
    result
}

/// What a run that ended prints: the summary it finalized, or why it finalized none.
fn summarize(args: &RunArgs, exp: &dyn Experiment, report: ExperimentReport) -> Result<()> {
    let o = report.outcome;
    let Some(finalized) = &report.finalized else {
        return unfinalized(args, &report);
    };
    println!("{} trained, {} already finished", o.trained, o.skipped);
    println!("\n{}", exp.report(&report.dir)?);
    for w in finalized.skipped.iter().chain(&finalized.warnings) {
        eprintln!("warning: {w}");
    }
    for f in &finalized.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// What a run that wrote no summary did, and why it wrote none.
fn unfinalized(args: &RunArgs, report: &ExperimentReport) -> Result<()> {
    let o = report.outcome;
    let part = args
        .shard
        .map_or("this run".to_string(), |s| format!("shard {s}"));
    println!(
        "{part}: {} trained, {} already finished, {} held by other processes, {} unfinished, {} in other shards",
        o.trained, o.skipped, o.elsewhere, o.unfinished, o.other_shards
    );
    if o.unfinished > 0 {
        println!("interrupted: run the same command again to resume");
        std::process::exit(130);
    }
    if args.shard.is_some() && o.trained + o.skipped + o.elsewhere == 0 {
        println!("{part} has no units: more shards than units");
    }
    if !report.complete {
        println!(
            "left unfinished: {} unit(s) held by other live processes, {} claimed by none (a later run takes them)",
            report.held_elsewhere, report.unclaimed
        );
        println!(
            "not finalized: other units are not finished yet; `realbias status {}` shows them, `realbias plot {}` writes the summary once they are",
            report.dir.display(),
            report.dir.display()
        );
    } else {
        println!(
            "every unit has finished; `realbias plot {}` writes the summary",
            report.dir.display()
        );
    }
    Ok(())
}

/// Prints the plan; a closed pipe (`| head`) ends the listing quietly.
fn print_dry_run(
    exp: &dyn Experiment,
    plan: &DryRun,
    options: &ExperimentOptions,
    verbose: bool,
) -> Result<()> {
    match write_dry_run(&mut std::io::stdout().lock(), exp, plan, options, verbose) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `seconds` as `1 h 05 min`, `12 min`, or `40 s`.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn write_dry_run(
    out: &mut impl Write,
    exp: &dyn Experiment,
    plan: &DryRun,
    options: &ExperimentOptions,
    verbose: bool,
) -> std::io::Result<()> {
    let claim = match plan.claim {
        Claim::New => "a new folder",
        Claim::Same => "resuming the folder made by this config",
        Claim::Replaced => "taking over a folder made by another config (--force)",
        Claim::Extended => {
            "the folder's config changed, but every finished run is planned as before: its results are kept"
        }
    };
    writeln!(
        out,
        "experiment {} -> {} ({claim})",
        exp.name(),
        plan.dir.display()
    )?;
    writeln!(
        out,
        "plan: {} units ({} finished already, {} to train), {} at a time with {} thread(s) each",
        plan.units.len(),
        plan.units.len() - plan.to_train(),
        plan.to_train(),
        options.jobs,
        options.threads
    )?;
    for line in &plan.description {
        writeln!(out, "{}", line.trim_end())?;
    }
    write_estimate(out, plan, options)?;
    if !verbose {
        return writeln!(out, "(--verbose lists every unit)");
    }
    for (unit, kept) in &plan.units {
        let status = if *kept { "finished" } else { "to train" };
        writeln!(
            out,
            "  {}  {status}  ({})",
            unit.label,
            unit.result.display()
        )?;
    }
    Ok(())
}

/// The dry run's time estimate and the `--jobs` hint.
fn write_estimate(
    out: &mut impl Write,
    plan: &DryRun,
    options: &ExperimentOptions,
) -> std::io::Result<()> {
    if let Some(seconds) = plan.estimate {
        // The jobs share the cores: N at once take about 1/N of the time, no less.
        let wall = seconds / options.jobs as f64;
        writeln!(
            out,
            "estimated time, at most (every run to its epoch cap; converged runs stop sooner): {} of training, about {} with --jobs {} (an estimate from one timed epoch per width on this machine)",
            duration(seconds),
            duration(wall),
            options.jobs
        )?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if plan.to_train() > 1 && options.jobs < cores {
        writeln!(
            out,
            "hint: --jobs {cores} trains {cores} runs at once, one per core (usually faster than threads within a run)"
        )?;
    }
    Ok(())
}

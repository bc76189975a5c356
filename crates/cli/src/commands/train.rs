//! `realbias train`: one run of the paper's protocol, on Burn's dashboard or as epoch lines.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use realbias_experiments::lock;
use realbias_train::config::{CheckedConfig, TrainConfig, folder_name_problem};
use realbias_train::data::prepare_data;
use realbias_train::run_files::networks::NETWORK_FILE;
use realbias_train::run_files::state::CHECKPOINT_FILE;
use realbias_train::run_files::write_run;
use realbias_train::{CheckpointSlot, RunResult, StopReason, Trainer, backend};

use super::data::{DataDir, with_fetch};
use crate::views::run::RunView;

#[derive(Args)]
pub struct TrainArgs {
    /// The run's TOML config (see configs/).
    #[arg(
        value_name = "CONFIG",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    config_file: Option<PathBuf>,
    /// The run's TOML config, as an option (the same as the positional CONFIG).
    #[arg(long = "config", value_name = "CONFIG")]
    config: Option<PathBuf>,
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
    /// Discard a checkpoint in the output folder that cannot resume this run (another config
    /// or training code) instead of refusing it.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    dir: DataDir,
}

impl TrainArgs {
    /// The config file, given as the argument or with `--config` (clap requires one).
    fn config_path(&self) -> &Path {
        self.config_file
            .as_deref()
            .or(self.config.as_deref())
            .unwrap_or(Path::new("run.toml"))
    }
}

/// The config with `--hidden` / `--seed` applied, its name and its output folder.
fn resolve(args: &TrainArgs) -> Result<(CheckedConfig, String, PathBuf)> {
    let mut sets = args.sets.clone();
    sets.extend(args.hidden.map(|h| format!("model.hidden={h}")));
    sets.extend(args.seed.map(|s| format!("train.seed={s}")));
    let config = TrainConfig::load(args.config_path(), &sets)?.check()?;
    let name = config.name.clone().unwrap_or_else(|| {
        args.config_path()
            .file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    // Without --out the name is a folder under runs/: it must stay there.
    if args.out.is_none()
        && let Some(problem) = folder_name_problem("name", &name)
    {
        bail!("{}: {problem}, or give --out", args.config_path().display());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(&name).join(format!(
            "h{}-seed{}",
            config.model.hidden, config.train.seed
        ))
    });
    Ok((config, name, out))
}

/// The lock file of a folder `realbias train` is training, held by its process (refreshed
/// while it lives, taken over once it is stale like a sweep unit's).
pub const TRAIN_LOCK: &str = "train.lock";

pub fn command(args: TrainArgs) -> Result<()> {
    let (config, name, out) = resolve(&args)?;
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
    let data = with_fetch(&args.dir, || {
        Ok(prepare_data(
            &config.data,
            args.dir.data_dir.as_deref(),
            config.train.seed,
        )?)
    })?;
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
    // One process trains a folder at a time: two trains started together both finished and
    // the second silently replaced the first's result.json.
    let lock_path = out.join(TRAIN_LOCK);
    let held = match lock::try_lock(&lock_path)? {
        Ok(lock) => lock,
        Err(owner) => bail!(
            "{} is being trained by {owner} (lock {}): wait for it, or give another --out",
            out.display(),
            lock_path.display()
        ),
    };
    if out.join("result.json").exists() {
        bail!(
            "{} already holds a finished run (result.json); choose another --out or remove it",
            out.display()
        );
    }
    let view = RunView::new(args.plain, out.clone()).with_tensorboard(config.train.tensorboard);
    // A checkpoint in the folder resumes the run; a killed run restarts from its last one.
    let slot = CheckpointSlot {
        dir: out.clone(),
        discard_mismatched: args.force,
    };
    let mut trainer =
        Trainer::new(&config, std::sync::Arc::new(data), &device).with_checkpoint(slot);
    if let Some((renderer, interrupter)) = view.dashboard() {
        trainer = trainer.with_dashboard(renderer, interrupter);
    }
    let (run, mut view) = trainer.run_with(view);
    view.finish(); // give the terminal back before printing anything more
    let run = run?;
    if run.result.stop_reason == StopReason::Interrupted {
        println!(
            "interrupted after {} epochs; the run is kept in {} (history so far in {}): run the same command to resume it",
            run.result.epochs,
            out.join(CHECKPOINT_FILE).display(),
            out.join("history.csv").display()
        );
        drop(held); // exit skips destructors: the lock would be left behind
        std::process::exit(130);
    }
    write_run(&out, &run)?;
    print_result(&run.result);
    let networks = match config.train.save_networks {
        true => format!(", {}", out.join(NETWORK_FILE).display()),
        false => String::new(),
    };
    println!(
        "wrote {}, {}{networks}",
        out.join("result.json").display(),
        out.join("history.csv").display()
    );
    Ok(())
}

fn print_result(r: &RunResult) {
    // The final network is "at convergence" only where the stop rule fired.
    let when = match r.stop_reason {
        StopReason::Converged => "at convergence",
        StopReason::MaxEpochs => "at the epoch cap",
        StopReason::Interrupted => "when stopped",
        StopReason::Diverged => "when it diverged",
        StopReason::Stalled => "when its line search stalled",
    };
    println!(
        "stopped ({:?}) after {} epochs in {:.1}s: train error {:.2}%, test error {:.2}% {when}, {:.2}% with early stopping (epoch {}); zero training error {}",
        r.stop_reason,
        r.epochs,
        r.wall_seconds,
        100.0 * r.train_error,
        100.0 * r.test_error,
        100.0 * r.early_stop_test_error,
        r.early_stop_epoch,
        r.epochs_to_zero_train_error
            .map_or("never reached".into(), |e| format!("first at epoch {e}"))
    );
    if let Some(n) = r.gradient_evaluations {
        println!("{n} full-batch function and gradient evaluations (line searches included)");
    }
}

//! `realbias`: the command line. Argument definitions and dispatch; each command lives in
//! `commands/`, the terminal views in `views/`.

mod commands;
mod preview;
mod views;

use clap::{Parser, Subcommand};

use commands::{bench, data, inspect, run, slurm, status, tensorboard, train};
use realbias_experiments::ExperimentError;

/// `--version`: the version and the backend this binary was built with (a cargo feature).
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (backend: {})",
        env!("CARGO_PKG_VERSION"),
        realbias_train::backend::backend_name()
    )
});

#[derive(Parser)]
#[command(
    name = "realbias",
    version = VERSION.as_str(),
    about = "Reproduce and extend Neyshabur, Tomioka & Srebro (2015), \"In Search of the Real Inductive Bias\""
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The backend to run on: flex (CPU, the default build), ndarray (CPU) or wgpu (GPU). A
    /// backend is chosen when the binary is built; this checks that it is the one wanted, and
    /// says how to rebuild if it is not.
    #[arg(long, global = true, value_name = "NAME")]
    backend: Option<String>,
}

/// `Err` saying how to rebuild when `wanted` is not the backend this binary was built with.
fn check_backend(wanted: &str) -> Result<(), String> {
    let built = realbias_train::backend::backend_name();
    let features = match wanted {
        "flex" => "",
        "ndarray" => " --no-default-features --features ndarray",
        "wgpu" => " --features wgpu",
        other => {
            return Err(format!(
                "--backend {other}: unknown backend; use flex, ndarray or wgpu"
            ));
        }
    };
    match wanted == built {
        true => Ok(()),
        false => Err(format!(
            "--backend {wanted}: this binary was built with the {built} backend; rebuild it with `cargo install --path crates/cli{features}` (or `cargo build --release{features}`)"
        )),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, preview and download datasets.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// One training run of the paper's protocol.
    Train(train::TrainArgs),
    /// A whole experiment: a width sweep (a config with a [sweep] section), or Section 3's
    /// matrix factorization / Section 4's convex neural net (`kind = ...`): plan, train,
    /// summarize, plot. Re-running the same command resumes: finished runs are skipped.
    Run(run::RunArgs),
    /// Redraw the figures and tables of an experiment folder from its saved results.
    /// Exits non-zero when units of the plan are missing, unless --partial is given.
    Plot {
        /// The experiment folder (OUT/<experiment>).
        dir: std::path::PathBuf,
        /// Accept a folder whose plan has not finished (its files are marked partial).
        #[arg(long)]
        partial: bool,
    },
    /// Print an experiment folder's report (markdown); exits non-zero when units of the plan
    /// are missing, unless --partial is given.
    Report {
        /// The experiment folder (OUT/<experiment>).
        dir: std::path::PathBuf,
        /// Accept a folder whose plan has not finished (the report says it is partial).
        #[arg(long)]
        partial: bool,
    },
    /// Which complexity measure ranks a sweep's networks like their generalization (Kendall's
    /// τ, granulated τ): writes measures.csv, measures.md and the figure, from saved results.
    Measures {
        /// The experiment folder (OUT/<experiment>) of a width sweep; several with --robust.
        #[arg(required = true)]
        dirs: Vec<std::path::PathBuf>,
        /// First compute every finished run's measures again from its saved networks
        /// (network.safetensors) and its data, no training, and rewrite its result.json; this
        /// adds the PAC-Bayes flatness measures.
        #[arg(long)]
        recompute: bool,
        /// With --recompute: also the runs that already carry the flatness measures (by
        /// default a recompute resumes, leaving those as they are).
        #[arg(long, requires = "recompute")]
        force: bool,
        /// With --recompute: runs recomputed at once, one per thread.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256), requires = "recompute")]
        jobs: u16,
        /// Rank the measures by their sign-error over environments of runs that differ in one
        /// hyperparameter (Dziugaite et al. 2020), over all the folders: writes robust.md,
        /// robust.csv and robust.png.
        #[arg(long)]
        robust: bool,
        /// Where --robust writes (default: the one folder given).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        data: data::DataDir,
    },
    /// An experiment as a Slurm job chain: prepare, a job array of shards, finalize.
    Slurm(slurm::SlurmArgs),
    /// Units planned / finished / claimed (by whom) / failed in an experiment folder.
    Status {
        /// The experiment folder (OUT/<experiment>).
        dir: std::path::PathBuf,
    },
    /// Training throughput of the real training path on synthetic data, against this
    /// machine's measured matrix-multiply peak.
    Bench(bench::BenchArgs),
    /// Every run's history.csv under a folder (one run, or an experiment) as TensorBoard event
    /// files: losses, errors, norms, step size and momentum per epoch.
    Tensorboard {
        /// A run folder or an experiment folder.
        dir: std::path::PathBuf,
        /// Where the event files go, one folder per run (default: DIR/tb).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Some(Err(e)) = cli.backend.as_deref().map(check_backend) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    // Checked before any command: a lease that silently fell back to the default would let
    // a live holder's lock look stale, or a dead one's block its unit for too long.
    let variables = realbias_experiments::lock::check_lease_variable()
        .and_then(|()| views::interrupt::stop_grace().map(|_| ()));
    if let Err(e) = variables {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let result = match cli.command {
        Command::Data { command } => data::command(command),
        Command::Train(args) => train::command(args),
        Command::Run(args) => run::command(args),
        Command::Plot { dir, partial } => inspect::plot(&dir, partial),
        Command::Report { dir, partial } => inspect::report(&dir, partial),
        Command::Measures {
            dirs,
            recompute,
            force,
            jobs,
            robust,
            out,
            data,
        } => {
            let recompute = inspect::Recompute {
                on: recompute,
                force,
                jobs: jobs as usize,
            };
            match robust {
                true => inspect::robust_measures(&dirs, recompute, out.as_deref(), &data),
                false => match &dirs[..] {
                    [dir] => inspect::measures(dir, recompute, &data),
                    _ => Err(anyhow::anyhow!(
                        "measures takes one folder, or several with --robust"
                    )),
                },
            }
        }
        Command::Slurm(args) => slurm::command(args),
        Command::Status { dir } => status::command(&dir),
        Command::Bench(args) => bench::command(args),
        Command::Tensorboard { dir, out } => tensorboard::command(&dir, out.as_deref()),
    };
    if let Err(e) = result {
        // A stop the user asked for is not a failure: 130, as for the training itself.
        if let Some(ExperimentError::Interrupted(_)) = e.downcast_ref::<ExperimentError>() {
            eprintln!("{e}");
            std::process::exit(130);
        }
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes in one line, each cause once: many errors already print their
/// source in their own message ("...: cannot read: No such file (os error 2)").
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The arguments of `command` and its subcommands without a help line, as `path: --arg`.
    fn undocumented(command: &clap::Command, path: &str) -> Vec<String> {
        let here = format!("{path} {}", command.get_name());
        let mut missing: Vec<String> = command
            .get_arguments()
            .filter(|a| !["help", "version"].contains(&a.get_id().as_str()))
            .filter(|a| a.get_help().is_none())
            .map(|a| format!("{here}: {}", a.get_id()))
            .collect();
        if command.get_about().is_none() && !path.is_empty() {
            missing.push(format!("{here}: (no about)"));
        }
        for sub in command.get_subcommands() {
            missing.extend(undocumented(sub, &here));
        }
        missing
    }

    #[test]
    fn every_command_and_argument_has_help() {
        let missing = undocumented(&super::Cli::command(), "");
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}

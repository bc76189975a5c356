//! `realbias slurm`: an experiment as a Slurm job chain. A prepare job (config and data
//! checks, the folder claimed, censoring labels), a job array of shards depending on it, each
//! `realbias run --shard $SLURM_ARRAY_TASK_ID/N`, and a finalize job writing the summary, report
//! and figures. Assumes `--out` and the data folder are on a filesystem every node shares.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use realbias_data::resolve_data_dir;
use realbias_experiments::registry;
use realbias_train::files::write_atomic;

#[derive(Args)]
pub struct SlurmArgs {
    /// The experiment config (see configs/).
    config: PathBuf,
    /// Where experiment folders go (on a shared filesystem).
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Shards of the job array.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// CPUs per shard (the shard's threads).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_task: u32,
    /// Time limit per shard (Slurm's format, e.g. 4:00:00).
    #[arg(long, default_value = "24:00:00")]
    time: String,
    #[arg(long)]
    partition: Option<String>,
    #[arg(long)]
    account: Option<String>,
    /// Another `#SBATCH` line for every job, e.g. --extra '--mem=8G' (repeatable).
    #[arg(long)]
    extra: Vec<String>,
    /// Override any config value, as for `realbias run` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Data folder (default: $REALBIAS_DATA, else ./datasets), as every node sees it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds before a shard's time limit at which Slurm asks it to stop (SIGTERM): it
    /// checkpoints its runs in flight and releases its locks. 0: no early warning (Slurm's
    /// own SIGTERM at the limit, KillWait seconds before SIGKILL, is then all it gets).
    #[arg(long, default_value_t = 120)]
    warn_seconds: u32,
    /// A shard stopped by its time limit or preempted goes back in the queue and resumes
    /// from its checkpoints (`#SBATCH --requeue`, and the shard requeues itself once it has
    /// stopped on the early warning).
    #[arg(long)]
    requeue: bool,
    /// Submit the chain with sbatch (otherwise only write the job scripts).
    #[arg(long)]
    submit: bool,
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// The `#SBATCH` header of one job (sbatch reads directives only before the first command,
/// so `more` directives come here too).
fn header(args: &SlurmArgs, name: &str, log: &Path, cpus: u32, more: &[String]) -> String {
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={name}"),
        format!("#SBATCH --output={}", log.display()),
        format!("#SBATCH --cpus-per-task={cpus}"),
        format!("#SBATCH --time={}", args.time),
    ];
    lines.extend(
        args.partition
            .iter()
            .map(|p| format!("#SBATCH --partition={p}")),
    );
    lines.extend(
        args.account
            .iter()
            .map(|a| format!("#SBATCH --account={a}")),
    );
    lines.extend(args.extra.iter().map(|e| format!("#SBATCH {e}")));
    lines.extend(more.iter().map(|m| format!("#SBATCH {m}")));
    lines.push("set -euo pipefail".into());
    lines.join("\n") + "\n"
}

/// The three job scripts, as (file name, text).
fn scripts(args: &SlurmArgs, name: &str, folder: &Path) -> Result<Vec<(&'static str, String)>> {
    let bin = std::env::current_exe().context("cannot find the realbias binary")?;
    let logs = folder.join("slurm").join("logs");
    let mut run = vec![
        quote(&bin.to_string_lossy()),
        "run".into(),
        quote(&absolute(&args.config)?.to_string_lossy()),
        "--out".into(),
        quote(&absolute(&args.out)?.to_string_lossy()),
        "--data-dir".into(),
        quote(&absolute(&resolve_data_dir(args.data_dir.as_deref()))?.to_string_lossy()),
    ];
    for s in &args.sets {
        run.extend(["--set".to_string(), quote(s)]);
    }
    let run = run.join(" ");
    let n = args.shards;
    let bin = quote(&bin.to_string_lossy());
    let prepare_log = logs.join("prepare-%j.out");
    let prepare = header(args, &format!("{name}-prepare"), &prepare_log, 1, &[])
        + &format!("exec {run} --prepare-only\n");
    let shard_log = logs.join("shard-%A_%a.out");
    let threads = "--jobs 1 --threads \"${SLURM_CPUS_PER_TASK:-1}\"";
    let command = format!("{run} --shard \"$SLURM_ARRAY_TASK_ID/{n}\" {threads}");
    let shards = header(
        args,
        &format!("{name}-shard"),
        &shard_log,
        args.cpus_per_task,
        &shard_directives(args),
    ) + &shard_body(&command, args.requeue);
    let finalize_log = logs.join("finalize-%j.out");
    let finalize = header(args, &format!("{name}-finalize"), &finalize_log, 1, &[])
        + &format!("exec {bin} plot {}\n", quote(&folder.to_string_lossy()));
    Ok(vec![
        ("prepare.sbatch", prepare),
        ("shards.sbatch", shards),
        ("finalize.sbatch", finalize),
    ])
}

/// The shard array's own `#SBATCH` lines: the array, the early warning, the requeue.
fn shard_directives(args: &SlurmArgs) -> Vec<String> {
    let mut lines = vec![format!("--array=0-{}", args.shards - 1)];
    // SIGTERM before the time limit, to the batch shell: the shard stops within a mini-batch,
    // checkpoints its runs in flight and releases its locks instead of being killed.
    if args.warn_seconds > 0 {
        lines.push(format!("--signal=B:TERM@{}", args.warn_seconds));
    }
    if args.requeue {
        // Every start of a requeued shard writes to the same log: keep the earlier ones.
        lines.extend(["--requeue".into(), "--open-mode=append".into()]);
    }
    lines
}

/// The shard's commands. Without requeueing, realbias replaces the shell (`exec`) and gets
/// the signals itself. With it, the shell passes the warning on, waits for realbias to stop
/// (exit 130: stopped with runs unfinished, their checkpoints written) and requeues the
/// shard, which then resumes from the checkpoints.
fn shard_body(command: &str, requeue: bool) -> String {
    if !requeue {
        return format!("exec {command}\n");
    }
    format!(
        r#"{command} &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM
status=0
wait "$pid" || status=$?
# The trap interrupts `wait`: wait again for realbias's own exit status.
while kill -0 "$pid" 2>/dev/null; do status=0; wait "$pid" || status=$?; done
if [ "$status" -eq 130 ]; then
    echo "stopped with runs unfinished: requeueing $SLURM_JOB_ID to resume from the checkpoints"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
"#
    )
}

/// `sbatch --parsable ARGS SCRIPT`: the job id.
fn sbatch(extra: &[String], script: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .output()
        .context("cannot run sbatch: is Slurm installed and on PATH?")?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `--parsable` prints `id` or `id;cluster`; the id is the next job's dependency.
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().split(';').next() {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => bail!(
            "sbatch {} printed no job id (output: {:?})",
            script.display(),
            text.trim()
        ),
    }
}

pub fn command(args: SlurmArgs) -> Result<()> {
    // The config is checked here, before anything is written or submitted.
    let exp = registry::load(&args.config, &args.sets)?;
    let folder = absolute(&args.out)?.join(exp.name());
    let slurm = folder.join("slurm");
    std::fs::create_dir_all(slurm.join("logs"))
        .with_context(|| format!("cannot create {}", slurm.display()))?;
    let mut paths = Vec::new();
    for (file, text) in scripts(&args, exp.name(), &folder)? {
        let path = slurm.join(file);
        write_atomic(&path, text.as_bytes())?;
        println!("wrote {}", path.display());
        paths.push(path);
    }
    if !args.submit {
        println!(
            "submit with: realbias slurm ... --submit (or sbatch the scripts in order, each --dependency=afterok on the previous)"
        );
        return Ok(());
    }
    let prepare = sbatch(&[], &paths[0])?;
    let shards = sbatch(&[format!("--dependency=afterok:{prepare}")], &paths[1])?;
    let finalize = sbatch(
        &[
            format!("--dependency=afterok:{shards}"),
            "--kill-on-invalid-dep=yes".into(),
        ],
        &paths[2],
    )?;
    println!("prepare job {prepare}");
    println!("shards job array {shards} (tasks 0-{})", args.shards - 1);
    println!("finalize job {finalize}");
    println!("watch: squeue -j {prepare},{shards},{finalize}");
    println!("       sacct -j {shards} --format=JobID,State,Elapsed,ExitCode");
    println!("       realbias status {}", folder.display());
    println!(
        "a failed or timed-out shard I resumes alone: sbatch --array=I {} ; then sbatch {}",
        paths[1].display(),
        paths[2].display()
    );
    Ok(())
}

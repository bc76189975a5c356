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
use realbias_train::config::read_config;
use realbias_train::run_files::files::write_atomic;

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
    /// The partition (queue) every job asks for.
    #[arg(long)]
    partition: Option<String>,
    /// The account every job is charged to.
    #[arg(long)]
    account: Option<String>,
    /// Another `#SBATCH` line for every job, e.g. --extra '--mem=8G' (repeatable).
    #[arg(long, allow_hyphen_values = true)]
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

/// `value` as one argument of an `#SBATCH` line: sbatch splits those lines at spaces, ends
/// them at an unquoted `#`, and takes `"` quotes and `\\` escapes.
fn directive_value(what: &str, value: &str) -> Result<String> {
    if value.chars().any(char::is_control) {
        bail!("{what} {value:?} holds a control character, which an #SBATCH line cannot carry");
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// An `#SBATCH --key=value` line, its value quoted.
fn directive(key: &str, value: &str) -> Result<String> {
    Ok(format!(
        "#SBATCH --{key}={}",
        directive_value(&format!("--{key}"), value)?
    ))
}

/// An `--extra` line: `--key=value` gets its value quoted, a bare `--flag` stays as it is.
/// The key is sbatch's option syntax, `--[a-z0-9-]+`, and nothing else: a newline in it
/// would end the directive block and start a shell command in every job script, a space
/// or `#` would cut the directive short.
fn extra_directive(extra: &str) -> Result<String> {
    let Some(option) = extra.strip_prefix("--").filter(|o| !o.is_empty()) else {
        bail!("--extra {extra:?}: expected an sbatch option such as --mem=8G");
    };
    let (key, value) = match option.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (option, None),
    };
    if key.is_empty() {
        bail!("--extra {extra:?}: expected an sbatch option such as --mem=8G");
    }
    if let Some(bad) = key.chars().find(|c| !is_option_char(*c)) {
        bail!(
            "--extra {extra:?}: the option name --{key} holds {bad:?}; sbatch options are              lowercase letters, digits and '-' (write an option with a value as --key=value,              e.g. --mem=8G)"
        );
    }
    match value {
        Some(value) => directive(key, value),
        None => Ok(format!("#SBATCH --{key}")),
    }
}

/// A character of an sbatch option's name.
fn is_option_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// A log file name for `--output`: `%` in the folder is escaped (`%%`), `%j`-style patterns
/// in `file` are Slurm's.
fn log_pattern(logs: &Path, file: &str) -> String {
    format!("{}/{file}", logs.to_string_lossy().replace('%', "%%"))
}

/// The `#SBATCH` header of one job (sbatch reads directives only before the first command,
/// so `more` directives come here too).
fn header(args: &SlurmArgs, name: &str, log: &str, cpus: u32, more: &[String]) -> Result<String> {
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        directive("job-name", name)?,
        directive("output", log)?,
        format!("#SBATCH --cpus-per-task={cpus}"),
        directive("time", &args.time)?,
    ];
    if let Some(p) = &args.partition {
        lines.push(directive("partition", p)?);
    }
    if let Some(a) = &args.account {
        lines.push(directive("account", a)?);
    }
    for e in &args.extra {
        lines.push(extra_directive(e)?);
    }
    lines.extend(more.iter().map(|m| format!("#SBATCH {m}")));
    lines.push("set -euo pipefail".into());
    Ok(lines.join("\n") + "\n")
}

/// Whether `time` is one of Slurm's time-limit formats: minutes, minutes:seconds,
/// hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds, or
/// `INFINITE` / `UNLIMITED`.
fn slurm_time(time: &str) -> bool {
    if ["infinite", "unlimited"].contains(&time.to_ascii_lowercase().as_str()) {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match time.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, time),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    days.is_none_or(digits) && parts.len() <= 3 && parts.iter().all(|p| digits(p))
}

/// Everything checked before anything is written: the time limit, the data folder every node
/// must see, and that every shard gets a unit.
fn check(args: &SlurmArgs, units: usize) -> Result<PathBuf> {
    if !slurm_time(&args.time) {
        bail!(
            "--time {:?} is not a Slurm time limit: use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
            args.time
        );
    }
    let data = absolute(&resolve_data_dir(args.data_dir.as_deref()))?;
    if !data.is_dir() {
        bail!(
            "data folder {} does not exist: give --data-dir (or REALBIAS_DATA) as every node sees it",
            data.display()
        );
    }
    if args.shards as usize > units {
        bail!(
            "--shards {} for {units} unit(s): at most {units} shards, or some would have nothing to do",
            args.shards
        );
    }
    Ok(data)
}

/// The three job scripts, as (file name, text); every job runs the config's snapshot.
fn scripts(
    args: &SlurmArgs,
    name: &str,
    folder: &Path,
    (snapshot, data): (&Path, &Path),
) -> Result<Vec<(&'static str, String)>> {
    let bin = std::env::current_exe().context("cannot find the realbias binary")?;
    let logs = folder.join("slurm").join("logs");
    let run = [
        quote(&bin.to_string_lossy()),
        "run".into(),
        quote(&snapshot.to_string_lossy()),
        "--out".into(),
        quote(&absolute(&args.out)?.to_string_lossy()),
        "--data-dir".into(),
        quote(&data.to_string_lossy()),
    ]
    .join(" ");
    let n = args.shards;
    let bin = quote(&bin.to_string_lossy());
    let prepare_log = log_pattern(&logs, "prepare-%j.out");
    let prepare = header(args, &format!("{name}-prepare"), &prepare_log, 1, &[])?
        + &format!("exec {run} --prepare-only\n");
    let shard_log = log_pattern(&logs, "shard-%A_%a.out");
    let threads = "--jobs 1 --threads \"${SLURM_CPUS_PER_TASK:-1}\"";
    let command = format!("{run} --shard \"$SLURM_ARRAY_TASK_ID/{n}\" {threads}");
    let shards = header(
        args,
        &format!("{name}-shard"),
        &shard_log,
        args.cpus_per_task,
        &shard_directives(args),
    )? + &shard_body(&command, args.requeue);
    // The finalize job fails (`plot` exits non-zero) when any unit of the plan is missing.
    let finalize_log = log_pattern(&logs, "finalize-%j.out");
    let finalize = header(args, &format!("{name}-finalize"), &finalize_log, 1, &[])?
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

/// Where the chain's copy of the config lives.
pub const SNAPSHOT_FILE: &str = "config.toml";

pub fn command(args: SlurmArgs) -> Result<()> {
    // Everything is checked here, before anything is written or submitted.
    // Read once: the checks, the plan and the chain's copy are all of this text.
    let text = read_config(&args.config)?;
    let exp = registry::parse(&text, &args.config, &args.sets)?;
    let folder = absolute(&args.out)?.join(exp.name());
    let data = check(&args, exp.plan(&folder).len())?;
    let snapshot_text = registry::snapshot(&text, &args.config, &args.sets, exp.as_ref())?;
    let slurm = folder.join("slurm");
    let snapshot = slurm.join(SNAPSHOT_FILE);
    let texts = scripts(&args, exp.name(), &folder, (&snapshot, &data))?;
    std::fs::create_dir_all(slurm.join("logs"))
        .with_context(|| format!("cannot create {}", slurm.display()))?;
    write_atomic(&snapshot, snapshot_text.as_bytes())?;
    println!("wrote {} (the config every job runs)", snapshot.display());
    let mut paths = Vec::new();
    for (file, text) in texts {
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
    // A failed prepare must not leave the array pending for ever.
    let shards = sbatch(
        &[
            format!("--dependency=afterok:{prepare}"),
            "--kill-on-invalid-dep=yes".into(),
        ],
        &paths[1],
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_options_keep_their_value_quoted() {
        assert_eq!(extra_directive("--mem=8G").unwrap(), "#SBATCH --mem=\"8G\"");
        assert_eq!(
            extra_directive("--exclusive").unwrap(),
            "#SBATCH --exclusive"
        );
        assert_eq!(
            extra_directive("--constraint=a b#c").unwrap(),
            "#SBATCH --constraint=\"a b#c\""
        );
    }

    /// Every class of character that could end a directive, start a command or split the
    /// line is refused in the option's name: line breaks, blanks, comment and shell
    /// metacharacters, quotes, escapes, uppercase and non-ASCII lookalikes.
    #[test]
    fn an_extra_option_name_cannot_carry_a_command() {
        let classes = [
            ("newline", "--x\ntouch PWNED\n#=1"),
            ("carriage return", "--x\rtouch PWNED=1"),
            ("space", "--mem 8G"),
            ("tab", "--mem\t8G"),
            ("comment", "--x#y=1"),
            ("semicolon", "--x;touch PWNED=1"),
            ("ampersand", "--x&&touch=1"),
            ("pipe", "--x|sh=1"),
            ("dollar", "--$(touch PWNED)=1"),
            ("backtick", "--`touch PWNED`=1"),
            ("quote", "--x'=1"),
            ("double quote", "--x\"=1"),
            ("backslash", "--x\\=1"),
            ("redirect", "--x>f=1"),
            ("uppercase", "--MEM=8G"),
            ("non-ASCII", "--mém=8G"),
            ("NUL", "--x\0=1"),
            ("empty", "--=8G"),
        ];
        for (class, extra) in classes {
            let e = extra_directive(extra).err();
            assert!(e.is_some(), "{class}: {extra:?} was accepted");
        }
        // The value keeps its own check: no control character.
        assert!(extra_directive("--comment=a\nb").is_err());
    }
}

//! `realbias slurm` against a real single-node Slurm cluster (scripts/slurm-local.sh, started
//! by .ci/run): the sharded job chain reproduces the local run's summary byte for byte, also
//! when a shard is cancelled mid-run and re-submitted alone. Ignored by a plain `cargo test`
//! (listed with the reason); `-- --include-ignored` runs them, and then a missing cluster or
//! dataset fails them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cluster has 2 CPUs: one test's jobs at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

fn realbias() -> Command {
    Command::new(env!("CARGO_BIN_EXE_realbias"))
}

/// Why the tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    let data = std::env::var_os("REALBIAS_DATA").map(PathBuf::from);
    if !data.is_some_and(|d| d.join("mnist").is_dir()) {
        return Some("REALBIAS_DATA does not point at a folder with mnist/".into());
    }
    match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => None,
        Ok(o) => Some(format!(
            "sinfo answers no cluster: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no Slurm client (sinfo: {e})")),
    }
}

/// The cluster to this test alone; a test that asked for it fails where there is none.
fn cluster() -> std::sync::MutexGuard<'static, ()> {
    if let Some(why) = unavailable() {
        panic!("{why} (start a cluster with scripts/slurm-local.sh start DIR)");
    }
    CLUSTER.lock().unwrap_or_else(|p| p.into_inner())
}

fn succeed(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn write_config(dir: &Path, hidden: &str, epochs: usize) -> PathBuf {
    let path = dir.join("cluster.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"cluster\"\n[data]\ndataset = {{ kind = \"mnist\" }}\nsubset = {{ train = 2000, validation = 2000 }}\n[train]\nmax_epochs = {epochs}\n[sweep]\nhidden = {hidden}\nrepetitions = 2\n"
        ),
    )
    .unwrap();
    path
}

/// The summary of the same sweep run locally on one thread (as each shard runs).
fn local_summary(config: &Path, out: &Path) -> Vec<u8> {
    succeed(
        realbias()
            .arg("run")
            .arg(config)
            .arg("--out")
            .arg(out)
            .args(["--jobs", "1", "--threads", "1"]),
    );
    std::fs::read(out.join("cluster/summary.csv")).unwrap()
}

/// The job ids `realbias slurm --submit` printed: (prepare, shards array, finalize).
fn job_ids(stdout: &str) -> (String, String, String) {
    let id = |prefix: &str| -> String {
        let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap();
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (
        id("prepare job "),
        id("shards job array "),
        id("finalize job "),
    )
}

/// Waits until none of `jobs` is in the queue, at most `limit`.
fn wait_for(jobs: &[&str], limit: Duration) {
    let start = Instant::now();
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%i", "-j", &jobs.join(",")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "jobs {jobs:?} still queued after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn submit(config: &Path, out: &Path) -> (String, String, String) {
    let stdout = succeed(
        realbias()
            .arg("slurm")
            .arg(config)
            .arg("--out")
            .arg(out)
            .args(["--shards", "3", "--time", "0:30:00", "--submit"]),
    );
    job_ids(&stdout)
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/slurm-local.sh) and REALBIAS_DATA; run with -- --include-ignored"]
fn the_sharded_job_chain_reproduces_the_local_summary() {
    let _cluster = cluster();
    let tmp = tempfile::tempdir().unwrap();
    // A path with a space and a `#` (an #SBATCH comment unless quoted).
    let root = tmp.path().join("with space #1");
    std::fs::create_dir_all(&root).unwrap();
    let config = write_config(&root, "[16, 64, 256]", 5);
    let local = local_summary(&config, &root.join("local"));
    let out = root.join("cluster");
    let (prepare, shards, finalize) = submit(&config, &out);
    // Queued jobs run the chain's snapshot: an edit of the config now cannot reach them.
    std::fs::write(&config, "name = \"cluster\"\n[sweep]\nhidden = [8]\n").unwrap();
    wait_for(&[&prepare, &shards, &finalize], Duration::from_secs(600));
    let folder = out.join("cluster");
    let summary = std::fs::read(folder.join("summary.csv")).unwrap_or_else(|e| {
        panic!(
            "no summary ({e}); logs in {}",
            folder.join("slurm/logs").display()
        )
    });
    assert_eq!(summary, local, "the cluster's summary is the local one");
    // Every job's log landed where its (quoted) --output said, spaces and `#` included.
    let mut logs: Vec<String> = std::fs::read_dir(folder.join("slurm/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| n.split(['-', '_']).next().unwrap_or_default().to_string())
        .collect();
    logs.sort();
    assert_eq!(logs, ["finalize", "prepare", "shard", "shard", "shard"]);
    let status = succeed(realbias().arg("status").arg(&folder));
    let finished = status
        .lines()
        .find(|l| l.trim_start().starts_with("finished"));
    assert_eq!(
        finished.and_then(|l| l.split_whitespace().nth(1)),
        Some("6"),
        "{status}"
    );
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/slurm-local.sh) and REALBIAS_DATA; run with -- --include-ignored"]
fn a_cancelled_shard_resubmitted_alone_resumes_to_the_same_summary() {
    let _cluster = cluster();
    let tmp = tempfile::tempdir().unwrap();
    // Two runs of about a minute each, sized on this machine: one per shard, so a shard is
    // mid-run when it is cancelled however fast the machine is (a fixed config once
    // finished before the cancel arrived on a faster one).
    let config = long_config(tmp.path(), 120.0);
    let local = local_summary_meanwhile(&config, &tmp.path().join("local"));
    let out = tmp.path().join("cluster");
    let (prepare, shards, finalize) = submit_with(&config, &out, &["--shards", "2"]);
    let folder = out.join("cluster");
    // Cancel shard 1 once it holds its run's lock: it is then training.
    let lock = folder.join("plain/h128/rep1/result.lock");
    let start = Instant::now();
    while !lock.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "shard 1 never started its run:\n{}",
            shard_logs(&folder)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    succeed(Command::new("scancel").arg(format!("{shards}_1")));
    wait_for(&[&prepare, &shards, &finalize], Duration::from_secs(600));
    let status = succeed(realbias().arg("status").arg(&folder));
    assert!(
        !folder.join("plain/h128/rep1/result.json").exists(),
        "shard 1 finished before it was cancelled:\n{status}"
    );
    assert!(
        !folder.join("summary.csv").exists(),
        "finalize must not run after a failed shard:\n{status}"
    );
    // Re-submitted alone, the shard resumes (from its checkpoint), then finalize.
    let slurm = folder.join("slurm");
    succeed(
        Command::new("sbatch")
            .args(["--wait", "--array=1"])
            .arg(slurm.join("shards.sbatch")),
    );
    succeed(
        Command::new("sbatch")
            .arg("--wait")
            .arg(slurm.join("finalize.sbatch")),
    );
    assert_eq!(
        std::fs::read(folder.join("summary.csv")).unwrap(),
        local.join().unwrap(),
        "{}",
        shard_logs(&folder)
    );
}

/// `realbias slurm --submit` with `extra` arguments: the job ids.
fn submit_with(config: &Path, out: &Path, extra: &[&str]) -> (String, String, String) {
    let stdout = succeed(
        realbias()
            .arg("slurm")
            .arg(config)
            .arg("--out")
            .arg(out)
            .args(["--submit"])
            .args(extra),
    );
    job_ids(&stdout)
}

/// The text of every shard log of the experiment folder.
fn shard_logs(folder: &Path) -> String {
    let logs = folder.join("slurm/logs");
    let mut text = String::new();
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("shard-") {
            text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
    }
    text
}

/// The local run's summary, computed on a thread while the cluster works (the cluster
/// jobs use one of the two CPUs).
fn local_summary_meanwhile(config: &Path, out: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let (config, out) = (config.to_path_buf(), out.to_path_buf());
    std::thread::spawn(move || local_summary(&config, &out))
}

/// Two runs of `epochs` epochs that never converge.
fn epochs_config(dir: &Path, epochs: usize) -> PathBuf {
    let path = write_config(dir, "[128]", epochs);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("[train]\n", "[train]\nconverge_epochs = 100000\n"),
    )
    .unwrap();
    path
}

/// Two runs that take about `seconds` of training together on this machine, whatever its
/// speed: the epochs are sized from a 300-epoch calibration run.
fn long_config(dir: &Path, seconds: f64) -> PathBuf {
    let calibration = dir.join("calibration");
    std::fs::create_dir_all(&calibration).unwrap();
    let config = epochs_config(&calibration, 300);
    local_summary(&config, &calibration.join("out"));
    let result = calibration.join("out/cluster/plain/h128/rep0/result.json");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(result).unwrap()).unwrap();
    let per_epoch = result["wall_seconds"].as_f64().unwrap() / 300.0;
    let epochs = (seconds / 2.0 / per_epoch).ceil() as usize;
    epochs_config(dir, epochs.clamp(1000, 50_000))
}

/// Submits a chain of runs that train about 120 s (the calibration may be off by half on a
/// busy machine: still more than the 60 s one start of a shard gets), with
/// `args`, and waits for it (at most `limit`): the experiment folder, and the local run's
/// summary being computed meanwhile.
fn long_chain(
    tmp: &Path,
    args: &[&str],
    limit: Duration,
) -> (PathBuf, std::thread::JoinHandle<Vec<u8>>) {
    let config = long_config(tmp, 120.0);
    let local = local_summary_meanwhile(&config, &tmp.join("local"));
    let out = tmp.join("cluster");
    let (prepare, shards, finalize) = submit_with(&config, &out, args);
    wait_for(&[&prepare, &shards, &finalize], limit);
    (out.join("cluster"), local)
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/slurm-local.sh) and REALBIAS_DATA; run with -- --include-ignored"]
fn a_shard_stopped_by_its_time_limit_resumes_from_its_checkpoints_when_resubmitted() {
    let _cluster = cluster();
    let tmp = tempfile::tempdir().unwrap();
    // No early warning: Slurm's own SIGTERM at the one-minute limit, then SIGKILL KillWait
    // (5 s) later.
    let args = ["--shards", "1", "--time", "1", "--warn-seconds", "0"];
    let (folder, local) = long_chain(tmp.path(), &args, Duration::from_secs(600));
    assert!(
        !folder.join("summary.csv").exists(),
        "{}",
        shard_logs(&folder)
    );
    // (slurmstepd writes the cancellation into the job's log; the cluster keeps no accounting.)
    let logs = shard_logs(&folder);
    assert!(
        logs.contains("DUE TO TIME LIMIT"),
        "the shard was not stopped by its limit: {logs}"
    );
    let kept = (0..2)
        .filter(|r| {
            folder
                .join(format!("plain/h128/rep{r}/checkpoint.safetensors"))
                .is_file()
        })
        .count();
    assert!(kept > 0, "no checkpoint kept:\n{}", shard_logs(&folder));
    // Re-submitted with time enough, the shard resumes from the checkpoints.
    let slurm = folder.join("slurm");
    succeed(
        Command::new("sbatch")
            .args(["--wait", "--time=30"])
            .arg(slurm.join("shards.sbatch")),
    );
    assert!(
        shard_logs(&folder).contains("from its checkpoint"),
        "{}",
        shard_logs(&folder)
    );
    succeed(
        Command::new("sbatch")
            .arg("--wait")
            .arg(slurm.join("finalize.sbatch")),
    );
    assert_eq!(
        std::fs::read(folder.join("summary.csv")).unwrap(),
        local.join().unwrap()
    );
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/slurm-local.sh) and REALBIAS_DATA; run with -- --include-ignored"]
fn a_requeued_shard_resumes_from_its_checkpoints_and_the_chain_finishes() {
    let _cluster = cluster();
    let tmp = tempfile::tempdir().unwrap();
    // The warning comes 60 s before a 2-minute limit: the shard stops, requeues itself and
    // resumes, as often as it takes (Slurm holds a requeued job 2 minutes before it starts).
    let args = [
        "--shards",
        "1",
        "--time",
        "2",
        "--warn-seconds",
        "60",
        "--requeue",
    ];
    let (folder, local) = long_chain(tmp.path(), &args, Duration::from_secs(900));
    let logs = shard_logs(&folder);
    assert!(logs.contains("requeueing"), "{logs}");
    assert!(logs.contains("from its checkpoint"), "{logs}");
    let local = local.join().unwrap();
    assert_eq!(
        std::fs::read(folder.join("summary.csv")).unwrap(),
        local,
        "{logs}"
    );
}

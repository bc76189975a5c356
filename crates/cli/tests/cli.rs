//! The `realbias` binary end to end on tiny generated data.

use std::process::Command;

use common::write_tiny_idx;
use realbias_fixtures as common;

fn realbias() -> Command {
    Command::new(env!("CARGO_BIN_EXE_realbias"))
}

/// Runs `command` and asserts it succeeded, showing its output if not.
fn succeed(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_folder_being_trained_is_refused_to_a_second_train() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 3);
    let out = tmp.path().join("run");
    // This test process holds the folder's lock, as a train in flight would.
    let held = realbias_experiments::lock::try_lock(&out.join("train.lock"))
        .unwrap()
        .unwrap();
    let train = || {
        let mut c = realbias();
        c.args(["train", "--plain", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out);
        c
    };
    let err = fails(&mut train());
    assert!(err.contains("is being trained by"), "{err}");
    assert!(!out.join("result.json").exists());
    drop(held);
    succeed(&mut train());
    assert!(out.join("result.json").is_file());
    assert!(
        !out.join("train.lock").exists(),
        "the lock goes with its train"
    );
}

/// A tiny IDX dataset in `dir` and a train config of `max_epochs` epochs on it.
fn tiny_train_config(dir: &std::path::Path, max_epochs: usize) -> std::path::PathBuf {
    let data = dir.join("tiny");
    write_tiny_idx(&data, 120, 40);
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 40\n[model]\nhidden = 8\n[optim]\nbatch_size = 10\n[train]\nmax_epochs = {max_epochs}\n",
            data.display()
        ),
    )
    .unwrap();
    config
}

/// A train of `config` into `out` that never converges, with `sets`, in flight.
fn endless_train(
    config: &std::path::Path,
    out: &std::path::Path,
    sets: &[&str],
) -> std::process::Child {
    let mut train = realbias();
    train
        .args(["train", "--plain", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(["--set", "train.converge_epochs=1000000"]);
    for set in sets {
        train.args(["--set", set]);
    }
    train
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (a minute at most) until `ready`, then stops `child` with SIGINT; its output.
fn interrupt_when(child: std::process::Child, ready: impl Fn() -> bool) -> std::process::Output {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed().as_secs() < 60, "the run never got there");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// A train stopped by SIGINT exits 130 with its checkpoint, and leaves no lock behind
/// (`exit` skips destructors; the lock used to stay until a later train took it over).
#[test]
fn an_interrupted_train_keeps_its_checkpoint_and_releases_its_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 1_000_000);
    let out = tmp.path().join("run");
    let child = endless_train(&config, &out, &[]);
    let done = interrupt_when(child, || out.join("history.csv").is_file());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    assert!(out.join("checkpoint.safetensors").is_file());
    assert!(
        !out.join("train.lock").exists(),
        "the lock outlived its train"
    );
}

/// `train.tensorboard`: the event file is there while the run is in flight (it never
/// finishes here), and after each epoch it holds the history written with it.
#[test]
fn a_train_with_tensorboard_keeps_its_event_file_up_to_date_while_it_runs() {
    use realbias_train::run_files::tensorboard::{EVENT_FILE, events_of_history};
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 1_000_000);
    let out = tmp.path().join("run");
    let events = out.join("tb").join(EVENT_FILE);
    let child = endless_train(&config, &out, &["train.tensorboard=true"]);
    let epochs =
        || std::fs::read_to_string(out.join("history.csv")).map_or(0, |h| h.lines().count());
    let done = interrupt_when(child, || events.is_file() && epochs() > 3);
    assert_eq!(
        done.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        !out.join("result.json").exists(),
        "written while in flight, not at the end"
    );
    let history_path = out.join("history.csv");
    let history = std::fs::read_to_string(&history_path).unwrap();
    let expected = events_of_history(&history, &history_path).unwrap();
    assert_eq!(
        std::fs::read(&events).unwrap(),
        expected,
        "the events of the last epoch's history"
    );
}

#[test]
fn train_writes_result_and_history_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 5);
    let out = tmp.path().join("run");
    let status = succeed(
        realbias()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .args(["--seed", "3"]),
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    let backend = realbias_train::backend::backend_name();
    assert!(
        stdout.contains(&format!("backend {backend} on the ")),
        "{stdout}"
    );
    assert!(!stdout.contains("Device<"), "no Debug value: {stdout}");
    assert!(
        stdout.contains("% at the epoch cap")
            && stdout.contains("zero training error first at epoch 1"),
        "5 epochs end at the cap: {stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("epoch ")).count(),
        6,
        "one line per epoch, epoch 0 included:\n{stdout}"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    for key in [
        "train_error",
        "train_loss",
        "validation_error",
        "test_error",
        "early_stop_epoch",
        "early_stop_test_error",
        "epochs",
        "stop_reason",
        "wall_seconds",
        "hidden",
        "seed",
        "backend",
        "config",
        "git_revision",
        "u_frobenius",
        "v_frobenius",
        "weight_decay_penalty",
        "group_norm",
        "parameters",
    ] {
        assert!(result.get(key).is_some(), "result.json lacks {key}");
    }
    assert_eq!(result["seed"], 3);
    assert_eq!(result["backend"], backend);
    assert!(result["machine"]["cpu_kernels"].is_string(), "{result}");
    assert_eq!(result["hidden"], 8);
    assert_eq!(
        result["config"]["train"]["seed"], 3,
        "the resolved config is saved"
    );
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 6);

    let before = std::fs::read(out.join("result.json")).unwrap();
    let again = realbias()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a finished run"));
    assert_eq!(
        std::fs::read(out.join("result.json")).unwrap(),
        before,
        "a finished result is never rewritten"
    );
}

#[test]
fn user_errors_are_one_clear_line_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[data]\ndataset = { kind = \"mnist\" }\n[model]\nhidden = -3\n",
    )
    .unwrap();
    let out = realbias()
        .args(["train", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("error: ") && err.contains("bad.toml") && !err.contains("panicked"),
        "{err}"
    );

    let out = realbias()
        .args(["data", "info", "mnist", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("realbias data fetch mnist") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn data_info_json_and_preview() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("tiny");
    write_tiny_idx(&data, 12_000, 40);
    let source = format!("idx:{}", data.display());
    let out = succeed(realbias().args(["data", "info", &source, "--json"]));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["train"]["size"], 2000);
    assert_eq!(info["validation"]["size"], 10_000);
    assert_eq!(info["test"]["size"], 40);
    assert_eq!(info["features"], 100);
    assert_eq!(info["classes"], 4);

    let png = tmp.path().join("preview.png");
    succeed(
        realbias()
            .args(["data", "preview", &source, "--count", "8", "--out"])
            .arg(&png),
    );
    let img = image::open(&png).unwrap();
    assert!(img.width() > 100 && img.height() > 50);
}

/// `realbias bench --json`: one object per width with the keys the issue names and
/// consistent arithmetic (GFLOP/s from the FLOP count and the epoch time).
#[test]
fn bench_prints_one_json_line_per_width() {
    // Two short epochs of 400 examples at the widths `hidden`, as JSON rows.
    let bench = |hidden: &str, extra: &[&str]| -> Vec<serde_json::Value> {
        let args = ["bench", "--hidden", hidden, "--examples", "400"];
        let rest = ["--validation", "100", "--epochs", "2", "--json"];
        let out = succeed(realbias().args(args).args(rest).args(extra));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let lines = bench("4,32", &[]);
    assert_eq!(lines.len(), 2);
    for (row, h) in lines.iter().zip([4.0, 32.0]) {
        for key in [
            "hidden",
            "epoch_seconds",
            "eval_seconds",
            "step_micros",
            "gflops",
            "peak_gflops",
            "backend",
            "threads",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        assert_eq!(row["hidden"].as_f64(), Some(h));
        let seconds = row["epoch_seconds"].as_f64().unwrap();
        let flops = 400.0 * h * (4.0 * 100.0 + 6.0 * 10.0);
        let gflops = row["gflops"].as_f64().unwrap();
        assert!((gflops - flops / seconds / 1e9).abs() <= 1e-9 * gflops.max(1.0));
        assert!((row["step_micros"].as_f64().unwrap() - seconds / 4.0 * 1e6).abs() < 1e-6);
        assert!(row["peak_gflops"].as_f64().unwrap() > 0.0);
        assert_eq!(row["threads"].as_f64(), Some(1.0));
        assert!(row.get("ensemble").is_none(), "one run: no ensemble key");
    }
    // An ensemble of 3: `step_micros` is the whole ensemble's step, the FLOPs three runs'.
    let row = bench("8", &["--ensemble", "3"]).remove(0);
    assert_eq!(row["ensemble"].as_f64(), Some(3.0));
    let seconds = row["epoch_seconds"].as_f64().unwrap();
    let flops = 3.0 * 400.0 * 8.0 * (4.0 * 100.0 + 6.0 * 10.0);
    let gflops = row["gflops"].as_f64().unwrap();
    assert!((gflops - flops / seconds / 1e9).abs() <= 1e-9 * gflops.max(1.0));
    let step = row["step_micros"].as_f64().unwrap();
    assert!((step - seconds / 4.0 * 1e6).abs() < 1e-6);
    assert!((row["step_micros_per_member"].as_f64().unwrap() - step / 3.0).abs() < 1e-6);
    let bad = realbias()
        .args(["bench", "--epochs", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--epochs"));
}

/// Writes a tiny sweep config over `data` and returns its path.
fn tiny_sweep(dir: &std::path::Path, data: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("sweep.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"tiny\"\n[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 40\nsubset = {{ train = 60, validation = 30 }}\n[optim]\nbatch_size = 10\n[train]\nmax_epochs = 3\n[sweep]\nhidden = [2, 4]\n{extra}",
            data.display()
        ),
    )
    .unwrap();
    config
}

/// A temporary folder with tiny data, a sweep config over it and the `runs` folder to use.
fn tiny_folder(extra: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_tiny_idx(&data, 200, 40);
    let config = tiny_sweep(tmp.path(), &data, extra);
    let runs = tmp.path().join("runs");
    (tmp, runs, config)
}

/// `realbias run CONFIG --out OUT`, to add more arguments to.
fn run_into(config: &std::path::Path, out: &std::path::Path) -> Command {
    let mut c = realbias();
    c.arg("run").arg(config).arg("--out").arg(out);
    c
}

fn fails(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

#[test]
fn the_dry_run_says_what_the_run_would_do() {
    let (_tmp, runs, config) = tiny_folder("");
    let run = |extra: &[&str]| {
        let mut c = realbias();
        c.arg("run")
            .arg(&config)
            .arg("--out")
            .arg(&runs)
            .args(extra);
        c
    };
    let dry = succeed(&mut run(&["--dry-run"]));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("0 finished already, 2 to train"), "{text}");
    // Totals per condition and H, an estimate, and no per-unit list unless asked.
    assert!(
        text.contains("| |H=2|H=4|") && text.contains("| plain |1/1|1/1|"),
        "{text}"
    );
    assert!(text.contains("estimated time, at most"), "{text}");
    assert!(!text.contains("plain H=2 rep 0"), "{text}");
    let verbose = succeed(&mut run(&["--dry-run", "--verbose"]));
    let listed = String::from_utf8_lossy(&verbose.stdout);
    assert!(listed.contains("plain H=2 rep 0  to train"), "{listed}");
    assert!(!runs.exists(), "a dry run writes nothing");
    succeed(&mut run(&[]));
    // More repetitions keep every finished run as it is: the folder grows, no --force.
    let grown = ["--set", "sweep.repetitions=2"];
    let dry = succeed(&mut run(&[&grown[..], &["--dry-run"]].concat()));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("every finished run is planned as before")
            && text.contains("2 finished already, 2 to train"),
        "{text}"
    );
    let out = succeed(&mut run(&grown));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("its 2 finished units are kept, 2 added")
            && text.contains("2 trained, 2 already finished"),
        "{text}"
    );
    // A different config against the same folder: the dry run refuses as the run would.
    let changed = ["--set", "sweep.hidden=[2, 8]"];
    let err = fails(&mut run(&[&changed[..], &["--dry-run"]].concat()));
    assert!(err.contains("different config"), "{err}");
    let err = fails(&mut run(&changed));
    assert!(err.contains("different config"), "{err}");
    // With --force it keeps the unchanged run and trains the new one, and says so.
    let forced = succeed(&mut run(&[&changed[..], &["--dry-run", "--force"]].concat()));
    let text = String::from_utf8_lossy(&forced.stdout);
    assert!(text.contains("1 finished already, 1 to train"), "{text}");
    let really = succeed(&mut run(&[&changed[..], &["--force"]].concat()));
    let text = String::from_utf8_lossy(&really.stdout);
    assert!(text.contains("1 trained, 1 already finished"), "{text}");
    // A change that every finished run depends on: --force says what it throws away.
    let relearned = [
        "--set",
        "sweep.hidden=[2, 8]",
        "--set",
        "optim.lr=0.05",
        "--force",
    ];
    let again = succeed(&mut run(&relearned));
    let said = [again.stdout, again.stderr].concat();
    let said = String::from_utf8_lossy(&said);
    assert!(
        said.contains("--force: removed 2 result(s) this config would not produce"),
        "--force says what it removed: {said}"
    );
}

#[test]
fn a_run_that_fails_on_its_data_leaves_no_claim_and_sizes_are_checked_before() {
    let (_tmp, runs, config) = tiny_folder("");
    let too_big = ["--set", "data.subset={ train = 5000, validation = 30 }"];
    for extra in [&["--dry-run"][..], &[]] {
        let err = fails(run_into(&config, &runs).args(too_big).args(extra));
        assert!(err.contains("5000") || err.contains("subset"), "{err}");
    }
    assert!(
        !runs.join("tiny/experiment.toml").exists(),
        "nothing is claimed before the data loads"
    );
    // The corrected run is not refused as "a different config".
    succeed(&mut run_into(&config, &runs));
}

#[test]
fn plot_names_corrupt_results_marks_a_partial_folder_and_writes_nothing_when_none_is_readable() {
    let (_tmp, runs, config) = tiny_folder("");
    succeed(&mut run_into(&config, &runs));
    let dir = runs.join("tiny");
    let corrupt = dir.join("plain/h2/rep0/result.json");
    std::fs::write(&corrupt, "{ torn").unwrap();
    let status = succeed(realbias().arg("status").arg(&dir));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("{}: not a valid result", corrupt.display())),
        "status names the unreadable file:\n{status}"
    );
    // A folder with a unit missing is written, marked partial, and fails without --partial.
    let out = realbias().arg("plot").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&corrupt.display().to_string()), "{err}");
    assert!(
        err.contains("1 of 2 units finished") && err.contains("--partial"),
        "{err}"
    );
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.starts_with("**PARTIAL: 1 of 2 units finished.**"),
        "{report}"
    );
    let missing = std::fs::read_to_string(dir.join("missing.txt")).unwrap();
    assert!(
        missing.contains("H=2 rep 0") && !missing.contains("H=4"),
        "{missing}"
    );
    let out = succeed(realbias().arg("plot").arg(&dir).arg("--partial"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&corrupt.display().to_string()), "{err}");
    let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert_eq!(
        summary.lines().count(),
        2,
        "the readable run only:\n{summary}"
    );
    let err = fails(realbias().arg("report").arg(&dir));
    assert!(err.contains("1 of 2 units"), "{err}");
    let out = succeed(realbias().arg("report").arg(&dir).arg("--partial"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("**PARTIAL"));
    // The run trains the unit again; the complete folder loses its missing.txt.
    succeed(&mut run_into(&config, &runs));
    assert!(!dir.join("missing.txt").exists());
    assert!(
        !std::fs::read_to_string(dir.join("report.md"))
            .unwrap()
            .contains("PARTIAL")
    );
    let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    std::fs::write(&corrupt, "{ torn").unwrap();
    std::fs::write(dir.join("plain/h4/rep0/result.json"), "").unwrap();
    let err = fails(realbias().arg("plot").arg(&dir));
    assert!(err.contains("no finished results"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("summary.csv")).unwrap(),
        summary,
        "a failed plot leaves the summary as it was"
    );
}

#[test]
fn hostile_arguments_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_tiny_idx(&data, 200, 40);
    let config = tiny_sweep(tmp.path(), &data, "");
    for flag in [["--jobs", "0"], ["--threads", "0"]] {
        let out = realbias()
            .arg("run")
            .arg(&config)
            .args(flag)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag[0]), "{err}");
    }
    let train = tmp.path().join("train.toml");
    std::fs::write(
        &train,
        format!(
            "[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 40\n",
            data.display()
        ),
    )
    .unwrap();
    let err = fails(
        realbias()
            .args(["train", "--config"])
            .arg(&train)
            .args(["--hidden", "100000000000", "--plain", "--out"])
            .arg(tmp.path().join("huge")),
    );
    assert!(
        err.contains("H = 100000000000") && err.contains("GiB"),
        "{err}"
    );
    let err = fails(
        realbias()
            .args(["train", "--config"])
            .arg(tmp.path().join("missing.toml")),
    );
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    let bogus = tmp.path().join("bogus.toml");
    std::fs::write(&bogus, "kind = \"bogus\"\n").unwrap();
    let err = fails(realbias().arg("run").arg(&bogus));
    assert!(
        err.contains("unknown kind \"bogus\"") && !err.contains("Some("),
        "{err}"
    );
}

/// Two `realbias run` on one folder at once share the plan: every run is trained by exactly
/// one of them, and the folder ends with the summary of the whole sweep.
#[test]
fn two_processes_on_one_folder_train_every_run_once() {
    let (_tmp, runs, config) = tiny_folder("repetitions = 3\n");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("max_epochs = 3", "max_epochs = 40")
            .replace("hidden = [2, 4]", "hidden = [2, 4, 8, 16]"),
    )
    .unwrap();
    let spawn = || {
        run_into(&config, &runs)
            .args(["--jobs", "1", "--threads", "1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outputs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    // "[i/12] plain H=8 rep 1: train err ..." marks a run this process trained.
    let trained = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with('['))
            .filter_map(|l| {
                l.split_once("] ")
                    .map(|(_, rest)| rest.split(':').next().unwrap().to_string())
            })
            .collect()
    };
    let mut all: Vec<String> = outputs.iter().flat_map(|o| trained(o)).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(
        before,
        all.len(),
        "a run was trained twice:\n{}\n{}",
        outputs[0],
        outputs[1]
    );
    assert_eq!(all.len(), 12, "{}\n{}", outputs[0], outputs[1]);
    let summary = std::fs::read_to_string(runs.join("tiny/summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 1 + 4);
    assert!(
        summary
            .lines()
            .skip(1)
            .all(|l| l.starts_with("plain,") && l.split(',').nth(2) == Some("3")),
        "{summary}"
    );
    // Nothing is left claimed.
    let status = succeed(realbias().arg("status").arg(runs.join("tiny")));
    let status = String::from_utf8_lossy(&status.stdout);
    let count = |what: &str| -> Option<String> {
        let line = status.lines().find(|l| l.trim_start().starts_with(what))?;
        line.split_whitespace().nth(1).map(String::from)
    };
    assert_eq!(count("finished").as_deref(), Some("12"), "{status}");
    assert_eq!(count("claimed").as_deref(), Some("0"), "{status}");
}

#[test]
fn a_config_change_is_refused_while_another_process_works_in_the_folder() {
    let (_tmp, runs, config) = tiny_folder("");
    succeed(&mut run_into(&config, &runs));
    // A live process of this host working in the folder (this test's own pid).
    let sessions = runs.join("tiny/.sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        sessions.join("other.lock"),
        format!("{} {}\n", host.trim(), std::process::id()),
    )
    .unwrap();
    let err = fails(run_into(&config, &runs).args(["--set", "sweep.hidden=[2, 8]", "--force"]));
    assert!(
        err.contains("another process works in this folder"),
        "{err}"
    );
    // The dry run refuses it too, rather than promising what the run then refuses.
    let err = fails(run_into(&config, &runs).args([
        "--set",
        "sweep.hidden=[2, 8]",
        "--force",
        "--dry-run",
    ]));
    assert!(
        err.contains("another process works in this folder"),
        "{err}"
    );
    let recorded = std::fs::read_to_string(runs.join("tiny/experiment.toml")).unwrap();
    assert!(
        recorded.contains("hidden = [2, 4]"),
        "the folder keeps its config:\n{recorded}"
    );
}

#[test]
fn shard_arguments_are_checked_and_empty_shards_exit_cleanly() {
    let (_tmp, runs, config) = tiny_folder("");
    for bad in ["0/0", "3/3", "x"] {
        let out = realbias()
            .arg("run")
            .arg(&config)
            .args(["--shard", bad])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("I/N"),
            "{bad}"
        );
    }
    // 2 runs over 5 shards: three shards are empty and say so.
    let mut empty = 0;
    for i in 0..5 {
        let out = succeed(run_into(&config, &runs).args(["--shard", &format!("{i}/5")]));
        empty += usize::from(String::from_utf8_lossy(&out.stdout).contains("has no units"));
    }
    assert_eq!(empty, 3);
    assert!(
        !runs.join("tiny/summary.csv").exists(),
        "shards do not finalize unless asked"
    );
    succeed(realbias().arg("plot").arg(runs.join("tiny")));
    assert!(runs.join("tiny/summary.csv").exists());
}

/// The revision of the checkout this test binary was built from, as `build.rs` derives it.
fn checkout_revision() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&[
        "status",
        "--porcelain",
        "--",
        "crates",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_empty();
    if dirty { format!("{head}-dirty") } else { head }
}

#[test]
fn the_recorded_revision_is_the_binarys_wherever_it_runs() {
    if std::env::var_os("REALBIAS_REVISION").is_some() {
        return; // a packager's override, not the checkout's
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("tiny");
    write_tiny_idx(&data, 60, 20);
    let config = tmp.path().join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 20\n[model]\nhidden = 4\n[optim]\nbatch_size = 10\n[train]\nmax_epochs = 1\n",
            data.display()
        ),
    )
    .unwrap();
    // From a directory outside any checkout, and from inside another git repository.
    let elsewhere = tmp.path().join("elsewhere");
    let other_repo = tmp.path().join("other-repo");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::create_dir(&other_repo).unwrap();
    // A repository with a commit of its own: a revision looked up at run time would be its.
    let init = Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(&other_repo)
        .status()
        .and_then(|_| {
            Command::new("git")
                .current_dir(&other_repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q"])
                .args(["--allow-empty", "-m", "other"])
                .status()
        });
    let want = checkout_revision();
    for (i, cwd) in [&elsewhere, &other_repo].into_iter().enumerate() {
        if i == 1 && !init.as_ref().is_ok_and(|s| s.success()) {
            continue;
        }
        let out = tmp.path().join(format!("run{i}"));
        succeed(
            realbias()
                .current_dir(cwd)
                .args(["train", "--config"])
                .arg(&config)
                .arg("--out")
                .arg(&out),
        );
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(
            result["git_revision"],
            want.as_str(),
            "run from {}",
            cwd.display()
        );
    }
}

/// Every file under `dir` whose name ends in `.lock`.
/// Every file under `dir` that `keep` accepts.
fn files_under(
    dir: &std::path::Path,
    keep: &dyn Fn(&std::path::Path) -> bool,
) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if keep(&path) {
                found.push(path);
            }
        }
    }
    found
}

fn files_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    files_under(dir, &|p| p.file_name().is_some_and(|n| n == name))
}

fn locks_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    files_under(dir, &|p| p.extension().is_some_and(|e| e == "lock"))
}

#[test]
fn a_sweep_sent_sigterm_stops_soon_leaves_no_lock_and_resumes_to_the_same_summary() {
    let (_tmp, runs, config) = tiny_folder("repetitions = 2\n");
    // Long enough runs (the stop rule never fires) that the signal lands mid-sweep.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(
                "max_epochs = 3",
                "max_epochs = 3000\nconverge_epochs = 10000",
            )
            .replace("hidden = [2, 4]", "hidden = [2, 4, 8, 16]"),
    )
    .unwrap();
    let whole = runs.with_file_name("whole");
    let run = |out: &std::path::Path| {
        let mut c = realbias();
        c.arg("run")
            .arg(&config)
            .arg("--out")
            .arg(out)
            .args(["--jobs", "2", "--threads", "1"]);
        c
    };
    succeed(&mut run(&whole));
    // The stopped sweep checkpoints every 0.2 s, so that a run's checkpoint shows it is past
    // its setup and first epoch; it trains the same numbers.
    let checkpointing = ["--set", "train.checkpoint_seconds=0.2"];
    let child = run(&runs)
        .args(checkpointing)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first run has finished, Slurm's time limit arrives: SIGTERM.
    let started = std::time::Instant::now();
    // (The widest runs go first: the first result is the H = 16 or H = 8 batch's.)
    let any_result = || {
        [16, 8].iter().any(|h| {
            (0..2).any(|r| {
                runs.join(format!("tiny/plain/h{h}/rep{r}/result.json"))
                    .exists()
            })
        })
    };
    // ...and another unit is training: it holds its lock, has no result and has checkpointed
    // an epoch. Were the signal to land between units, or before a unit's first epoch, there
    // would be no state to keep (a lock's age said this once, and failed on a loaded machine,
    // where a unit's setup can take longer than any fixed wait).
    let in_flight = || {
        locks_under(&runs).iter().any(|lock| {
            let dir = lock.parent().unwrap_or(lock);
            !lock.with_extension("json").exists() && dir.join("checkpoint.safetensors").exists()
        })
    };
    while !(any_result() && in_flight()) {
        assert!(
            started.elapsed().as_secs() < 120,
            "no run finished with another in flight"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let signalled = std::time::Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stopping = signalled.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stopping.as_secs() < 15, "took {stopping:?} to stop");
    assert!(
        !out.status.success(),
        "a stopped sweep is not a success: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("stop requested"), "{stderr}");
    assert!(
        !runs.join("tiny/summary.csv").exists(),
        "stopped before the end: {stderr}"
    );
    assert_eq!(locks_under(&runs), Vec::<std::path::PathBuf>::new());
    // The runs in flight kept their state, and resume from it.
    let checkpoints = files_named(&runs, "checkpoint.safetensors");
    assert!(!checkpoints.is_empty(), "no checkpoint kept: {stderr}");
    let status = succeed(realbias().arg("status").arg(runs.join("tiny")));
    let status = String::from_utf8_lossy(&status.stdout);
    let resumable = status
        .lines()
        .find(|l| l.trim_start().starts_with("resumable "));
    assert_eq!(
        resumable.and_then(|l| l.split_whitespace().nth(1)),
        Some(checkpoints.len().to_string().as_str()),
        "{status}"
    );
    let resumed = succeed(run(&runs).args(checkpointing));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(
        said.contains("resumed ") && said.contains("from its checkpoint"),
        "{said}"
    );
    assert_eq!(
        files_named(&runs, "checkpoint.safetensors"),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        std::fs::read(runs.join("tiny/summary.csv")).unwrap(),
        std::fs::read(whole.join("tiny/summary.csv")).unwrap(),
        "resumed after SIGTERM, the summary of an uninterrupted run"
    );
}

#[test]
fn another_hosts_lock_is_respected_while_fresh_and_taken_over_once_its_lease_ran_out() {
    let (_tmp, runs, config) = tiny_folder("ensemble = \"off\"\n");
    // A shard on node-b claimed two units, then its node died: one lock is older than the
    // lease (30 s here), the other was refreshed a moment ago.
    let lock = |unit: &str| runs.join(format!("tiny/plain/{unit}/result.lock"));
    foreign_lock(&lock("h2/rep0"), 45);
    foreign_lock(&lock("h4/rep0"), 0);
    succeed(run_into(&config, &runs).arg("--prepare-only"));
    let status = succeed(
        realbias()
            .env("REALBIAS_LOCK_LEASE", "30")
            .arg("status")
            .arg(runs.join("tiny")),
    );
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("H=2 rep 0 (stale lock of node-b pid 4242 (not refreshed for 45 s"),
        "{status}"
    );
    assert!(status.contains("claimed by node-b pid 4242"), "{status}");
    let out = succeed(
        realbias()
            .env("REALBIAS_LOCK_LEASE", "30")
            .arg("run")
            .arg(&config)
            .arg("--out")
            .arg(&runs),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        runs.join("tiny/plain/h2/rep0/result.json").is_file(),
        "the stale lock was taken over and the unit trained: {stdout}"
    );
    assert!(
        !runs.join("tiny/plain/h4/rep0/result.json").exists(),
        "the fresh lock was respected: {stdout}"
    );
    assert!(stdout.contains("1 held by other processes"), "{stdout}");
    assert!(
        stdout.contains("1 unit(s) held by other live processes, 0 claimed by none"),
        "{stdout}"
    );
}

/// `result.json` without its wall-clock fields, and `history.csv` without its time columns.
fn timeless_run(dir: &std::path::Path) -> (serde_json::Value, Vec<String>) {
    let mut result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
    for key in ["wall_seconds", "seconds_per_epoch"] {
        result[key] = serde_json::Value::Null;
    }
    for net in ["at_convergence", "early_stop"] {
        result["measures"][net]["seconds"] = serde_json::Value::Null;
    }
    let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let rows = history
        .lines()
        .map(|l| l.rsplitn(4, ',').last().unwrap().to_string())
        .collect();
    (result, rows)
}

#[test]
fn a_run_killed_at_random_epochs_and_resumed_ends_as_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("tiny");
    write_tiny_idx(&data, 2000, 200);
    let config = tmp.path().join("wide.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndataset = {{ kind = \"idx\", path = \"{}\" }}\nvalidation = 200\n[model]\nhidden = 256\n[optim]\nbatch_size = 20\nweight_decay = 1e-4\n[train]\nmax_epochs = 120\nconverge_epochs = 1000\ncheckpoint_seconds = 0\n",
            data.display()
        ),
    )
    .unwrap();
    let train = |out: &std::path::Path| {
        let mut c = realbias();
        c.args(["train", "--plain", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(out);
        c
    };
    let whole = tmp.path().join("whole");
    succeed(&mut train(&whole));
    let out = tmp.path().join("killed");
    let epochs_done = || {
        std::fs::read_to_string(out.join("history.csv"))
            .map_or(0, |h| h.lines().count().saturating_sub(2))
    };
    // Epochs drawn once from a fixed seed: each kill lands at or after its epoch.
    let mut resumed_at = Vec::new();
    for target in [9, 41, 77] {
        let mut child = train(&out)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while epochs_done() < target {
            assert!(
                started.elapsed().as_secs() < 300,
                "stuck before epoch {target}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL: nothing runs after it
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if let Some(line) = stdout.lines().find(|l| l.starts_with("resumed at epoch")) {
            resumed_at.push(line.to_string());
        }
        assert!(
            !out.join("result.json").exists(),
            "finished before the kill at {target}"
        );
    }
    let last = succeed(&mut train(&out));
    let stdout = String::from_utf8_lossy(&last.stdout);
    assert!(stdout.contains("resumed at epoch"), "{stdout}");
    assert_eq!(
        resumed_at.len(),
        2,
        "the second and third starts resumed: {resumed_at:?}"
    );
    assert!(
        !out.join("checkpoint.safetensors").exists(),
        "removed once finished"
    );
    assert!(out.join("network.safetensors").is_file());
    let (a, b) = (timeless_run(&out), timeless_run(&whole));
    assert_eq!(a.1, b.1, "history.csv, times aside");
    assert_eq!(a.0, b.0, "result.json, times aside");
}

#[test]
fn slurm_checks_before_writing_quotes_its_directives_and_snapshots_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let spaced = tmp.path().join("with space #1");
    let data = spaced.join("data");
    write_tiny_idx(&data, 200, 40);
    let config = tiny_sweep(&spaced, &data, "");
    let runs = spaced.join("runs");
    let slurm = |extra: &[&str]| {
        let mut c = realbias();
        c.arg("slurm")
            .arg(&config)
            .arg("--out")
            .arg(&runs)
            .args(extra);
        if !extra.contains(&"--shards") {
            c.args(["--shards", "2"]);
        }
        if !extra.contains(&"--data-dir") {
            c.arg("--data-dir").arg(&data);
        }
        c
    };
    for (args, why) in [
        (&["--time", "garbage"][..], "not a Slurm time limit"),
        (&["--time", "1:2:3:4"], "not a Slurm time limit"),
        (&["--shards", "3"], "at most 2 shards"),
        (&["--data-dir", "/nonexistent/realbias"], "does not exist"),
        (&["--extra", "--mem 8G"], "--key=value"),
        (&["--partition", "a\nb"], "control character"),
    ] {
        let err = fails(&mut slurm(args));
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!runs.exists(), "{args:?} wrote {}", runs.display());
    }
    // The README's own spelling of --extra is accepted, and every value is quoted.
    let args = [
        "--extra",
        "--mem=8G",
        "--time",
        "1-12:00",
        "--set",
        "sweep.repetitions=2",
    ];
    succeed(&mut slurm(&args));
    let folder = runs.join("tiny/slurm");
    let shards = std::fs::read_to_string(folder.join("shards.sbatch")).unwrap();
    let logs = runs.join("tiny/slurm/logs").display().to_string();
    for line in [
        "#SBATCH --job-name=\"tiny-shard\"".to_string(),
        format!("#SBATCH --output=\"{logs}/shard-%A_%a.out\""),
        "#SBATCH --time=\"1-12:00\"".into(),
        "#SBATCH --mem=\"8G\"".into(),
    ] {
        assert!(shards.lines().any(|l| l == line), "{line}\n{shards}");
    }
    // The jobs run the snapshot, with the --set applied, not the live config.
    let snapshot = folder.join("config.toml");
    assert!(
        shards.contains(&format!("run '{}'", snapshot.display())),
        "{shards}"
    );
    assert!(!shards.contains("--set"), "{shards}");
    std::fs::write(&config, "garbage").unwrap();
    let dry = succeed(run_into(&snapshot, &runs).arg("--dry-run"));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("experiment tiny ") && text.contains("plan: 4 units"),
        "{text}"
    );
}

#[test]
fn the_dry_run_refuses_an_output_folder_it_cannot_write() {
    let (tmp, _runs, config) = tiny_folder("");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    for out in [file.clone(), file.join("below")] {
        for extra in [&["--dry-run"][..], &[]] {
            let err = fails(run_into(&config, &out).args(extra));
            assert!(
                err.contains("cannot write here") && err.contains("a-file"),
                "{err}"
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

#[test]
fn a_stop_while_the_censoring_network_trains_exits_130_and_caches_nothing() {
    let extra = "conditions = [\"censored\"]\ncensor_hidden = 2\ncensor_max_epochs = 1000000\n";
    let (_tmp, runs, config) = tiny_folder(extra);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            "max_epochs = 3",
            "max_epochs = 3\nconverge_epochs = 1000000",
        ),
    )
    .unwrap();
    let dry = succeed(run_into(&config, &runs).arg("--dry-run"));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains(
            "censoring network H0 = 2 on all 240 examples, up to 1000000 epochs: to train first"
        ),
        "the dry run names the work before the units: {text}"
    );
    let child = run_into(&config, &runs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !runs.join("tiny/censor").is_dir() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the censoring never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted while training the censoring network"),
        "{stderr}"
    );
    assert!(
        files_named(&runs, "labels.bin").is_empty(),
        "nothing cached"
    );
    // It trains on every example: it has no validation error to print.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("censoring network, epoch"))
        .collect();
    assert!(!lines.is_empty(), "{stdout}");
    assert!(lines.iter().all(|l| !l.contains("val err")), "{lines:?}");
}

/// One unit whose checkpoint is garbage used to end the whole sweep (and so a whole Slurm
/// shard), leaving the other units untrained. It fails alone: the others train, the run exits
/// non-zero naming it, its `failed.txt` and `realbias status` say why, and a run that can
/// train it (here with --force) clears the record.
#[test]
fn a_unit_that_cannot_start_fails_alone_and_the_others_train() {
    let (_tmp, runs, config) = tiny_folder("");
    let broken = runs.join("tiny/plain/h2/rep0");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("checkpoint.safetensors"), b"not a checkpoint").unwrap();
    let out = run_into(&config, &runs).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed: plain H=2 rep 0") && err.contains("1 unit(s) failed"),
        "{err}"
    );
    assert!(runs.join("tiny/plain/h4/rep0/result.json").is_file());
    let why = std::fs::read_to_string(broken.join("failed.txt")).unwrap();
    assert!(why.contains("cannot resume the run"), "{why}");
    let status = succeed(realbias().arg("status").arg(runs.join("tiny")));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("failed: plain H=2 rep 0") && text.contains("finished       1"),
        "{text}"
    );
    succeed(run_into(&config, &runs).arg("--force"));
    assert!(broken.join("result.json").is_file());
    assert!(!broken.join("failed.txt").exists());
}

/// After a kill, a unit with a checkpoint and a stale lock was listed as "failed (stale
/// lock)", while the next run said "resumed at epoch 30": it is resumable.
#[test]
fn a_killed_unit_with_a_checkpoint_is_listed_as_resumable() {
    let (_tmp, runs, config) = tiny_folder("ensemble = \"off\"\n");
    succeed(run_into(&config, &runs).arg("--prepare-only"));
    let unit = runs.join("tiny/plain/h2/rep0");
    foreign_lock(&unit.join("result.lock"), 45);
    std::fs::write(unit.join("checkpoint.safetensors"), b"any").unwrap();
    let status = succeed(
        realbias()
            .env("REALBIAS_LOCK_LEASE", "30")
            .arg("status")
            .arg(runs.join("tiny")),
    );
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("resumable: plain H=2 rep 0") && status.contains("failed         0"),
        "{status}"
    );
}

/// A kill during a checkpoint write left `.checkpoint.safetensors.PID-N.tmp`, and every killed
/// process its `.sessions/HOST-PID.lock`; nothing ever removed them. `status` lists them, and
/// the run that finishes the folder removes them.
#[test]
fn litter_of_killed_processes_is_shown_and_removed_when_the_folder_finishes() {
    let (_tmp, runs, config) = tiny_folder("ensemble = \"off\"\n");
    succeed(run_into(&config, &runs).arg("--prepare-only"));
    let folder = runs.join("tiny");
    let unit = folder.join("plain/h2/rep0");
    std::fs::create_dir_all(&unit).unwrap();
    let tmp = unit.join(".checkpoint.safetensors.4242-0.tmp");
    let marker = folder.join(".sessions/node-b-4242.lock");
    std::fs::write(&tmp, vec![0u8; 1000]).unwrap();
    age(&tmp, 3600);
    foreign_lock(&marker, 3600);
    let status = succeed(realbias().arg("status").arg(&folder));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("left by killed processes: 2 file(s)") && text.contains("4242-0.tmp"),
        "{text}"
    );
    succeed(&mut run_into(&config, &runs));
    assert!(!tmp.exists() && !marker.exists());
    let status = succeed(realbias().arg("status").arg(&folder));
    assert!(!String::from_utf8_lossy(&status.stdout).contains("left by killed"));
}

/// A bad `--set` was reported as a fault of the config file ("configs/x.toml: invalid config");
/// it is reported as the `--set`, while a bad file is still reported as the file.
#[test]
fn a_bad_set_is_reported_as_the_set() {
    let (_tmp, runs, config) = tiny_folder("");
    let err = fails(run_into(&config, &runs).args(["--dry-run", "--set", "optim.lr=-1"]));
    assert!(
        err.starts_with("error: --set optim.lr=-1 (the config file")
            && err.contains("is valid without it")
            && err.contains("optim.lr = -1 must be > 0"),
        "{err}"
    );
    std::fs::write(&config, "name = \"tiny\"\n[optim]\nlr = -1\n").unwrap();
    let err = fails(run_into(&config, &runs).args(["--dry-run", "--set", "optim.lr=0.1"]));
    assert!(
        !err.contains("--set"),
        "a fault of the file is the file's: {err}"
    );
}

/// `--force` discarded a checkpoint that could not resume the run without a word; it now
/// says which file it discarded and why.
#[test]
fn force_says_which_checkpoint_it_discarded_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 3);
    let out = tmp.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("checkpoint.safetensors"), b"garbage").unwrap();
    let train = || {
        let mut c = realbias();
        c.args(["train", "--plain", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out);
        c
    };
    let err = fails(&mut train());
    assert!(err.contains("--force"), "{err}");
    let done = succeed(train().arg("--force"));
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(
        text.contains("--force: discarded")
            && text.contains("checkpoint.safetensors (it cannot be read"),
        "{text}"
    );
    assert!(out.join("result.json").is_file());
}

/// An invalid REALBIAS_LOCK_LEASE or REALBIAS_STOP_GRACE is an error before any command
/// (exit 2), never a silent fallback to the default.
#[test]
fn invalid_timing_variables_are_refused_before_any_command() {
    for (variable, value) in [
        ("REALBIAS_LOCK_LEASE", "soon"),
        ("REALBIAS_STOP_GRACE", "abc"),
        ("REALBIAS_STOP_GRACE", "-1"),
    ] {
        let out = realbias()
            .env(variable, value)
            .args(["status", "."])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable}={value}: {err}");
        assert!(err.contains(variable), "{err}");
    }
}

/// `measures --recompute` that kept a run's old measures (its networks were missing) exited 0
/// with a table mixing old and new values; it exits 1 naming why, after the table.
#[test]
fn a_recompute_that_kept_old_measures_exits_non_zero() {
    let (_tmp, runs, config) = tiny_folder("");
    succeed(&mut run_into(&config, &runs));
    let folder = runs.join("tiny");
    std::fs::remove_file(folder.join("plain/h2/rep0/network.safetensors")).unwrap();
    let out = realbias()
        .arg("measures")
        .arg(&folder)
        .arg("--recompute")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("kept the old measures of plain/h2/rep0")
            && err.contains("--recompute kept the old measures of 1 run(s)"),
        "{err}"
    );
}

/// Writes a lock of `node-b pid 4242` at `path`, last refreshed `age_secs` ago.
fn foreign_lock(path: &std::path::Path, age_secs: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "node-b 4242 99\n").unwrap();
    age(path, age_secs);
}

/// Sets `path`'s mtime to `secs` ago.
fn age(path: &std::path::Path, secs: u64) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(old).unwrap();
}

/// `realbias train CONFIG` takes the file as an argument, like `run`; `--config` still works,
/// and giving neither or both is a usage error.
#[test]
fn train_takes_its_config_as_an_argument_or_with_config() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 2);
    for (form, out) in [("argument", "a"), ("--config", "b")] {
        let out = tmp.path().join(out);
        let mut c = realbias();
        c.args(["train", "--plain"]);
        match form {
            "argument" => c.arg(&config),
            _ => c.arg("--config").arg(&config),
        };
        succeed(c.arg("--out").arg(&out));
        assert!(out.join("result.json").is_file(), "{form}");
    }
    let neither = realbias().args(["train", "--plain"]).output().unwrap();
    assert_eq!(neither.status.code(), Some(2));
    let both = realbias()
        .arg("train")
        .arg(&config)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

/// `--version` names the backend the binary was built with, and `--backend` another than
/// that one says how to rebuild instead of running.
#[test]
fn the_version_names_the_backend_and_another_backend_says_how_to_rebuild() {
    let version = succeed(realbias().arg("--version"));
    let version = String::from_utf8_lossy(&version.stdout);
    let built = realbias_train::backend::backend_name();
    assert!(
        version.contains(&format!("(backend: {built})")),
        "{version}"
    );
    let other = if built == "wgpu" { "flex" } else { "wgpu" };
    let refused = realbias()
        .args(["--backend", other, "status", "."])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("built with the {built} backend")) && err.contains("rebuild"),
        "{err}"
    );
    let unknown = realbias()
        .args(["--backend", "cuda", "status", "."])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown backend"));
    // The backend it was built with runs the command (here: a folder that is no experiment).
    let same = realbias()
        .args(["--backend", built, "status", "."])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&same.stderr);
    assert_eq!(same.status.code(), Some(1), "{err}");
    assert!(err.contains("no experiment here"), "{err}");
}

/// `realbias tensorboard` writes one event file per run of a sweep, under `DIR/tb/<run
/// path>`, and refuses a folder without runs.
#[test]
fn tensorboard_writes_an_event_file_for_every_run_of_a_sweep() {
    let (_tmp, runs, config) = tiny_folder("");
    succeed(&mut run_into(&config, &runs));
    let dir = runs.join("tiny");
    let histories = files_named(&dir, "history.csv");
    assert_eq!(
        histories.len(),
        2,
        "H = 2 and 4, one repetition: {histories:?}"
    );
    let out = succeed(realbias().arg("tensorboard").arg(&dir));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("{} runs written", histories.len())),
        "{said}"
    );
    for history in &histories {
        let run = history.parent().unwrap().strip_prefix(&dir).unwrap();
        let events = dir
            .join("tb")
            .join(run)
            .join("events.out.tfevents.0.realbias");
        assert!(
            std::fs::metadata(&events).unwrap().len() > 100,
            "{events:?}"
        );
    }
    // Again: the event files are rewritten, the tb folder is not taken for runs.
    let again = succeed(realbias().arg("tensorboard").arg(&dir));
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("{} runs", histories.len())));
    let empty = tempfile::tempdir().unwrap();
    let err = fails(realbias().arg("tensorboard").arg(empty.path()));
    assert!(err.contains("no run folder"), "{err}");
}

/// `realbias data export` writes the splits a run trained on: the run's final network,
/// applied by hand to the exported test split, makes exactly the test error its result
/// records, and the training split is centred as training centred it.
#[test]
fn the_exported_splits_give_back_the_runs_test_error() {
    use realbias_train::run_files::tensor_file::TensorFile;
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(tmp.path(), 5);
    let run = tmp.path().join("run");
    succeed(
        realbias()
            .args(["train", "--plain"])
            .arg(&config)
            .arg("--out")
            .arg(&run),
    );
    let file = tmp.path().join("splits.safetensors");
    let export = |out: &std::path::Path| {
        let mut c = realbias();
        c.args(["data", "export"]).arg(&run).arg("--out").arg(out);
        c
    };
    succeed(&mut export(&file));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    let count = |key: &str| result[key].as_u64().unwrap() as usize;
    let (n_test, n_train, h) = (
        count("test_examples"),
        count("train_examples"),
        count("hidden"),
    );
    let splits = TensorFile::read(&file, u64::MAX).unwrap().unwrap();
    assert!(splits.is_sealed());
    let d = 100;
    let x = splits.matrix("test.x", [n_test, d]).unwrap();
    let y = splits.bytes("test.y").unwrap();
    let train = splits.matrix("train.x", [n_train, d]).unwrap();
    for j in 0..d {
        let mean: f64 = (0..n_train)
            .map(|i| f64::from(train[i * d + j]))
            .sum::<f64>();
        assert!(
            (mean / n_train as f64).abs() < 1e-4,
            "feature {j} not centred"
        );
    }
    let net = TensorFile::read(&run.join("network.safetensors"), u64::MAX)
        .unwrap()
        .unwrap();
    let k: usize = splits.metadata_value("classes").unwrap().parse().unwrap();
    let (u, v) = (
        net.matrix("final.u", [d, h]).unwrap(),
        net.matrix("final.v", [h, k]).unwrap(),
    );
    let wrong = (0..n_test)
        .filter(|&i| {
            let hidden: Vec<f32> = (0..h)
                .map(|m| {
                    (0..d)
                        .map(|j| x[i * d + j] * u[j * h + m])
                        .sum::<f32>()
                        .max(0.0)
                })
                .collect();
            let logits: Vec<f32> = (0..k)
                .map(|c| (0..h).map(|m| hidden[m] * v[m * k + c]).sum())
                .collect();
            // The first largest logit, as argmax: a ReLU net without biases ties at all-zero
            // logits where every unit is off.
            let best = (0..k).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
            best != y[i] as usize
        })
        .count();
    let recorded = result["test_error"].as_f64().unwrap();
    assert_eq!(wrong as f64 / n_test as f64, recorded);
    // An existing file is never overwritten.
    let err = fails(&mut export(&file));
    assert!(err.contains("already exists"), "{err}");
    // A folder without a finished run is named.
    let err = fails(
        realbias()
            .args(["data", "export"])
            .arg(tmp.path())
            .arg("--out")
            .arg(tmp.path().join("other.safetensors")),
    );
    assert!(err.contains("result.json: no such file"), "{err}");
}

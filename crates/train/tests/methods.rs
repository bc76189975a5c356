//! The optimizers besides the paper's SGD (`optim.method`): full-batch conjugate gradient,
//! L-BFGS and Adam fit a small training set, repeat themselves on the same seed, resume
//! exactly from a checkpoint, and are recorded in `result.json`; their configs are checked.

mod common;

use std::path::Path;

use common::{checked, config, device, teacher_data, timeless};
use realbias_train::config::TrainConfig;
use realbias_train::optim::Method;
use realbias_train::run_files::write_run;
use realbias_train::{
    CheckpointSlot, EpochRecord, FinishedRun, Progress, Quiet, RunResult, StopReason, Trainer,
    train,
};

/// 200 training examples of a 5-unit teacher, a 64-unit student.
fn method_config(method: &str, max_epochs: usize) -> TrainConfig {
    config(&format!(
        r#"
[data]
dataset = {{ kind = "mnist" }}
[model]
hidden = 64
[optim]
method = "{method}"
[train]
max_epochs = {max_epochs}
checkpoint_seconds = 1e9
"#
    ))
}

const METHODS: [&str; 3] = ["cg", "lbfgs", "adam"];

#[test]
fn cg_lbfgs_and_adam_each_fit_a_small_training_set() {
    let data = teacher_data(1);
    for method in METHODS {
        let mut c = method_config(method, 400);
        if method == "adam" {
            // Mini-batches of 20: 10 steps an epoch.
            c.optim.batch_size = 20;
        }
        let out = train(&checked(&c), &data, &device(), Quiet).unwrap();
        let r = &out.result;
        println!(
            "{method}: zero training error at epoch {:?}, {:?} after {} epochs, {:?} gradient evaluations, test error {:.3}",
            r.epochs_to_zero_train_error,
            r.stop_reason,
            r.epochs,
            r.gradient_evaluations,
            r.test_error
        );
        assert_eq!(r.train_error, 0.0, "{method}: final training error");
        assert_eq!(r.stop_reason, StopReason::Converged, "{method}");
        assert!(r.test_error < 0.25, "{method}: test error {}", r.test_error);
        let full_batch = c.optim.method.is_full_batch();
        assert_eq!(r.gradient_evaluations.is_some(), full_batch, "{method}");
        if let Some(n) = r.gradient_evaluations {
            // At least one evaluation per iteration, and the line searches' on top.
            assert!(
                n > r.epochs as u64,
                "{method}: {n} evaluations in {} iterations",
                r.epochs
            );
        }
    }
}

/// Requests a stop once `at` epochs are recorded.
struct StopAt {
    at: usize,
    seen: usize,
    resumed: Option<usize>,
}

impl Progress for StopAt {
    fn epoch(&mut self, r: &EpochRecord) {
        self.seen = r.epoch;
    }
    fn resumed(&mut self, history: &[EpochRecord]) {
        self.seen = history.last().map_or(0, |r| r.epoch);
        self.resumed = Some(self.seen);
    }
    fn stop_requested(&self) -> bool {
        self.seen >= self.at
    }
}

fn run_in(c: &TrainConfig, dir: &Path, stop: &mut StopAt) -> FinishedRun {
    let data = teacher_data(3);
    let slot = CheckpointSlot {
        dir: dir.to_path_buf(),
        discard_mismatched: false,
    };
    let (device, c) = (device(), checked(c));
    let trainer = Trainer::new(&c, &data, &device).with_checkpoint(slot);
    let placeholder = StopAt {
        at: usize::MAX,
        seen: 0,
        resumed: None,
    };
    let (out, back) = trainer.run_with(std::mem::replace(stop, placeholder));
    *stop = back;
    out.unwrap()
}

#[test]
fn each_method_repeats_itself_and_resumes_exactly_from_its_checkpoint() {
    for method in METHODS {
        let mut c = method_config(method, 12);
        c.optim.weight_decay = 1e-4;
        let data = teacher_data(3);
        let a = train(&checked(&c), &data, &device(), Quiet).unwrap();
        let b = train(&checked(&c), &data, &device(), Quiet).unwrap();
        assert!(
            timeless(&a) == timeless(&b),
            "{method}: same seed, other numbers"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut stop = StopAt {
            at: 5,
            seen: 0,
            resumed: None,
        };
        let first = run_in(&c, dir.path(), &mut stop);
        assert_eq!(
            first.result.stop_reason,
            StopReason::Interrupted,
            "{method}"
        );
        let mut rest = StopAt {
            at: usize::MAX,
            seen: 0,
            resumed: None,
        };
        let resumed = run_in(&c, dir.path(), &mut rest);
        assert_eq!(rest.resumed, Some(5), "{method}");
        assert!(
            timeless(&resumed) == timeless(&a),
            "{method}: the resumed run differs from the uninterrupted one"
        );
        assert_eq!(
            resumed.final_net.weights().unwrap(),
            a.final_net.weights().unwrap(),
            "{method}"
        );
        // Another seed is another run.
        c.train.seed = 1;
        let other = train(&checked(&c), &data, &device(), Quiet).unwrap();
        assert!(
            timeless(&other) != timeless(&a),
            "{method}: the seed does nothing"
        );
    }
}

#[test]
fn the_method_and_its_settings_round_trip_through_result_json() {
    let data = teacher_data(2);
    for method in METHODS {
        let c = method_config(method, 3);
        let out = train(&checked(&c), &data, &device(), Quiet).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), &out).unwrap();
        let text = std::fs::read_to_string(dir.path().join("result.json")).unwrap();
        let read: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(read.config, c, "{method}");
        assert_eq!(read.config.optim.method.name(), method);
        // The method's own table is recorded with the values used, the others' are not.
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let optim = &json["config"]["optim"];
        assert_eq!(optim["method"], method);
        for other in METHODS {
            assert_eq!(
                optim.get(other).is_some(),
                other == method,
                "{method}: {other}"
            );
        }
    }
    // SGD's record is what it was before methods existed: no method key.
    let sgd = serde_json::to_value(&method_config("sgd", 3).optim).unwrap();
    assert!(sgd.get("method").is_none(), "{sgd}");
}

fn problems(text: &str) -> String {
    let base = "[data]\ndataset = { kind = \"mnist\" }\n";
    match TrainConfig::parse(&format!("{base}{text}"), Path::new("bad.toml"), &[]) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// An L-BFGS record that does not decode is found only when the state is restored, after
/// the checkpoint's checks: `--force` used to fail there too ("reading checkpoint back from
/// the device failed"), so only deleting the file by hand unblocked the run. It is refused
/// as corrupt, and `--force` discards it.
#[test]
fn force_clears_an_lbfgs_checkpoint_whose_record_is_garbage() {
    use realbias_train::run_files::state::CHECKPOINT_FILE;
    use realbias_train::run_files::tensor_file::{NamedMatrix, TensorFile, write_with_bytes};
    let c = method_config("lbfgs", 12);
    let data = teacher_data(3);
    let dir = tempfile::tempdir().unwrap();
    let mut stop = StopAt {
        at: 3,
        seen: 0,
        resumed: None,
    };
    run_in(&c, dir.path(), &mut stop);
    let path = dir.path().join(CHECKPOINT_FILE);
    let file = TensorFile::read(&path, 1 << 30).unwrap().unwrap();
    let (d, h, k) = (data.dim(), c.model.hidden, data.classes);
    let shapes = [
        ("weights.u", [d, h]),
        ("weights.v", [h, k]),
        ("best.u", [d, h]),
        ("best.v", [h, k]),
    ];
    let kept: Vec<Vec<f32>> = shapes
        .iter()
        .map(|(n, s)| file.matrix(n, *s).unwrap())
        .collect();
    let matrices: Vec<NamedMatrix> = shapes
        .iter()
        .zip(&kept)
        .map(|((name, shape), values)| NamedMatrix {
            name,
            shape: *shape,
            values,
        })
        .collect();
    let garbage = vec![0xA5u8; file.bytes("optimizer.record").unwrap().len()];
    let blobs = [("optimizer.record", garbage.as_slice())];
    write_with_bytes(&path, &matrices, &blobs, file.metadata().unwrap()).unwrap();
    let device = device();
    let slot = |discard| CheckpointSlot {
        dir: dir.path().to_path_buf(),
        discard_mismatched: discard,
    };
    let refused = Trainer::new(&checked(&c), &data, &device)
        .with_checkpoint(slot(false))
        .run(Quiet);
    let text = refused.err().expect("a garbage record resumed").to_string();
    assert!(
        text.contains("corrupt") && text.contains("--force"),
        "{text}"
    );
    let restarted = Trainer::new(&checked(&c), &data, &device)
        .with_checkpoint(slot(true))
        .run(Quiet)
        .unwrap();
    let whole = train(&checked(&c), &data, &device, Quiet).unwrap();
    assert_eq!(timeless(&restarted), timeless(&whole));
}

#[test]
fn method_configs_are_checked_before_anything_runs() {
    let e = problems("[optim]\nmethod = \"newton\"\n");
    assert!(e.contains("bad.toml") && e.contains("newton"), "{e}");
    // A setting of another method.
    let e = problems("[optim]\nmethod = \"cg\"\nmomentum = 0.9\n");
    assert!(e.contains("optim.momentum") && e.contains("\"cg\""), "{e}");
    // Whatever its value: SGD's default momentum used to pass in a CG config, in the file
    // or through --set.
    let e = problems("[optim]\nmethod = \"cg\"\nmomentum = 0.5\n");
    assert!(e.contains("optim.momentum") && e.contains("\"cg\""), "{e}");
    let sets = [
        "optim.method=\"cg\"".to_string(),
        "optim.momentum=0.5".to_string(),
    ];
    let e = TrainConfig::parse(
        "[data]\ndataset = { kind = \"mnist\" }\n",
        Path::new("s.toml"),
        &sets,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("optim.momentum is a setting of another method"),
        "{e}"
    );
    let e = problems("[optim]\nmethod = \"adam\"\n[optim.cg]\nc2 = 0.5\n");
    assert!(e.contains("optim.cg") && e.contains("\"adam\""), "{e}");
    let e = problems("[optim]\nmethod = \"sgd\"\n[optim.lbfgs]\nhistory_size = 5\n");
    assert!(e.contains("optim.lbfgs"), "{e}");
    // Every table's values.
    let e = problems("[optim]\nmethod = \"cg\"\n[optim.cg]\nc1 = 0.5\nc2 = 0.1\n");
    assert!(e.contains("optim.cg.c1") && e.contains("c1 < c2"), "{e}");
    let e = problems("[optim]\nmethod = \"lbfgs\"\n[optim.lbfgs]\nhistory_size = 0\nlr = -1\n");
    assert!(
        e.contains("optim.lbfgs.history_size") && e.contains("optim.lbfgs.lr"),
        "{e}"
    );
    let e = problems("[optim]\nmethod = \"adam\"\n[optim.adam]\nbeta_2 = 1.0\n");
    assert!(e.contains("optim.adam.beta_2"), "{e}");
    let e = problems("[optim]\nmethod = \"adam\"\n[optim.adam]\nlearning_rate = 0.1\n");
    assert!(e.contains("learning_rate"), "{e}");
    // Adam shares SGD's mini-batches and decay; its own step size is its table's.
    let ok = "[data]\ndataset = { kind = \"mnist\" }\n[optim]\nmethod = \"adam\"\nbatch_size = 50\nlr_decay = 0.98\n[optim.adam]\nlr = 0.01\n";
    let c = TrainConfig::parse(ok, Path::new("ok.toml"), &[]).unwrap();
    assert_eq!(c.optim.method, Method::Adam);
    assert!((c.optim.lr_at(2) - 0.01 * 0.98f64.powi(2)).abs() < 1e-15);
}

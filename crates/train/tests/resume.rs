//! Checkpoints: a run stopped and resumed, any number of times, ends exactly where the
//! uninterrupted run ends; a checkpoint of another config is refused; the saved networks read
//! back through an independent safetensors reader.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{checked, config, device, relabelled, rewrite_unsealed, teacher_data, timeless};
use realbias_data::Dataset;
use realbias_train::config::TrainConfig;
use realbias_train::engine::ensemble::train_ensemble_with;
use realbias_train::run_files::state::CHECKPOINT_FILE;
use realbias_train::run_files::tensor_file::{NamedMatrix, TensorFile, write};
use realbias_train::run_files::write_run;
use realbias_train::{
    CheckpointSlot, EpochRecord, FinishedRun, Member, Progress, Quiet, StopReason, TrainError,
    Trainer,
};

const BASE: &str = r#"
[data]
dataset = { kind = "mnist" }
[model]
hidden = 32
[optim]
batch_size = 20
[train]
max_epochs = 40
converge_loss = 0.15
converge_epochs = 2
# Checkpoints only when a stop is requested: what is tested is what a stop keeps.
checkpoint_seconds = 1e9
"#;

/// Requests a stop once `at` epochs are recorded, or in the middle of an epoch (after its
/// batch `mid.1` of epoch `mid.0`); remembers where it resumed.
struct StopAt {
    at: usize,
    seen: usize,
    resumed: Option<usize>,
    mid: Option<(usize, usize)>,
    mid_reached: bool,
}

impl StopAt {
    fn new(at: usize) -> Self {
        StopAt {
            at,
            seen: 0,
            resumed: None,
            mid: None,
            mid_reached: false,
        }
    }

    fn mid_epoch(epoch: usize, batch: usize) -> Self {
        StopAt {
            mid: Some((epoch, batch)),
            ..StopAt::new(usize::MAX)
        }
    }
}

impl Progress for StopAt {
    fn batch(&mut self, epoch: usize, batch: usize, _batches: usize) {
        self.mid_reached |= self.mid == Some((epoch, batch));
    }
    fn epoch(&mut self, r: &EpochRecord) {
        self.seen = r.epoch;
    }
    fn resumed(&mut self, history: &[EpochRecord]) {
        self.seen = history.last().map_or(0, |r| r.epoch);
        self.resumed = Some(self.seen);
    }
    fn stop_requested(&self) -> bool {
        self.seen >= self.at || self.mid_reached
    }
}

/// Asserts two runs' numbers are equal, naming the fields that differ.
fn assert_same(a: &FinishedRun, b: &FinishedRun, what: &str) {
    let (x, y) = (timeless(a), timeless(b));
    if x == y {
        return;
    }
    let (x, y) = (
        serde_json::to_value(&x).unwrap(),
        serde_json::to_value(&y).unwrap(),
    );
    let mut differing = Vec::new();
    differences(&x, &y, String::new(), &mut differing);
    differing.truncate(8);
    panic!("{what}: the runs differ in {differing:?}");
}

fn differences(a: &serde_json::Value, b: &serde_json::Value, at: String, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                differences(
                    v,
                    y.get(k).unwrap_or(&Value::Null),
                    format!("{at}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} vs {b}")),
        _ => {}
    }
}

/// `n` fresh folders and the checkpoint slots in them.
fn checkpoint_dirs(n: usize) -> (Vec<tempfile::TempDir>, Vec<CheckpointSlot>) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let slots = dirs.iter().map(|d| slot(d.path())).collect();
    (dirs, slots)
}

fn slot(dir: &Path) -> CheckpointSlot {
    CheckpointSlot {
        dir: dir.to_path_buf(),
        discard_mismatched: false,
    }
}

fn single(c: &TrainConfig, data: &Dataset, dir: &Path, stop: &mut StopAt) -> FinishedRun {
    let (device, c) = (device(), checked(c));
    let trainer = Trainer::new(&c, data, &device).with_checkpoint(slot(dir));
    handed(stop, |stop| trainer.run_with(stop)).unwrap()
}

/// Runs `run` with `stop` moved in (a run on Burn's `Learner` owns its progress), and
/// puts it back so the test reads what it saw.
fn handed<T>(stop: &mut StopAt, run: impl FnOnce(StopAt) -> (T, StopAt)) -> T {
    let (out, back) = run(std::mem::replace(stop, StopAt::new(usize::MAX)));
    *stop = back;
    out
}

#[test]
fn a_run_stopped_and_resumed_twice_ends_as_the_uninterrupted_run() {
    let data = teacher_data(1);
    let mut c = config(&format!("{BASE}seed = 4\n"));
    c.optim.weight_decay = 1e-4;
    let whole = Trainer::new(&checked(&c), &data, &device())
        .run(Quiet)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = single(&c, &data, dir.path(), &mut StopAt::new(5));
    assert_eq!(first.result.stop_reason, StopReason::Interrupted);
    assert!(dir.path().join(CHECKPOINT_FILE).is_file());
    // The second stop lands in the middle of epoch 14: the epoch is redone on resume.
    let mut second_stop = StopAt::mid_epoch(14, 4);
    let second = single(&c, &data, dir.path(), &mut second_stop);
    assert_eq!(second_stop.resumed, Some(5));
    assert_eq!(second.result.stop_reason, StopReason::Interrupted);
    assert_eq!(second.history.last().map(|r| r.epoch), Some(13));
    let mut last_stop = StopAt::new(usize::MAX);
    let resumed = single(&c, &data, dir.path(), &mut last_stop);
    assert_eq!(last_stop.resumed, Some(13));
    assert!(
        whole.result.epochs > 13,
        "the run must outlast the stops: {}",
        whole.result.epochs
    );
    assert_same(&resumed, &whole, "resumed twice");
    assert_eq!(
        resumed.final_net.weights().unwrap(),
        whole.final_net.weights().unwrap()
    );
    // Writing the result removes the checkpoint; the networks are saved beside it.
    write_run(dir.path(), &resumed).unwrap();
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
    assert!(dir.path().join("network.safetensors").is_file());
}

#[test]
fn a_checkpoint_of_another_config_is_refused_unless_discarded() {
    let data = teacher_data(2);
    let c = config(&format!("{BASE}seed = 1\n"));
    let dir = tempfile::tempdir().unwrap();
    single(&c, &data, dir.path(), &mut StopAt::new(3));
    let mut other = c.clone();
    other.optim.lr = 0.05;
    let device = device();
    let refused = Trainer::new(&checked(&other), &data, &device)
        .with_checkpoint(slot(dir.path()))
        .run(Quiet);
    match refused {
        Err(e @ TrainError::CheckpointMismatch { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("optim.lr") && text.contains("--force"),
                "{text}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a checkpoint of another config was used"),
    }
    // How often a run checkpoints does not make it another run.
    let mut sparse = c.clone();
    sparse.train.checkpoint_seconds = 5.0;
    let mut stop = StopAt::new(4);
    single(&sparse, &data, dir.path(), &mut stop);
    assert_eq!(stop.resumed, Some(3));
    // Discarded, the run starts again: it is the uninterrupted run of the new config.
    let mut discard = slot(dir.path());
    discard.discard_mismatched = true;
    let mut fresh = StopAt::new(usize::MAX);
    let other_checked = checked(&other);
    let trainer = Trainer::new(&other_checked, &data, &device).with_checkpoint(discard);
    let restarted = handed(&mut fresh, |stop| trainer.run_with(stop)).unwrap();
    assert_eq!(fresh.resumed, None);
    let whole = Trainer::new(&checked(&other), &data, &device)
        .run(Quiet)
        .unwrap();
    assert_same(&restarted, &whole, "restarted");
}

/// Plain, weight-decay, relabelled and noisy members.
/// A checkpoint without its method's state (an SGD one without its velocity resumed
/// silently without momentum, to a different result) is refused, naming what is missing,
/// and `--force` clears it: the run starts again as the uninterrupted run.
#[test]
fn a_checkpoint_missing_its_method_state_is_refused_and_force_clears_it() {
    let data = teacher_data(2);
    let c = config(&format!("{BASE}seed = 1\n"));
    let dir = tempfile::tempdir().unwrap();
    single(&c, &data, dir.path(), &mut StopAt::new(3));
    let path = dir.path().join(CHECKPOINT_FILE);
    let file = TensorFile::read(&path, 1 << 30).unwrap().unwrap();
    let (d, h, k) = (data.dim(), 32, data.classes);
    let kept: Vec<(&str, [usize; 2], Vec<f32>)> = [
        ("weights.u", [d, h]),
        ("weights.v", [h, k]),
        ("best.u", [d, h]),
        ("best.v", [h, k]),
    ]
    .into_iter()
    .map(|(name, shape)| (name, shape, file.matrix(name, shape).unwrap()))
    .collect();
    let matrices: Vec<NamedMatrix> = kept
        .iter()
        .map(|(name, shape, values)| NamedMatrix {
            name,
            shape: *shape,
            values,
        })
        .collect();
    write(&path, &matrices, file.metadata().unwrap()).unwrap();
    let text = refused_then_restarted_by_force(&c, &data, dir.path());
    assert!(
        text.contains("holds no velocity") && text.contains("--force"),
        "{text}"
    );
}

fn mixed_members() -> Vec<(TrainConfig, Dataset)> {
    let clean = teacher_data(1);
    let mut noisy = clean.clone();
    noisy
        .add_label_noise(0.2, realbias_data::SplitSelection::default(), 3)
        .unwrap();
    let mut members = vec![
        (config(&format!("{BASE}seed = 0\n")), clean.clone()),
        (config(&format!("{BASE}seed = 1\n")), clean.clone()),
        (config(&format!("{BASE}seed = 2\n")), relabelled(&clean, 5)),
        (config(&format!("{BASE}seed = 3\n")), noisy),
    ];
    members[1].0.optim.weight_decay = 1e-3;
    members
}

/// Trains `which` of `members` as one ensemble, checkpointing in `slots` (none: no
/// checkpoints); outputs by index.
fn ensemble(
    members: &[(TrainConfig, Dataset)],
    which: &[usize],
    slots: &[CheckpointSlot],
    progress: &mut dyn Progress,
) -> HashMap<usize, FinishedRun> {
    let configs: Vec<_> = members.iter().map(|(c, _)| checked(c)).collect();
    let batch: Vec<Member> = which
        .iter()
        .map(|&i| Member {
            config: &configs[i],
            data: &members[i].1,
            checkpoint: slots.get(i),
        })
        .collect();
    let mut out = HashMap::new();
    train_ensemble_with(&batch, &device(), progress, &mut |n, run| {
        out.insert(which[n], run);
    })
    .unwrap();
    out
}

#[test]
fn ensemble_members_resumed_in_other_stacks_end_as_the_uninterrupted_ensemble() {
    let members = mixed_members();
    let (_dirs, slots) = checkpoint_dirs(members.len());
    let whole = ensemble(&members, &[0, 1, 2, 3], &[], &mut Quiet);
    let stops: Vec<usize> = (0..4).map(|i| whole[&i].result.epochs).collect();
    assert!(
        stops.iter().any(|&e| e < 40) && stops.contains(&40) && stops.iter().all(|&e| e > 6),
        "the test needs members that stop early and at the cap, after the stop: {stops:?}"
    );
    // Stopped in one stack, so that every member is stopped at epoch 6; in the default pool
    // (two threads or more) the other stages train as shards, each on its own thread, and
    // a shard sees a stop only when it next checks.
    let one_thread = common::pool(1);
    let first =
        one_thread.install(|| ensemble(&members, &[0, 1, 2, 3], &slots, &mut StopAt::new(6)));
    assert!(
        first
            .values()
            .all(|r| r.result.stop_reason == StopReason::Interrupted)
    );
    // Two members resume together, one alone; the last is stopped again, then resumes alone.
    let mut pair = ensemble(&members, &[0, 1], &slots, &mut Quiet);
    pair.extend(ensemble(&members, &[2], &slots, &mut Quiet));
    ensemble(&members, &[3], &slots, &mut StopAt::mid_epoch(10, 3));
    let mut alone = StopAt::new(usize::MAX);
    pair.extend(ensemble(&members, &[3], &slots, &mut alone));
    assert_eq!(alone.resumed, Some(9));
    for i in 0..4 {
        let mut a = pair.remove(&i).unwrap();
        // The count of runs it was trained with is a record of how, not a result.
        a.result.ensemble_members = whole[&i].result.ensemble_members;
        assert_same(&a, &whole[&i], &format!("member {i}"));
    }
}

/// In a pool of two threads the ensemble trains as two shards, each on its own thread; a
/// stop the caller asks for (seen in the first shard's epochs) stops the other shard too,
/// and every member resumes to the uninterrupted result.
#[test]
fn a_stop_reaches_every_shard_of_an_ensemble() {
    let members = mixed_members();
    let (_dirs, slots) = checkpoint_dirs(members.len());
    let two_threads = common::pool(2);
    let whole = two_threads.install(|| ensemble(&members, &[0, 1, 2, 3], &[], &mut Quiet));
    let stops: Vec<usize> = (0..4).map(|i| whole[&i].result.epochs).collect();
    assert!(
        stops.iter().all(|&e| e > 6),
        "members stop too early: {stops:?}"
    );
    let first =
        two_threads.install(|| ensemble(&members, &[0, 1, 2, 3], &slots, &mut StopAt::new(2)));
    for (i, run) in &first {
        assert_eq!(
            run.result.stop_reason,
            StopReason::Interrupted,
            "member {i} trained on after the stop, to epoch {}",
            run.result.epochs
        );
    }
    let mut after = two_threads.install(|| ensemble(&members, &[0, 1, 2, 3], &slots, &mut Quiet));
    for i in 0..4 {
        assert_same(
            &after.remove(&i).unwrap(),
            &whole[&i],
            &format!("member {i}"),
        );
    }
}

/// A tensor as read by hand: its shape and values.
type Matrix = (Vec<usize>, Vec<f32>);

/// A safetensors file read by hand (the format's spec, not the `safetensors` crate): the
/// metadata and every f32 tensor with its shape.
fn read_safetensors(path: &Path) -> (HashMap<String, String>, HashMap<String, Matrix>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut metadata = HashMap::new();
    let mut tensors = HashMap::new();
    for (name, entry) in header.as_object().unwrap() {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().unwrap() {
                metadata.insert(k.clone(), v.as_str().unwrap().to_string());
            }
            continue;
        }
        assert_eq!(entry["dtype"], "F32", "{name}");
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap() as usize)
            .collect();
        let offsets = entry["data_offsets"].as_array().unwrap();
        let (a, b) = (
            offsets[0].as_u64().unwrap() as usize,
            offsets[1].as_u64().unwrap() as usize,
        );
        let values = data[a..b]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name.clone(), (shape, values));
    }
    (metadata, tensors)
}

#[test]
fn the_saved_networks_give_the_recorded_test_error_and_group_norm() {
    let data = teacher_data(3);
    let c = config(&format!("{BASE}seed = 2\n"));
    let run = Trainer::new(&checked(&c), &data, &device())
        .run(Quiet)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &run).unwrap();
    let (metadata, tensors) = read_safetensors(&dir.path().join("network.safetensors"));
    assert_eq!(metadata["seed"], "2");
    assert_eq!(metadata["hidden"], "32");
    assert_eq!(metadata["dataset"], "teacher");
    assert_eq!(metadata["config_digest"].len(), 32);
    let (d, h, k) = (10, 32, 3);
    for net in ["initial", "final", "early_stop"] {
        assert_eq!(tensors[&format!("{net}.u")].0, vec![d, h]);
        assert_eq!(tensors[&format!("{net}.v")].0, vec![h, k]);
    }
    let (u, v) = (&tensors["final.u"].1, &tensors["final.v"].1);
    // The group norm Σ_h ‖u_h‖ ‖v_h‖ (u_h: column h of U, v_h: row h of V).
    let group: f64 = (0..h)
        .map(|j| {
            let nu: f64 = (0..d).map(|i| (u[i * h + j] as f64).powi(2)).sum();
            let nv: f64 = (0..k).map(|c| (v[j * k + c] as f64).powi(2)).sum();
            nu.sqrt() * nv.sqrt()
        })
        .sum();
    let recorded = run.result.group_norm;
    assert!(
        (group - recorded).abs() <= 1e-6 * recorded,
        "{group} vs {recorded}"
    );
    // The test error of y = V^T [U^T x]_+, against the recorded one (to one example:
    // the device's f32 and this f64 may break a near-tie differently).
    let test = &data.test;
    let wrong = (0..test.len())
        .filter(|&n| {
            let x = &test.features[n * d..(n + 1) * d];
            let hidden: Vec<f64> = (0..h)
                .map(|j| {
                    (0..d)
                        .map(|i| x[i] as f64 * u[i * h + j] as f64)
                        .sum::<f64>()
                        .max(0.0)
                })
                .collect();
            let y: Vec<f64> = (0..k)
                .map(|c| (0..h).map(|j| hidden[j] * v[j * k + c] as f64).sum())
                .collect();
            let predicted = (0..k).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
            predicted != test.labels[n] as usize
        })
        .count();
    let error = wrong as f64 / test.len() as f64;
    assert!(
        (error - run.result.test_error).abs() <= 1.0 / test.len() as f64 + 1e-12,
        "{error} vs {}",
        run.result.test_error
    );
    // The early-stopped network is the one of the recorded epoch: its weights differ from
    // the final ones unless that epoch is the last.
    if run.result.early_stop_epoch < run.result.epochs {
        assert_ne!(tensors["early_stop.u"].1, tensors["final.u"].1);
    }
}

/// Copies every member's checkpoint aside when epoch `at` is recorded (the files then hold
/// the periodic checkpoint of the epoch before), and asks for a stop `more` epochs later.
struct SnapshotAt<'a> {
    at: usize,
    stop: StopAt,
    dirs: &'a [tempfile::TempDir],
}

impl Progress for SnapshotAt<'_> {
    fn epoch(&mut self, r: &EpochRecord) {
        if r.epoch == self.at {
            for d in self.dirs {
                let from = d.path().join(CHECKPOINT_FILE);
                std::fs::copy(&from, d.path().join("kept.safetensors")).unwrap();
            }
        }
        self.stop.epoch(r);
    }
    fn stop_requested(&self) -> bool {
        self.stop.stop_requested()
    }
}

/// A kill leaves the last periodic checkpoint: an ensemble "killed" after epoch 7's (its
/// stop-time checkpoints replaced by the periodic ones) resumes to the uninterrupted result.
///
/// The snapshot must be of every member's own epoch 7. `progress` sees only the first
/// running shard's epochs, and in a pool of two threads the other shard may already be an
/// epoch ahead when that event arrives (this failed about 3 runs in 10 on a busy 2-core
/// machine). In a one-thread pool the ensemble is one stack: every member's epoch 8 is
/// recorded at the same event, whatever the machine's load.
#[test]
fn an_ensemble_killed_after_a_periodic_checkpoint_resumes_from_it() {
    let mut members = mixed_members();
    for (c, _) in &mut members {
        c.train.checkpoint_seconds = 0.0;
    }
    let (dirs, slots) = checkpoint_dirs(members.len());
    let whole = ensemble(&members, &[0, 1, 2, 3], &[], &mut Quiet);
    let mut progress = SnapshotAt {
        at: 8,
        stop: StopAt::new(12),
        dirs: &dirs,
    };
    let one_thread = common::pool(1);
    one_thread.install(|| ensemble(&members, &[0, 1, 2, 3], &slots, &mut progress));
    for d in &dirs {
        std::fs::rename(
            d.path().join("kept.safetensors"),
            d.path().join(CHECKPOINT_FILE),
        )
        .unwrap();
    }
    let mut resumed = StopAt::new(usize::MAX);
    let mut after = ensemble(&members, &[0, 1, 2, 3], &slots, &mut resumed);
    assert_eq!(resumed.resumed, Some(7));
    for i in 0..4 {
        assert_same(
            &after.remove(&i).unwrap(),
            &whole[&i],
            &format!("member {i}"),
        );
    }
}

/// The byte offset of tensor `name`'s data in the safetensors file `bytes`.
fn tensor_offset(bytes: &[u8], name: &str) -> usize {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    8 + n + header[name]["data_offsets"][0].as_u64().unwrap() as usize
}

/// One flipped bit in a checkpoint's `weights.u` resumed with exit 0, to a `u_frobenius` of
/// 1.49e37 instead of 35.79: the checkpoint's integrity digest refuses it, naming the file,
/// and `--force` discards it so that the run ends as the uninterrupted one.
#[test]
fn a_checkpoint_with_one_flipped_bit_is_refused_and_force_clears_it() {
    let data = teacher_data(2);
    let c = config(&format!("{BASE}seed = 1\n"));
    let dir = tempfile::tempdir().unwrap();
    single(&c, &data, dir.path(), &mut StopAt::new(3));
    let path = dir.path().join(CHECKPOINT_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = tensor_offset(&bytes, "weights.u") + 2;
    bytes[at] ^= 0x40; // an exponent bit of the first weight
    std::fs::write(&path, &bytes).unwrap();
    let text = refused_then_restarted_by_force(&c, &data, dir.path());
    assert!(
        text.contains("sha256") && text.contains(CHECKPOINT_FILE) && text.contains("--force"),
        "{text}"
    );
}

/// Runs `c` on `data` with the checkpoint in `dir`: it must be refused (the error's text is
/// returned for the caller to check), and under `--force` discarded, the run then ending as
/// the uninterrupted one.
fn refused_then_restarted_by_force(c: &TrainConfig, data: &Dataset, dir: &Path) -> String {
    let device = device();
    let refused = Trainer::new(&checked(c), data, &device)
        .with_checkpoint(slot(dir))
        .run(Quiet)
        .err()
        .expect("a checkpoint that cannot resume the run was used");
    let mut discard = slot(dir);
    discard.discard_mismatched = true;
    let restarted = Trainer::new(&checked(c), data, &device)
        .with_checkpoint(discard)
        .run(Quiet)
        .unwrap();
    let whole = Trainer::new(&checked(c), data, &device).run(Quiet).unwrap();
    assert_same(&restarted, &whole, "restarted after --force");
    refused.to_string()
}

/// A checkpoint of format 1 (before integrity digests) is refused with that reason, not
/// trusted: it is only a run in flight, and `--force` starts the run again.
#[test]
fn a_checkpoint_from_before_digests_is_refused_with_its_format() {
    let data = teacher_data(2);
    let c = config(&format!("{BASE}seed = 1\n"));
    let dir = tempfile::tempdir().unwrap();
    single(&c, &data, dir.path(), &mut StopAt::new(2));
    let path = dir.path().join(CHECKPOINT_FILE);
    let file = TensorFile::read(&path, 1 << 30).unwrap().unwrap();
    assert!(file.is_sealed());
    // Rewritten as the old writer wrote it: format 1, no digest.
    rewrite_unsealed(&path, "realbias-checkpoint-1");
    let e = refused_then_restarted_by_force(&c, &data, dir.path());
    assert!(
        e.contains("before checkpoints carried an integrity digest"),
        "{e}"
    );
}

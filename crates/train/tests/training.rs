//! The training protocol on synthetic data and on the real MNIST subset.

mod common;

use std::path::Path;

use common::{checked, config, device, relabelled, teacher_data};
use realbias_data::{Dataset, Split};
use realbias_train::config::TrainConfig;
use realbias_train::data::prepare_data;
use realbias_train::engine::ensemble::train_ensemble_with;
use realbias_train::{FinishedRun, Member, Quiet, StopReason, TrainError, train, train_ensemble};

const SYNTHETIC: &str = r#"
[data]
dataset = { kind = "mnist" }
[model]
hidden = 64
[optim]
batch_size = 20
[train]
max_epochs = 300
"#;

#[test]
fn a_teacher_network_is_fitted_to_zero_training_error() {
    let data = teacher_data(1);
    let out = train(&checked(&config(SYNTHETIC)), &data, &device(), Quiet).unwrap();
    let r = &out.result;
    assert_eq!(r.train_error, 0.0, "final training error {}", r.train_error);
    assert!(r.epochs_to_zero_train_error.is_some());
    assert_eq!(
        r.stop_reason,
        StopReason::Converged,
        "{:?} after {}",
        r.stop_reason,
        r.epochs
    );
    // The early-stopping epoch is the (first) argmin of the validation history.
    let val: Vec<f64> = out.history.iter().map(|e| e.validation_error).collect();
    let min = val.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(
        r.early_stop_epoch,
        val.iter().position(|&v| v == min).unwrap()
    );
    assert_eq!(r.early_stop_validation_error, min);
    assert!(
        r.test_error < 0.2,
        "a 5-unit teacher generalizes: test error {}",
        r.test_error
    );
    // Epoch 0 is the initial network; every later epoch follows the paper's schedule.
    assert_eq!(out.history[0].epoch, 0);
    assert!((out.history[11].lr - 0.1 * 0.99f64.powi(10)).abs() < 1e-12);
    assert!((out.history[11].momentum - 0.7).abs() < 1e-12);
    assert_eq!(r.hidden, 64);
    assert_eq!(r.parameters, 64 * 13);
}

#[test]
fn the_same_seed_gives_identical_histories() {
    let data = teacher_data(2);
    let mut c = config(SYNTHETIC);
    c.train.max_epochs = 15;
    let strip = |h: Vec<realbias_train::EpochRecord>| {
        h.into_iter()
            .map(|mut e| {
                (e.train_seconds, e.eval_seconds, e.wall_seconds) = (0.0, 0.0, 0.0);
                e
            })
            .collect::<Vec<_>>()
    };
    let a = train(&checked(&c), &data, &device(), Quiet).unwrap();
    let b = train(&checked(&c), &data, &device(), Quiet).unwrap();
    assert_eq!(
        a.final_net.weights().unwrap(),
        b.final_net.weights().unwrap()
    );
    assert_eq!(strip(a.history), strip(b.history.clone()));
    c.train.seed = 1;
    let other = train(&checked(&c), &data, &device(), Quiet).unwrap();
    assert_ne!(strip(other.history), strip(b.history));
}

#[test]
fn divergence_is_a_status_not_a_panic() {
    let data = teacher_data(3);
    let mut c = config(SYNTHETIC);
    c.optim.lr = 1e30;
    c.train.max_epochs = 20;
    let out = train(&checked(&c), &data, &device(), Quiet).unwrap();
    assert_eq!(out.result.stop_reason, StopReason::Diverged);
    assert!(out.result.epochs < 20);
}

#[test]
fn weight_decay_shrinks_the_weights() {
    let data = teacher_data(4);
    let mut c = config(SYNTHETIC);
    c.train.max_epochs = 30;
    let plain = train(&checked(&c), &data, &device(), Quiet).unwrap();
    c.optim.weight_decay = 0.01;
    let decayed = train(&checked(&c), &data, &device(), Quiet).unwrap();
    assert!(
        decayed.result.weight_decay_penalty < 0.8 * plain.result.weight_decay_penalty,
        "{} vs {}",
        decayed.result.weight_decay_penalty,
        plain.result.weight_decay_penalty
    );
}

/// The paper's protocol on Figure 2's 2,000-example MNIST subset, capped at 200 epochs.
#[test]
#[ignore = "needs the real MNIST files (REALBIAS_DATA); run with -- --include-ignored"]
fn mnist_small_subset_h256_fits_and_generalizes() {
    let dir = realbias_fixtures::real_data_dir("mnist");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train-mnist-small.toml");
    let c = TrainConfig::load(&path, &["train.max_epochs=200".into()]).unwrap();
    assert_eq!(c.model.hidden, 256);
    let data = prepare_data(&c.data, Some(&dir), c.train.seed).unwrap();
    assert_eq!(
        (data.train.len(), data.validation.len(), data.test.len()),
        (2000, 2000, 10_000)
    );
    let r = train(&checked(&c), &data, &device(), Quiet).unwrap().result;
    assert_eq!(
        r.train_error, 0.0,
        "training error after {} epochs",
        r.epochs
    );
    assert!(r.test_error < 0.12, "test error {}", r.test_error);
    assert!(
        r.early_stop_test_error < 0.12,
        "early-stopped test error {}",
        r.early_stop_test_error
    );
}

/// The evaluation batch is a speed knob only: the same seed gives the same history whether
/// the splits are evaluated 7 or 500 examples at a time.
#[test]
fn eval_batch_does_not_change_the_history() {
    let data = teacher_data(3);
    let run = |eval_batch: usize| {
        let c = config(&format!(
            "[data]\ndataset = {{ kind = \"mnist\" }}\n[model]\nhidden = 32\n[optim]\nbatch_size = 20\n[train]\nmax_epochs = 15\neval_batch = {eval_batch}\n"
        ));
        train(&checked(&c), &data, &device(), Quiet).unwrap()
    };
    let (a, b) = (run(7), run(500));
    assert_eq!(a.history.len(), b.history.len());
    for (x, y) in a.history.iter().zip(&b.history) {
        assert_eq!(x.train_error, y.train_error, "epoch {}", x.epoch);
        assert_eq!(x.validation_error, y.validation_error, "epoch {}", x.epoch);
        assert!((x.train_loss - y.train_loss).abs() <= 1e-6 * x.train_loss.abs().max(1.0));
        assert!(
            (x.validation_loss - y.validation_loss).abs()
                <= 1e-6 * x.validation_loss.abs().max(1.0)
        );
    }
    assert_eq!(a.result.test_error, b.result.test_error);
}

/// The fused loss node (what every run trains with) follows the same trajectory as Burn's
/// composed operations on a fixed seed: the optimized path does not change results.
#[test]
fn fused_and_composed_losses_give_the_same_history() {
    use realbias_train::Trainer;
    use realbias_train::engine::classifier::LossPath;
    let data = teacher_data(4);
    for activation in ["relu", "linear"] {
        let c = config(&format!(
            "[data]\ndataset = {{ kind = \"mnist\" }}\n[model]\nhidden = 48\nactivation = \"{activation}\"\n[optim]\nbatch_size = 20\nweight_decay = 0.001\n[train]\nmax_epochs = 25\n"
        ));
        let device = device();
        let run = |path| {
            Trainer::new(&checked(&c), &data, &device)
                .with_loss(path)
                .run(Quiet)
                .unwrap()
        };
        let (fused, composed) = (run(LossPath::Fused), run(LossPath::Composed));
        assert_eq!(fused.history.len(), composed.history.len());
        // 25 epochs of 10 steps in f32: the two paths round differently, so the trajectories
        // drift apart by rounding error only.
        for (f, c) in fused.history.iter().zip(&composed.history) {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1e-2);
            assert!(
                close(f.train_loss, c.train_loss) && close(f.validation_loss, c.validation_loss),
                "{activation}, epoch {}: losses {} / {} vs {} / {}",
                f.epoch,
                f.train_loss,
                f.validation_loss,
                c.train_loss,
                c.validation_loss
            );
            // At most one of 200 examples may sit on a decision boundary.
            assert!((f.train_error - c.train_error).abs() <= 0.005 + 1e-12);
            assert!((f.validation_error - c.validation_error).abs() <= 0.005 + 1e-12);
            assert!(close(f.u_frobenius, c.u_frobenius) && close(f.v_frobenius, c.v_frobenius));
        }
        let last = fused.history.last().unwrap();
        assert!(
            last.train_loss < 0.7 * fused.history[0].train_loss,
            "{activation}: the run trained ({} -> {})",
            fused.history[0].train_loss,
            last.train_loss
        );
    }
}

/// The measures of a run are computed from its own networks: they agree with the norms the
/// run records, the margins agree with the errors, and nothing is measured when disabled.
#[test]
fn a_run_records_the_measures_of_its_final_and_early_stopped_networks() {
    let data = teacher_data(1);
    let out = train(&checked(&config(SYNTHETIC)), &data, &device(), Quiet).unwrap();
    let r = &out.result;
    let m = r.measures.as_ref().expect("measures are on by default");
    let last = &m.at_convergence;
    assert!((last.group_norm - r.group_norm).abs() <= 1e-9 * r.group_norm);
    assert!((last.u_frobenius - r.u_frobenius).abs() <= 1e-9 * r.u_frobenius);
    assert_eq!(last.parameters, r.parameters);
    // Zero training error: every margin is positive, so the margin measures are defined.
    assert_eq!(r.train_error, 0.0);
    assert!(last.margin_p5 > 0.0 && last.margin_p10 >= last.margin_p5);
    assert!(last.group_over_margin.is_some() && last.bartlett2017.unwrap() > 0.0);
    // Training moved the weights, and a path norm never exceeds the group norm.
    assert!(last.u_distance > 0.0 && last.v_distance > 0.0);
    assert!(last.path_norm <= last.group_norm);
    assert!((0.0..=1.0).contains(&last.pattern_flip_fraction));
    assert!(last.pattern_changed_units > 0.0 && last.pattern_changed_units <= 1.0);
    assert!(last.sharpness.is_finite());
    // The per-epoch dynamics end where the final network's measures are.
    let first = &out.history[0];
    assert_eq!(
        (first.u_distance_relative, first.v_distance_relative),
        (0.0, 0.0)
    );
    assert_eq!(first.pattern_changed_units, Some(0.0));
    let end = out.history.last().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1e-12);
    assert!(close(end.u_distance_relative, last.u_distance_relative));
    assert!(close(end.v_distance_relative, last.v_distance_relative));
    assert!(close(end.margin_p5, last.margin_p5));
    assert_eq!(end.pattern_changed_units, Some(last.pattern_changed_units));
    assert!(close(
        end.pattern_flip_fraction.unwrap(),
        last.pattern_flip_fraction
    ));
    // The early-stopped network's training error is the one its epoch recorded.
    let e = r.early_stop_train_error.unwrap();
    assert_eq!(e, out.history[r.early_stop_epoch].train_error);
    if r.early_stop_epoch == r.epochs {
        assert_eq!(m.early_stop.group_norm, last.group_norm);
    }
    let off = config(&format!("{SYNTHETIC}measures = false\n"));
    let quiet = train(&checked(&off), &data, &device(), Quiet).unwrap();
    assert!(quiet.result.measures.is_none());
    assert_eq!(
        quiet.history,
        out.history
            .iter()
            .map(|h| {
                let mut h = h.clone();
                h.train_seconds = quiet.history[h.epoch].train_seconds;
                h.eval_seconds = quiet.history[h.epoch].eval_seconds;
                h.wall_seconds = quiet.history[h.epoch].wall_seconds;
                h
            })
            .collect::<Vec<_>>(),
        "measuring does not change training"
    );
}

/// `model.init_scale` multiplies the initial weights: the same draws, scaled, and a relative
/// distance from initialization that the scale changes.
#[test]
fn the_initialization_scale_multiplies_the_initial_weights() {
    let data = teacher_data(2);
    let at = |scale: f64| {
        let text = SYNTHETIC.replace("hidden = 64", &format!("hidden = 64\ninit_scale = {scale}"));
        let mut c = config(&text);
        c.train.max_epochs = 3;
        train(&checked(&c), &data, &device(), Quiet).unwrap()
    };
    let (one, small) = (at(1.0), at(0.1));
    let (h1, h01) = (&one.history[0], &small.history[0]);
    assert!((h01.u_frobenius - 0.1 * h1.u_frobenius).abs() <= 1e-5 * h1.u_frobenius);
    assert!((h01.v_frobenius - 0.1 * h1.v_frobenius).abs() <= 1e-5 * h1.v_frobenius);
    // Small weights move further relative to where they started.
    assert!(small.history[3].u_distance_relative > one.history[3].u_distance_relative);
    let bad = TrainConfig::parse(
        &SYNTHETIC.replace("hidden = 64", "hidden = 64\ninit_scale = 0"),
        Path::new("bad.toml"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("model.init_scale = 0 must be > 0"), "{bad}");
}

/// A config changed after it was read must be checked again before a run takes it: a bad
/// value is refused with the run's name and the key, and another method's setting (a sweep's
/// shared config holds every method's) is not a problem for a run.
#[test]
fn a_config_changed_in_code_is_checked_before_a_run_takes_it() {
    let mut c = config(SYNTHETIC);
    c.name = Some("changed".into());
    c.model.hidden = 0;
    c.train.converge_epochs = 0;
    let e = c.clone().check().unwrap_err().to_string();
    assert!(e.contains("\"changed\""), "{e}");
    assert!(e.contains("model.hidden must be at least 1"), "{e}");
    assert!(
        e.contains("train.converge_epochs must be at least 1"),
        "{e}"
    );
    c.model.hidden = 4;
    c.train.converge_epochs = 3;
    c.optim.method = realbias_train::optim::Method::Cg;
    c.optim.momentum = 0.7; // SGD's setting, ignored by CG
    let checked = c.clone().check().unwrap();
    assert_eq!(checked.model.hidden, 4);
    assert_eq!(checked.into_inner(), c);
}

/// `data.normalization_statistics`: centred by the run's own training split (default) or by
/// every example of the full dataset (the censoring network's input map).
#[test]
fn normalization_statistics_come_from_the_training_split_or_every_example() {
    let mut full = teacher_data(3);
    // Shift the test split so the two means differ.
    full.test.features.iter_mut().for_each(|v| *v += 1.0);
    let mean = |split: &Split| split.feature_moments().0;
    let own = config(SYNTHETIC).data;
    let derived = realbias_train::data::derive_data(&full, &own, 0).unwrap();
    assert!(mean(&derived.train).iter().all(|m| m.abs() < 1e-5));
    let mut all = own.clone();
    all.normalization_statistics = realbias_train::config::NormalizationStatistics::All;
    let derived = realbias_train::data::derive_data(&full, &all, 0).unwrap();
    assert!(mean(&derived.all_examples()).iter().all(|m| m.abs() < 1e-5));
    // 500 of 900 examples were shifted by 1: the training split sits 5/9 below the mean.
    for m in mean(&derived.train) {
        assert!((m + 5.0 / 9.0).abs() < 0.1, "{m}");
    }
}

/// A run without training or validation examples is refused by name, before any step.
#[test]
fn derived_data_without_training_or_validation_examples_is_an_error() {
    let own = config(SYNTHETIC).data;
    let mut no_training = teacher_data(3);
    no_training.train.labels.clear();
    no_training.train.features.clear();
    let e = realbias_train::data::derive_data(&no_training, &own, 0).unwrap_err();
    assert!(matches!(e, TrainError::EmptyTraining { .. }), "{e}");
    assert!(e.to_string().contains("training split is empty"), "{e}");
    let mut no_validation = teacher_data(3);
    no_validation.validation.labels.clear();
    no_validation.validation.features.clear();
    let e = realbias_train::data::derive_data(&no_validation, &own, 0).unwrap_err();
    assert!(matches!(e, TrainError::EmptyValidation { .. }), "{e}");
}

/// Every label of `data` replaced by the teacher of `seed`'s labels (a stand-in for censoring:
/// the same images, labels from another network).
/// An ensemble of plain, weight-decay, relabelled and noisy members (some stop early by
/// convergence, some run to the cap) gives each member the history, stop and early-stop
/// epochs, errors and measures it gets trained alone.
#[test]
fn an_ensemble_trains_each_member_as_it_would_train_alone() {
    let base = r#"
[data]
dataset = { kind = "mnist" }
[model]
hidden = 32
[optim]
batch_size = 20
[train]
max_epochs = 80
converge_loss = 0.15
converge_epochs = 2
"#;
    let clean = teacher_data(1);
    let mut noisy = clean.clone();
    noisy
        .add_label_noise(0.2, realbias_data::SplitSelection::default(), 3)
        .unwrap();
    let members = [
        (config(&format!("{base}seed = 0\n")), clean.clone()),
        (config(&format!("{base}seed = 1\n")), clean.clone()),
        (config(&format!("{base}seed = 2\n")), relabelled(&clean, 5)),
        (config(&format!("{base}seed = 3\n")), noisy),
    ];
    let mut members = members.to_vec();
    members[1].0.optim.weight_decay = 1e-3;
    let device = device();
    let alone: Vec<_> = members
        .iter()
        .map(|(c, d)| train(&checked(c), d, &device, Quiet).unwrap())
        .collect();
    let configs: Vec<_> = members.iter().map(|(c, _)| checked(c)).collect();
    let batch: Vec<Member> = configs
        .iter()
        .zip(&members)
        .map(|(config, (_, data))| Member::new(config, data))
        .collect();
    // In a pool of 1 thread the members train as one stack; in a pool of 2, as two shards of
    // two, each on its own thread (round-robin: members 0 and 2, 1 and 3).
    for threads in [1, 2] {
        let pool = common::pool(threads);
        let mut handed: Vec<(usize, FinishedRun)> = Vec::new();
        pool.install(|| {
            train_ensemble_with(&batch, &device, &mut Quiet, &mut |i, out| {
                handed.push((i, out))
            })
        })
        .unwrap();
        // Members are handed over as they stop: in one stack, the earliest stop first.
        let order: Vec<usize> = handed.iter().map(|(_, o)| o.result.epochs).collect();
        if threads == 1 {
            assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        }
        handed.sort_by_key(|(i, _)| *i);
        let indices: Vec<usize> = handed.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, [0, 1, 2, 3], "{threads} threads: each member once");
        let together: Vec<FinishedRun> = handed.into_iter().map(|(_, o)| o).collect();
        if realbias_train::backend::backend_name() == "flex" {
            // Each shard trained on one thread of its own.
            let used = |o: &FinishedRun| o.result.machine.as_ref().map(|m| m.threads);
            assert!(
                together.iter().all(|o| used(o) == Some(1)),
                "{threads} threads"
            );
        }
        members_match_alone(&alone, &together);
    }
}

/// Each member of an ensemble of 4 against its run alone: the same stop, and the same
/// records within tolerances (on flex, the same bits).
fn members_match_alone(alone: &[FinishedRun], together: &[FinishedRun]) {
    let stops: Vec<usize> = alone.iter().map(|o| o.result.epochs).collect();
    assert!(
        stops.iter().any(|&e| e < 80) && stops.contains(&80),
        "the test needs members that stop early and members that reach the cap: {stops:?}"
    );
    let one_example = 1.0 / 200.0 + 1e-9;
    for (i, (a, e)) in alone.iter().zip(together).enumerate() {
        let (ra, re) = (&a.result, &e.result);
        assert_eq!(re.ensemble_members, Some(4));
        assert_eq!(ra.stop_reason, re.stop_reason, "member {i}");
        assert_eq!(ra.epochs, re.epochs, "member {i}");
        assert_eq!(ra.early_stop_epoch, re.early_stop_epoch, "member {i}");
        assert_eq!(
            ra.epochs_to_zero_train_error, re.epochs_to_zero_train_error,
            "member {i}"
        );
        assert!(
            (ra.test_error - re.test_error).abs() <= 1.0 / 500.0 + 1e-9,
            "member {i}"
        );
        assert_eq!(a.history.len(), e.history.len(), "member {i}");
        for (x, y) in a.history.iter().zip(&e.history) {
            let close = |p: f64, q: f64| (p - q).abs() <= 1e-4 * p.abs().max(q.abs()).max(1e-6);
            let what = format!("member {i}, epoch {}", x.epoch);
            assert!(
                close(x.train_loss, y.train_loss),
                "{what}: {} vs {}",
                x.train_loss,
                y.train_loss
            );
            assert!(close(x.validation_loss, y.validation_loss), "{what}");
            assert!(close(x.u_frobenius, y.u_frobenius), "{what}");
            assert!(
                (x.train_error - y.train_error).abs() <= one_example,
                "{what}"
            );
            assert!(
                (x.validation_error - y.validation_error).abs() <= one_example,
                "{what}"
            );
        }
        let (ma, me) = (ra.measures.as_ref().unwrap(), re.measures.as_ref().unwrap());
        let (pa, pe) = (ma.at_convergence.path_norm, me.at_convergence.path_norm);
        assert!(
            (pa - pe).abs() <= 1e-4 * pa.abs(),
            "member {i}: path norm {pa} vs {pe}"
        );
        if realbias_train::backend::backend_name() == "flex" {
            same_bits_as_alone(i, a, e);
        }
    }
}

/// On the CPU backend a member's batched evaluation reduces the same logits in the same order
/// as the run alone: every record, test error and measure has the same bits.
fn same_bits_as_alone(i: usize, alone: &FinishedRun, member: &FinishedRun) {
    for (x, y) in alone.history.iter().zip(&member.history) {
        let bits = |r: &realbias_train::run_files::record::EpochRecord| {
            let flips = r.pattern_flip_fraction.map(f64::to_bits);
            let values = [r.train_loss, r.validation_loss, r.margin_p5, r.u_frobenius];
            (values.map(f64::to_bits), flips, r.group_norm.to_bits())
        };
        assert_eq!(bits(x), bits(y), "member {i}, epoch {}", x.epoch);
    }
    let (ra, re) = (&alone.result, &member.result);
    assert_eq!(ra.test_error, re.test_error, "member {i}");
    assert_eq!(
        ra.early_stop_test_error, re.early_stop_test_error,
        "member {i}"
    );
    let timeless = |m: &realbias_train::run_files::record::RunMeasures| {
        let mut m = m.clone();
        (m.at_convergence.seconds, m.early_stop.seconds) = (0.0, 0.0);
        m
    };
    let (ma, me) = (ra.measures.as_ref().unwrap(), re.measures.as_ref().unwrap());
    assert_eq!(timeless(ma), timeless(me), "member {i}: measures");
}

#[test]
fn runs_that_cannot_share_an_ensemble_are_refused_before_training() {
    let data = teacher_data(1);
    let refusal = |pairs: [(&TrainConfig, &Dataset); 2]| {
        let configs = pairs.map(|(config, _)| checked(config));
        let members = [0, 1].map(|i| Member::new(&configs[i], pairs[i].1));
        let e = train_ensemble(&members, &device(), &mut Quiet).err();
        e.map(|e| e.to_string()).unwrap_or_default()
    };
    let a = config(SYNTHETIC);
    let mut b = a.clone();
    b.optim.lr = 0.05;
    let e = refusal([(&a, &data), (&b, &data)]);
    assert!(e.contains("member 1 differs"), "{e}");
    let small = Dataset {
        train: Split {
            dim: 10,
            features: data.train.features[..100].to_vec(),
            labels: data.train.labels[..10].to_vec(),
        },
        ..data.clone()
    };
    let e = refusal([(&a, &data), (&a, &small)]);
    assert!(e.contains("member 1's data"), "{e}");
    // The splits are evaluated stacked: a validation split of another size cannot join.
    let mut short = data.clone();
    short.validation = data.validation.slice(0..data.validation.len() - 1);
    let e = refusal([(&a, &data), (&a, &short)]);
    assert!(e.contains("member 1's data"), "{e}");
}

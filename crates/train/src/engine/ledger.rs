//! One run's bookkeeping, whichever loop steps its weights: evaluation after every epoch, the
//! history, the best-validation network, the stop rule, the result at the end, and the run's
//! [`RunCheckpoint`] for a checkpoint.

use std::cell::OnceCell;
use std::time::Instant;

use burn::tensor::{Bool, Device, Tensor};
use realbias_data::{Dataset, Split};
use realbias_model::{TwoLayerNet, norm_measures};

use crate::config::{TrainConfig, TrainSettings};
use crate::eval::{DeviceSplit, Evaluation, TrainingEvaluation};
use crate::measures::{MeasureInputs, frobenius, measure, pattern_fractions, percentile};
use crate::run_files::record::{EpochRecord, FinishedRun, RunMeasures, RunResult, StopReason};
use crate::run_files::state::{RunCheckpoint, SavedLedger};
use crate::weights::Weights;
use crate::{Progress, TrainError};

/// When a run stops: divergence, "convergence" (zero training error and a training loss below
/// the tolerance for some consecutive epochs), or the epoch cap.
#[derive(Debug, Clone)]
pub(crate) struct StopRule {
    max_epochs: usize,
    converge_loss: f64,
    converge_epochs: usize,
    streak: usize,
}

impl StopRule {
    pub fn new(config: &TrainSettings) -> Self {
        StopRule {
            max_epochs: config.max_epochs,
            converge_loss: config.converge_loss,
            converge_epochs: config.converge_epochs,
            streak: 0,
        }
    }

    /// Whether an epoch counts towards convergence: zero training error and a training loss
    /// under the tolerance.
    fn within_tolerance(&self, train_loss: f64, train_error: f64) -> bool {
        train_error == 0.0 && train_loss < self.converge_loss
    }

    /// Called after epoch `epoch`'s evaluation: why the run stops now, if it does.
    pub fn after_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
        train_error: f64,
    ) -> Option<StopReason> {
        if !train_loss.is_finite() {
            return Some(StopReason::Diverged);
        }
        self.streak = if self.within_tolerance(train_loss, train_error) {
            self.streak + 1
        } else {
            0
        };
        if self.streak >= self.converge_epochs {
            Some(StopReason::Converged)
        } else if epoch >= self.max_epochs {
            Some(StopReason::MaxEpochs)
        } else {
            None
        }
    }
}

/// Initial activation patterns are kept for the per-epoch dynamics only up to this many
/// (example, unit) pairs (32 MiB of booleans): Figure 2's runs (2,000 x 2,048) qualify,
/// Figure 1's full training set only up to H = 512. Beyond, the end-of-run measures still
/// count the flips (`measures.at_convergence.pattern_*`).
pub const PATTERN_LIMIT: usize = 1 << 25;

/// The initial network as the per-epoch dynamics compare with it.
struct Initial {
    u: Vec<f32>,
    v: Vec<f32>,
    u_norm: f64,
    v_norm: f64,
    /// The training split's activation patterns, chunk by chunk, on the device (none: not
    /// kept, or kept by an ensemble's stacked evaluation instead).
    patterns: Option<Vec<Tensor<2, Bool>>>,
}

impl Initial {
    /// The initial network's weights and norms, without its patterns.
    fn weights_of(net: &TwoLayerNet) -> Result<Self, TrainError> {
        let (u, v) = net.weights()?;
        Ok(Initial {
            u_norm: frobenius(&u, None),
            v_norm: frobenius(&v, None),
            u,
            v,
            patterns: None,
        })
    }
}

/// Whether the per-epoch dynamics keep the initial activation patterns of `examples`
/// examples on `hidden` units ([`PATTERN_LIMIT`]).
pub(crate) fn keeps_patterns(examples: usize, hidden: usize) -> bool {
    examples * hidden <= PATTERN_LIMIT
}

/// Who reads a run's epochs: its own ledger, or its ensemble's stacked evaluation (which then
/// keeps the initial activation patterns itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    Own,
    Ensemble,
}

/// `x / y`, 0 when `y` is 0 (a zero initialization).
fn ratio(x: f64, y: f64) -> f64 {
    if y > 0.0 { x / y } else { 0.0 }
}

/// What one epoch's record is computed from, read back from the device: by the run's own
/// [`Evaluator`], or for an ensemble's member by the stacked evaluation of all members.
pub(crate) struct EpochReading {
    pub train: TrainingEvaluation,
    pub validation: Evaluation,
    pub test_error: Option<f64>,
    /// The network's weights on the host.
    pub u: Vec<f32>,
    pub v: Vec<f32>,
    /// What reading it took (an ensemble member's share of the stacked evaluation).
    pub seconds: f64,
}

/// The splits on the evaluation device, uploaded when first needed (an ensemble's member
/// needs them only at its end), and the per-epoch record they give.
struct Evaluator<'a> {
    config: &'a TrainConfig,
    data: &'a Dataset,
    device: &'a Device,
    train: OnceCell<DeviceSplit>,
    validation: OnceCell<DeviceSplit>,
    test: OnceCell<DeviceSplit>,
    initial: Initial,
    start: Instant,
}

impl<'a> Evaluator<'a> {
    /// The evaluator of a run on `data` from the network `initial`, its epochs read by
    /// `reader` (its own: the initial activation patterns are kept here, within the limit).
    fn new(
        (config, data): (&'a TrainConfig, &'a Dataset),
        device: &'a Device,
        initial: &TwoLayerNet,
        reader: Reader,
    ) -> Result<Self, TrainError> {
        let mut eval = Evaluator {
            config,
            data,
            device,
            train: OnceCell::new(),
            validation: OnceCell::new(),
            test: OnceCell::new(),
            initial: Initial::weights_of(initial)?,
            start: Instant::now(),
        };
        let (_, h, _) = initial.dims();
        if reader == Reader::Own && keeps_patterns(data.train.len(), h) {
            eval.initial.patterns = Some(eval.train().patterns(initial));
        }
        Ok(eval)
    }

    /// `measures` with the flatness measures of the final network `last` added, when the
    /// config asks for them (`train.flatness`): the values a recompute from the saved
    /// networks gives.
    fn with_flatness(
        &self,
        measures: Option<RunMeasures>,
        last: &TwoLayerNet,
    ) -> Result<Option<RunMeasures>, TrainError> {
        let Some(mut measures) = measures else {
            return Ok(None);
        };
        if !self.config.train.flatness {
            return Ok(Some(measures));
        }
        let (u, v) = last.weights()?;
        let dims = last.dims();
        let relu = self.config.model.activation == realbias_model::Activation::Relu;
        let view = |u, v| crate::measures::flatness::Weights { u, v, dims, relu };
        let (net, init) = (view(&u, &v), view(&self.initial.u, &self.initial.v));
        let seed = self.config.train.seed;
        let flatness =
            crate::measures::flatness::flatness(&net, &init, &self.data.train, seed, self.device)?;
        measures.at_convergence.flatness = Some(flatness);
        Ok(Some(measures))
    }

    fn upload<'s>(&self, cell: &'s OnceCell<DeviceSplit>, split: &Split) -> &'s DeviceSplit {
        cell.get_or_init(|| DeviceSplit::new(split, self.config.train.eval_batch, self.device))
    }

    fn train(&self) -> &DeviceSplit {
        self.upload(&self.train, &self.data.train)
    }

    fn validation(&self) -> &DeviceSplit {
        self.upload(&self.validation, &self.data.validation)
    }

    fn test(&self) -> &DeviceSplit {
        self.upload(&self.test, &self.data.test)
    }

    /// Evaluates `net` on the splits the epoch's record needs.
    fn read(&self, net: &TwoLayerNet) -> Result<EpochReading, TrainError> {
        let t = Instant::now();
        let patterns = self.initial.patterns.as_deref();
        let train = self.train().evaluate_dynamics(net, patterns)?;
        let validation = self.validation().evaluate(net)?;
        let test_error = match self.config.train.eval_test_every_epoch {
            true => Some(self.test().evaluate(net)?.error),
            false => None,
        };
        let (u, v) = net.weights()?;
        Ok(EpochReading {
            train,
            validation,
            test_error,
            u,
            v,
            seconds: t.elapsed().as_secs_f64(),
        })
    }

    /// Epoch `epoch`'s record of a network of shape `(d, h, k)` read as `reading`.
    fn record(
        &self,
        mut reading: EpochReading,
        (d, h, k): (usize, usize, usize),
        epoch: usize,
        train_seconds: f64,
    ) -> EpochRecord {
        let t = Instant::now();
        let initial = &self.initial;
        let (u, v) = (&reading.u, &reading.v);
        let norms = norm_measures(u, v, d, h, k);
        let moved = |w: &[f32], w0: &[f32], n0: f64| ratio(frobenius(w, Some(w0)), n0);
        let u_distance_relative = moved(u, &initial.u, initial.u_norm);
        let v_distance_relative = moved(v, &initial.v, initial.v_norm);
        let tr = &mut reading.train;
        let fractions = tr
            .flips_per_unit
            .as_deref()
            .map(|f| pattern_fractions(f, self.data.train.len()));
        // Epoch e's record carries the step size and momentum its steps used (epoch 0: the
        // first epoch's).
        let schedule_epoch = epoch.saturating_sub(1);
        EpochRecord {
            epoch,
            lr: self.config.optim.lr_at(schedule_epoch),
            momentum: self.config.optim.momentum_at(schedule_epoch),
            train_loss: tr.evaluation.loss,
            train_error: tr.evaluation.error,
            validation_loss: reading.validation.loss,
            validation_error: reading.validation.error,
            test_error: reading.test_error,
            u_frobenius: norms.u_frobenius,
            v_frobenius: norms.v_frobenius,
            weight_decay_penalty: norms.weight_decay_penalty,
            group_norm: norms.group_norm,
            u_distance_relative,
            v_distance_relative,
            margin_p5: match tr.margins.is_empty() {
                true => 0.0,
                false => percentile(&mut tr.margins, 0.05),
            },
            pattern_changed_units: fractions.map(|f| f.0),
            pattern_flip_fraction: fractions.map(|f| f.1),
            train_seconds,
            eval_seconds: reading.seconds + t.elapsed().as_secs_f64(),
            wall_seconds: self.start.elapsed().as_secs_f64(),
        }
    }
}

/// What a run's result needs from the device at its end: the test errors of its last and its
/// best-validation network, and their measures (none: not due).
pub(crate) struct FinalReadings {
    pub test_error: f64,
    pub early_stop_test_error: f64,
    pub measures: Option<RunMeasures>,
}

/// The network with the lowest validation error so far (the first such epoch).
struct Best {
    validation_error: f64,
    epoch: usize,
    net: TwoLayerNet,
}

/// One run's bookkeeping, whichever loop steps its weights (a single run's or an ensemble's):
/// the evaluation after every epoch, the history, the best-validation network, the stop
/// rule, and the result at the end.
pub(crate) struct Ledger<'a> {
    /// The run's splits and its config, data and device.
    eval: Evaluator<'a>,
    init: TwoLayerNet,
    best: Best,
    history: Vec<EpochRecord>,
    rule: StopRule,
    /// The step length and coefficient the next record carries instead of the schedule's
    /// (a full-batch method's line search chooses them).
    step: Option<(f64, f64)>,
}

impl<'a> Ledger<'a> {
    /// The next epoch's record shows step length `length` and coefficient `beta` in its `lr`
    /// and `momentum` columns.
    pub fn record_step(&mut self, length: f64, beta: f64) {
        self.step = Some((length, beta));
    }

    /// Evaluates the initial network `initial` (epoch 0) and starts the history.
    pub fn start(
        config: &'a TrainConfig,
        data: &'a Dataset,
        device: &'a Device,
        initial: TwoLayerNet,
        progress: &mut dyn Progress,
    ) -> Result<Self, TrainError> {
        let eval = Evaluator::new((config, data), device, &initial, Reader::Own)?;
        let reading = eval.read(&initial)?;
        Ok(Self::started(eval, initial, reading, progress))
    }

    /// [`start`](Self::start) for a member of an ensemble, whose initial network `initial`
    /// the stacked evaluation read as `reading`.
    pub fn start_member(
        (config, data): (&'a TrainConfig, &'a Dataset),
        device: &'a Device,
        initial: TwoLayerNet,
        reading: EpochReading,
        progress: &mut dyn Progress,
    ) -> Result<Self, TrainError> {
        let eval = Evaluator::new((config, data), device, &initial, Reader::Ensemble)?;
        Ok(Self::started(eval, initial, reading, progress))
    }

    fn started(
        eval: Evaluator<'a>,
        initial: TwoLayerNet,
        reading: EpochReading,
        progress: &mut dyn Progress,
    ) -> Self {
        let record = eval.record(reading, initial.dims(), 0, 0.0);
        progress.epoch(&record);
        let rule = StopRule::new(&eval.config.train);
        Ledger {
            best: Best {
                validation_error: record.validation_error,
                epoch: 0,
                net: initial.clone(),
            },
            eval,
            init: initial,
            history: vec![record],
            rule,
            step: None,
        }
    }

    /// Takes up the bookkeeping of a run from its saved `state` (`initial`: its initial
    /// network, drawn again from the seed), its epochs read by `reader`.
    pub fn resume(
        (config, data): (&'a TrainConfig, &'a Dataset),
        device: &'a Device,
        initial: TwoLayerNet,
        state: &RunCheckpoint,
        reader: Reader,
    ) -> Result<Self, TrainError> {
        let mut eval = Evaluator::new((config, data), device, &initial, reader)?;
        let kept = &state.ledger;
        let elapsed = std::time::Duration::from_secs_f64(kept.elapsed_seconds.max(0.0));
        eval.start = Instant::now().checked_sub(elapsed).unwrap_or(eval.start);
        let (d, _, k) = initial.dims();
        let best = state.best.clone();
        let mut rule = StopRule::new(&config.train);
        rule.streak = kept.streak;
        Ok(Ledger {
            eval,
            best: Best {
                validation_error: kept.best_validation_error,
                epoch: kept.best_epoch,
                net: TwoLayerNet::from_weights(best.u, best.v, &config.model.network(d, k), device),
            },
            init: initial,
            history: kept.history.clone(),
            rule,
            step: None,
        })
    }

    /// The run's state after its last recorded epoch, its network then being `weights` with
    /// momentum buffers `velocity`.
    pub fn state(
        &self,
        weights: Weights,
        velocity: Option<Weights>,
    ) -> Result<RunCheckpoint, TrainError> {
        Ok(RunCheckpoint {
            weights,
            velocity,
            optimizer: None,
            best: Weights::of(&self.best.net)?,
            ledger: SavedLedger {
                best_epoch: self.best.epoch,
                best_validation_error: self.best.validation_error,
                streak: self.rule.streak,
                elapsed_seconds: self.eval.start.elapsed().as_secs_f64(),
                history: self.history.clone(),
            },
        })
    }

    /// Why a run stops whose weights can no longer change (a full-batch method at its
    /// floating-point floor): converged when its last epoch meets the convergence tolerance,
    /// since every further epoch would repeat it, else stalled.
    pub fn at_fixed_point(&self) -> StopReason {
        let last = self.history.last();
        let converged =
            last.is_some_and(|r| self.rule.within_tolerance(r.train_loss, r.train_error));
        match converged {
            true => StopReason::Converged,
            false => StopReason::Stalled,
        }
    }

    /// The last epoch's record (epoch 0: the initial network's).
    pub fn last_record(&self) -> Option<&EpochRecord> {
        self.history.last()
    }

    /// Epochs recorded so far (0: only the initial network).
    pub fn epochs_done(&self) -> usize {
        self.history.last().map_or(0, |r| r.epoch)
    }

    /// Records epoch `epoch`'s network `net` (its steps took `train_seconds`); why the run
    /// stops now, if it does.
    pub fn after_epoch(
        &mut self,
        net: TwoLayerNet,
        epoch: usize,
        train_seconds: f64,
        progress: &mut dyn Progress,
    ) -> Result<Option<StopReason>, TrainError> {
        let reading = self.eval.read(&net)?;
        Ok(self.after_reading(net, reading, (epoch, train_seconds), progress))
    }

    /// [`after_epoch`](Self::after_epoch) for a network already read as `reading` (an
    /// ensemble's member, by the stacked evaluation).
    pub fn after_reading(
        &mut self,
        net: TwoLayerNet,
        reading: EpochReading,
        (epoch, train_seconds): (usize, f64),
        progress: &mut dyn Progress,
    ) -> Option<StopReason> {
        let mut record = self.eval.record(reading, net.dims(), epoch, train_seconds);
        if let Some((lr, momentum)) = self.step.take() {
            (record.lr, record.momentum) = (lr, momentum);
        }
        progress.epoch(&record);
        let verdict = self
            .rule
            .after_epoch(epoch, record.train_loss, record.train_error);
        if record.validation_error < self.best.validation_error {
            self.best = Best {
                validation_error: record.validation_error,
                epoch,
                net,
            };
        }
        self.history.push(record);
        verdict
    }

    /// Whether a run that stops for `stop` gets its complexity measures.
    pub fn measures_due(&self, stop: StopReason) -> bool {
        self.eval.config.train.measures && stop != StopReason::Interrupted
    }

    /// The best-validation network so far, and the initial one.
    pub fn best_and_initial(&self) -> (&TwoLayerNet, &TwoLayerNet) {
        (&self.best.net, &self.init)
    }

    /// The run's result from its history, its last network `last` and the best one.
    pub fn finish(self, last: TwoLayerNet, stop: StopReason) -> Result<FinishedRun, TrainError> {
        let test = self.eval.test();
        let ends = FinalReadings {
            test_error: test.evaluate(&last)?.error,
            early_stop_test_error: test.evaluate(&self.best.net)?.error,
            measures: match self.measures_due(stop) {
                true => Some(self.measures(&last)?),
                false => None,
            },
        };
        self.finish_with(last, stop, ends)
    }

    /// [`finish`](Self::finish) with the end-of-run evaluations `ends` already made (an
    /// ensemble's, for all members stopping together).
    pub fn finish_with(
        self,
        last: TwoLayerNet,
        stop: StopReason,
        ends: FinalReadings,
    ) -> Result<FinishedRun, TrainError> {
        let (eval, best) = (&self.eval, self.best);
        let (config, data) = (eval.config, eval.data);
        let history = self.history;
        let last_record = history.last().cloned().ok_or(TrainError::Internal {
            what: "history",
            message: "no epoch was recorded".into(),
        })?;
        let norms = last.norms()?;
        let measures = self.eval.with_flatness(ends.measures, &last)?;
        let epochs = last_record.epoch;
        let train_seconds: f64 = history.iter().map(|r| r.train_seconds).sum();
        let result = RunResult {
            train_error: last_record.train_error,
            train_loss: last_record.train_loss,
            validation_error: last_record.validation_error,
            test_error: ends.test_error,
            early_stop_epoch: best.epoch,
            early_stop_validation_error: best.validation_error,
            early_stop_test_error: ends.early_stop_test_error,
            early_stop_train_error: history.get(best.epoch).map(|r| r.train_error),
            epochs_to_zero_train_error: history
                .iter()
                .find(|r| r.train_error == 0.0)
                .map(|r| r.epoch),
            epochs,
            stop_reason: stop,
            wall_seconds: eval.start.elapsed().as_secs_f64(),
            seconds_per_epoch: if epochs > 0 {
                train_seconds / epochs as f64
            } else {
                0.0
            },
            hidden: config.model.hidden,
            seed: config.train.seed,
            backend: crate::backend::backend_name().into(),
            git_revision: crate::run_files::provenance::BUILD_REVISION.into(),
            machine: Some(crate::run_files::provenance::Machine::this()),
            dataset: data.name.clone(),
            train_examples: data.train.len(),
            validation_examples: data.validation.len(),
            test_examples: data.test.len(),
            norms,
            u_frobenius: norms.u_frobenius,
            v_frobenius: norms.v_frobenius,
            weight_decay_penalty: norms.weight_decay_penalty,
            group_norm: norms.group_norm,
            parameters: norms.parameters,
            config: config.clone(),
            measures,
            true_labels: None,
            ensemble_members: None,
            gradient_evaluations: None,
        };
        Ok(FinishedRun {
            result,
            history,
            final_net: last,
            initial_net: self.init,
            early_stop_net: best.net,
        })
    }

    /// The complexity measures of the last and the early-stopped network.
    fn measures(&self, last: &TwoLayerNet) -> Result<RunMeasures, TrainError> {
        let of = |net: &TwoLayerNet| {
            measure(&MeasureInputs {
                net,
                init: &self.init,
                split: &self.eval.data.train,
                train: self.eval.train(),
                device: self.eval.device,
                seed: self.eval.config.train.seed,
            })
        };
        Ok(RunMeasures {
            at_convergence: of(last)?,
            early_stop: of(&self.best.net)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_epochs: usize) -> StopRule {
        StopRule::new(&TrainSettings {
            max_epochs,
            converge_loss: 0.02,
            converge_epochs: 3,
            ..TrainSettings::default()
        })
    }

    #[test]
    fn the_stop_rule_needs_consecutive_converged_epochs() {
        let mut r = rule(100);
        assert_eq!(r.after_epoch(1, 0.01, 0.0), None);
        assert_eq!(r.after_epoch(2, 0.01, 0.0), None);
        // A training error resets the streak.
        assert_eq!(r.after_epoch(3, 0.01, 0.001), None);
        assert_eq!(r.after_epoch(4, 0.01, 0.0), None);
        assert_eq!(r.after_epoch(5, 0.01, 0.0), None);
        assert_eq!(r.after_epoch(6, 0.01, 0.0), Some(StopReason::Converged));
    }

    #[test]
    fn the_stop_rule_stops_at_the_cap_and_on_divergence() {
        let mut r = rule(2);
        assert_eq!(r.after_epoch(1, 1.0, 0.5), None);
        assert_eq!(r.after_epoch(2, 1.0, 0.5), Some(StopReason::MaxEpochs));
        assert_eq!(
            rule(10).after_epoch(1, f64::NAN, 0.5),
            Some(StopReason::Diverged)
        );
    }
}

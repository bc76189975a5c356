//! The training strategy `SupervisedTraining` launches: the epoch loop over the `Learner`,
//! one `Stepper` of the crate's epoch loop.

use std::sync::{Arc, Mutex};

use burn::data::dataloader::Progress as LoaderProgress;
use burn::tensor::Device;
use burn::train::metric::store::EventStoreClient;
use burn::train::{
    EventProcessorTraining, Interrupter, Learner, LearnerEvent, SupervisedLearningStrategy,
    SupervisedTrainingEventProcessor, TrainLoader, TrainingComponents, TrainingItem, ValidLoader,
};
use realbias_data::Dataset;
use realbias_model::{Activation, TwoLayerNet};

use super::dashboard::{InferenceItem, SplitSummary, StepItem};
use super::loaders::EpochBatches;
use super::model::PaperModel;
use super::records::LearnerRecords;
use crate::engine::optimizer_record::from_record;
use crate::engine::{Stepped, Stepper, run_epochs};

use crate::config::TrainConfig;
use crate::engine::batches::BatchOrder;
use crate::engine::classifier::network;
use crate::engine::ledger::{Ledger, Reader};
use crate::run_files::record::{EpochRecord, FinishedRun, StopReason};
use crate::run_files::state::{CheckpointSlot, RunCheckpoint};
use crate::weights::Weights;
use crate::{Progress, TrainError};

/// What the caller of a Learner run hands to its strategy, and gets back.
pub(super) struct RunInputs<P> {
    pub(super) config: TrainConfig,
    pub(super) initial: TwoLayerNet,
    pub(super) data: Arc<Dataset>,
    pub(super) device: Device,
    pub(super) checkpoint: Option<CheckpointSlot>,
    pub(super) saved: Option<RunCheckpoint>,
    pub(super) batches: EpochBatches,
    pub(super) progress: P,
}

/// The training strategy `SupervisedTraining` launches: the epoch loop over the `Learner`.
/// It owns its inputs (Burn's launch takes a `'static` strategy) and leaves the run's
/// outcome, with the caller's progress, for the caller.
pub(crate) struct RunStrategy<P> {
    pub(super) inputs: Mutex<Option<RunInputs<P>>>,
    pub(super) outcome: Mutex<Option<(Result<FinishedRun, TrainError>, P)>>,
    /// Per-batch events for a dashboard (none without one: nothing crosses threads per step).
    pub(super) live: bool,
}

impl<P> RunStrategy<P> {
    pub(super) fn outcome(&self) -> (Result<FinishedRun, TrainError>, P) {
        let taken = self
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(outcome) = taken {
            return outcome;
        }
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let never = TrainError::Internal {
            what: "the Learner's run",
            message: "the training strategy never ran".into(),
        };
        match inputs {
            Some(inputs) => (Err(never), inputs.progress),
            None => unreachable!("a strategy that took its inputs leaves an outcome"),
        }
    }
}

impl<P: Progress + Send + 'static> SupervisedLearningStrategy<PaperModel> for RunStrategy<P> {
    fn fit(
        &self,
        components: TrainingComponents<PaperModel>,
        learner: Learner<PaperModel>,
        loader: TrainLoader<PaperModel>,
        _validation: ValidLoader<PaperModel>,
        _starting_epoch: usize,
    ) -> (PaperModel, SupervisedTrainingEventProcessor<PaperModel>) {
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut inputs) = inputs else {
            return (learner.model(), components.event_processor);
        };
        let mut parts = LearnerParts {
            learner,
            loader,
            events: components.event_processor,
            store: components.event_store,
            records: LearnerRecords::new(&components.interrupter),
            interrupter: components.interrupter,
            live: self.live,
        };
        let result = train_run(&mut parts, &mut inputs);
        let model = parts.learner.model();
        let outcome = (result, inputs.progress);
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        (model, parts.events)
    }
}

/// What the strategy's `fit` is handed by the launch.
pub(super) struct LearnerParts {
    learner: Learner<PaperModel>,
    loader: TrainLoader<PaperModel>,
    events: SupervisedTrainingEventProcessor<PaperModel>,
    store: Arc<EventStoreClient>,
    records: LearnerRecords,
    interrupter: Interrupter,
    live: bool,
}

impl LearnerParts {
    /// The network as it stands, without autodiff.
    fn net(&self, activation: Activation) -> TwoLayerNet {
        let model = self.learner.model();
        network(
            model.net.u.val().inner(),
            model.net.v.val().inner(),
            activation,
        )
    }

    /// Hands `event` to the event processor; a failure of the dashboard stops the run.
    fn train_event(&mut self, event: LearnerEvent<StepItem>) {
        self.interrupter
            .fail_on_error(self.events.process_train(event));
    }

    fn valid_event(&mut self, event: LearnerEvent<InferenceItem>) {
        self.interrupter
            .fail_on_error(self.events.process_valid(event));
    }
}

/// Trains the run of `inputs` on `parts`' `Learner` to its end.
pub(super) fn train_run<P: Progress>(
    parts: &mut LearnerParts,
    inputs: &mut RunInputs<P>,
) -> Result<FinishedRun, TrainError> {
    let RunInputs {
        config,
        initial,
        data,
        device,
        checkpoint,
        saved,
        batches,
        progress,
    } = inputs;
    let (config, data, device) = (&*config, &**data, &*device);
    let initial = initial.clone();
    let activation = initial.activation;
    let mut progress = WithInterrupter {
        progress,
        interrupter: parts.interrupter.clone(),
    };
    let mut ledger = match saved.take() {
        Some(saved) => {
            progress.resumed(&saved.ledger.history);
            Ledger::resume((config, data), device, initial, &saved, Reader::Own)?
        }
        None => Ledger::start(config, data, device, initial, &mut progress)?,
    };
    let done = ledger.epochs_done();
    let mut stepper = LearnerStepper {
        parts,
        ledger: &mut ledger,
        order: BatchOrder::after(config.train.seed, data.train.len(), done),
        batches,
        config,
        checkpoint: checkpoint.as_ref(),
        activation,
    };
    let epochs = done + 1..=config.train.max_epochs;
    let stop = run_epochs(&mut stepper, epochs, (&config.train, device), &mut progress)?;
    let net = parts.net(activation);
    parts.train_event(LearnerEvent::End(None));
    ledger.finish(net, stop)
}

/// The last item of epoch `epoch`'s split of `items` items.
pub(super) fn epoch_item<T>(item: T, (epoch, items): (usize, usize)) -> TrainingItem<T> {
    let progress = LoaderProgress::new(items, items, None);
    TrainingItem::new(item, progress, Some(epoch), None)
}

/// The `Learner` as the epoch loop's stepper.
pub(super) struct LearnerStepper<'s, 'a> {
    parts: &'s mut LearnerParts,
    ledger: &'s mut Ledger<'a>,
    order: BatchOrder,
    batches: &'s EpochBatches,
    config: &'a TrainConfig,
    checkpoint: Option<&'s CheckpointSlot>,
    activation: Activation,
}

/// The caller's progress, with the `Interrupter`'s stop (the dashboard's keys).
pub(super) struct WithInterrupter<'p, P> {
    progress: &'p mut P,
    interrupter: Interrupter,
}

impl<P: Progress> Progress for WithInterrupter<'_, P> {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        self.progress.batch(epoch, batch, batches);
    }
    fn epoch(&mut self, record: &EpochRecord) {
        self.progress.epoch(record);
    }
    fn resumed(&mut self, history: &[EpochRecord]) {
        self.progress.resumed(history);
    }
    fn stop_requested(&self) -> bool {
        self.interrupter.should_stop() || self.progress.stop_requested()
    }
}

impl Stepper for LearnerStepper<'_, '_> {
    fn step_epoch(
        &mut self,
        epoch: usize,
        progress: &mut dyn Progress,
    ) -> Result<Stepped, TrainError> {
        let batches = self.batches.batches();
        let device = self.parts.learner.model().net.u.val().device();
        let orders = [(0, self.order.shuffle())];
        let rows = self
            .batches
            .training
            .epoch_rows(&orders, self.batches.batch, &device);
        self.batches.set_epoch(rows);
        let parts = &mut *self.parts;
        let at_start = parts.learner.clone();
        parts.train_event(LearnerEvent::StartSplit {
            epoch_number: epoch,
            total_items: batches,
        });
        let loader = parts.loader.clone();
        let mut iter = loader.iter();
        let mut done = 0;
        while let Some(item) = iter.next() {
            if progress.stop_requested() {
                // A wide epoch takes seconds: the state at its start is saved, and the
                // resumed run redoes the epoch.
                parts.learner = at_start;
                return Ok(Stepped::Stopped);
            }
            let batch = item.map_err(|e| TrainError::Internal {
                what: "the epoch's batches",
                message: e.to_string(),
            })?;
            let output = parts.learner.train_step(batch);
            parts.learner.lr_step();
            parts.learner.optimizer_step(output.grads);
            done += 1;
            if parts.live {
                let lr = Some(parts.learner.lr_current());
                let item = TrainingItem::new(output.item, iter.progress(), Some(done), lr);
                parts.train_event(LearnerEvent::ProcessedItem(item));
            }
            progress.batch(epoch, done, batches);
        }
        Ok(Stepped::Done)
    }

    fn record_epoch(
        &mut self,
        epoch: usize,
        seconds: f64,
        progress: &mut dyn Progress,
    ) -> Result<Option<StopReason>, TrainError> {
        let net = self.parts.net(self.activation);
        let stop = self.ledger.after_epoch(net, epoch, seconds, progress)?;
        if let Some(record) = self.ledger.last_record() {
            let (train, validation) = SplitSummary::of(record);
            let parts = &mut *self.parts;
            let batches = self.batches.batches();
            let train = epoch_item(StepItem::Epoch(train), (epoch, batches));
            parts.train_event(LearnerEvent::ProcessedItem(train));
            parts.train_event(LearnerEvent::EndSplit(epoch));
            parts.valid_event(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: 1,
            });
            let summary = InferenceItem::Epoch(validation);
            parts.valid_event(LearnerEvent::ProcessedItem(epoch_item(summary, (epoch, 1))));
            parts.valid_event(LearnerEvent::EndSplit(epoch));
            parts.train_event(LearnerEvent::EndEpoch(epoch));
        }
        Ok(stop)
    }

    fn save(&mut self) -> Result<(), TrainError> {
        let Some(slot) = self.checkpoint else {
            return Ok(());
        };
        let parts = &mut *self.parts;
        let epoch = self.ledger.epochs_done();
        let record = parts
            .records
            .optimizer_of(&parts.learner, epoch, &parts.store)?;
        let net = parts.net(self.activation);
        let method = self
            .config
            .optim
            .method
            .mini_batch()
            .ok_or(TrainError::MethodLoop {
                method: self.config.optim.method.name(),
                engine: "Learner",
            })?;
        let (velocity, optimizer) = from_record(record, method, net.dims())?;
        let mut state = self.ledger.state(Weights::of(&net)?, velocity)?;
        state.optimizer = optimizer;
        slot.save(self.config, &state)
    }
}

//! A single mini-batch run (the paper's SGD, or Adam) on Burn's `Learner`, launched by
//! `SupervisedTraining` with this crate's training strategy ([`RunStrategy`]).
//!
//! What is Burn's: the `Learner` (model, optimizer, scheduler), its `train_step` (the model's
//! [`TrainStep`]: the fused loss and its gradients as `GradientsParams`), `lr_step` (Burn's
//! `StepLrScheduler`) and `optimizer_step` (`ModuleOptimizer` over [`PaperSgd`] or Adam, each
//! in [`CoupledDecay`]); the launch, its `Interrupter`, its event processor and metric store,
//! and the renderer the events feed (the terminal dashboard).
//!
//! What is this crate's: the strategy's epoch loop ([`super::run_epochs`]), the on-device
//! batches ([`EpochBatches`], one index upload an epoch), the full-split evaluation, stop rule
//! and history ([`Ledger`]), and one atomic checkpoint per run holding the Learner's model,
//! optimizer and scheduler state with the run's bookkeeping ([`CheckpointSlot`]).
//!
//! [`PaperSgd`]: crate::optim::PaperSgd
//! [`CoupledDecay`]: crate::optim::CoupledDecay

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress as LoaderProgress};
use burn::data::dataset::DatasetError;
use burn::module::{Module, Param, ParamId};
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor};
use burn::train::checkpoint::{
    AsyncCheckpointer, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;
use burn::train::renderer::MetricsRenderer;
use burn::train::{
    EventProcessorTraining, InferenceStep, Interrupter, Learner, LearnerEvent,
    LearningCheckpointer, LearningResult, SupervisedLearningStrategy, SupervisedTraining,
    SupervisedTrainingEventProcessor, TrainLoader, TrainOutput, TrainStep, TrainingComponents,
    TrainingItem, TrainingStrategy, ValidLoader,
};
use realbias_data::Dataset;
use realbias_model::{Activation, TwoLayerNet};

use super::optimizer_record::{U_PARAM, V_PARAM, from_record, to_record};
use super::{Stepped, Stepper, run_epochs};
use crate::batches::{BatchOrder, batch_ranges};
use crate::classifier::{Batch, Classifier, LossPath, TrainingSet, network};
use crate::config::TrainConfig;
use crate::ledger::{Ledger, Reader};
use crate::optim::MiniBatchMethod;
use crate::record::{EpochRecord, FinishedRun, StopReason};
use crate::state::{CheckpointSlot, RunCheckpoint};
use crate::weights::Weights;
use crate::{Progress, TrainError};

mod dashboard;

pub use dashboard::{InferenceItem, SplitSummary, StepItem};

/// The network a `Learner` trains, with the loss its training step differentiates.
#[derive(Module, Debug)]
pub struct PaperModel {
    pub net: TwoLayerNet,
    #[module(skip)]
    pub loss: LossPath,
}

impl PaperModel {
    /// The model with weights `u` and `v` (on an inference device), tracked by autodiff,
    /// under the fixed parameter ids the optimizer's record is keyed by.
    fn new(u: Tensor<2>, v: Tensor<2>, activation: Activation, loss: LossPath) -> Self {
        let tracked = |w: Tensor<2>| w.autodiff().require_grad();
        let net = TwoLayerNet {
            u: Param::initialized(ParamId::from(U_PARAM), tracked(u)),
            v: Param::initialized(ParamId::from(V_PARAM), tracked(v)),
            activation,
        };
        PaperModel { net, loss }
    }
}

impl TrainStep for PaperModel {
    type Input = Batch;
    type Output = StepItem;

    /// The gradient of the batch's mean loss, without reading anything back.
    fn step(&self, batch: Batch) -> TrainOutput<StepItem> {
        let model = Classifier {
            net: self.net.clone(),
            loss: self.loss,
        };
        let grads = model.loss(batch).backward();
        TrainOutput::new(self, grads, StepItem::Step)
    }
}

impl InferenceStep for PaperModel {
    type Input = Tensor<2>;
    type Output = InferenceItem;

    /// The logits of a batch of features.
    fn step(&self, x: Tensor<2>) -> InferenceItem {
        InferenceItem::Logits(Box::new(self.net.forward(x)))
    }
}

/// The mini-batches of the current epoch, gathered on the device from the training split
/// kept there: the strategy sets the epoch's shuffled rows ([`EpochBatches::set_epoch`]),
/// then the `Learner` steps through the batches.
#[derive(Clone)]
pub struct EpochBatches {
    training: Arc<TrainingSet>,
    rows: Arc<Mutex<Option<Tensor<1, Int>>>>,
    examples: usize,
    batch: usize,
}

impl EpochBatches {
    fn set_epoch(&self, rows: Tensor<1, Int>) {
        *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = Some(rows);
    }

    fn batches(&self) -> usize {
        self.examples.div_ceil(self.batch.max(1))
    }
}

/// The iteration over one epoch's batches.
struct BatchIter {
    training: Arc<TrainingSet>,
    rows: Option<Tensor<1, Int>>,
    ranges: Vec<(usize, usize)>,
    next: usize,
}

impl Iterator for BatchIter {
    type Item = Result<Batch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (start, len) = *self.ranges.get(self.next)?;
        self.next += 1;
        let Some(rows) = &self.rows else {
            let unset = std::io::Error::other("the epoch's rows were not set");
            return Some(Err(DatasetError::new(unset)));
        };
        Some(Ok(self.training.batch(rows.clone().narrow(0, start, len))))
    }
}

impl DataLoaderIterator<Batch> for BatchIter {
    fn progress(&self) -> LoaderProgress {
        LoaderProgress::new(self.next, self.ranges.len(), Some("batches".into()))
    }
}

impl DataLoader<Batch> for EpochBatches {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<Batch> + 'a> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Box::new(BatchIter {
            training: self.training.clone(),
            rows,
            ranges: batch_ranges(self.examples, self.batch).collect(),
            next: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.examples
    }

    fn to_device(&self, _device: &Device) -> Arc<dyn DataLoader<Batch>> {
        // The split was uploaded to the training device when the run started.
        Arc::new(self.clone())
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<Batch>> {
        let mut sliced = self.clone();
        sliced.examples = end.min(self.examples).saturating_sub(start);
        Arc::new(sliced)
    }
}

/// The validation split's features in chunks, for the model's inference step (the
/// strategy's per-epoch record evaluates the full splits itself, [`Ledger`]).
struct ValidationChunks {
    chunks: Vec<Tensor<2>>,
}

impl DataLoader<Tensor<2>> for ValidationChunks {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<Tensor<2>> + 'a> {
        Box::new(ChunkIter {
            chunks: &self.chunks,
            next: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.chunks.iter().map(|c| c.dims()[0]).sum()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<Tensor<2>>> {
        let chunks = self.chunks.iter().map(|c| c.clone().to_device(device));
        Arc::new(ValidationChunks {
            chunks: chunks.collect(),
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<Tensor<2>>> {
        let end = end.min(self.chunks.len());
        Arc::new(ValidationChunks {
            chunks: self.chunks[start.min(end)..end].to_vec(),
        })
    }
}

struct ChunkIter<'a> {
    chunks: &'a [Tensor<2>],
    next: usize,
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<Tensor<2>, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.chunks.get(self.next)?.clone();
        self.next += 1;
        Some(Ok(chunk))
    }
}

impl DataLoaderIterator<Tensor<2>> for ChunkIter<'_> {
    fn progress(&self) -> LoaderProgress {
        LoaderProgress::new(self.next, self.chunks.len(), Some("chunks".into()))
    }
}

/// Hands the records a `LearningCheckpointer` saves back to the strategy, which writes them
/// with the run's bookkeeping as one atomic file (Burn's own checkpointers write three files
/// from three threads, which is not atomic as a set).
struct HandBack<R>(SyncSender<R>);

impl<R: burn::train::checkpoint::Checkpoint> Checkpointer<R> for HandBack<R> {
    fn save(&self, _epoch: usize, record: R) -> Result<(), CheckpointerError> {
        self.0
            .send(record)
            .map_err(|e| CheckpointerError::Unknown(e.to_string()))
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        Err(CheckpointerError::Unknown(format!(
            "a run resumes from its own checkpoint file, not from epoch {epoch}'s records"
        )))
    }
}

/// Saves whenever asked: the strategy asks at its checkpoint times and at a stop.
struct EveryTimeAsked;

impl CheckpointingStrategy for EveryTimeAsked {
    fn checkpointing(&mut self, _epoch: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

/// The records of a `Learner`, handed back by its checkpointer.
struct LearnerRecords {
    checkpointer: LearningCheckpointer<PaperModel>,
    model: Receiver<ModuleRecord>,
    optimizer: Receiver<OptimizerRecord>,
    scheduler: Receiver<LrSchedulerRecord>,
}

impl LearnerRecords {
    fn new(interrupter: &Interrupter) -> Self {
        let (model_to, model) = mpsc::sync_channel(1);
        let (optimizer_to, optimizer) = mpsc::sync_channel(1);
        let (scheduler_to, scheduler) = mpsc::sync_channel(1);
        let checkpointer = LearningCheckpointer::new(
            AsyncCheckpointer::new(HandBack(model_to)).with_interrupter(interrupter.clone()),
            AsyncCheckpointer::new(HandBack(optimizer_to)).with_interrupter(interrupter.clone()),
            AsyncCheckpointer::new(HandBack(scheduler_to)).with_interrupter(interrupter.clone()),
            Box::new(EveryTimeAsked),
        );
        LearnerRecords {
            checkpointer,
            model,
            optimizer,
            scheduler,
        }
    }

    /// The optimizer's record of `learner` (the model's and the scheduler's come back too:
    /// the model's weights are read from the model itself, and the scheduler's state is its
    /// step count, which the epochs done fix).
    fn optimizer_of(
        &mut self,
        learner: &Learner<PaperModel>,
        epoch: usize,
        store: &EventStoreClient,
    ) -> Result<OptimizerRecord, TrainError> {
        self.checkpointer.checkpoint(learner, epoch, store);
        let lost = |what: &str| TrainError::Internal {
            what: "the Learner's records",
            message: format!("its checkpointer handed back no {what} record"),
        };
        self.model.recv().map_err(|_| lost("model"))?;
        self.scheduler.recv().map_err(|_| lost("scheduler"))?;
        self.optimizer.recv().map_err(|_| lost("optimizer"))
    }
}

/// What the caller of a Learner run hands to its strategy, and gets back.
struct RunInputs<P> {
    config: TrainConfig,
    initial: TwoLayerNet,
    data: Arc<Dataset>,
    device: Device,
    checkpoint: Option<CheckpointSlot>,
    saved: Option<RunCheckpoint>,
    batches: EpochBatches,
    progress: P,
}

/// The training strategy `SupervisedTraining` launches: the epoch loop over the `Learner`.
/// It owns its inputs (Burn's launch takes a `'static` strategy) and leaves the run's
/// outcome, with the caller's progress, for the caller.
pub(crate) struct RunStrategy<P> {
    inputs: Mutex<Option<RunInputs<P>>>,
    outcome: Mutex<Option<(Result<FinishedRun, TrainError>, P)>>,
    /// Per-batch events for a dashboard (none without one: nothing crosses threads per step).
    live: bool,
}

/// A run on the `Learner`: its inputs, the dashboard's renderer and `Interrupter` if any,
/// and the checkpoint it resumes from.
pub(crate) struct LearnerRun<'a, P> {
    pub config: &'a TrainConfig,
    /// The run's initial network, drawn from its seed.
    pub initial: TwoLayerNet,
    pub data: Arc<Dataset>,
    pub device: &'a Device,
    pub loss: LossPath,
    pub checkpoint: Option<CheckpointSlot>,
    pub saved: Option<RunCheckpoint>,
    pub dashboard: Option<(Box<dyn MetricsRenderer>, Interrupter)>,
    pub progress: P,
}

impl<P: Progress + Send + 'static> LearnerRun<'_, P> {
    /// Trains the run to its end through `SupervisedTraining::launch`; returns its output and
    /// the progress handed in.
    pub fn launch(self) -> (Result<FinishedRun, TrainError>, P) {
        let (config, data, device) = (self.config, self.data, self.device);
        let batch = config.optim.batch_size.min(data.train.len()).max(1);
        let training = TrainingSet::new(&[&data.train], data.classes, &device.clone().autodiff());
        let batches = EpochBatches {
            training: Arc::new(training),
            rows: Arc::new(Mutex::new(None)),
            examples: data.train.len(),
            batch,
        };
        let at = (self.loss, batches.batches(), device);
        let learner = learner_of(config, &self.initial, self.saved.as_ref(), at);
        let learner = match learner {
            Ok(learner) => learner,
            Err(e) => return (Err(e), self.progress),
        };
        let validation = ValidationChunks {
            chunks: validation_chunks(&data, config.train.eval_batch, device),
        };
        let dir = match &self.checkpoint {
            Some(slot) => slot.dir.clone(),
            None => std::env::temp_dir(),
        };
        let (renderer, interrupter) = match self.dashboard {
            Some((renderer, interrupter)) => (renderer, Some(interrupter)),
            None => (
                Box::new(dashboard::Headless) as Box<dyn MetricsRenderer>,
                None,
            ),
        };
        let strategy = Arc::new(RunStrategy {
            live: interrupter.is_some(),
            inputs: Mutex::new(Some(RunInputs {
                config: config.clone(),
                initial: self.initial,
                data: data.clone(),
                device: device.clone(),
                checkpoint: self.checkpoint,
                saved: self.saved,
                batches: batches.clone(),
                progress: self.progress,
            })),
            outcome: Mutex::new(None),
        });
        let mut training =
            SupervisedTraining::<PaperModel>::new(dir, Arc::new(batches), Arc::new(validation))
                .with_training_strategy(TrainingStrategy::Custom(strategy.clone()))
                .with_application_logger(None)
                .with_metric_logger(burn::train::logger::InMemoryMetricLogger::default())
                .renderer(renderer)
                .num_epochs(config.train.max_epochs);
        if let Some(interrupter) = interrupter {
            training = training.with_interrupter(interrupter);
        }
        let _: LearningResult<PaperModel> = dashboard::register_metrics(training).launch(learner);
        strategy.outcome()
    }
}

/// The validation split's features in chunks of `chunk` rows, on `device`.
fn validation_chunks(data: &Dataset, chunk: usize, device: &Device) -> Vec<Tensor<2>> {
    let split = &data.validation;
    let dim = split.dim;
    (0..split.len())
        .step_by(chunk.max(1))
        .map(|start| {
            let end = (start + chunk).min(split.len());
            let values = split.features[start * dim..end * dim].to_vec();
            let values = burn::tensor::TensorData::new(values, [end - start, dim]);
            Tensor::from_data(values, device)
        })
        .collect()
}

/// The `Learner` of a run of `config` from its initial network `initial`, or from `saved`,
/// on the autodiff twin of `device`.
fn learner_of(
    config: &TrainConfig,
    initial: &TwoLayerNet,
    saved: Option<&RunCheckpoint>,
    (loss, batches, device): (LossPath, usize, &Device),
) -> Result<Learner<PaperModel>, TrainError> {
    let done = saved.map_or(0, |s| s.epoch());
    let dims = initial.dims();
    let (u, v) = match saved {
        Some(s) => s.weights.upload(dims, device),
        None => (initial.u.val(), initial.v.val()),
    };
    let model = PaperModel::new(u, v, initial.activation, loss);
    let optim = &config.optim;
    let not_here = || TrainError::MethodLoop {
        method: optim.method.name(),
        engine: "Learner",
    };
    let method = optim.method.mini_batch().ok_or_else(not_here)?;
    let optimizer: ModuleOptimizer = match method {
        MiniBatchMethod::Sgd => optim.paper_sgd(batches).into(),
        MiniBatchMethod::Adam => crate::optim::CoupledDecay {
            inner: crate::optim::adam_of(&optim.adam_settings()),
            weight_decay: optim.weight_decay,
        }
        .into(),
    };
    let scheduler = optim.lr_scheduler(batches, done).ok_or_else(not_here)?;
    let mut learner = Learner::new(model, optimizer, scheduler);
    if let Some(s) = saved
        && let Some(record) = to_record(s, method, batches, dims)?
    {
        learner.load_optim(record);
    }
    Ok(learner)
}

impl<P> RunStrategy<P> {
    fn outcome(&self) -> (Result<FinishedRun, TrainError>, P) {
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
struct LearnerParts {
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
fn train_run<P: Progress>(
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
fn epoch_item<T>(item: T, (epoch, items): (usize, usize)) -> TrainingItem<T> {
    let progress = LoaderProgress::new(items, items, None);
    TrainingItem::new(item, progress, Some(epoch), None)
}

/// The `Learner` as the epoch loop's stepper.
struct LearnerStepper<'s, 'a> {
    parts: &'s mut LearnerParts,
    ledger: &'s mut Ledger<'a>,
    order: BatchOrder,
    batches: &'s EpochBatches,
    config: &'a TrainConfig,
    checkpoint: Option<&'s CheckpointSlot>,
    activation: Activation,
}

/// The caller's progress, with the `Interrupter`'s stop (the dashboard's keys).
struct WithInterrupter<'p, P> {
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

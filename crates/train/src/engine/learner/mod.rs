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

use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use burn::train::renderer::MetricsRenderer;
use burn::train::{Interrupter, LearningResult, SupervisedTraining, TrainingStrategy};
use realbias_data::Dataset;
use realbias_model::TwoLayerNet;

use crate::config::TrainConfig;
use crate::engine::classifier::{LossPath, TrainingSet};
use crate::run_files::record::FinishedRun;
use crate::run_files::state::{CheckpointSlot, RunCheckpoint};
use crate::{Progress, TrainError};

mod dashboard;
mod loaders;
mod model;
mod records;
mod strategy;

use loaders::{EpochBatches, ValidationChunks, validation_chunks};
pub use model::PaperModel;
use records::learner_of;
use strategy::{RunInputs, RunStrategy};

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

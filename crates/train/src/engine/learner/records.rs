//! The `Learner` to and from the run's checkpoint: built from the initial network or a saved
//! state, and its records handed back by a `LearningCheckpointer` to be saved as one file.

use std::sync::mpsc::{self, Receiver, SyncSender};

use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::{
    AsyncCheckpointer, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;
use burn::train::{Interrupter, Learner, LearningCheckpointer};
use realbias_model::TwoLayerNet;

use super::model::PaperModel;
use crate::engine::optimizer_record::to_record;

use crate::TrainError;
use crate::config::TrainConfig;
use crate::engine::classifier::LossPath;
use crate::optim::MiniBatchMethod;
use crate::run_files::state::RunCheckpoint;

/// The `Learner` of a run of `config` from its initial network `initial`, or from `saved`,
/// on the autodiff twin of `device`.
pub(super) fn learner_of(
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

/// Hands the records a `LearningCheckpointer` saves back to the strategy, which writes them
/// with the run's bookkeeping as one atomic file (Burn's own checkpointers write three files
/// from three threads, which is not atomic as a set).
pub(super) struct HandBack<R>(SyncSender<R>);

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
pub(super) struct EveryTimeAsked;

impl CheckpointingStrategy for EveryTimeAsked {
    fn checkpointing(&mut self, _epoch: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

/// The records of a `Learner`, handed back by its checkpointer.
pub(super) struct LearnerRecords {
    checkpointer: LearningCheckpointer<PaperModel>,
    model: Receiver<ModuleRecord>,
    optimizer: Receiver<OptimizerRecord>,
    scheduler: Receiver<LrSchedulerRecord>,
}

impl LearnerRecords {
    pub(super) fn new(interrupter: &Interrupter) -> Self {
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
    pub(super) fn optimizer_of(
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

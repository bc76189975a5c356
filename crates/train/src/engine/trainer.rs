//! One training run of the paper's protocol. A mini-batch run (the paper's SGD, Adam) trains
//! on Burn's `Learner`, launched by `SupervisedTraining` with this crate's training strategy
//! ([`crate::engine::learner`]); a full-batch run (conjugate gradient, L-BFGS) steps its
//! line-searched iterations itself ([`crate::engine::full_batch`]). Both go through the one epoch
//! loop ([`crate::engine::run_epochs`]), keep their bookkeeping in the run's [`Ledger`], and
//! save the whole [`RunCheckpoint`] as a checkpoint every `train.checkpoint_seconds` and when
//! a stop is requested.
//!
//! [`Ledger`]: crate::engine::ledger::Ledger
//! [`RunCheckpoint`]: crate::run_files::state::RunCheckpoint

use std::ops::Deref;
use std::sync::Arc;

use burn::tensor::Device;
use burn::train::Interrupter;
use burn::train::renderer::MetricsRenderer;
use realbias_data::Dataset;

use crate::config::{CheckedConfig, TrainConfig};
use crate::engine::classifier::LossPath;
use crate::engine::learner::LearnerRun;
use crate::run_files::record::FinishedRun;
use crate::run_files::state::CheckpointSlot;
use crate::{Progress, TrainError};

/// Trains one network on `data` as `config` says, on `device` (its autodiff twin for training).
pub fn train<P: Progress + Send + 'static>(
    config: &CheckedConfig,
    data: &Dataset,
    device: &Device,
    progress: P,
) -> Result<FinishedRun, TrainError> {
    Trainer::new(config, data, device).run(progress)
}

/// A run's data: borrowed, or already shared. Burn's launch takes only owned inputs, so a
/// borrowed dataset is copied once into an `Arc` for a run on the `Learner`; a caller that
/// holds its data in an `Arc` (a sweep, `realbias train`) saves that copy.
pub enum RunData<'a> {
    Borrowed(&'a Dataset),
    Shared(Arc<Dataset>),
}

impl RunData<'_> {
    fn shared(&self) -> Arc<Dataset> {
        match self {
            RunData::Borrowed(d) => Arc::new((*d).clone()),
            RunData::Shared(d) => d.clone(),
        }
    }
}

impl Deref for RunData<'_> {
    type Target = Dataset;
    fn deref(&self) -> &Dataset {
        match self {
            RunData::Borrowed(d) => d,
            RunData::Shared(d) => d,
        }
    }
}

impl<'a> From<&'a Dataset> for RunData<'a> {
    fn from(d: &'a Dataset) -> Self {
        RunData::Borrowed(d)
    }
}

impl From<Arc<Dataset>> for RunData<'_> {
    fn from(d: Arc<Dataset>) -> Self {
        RunData::Shared(d)
    }
}

/// One run: the config, its data, the device, the loss implementation, where its
/// checkpoint goes (none: the run is not resumable) and the dashboard that shows it (none:
/// the caller's progress alone).
pub struct Trainer<'a> {
    config: &'a TrainConfig,
    data: RunData<'a>,
    device: &'a Device,
    loss: LossPath,
    checkpoint: Option<CheckpointSlot>,
    dashboard: Option<(Box<dyn MetricsRenderer>, Interrupter)>,
}

impl<'a> Trainer<'a> {
    pub fn new(
        config: &'a CheckedConfig,
        data: impl Into<RunData<'a>>,
        device: &'a Device,
    ) -> Self {
        Trainer {
            config,
            data: data.into(),
            device,
            loss: LossPath::Fused,
            checkpoint: None,
            dashboard: None,
        }
    }

    /// Differentiate the loss by `loss` (the composed path is the fused one's reference).
    pub fn with_loss(mut self, loss: LossPath) -> Self {
        self.loss = loss;
        self
    }

    /// Keep the run's checkpoint in `slot`, and resume from the one there.
    pub fn with_checkpoint(mut self, slot: CheckpointSlot) -> Self {
        self.checkpoint = Some(slot);
        self
    }

    /// Show a mini-batch run on Burn's dashboard `renderer`, which stops the run through
    /// `interrupter` (its keys; Ctrl-C too, when the caller's handler stops it).
    pub fn with_dashboard(
        mut self,
        renderer: Box<dyn MetricsRenderer>,
        interrupter: Interrupter,
    ) -> Self {
        self.dashboard = Some((renderer, interrupter));
        self
    }

    /// Trains until the stop rule (or `progress`) says stop; resumes from the checkpoint
    /// when there is one.
    pub fn run<P: Progress + Send + 'static>(self, progress: P) -> Result<FinishedRun, TrainError> {
        self.run_with(progress).0
    }

    /// [`run`](Self::run), handing `progress` back (a caller reads what it saw).
    pub fn run_with<P: Progress + Send + 'static>(
        self,
        mut progress: P,
    ) -> (Result<FinishedRun, TrainError>, P) {
        let (config, data) = (self.config, &*self.data);
        let prepared = crate::memory::check(data.dim(), config.model.hidden, data.classes, config)
            .and_then(|()| {
                let net = config.model.network(data.dim(), data.classes);
                Ok(net.init(config.train.seed, self.device)?)
            })
            .and_then(|initial| {
                let (saved, discarded) = match &self.checkpoint {
                    Some(slot) => slot.load_reporting(config, initial.dims())?,
                    None => (None, None),
                };
                if let (Some(why), Some(slot)) = (discarded, &self.checkpoint) {
                    progress.discarded(&slot.path(), &why);
                }
                Ok((initial, saved))
            });
        let (initial, saved) = match prepared {
            Ok(p) => p,
            Err(e) => return (Err(e), progress),
        };
        if config.optim.method.is_full_batch() {
            let run = crate::engine::full_batch::FullBatchRun {
                config,
                data,
                device: self.device,
                loss: self.loss,
                checkpoint: self.checkpoint.as_ref(),
            };
            let out = run.run(initial, saved, &mut progress);
            return (out, progress);
        }
        LearnerRun {
            config,
            initial,
            data: self.data.shared(),
            device: self.device,
            loss: self.loss,
            checkpoint: self.checkpoint,
            saved,
            dashboard: self.dashboard,
            progress,
        }
        .launch()
    }
}

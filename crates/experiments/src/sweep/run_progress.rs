//! A sweep's run in flight: its epochs as the experiment's status lines, its way to stop, and
//! (with `train.tensorboard`, for a run trained alone) its TensorBoard events after every
//! epoch, as `realbias train` writes them.

use std::path::PathBuf;
use std::sync::Arc;

use realbias_train::run_files::record::history_csv;
use realbias_train::run_files::tensorboard::write_history_events;
use realbias_train::{EpochRecord, Progress};

use super::plan::PlannedRun;
use crate::progress::ExperimentProgress;
use crate::unit::Unit;

pub(super) struct RunProgress {
    progress: Arc<dyn ExperimentProgress>,
    unit: Unit,
    worker: usize,
    max_epochs: usize,
    /// Runs trained together (1: the run alone); the first one's epochs are shown.
    members: usize,
    live: Option<LiveEvents>,
}

/// The history so far of a run trained alone whose config sets `train.tensorboard`, and its
/// folder, whose event file is rewritten from it after every epoch. (An ensemble reports
/// only its first member's epochs: its members write their events when they finish.)
struct LiveEvents {
    dir: PathBuf,
    history: Vec<EpochRecord>,
    failed: bool,
}

impl RunProgress {
    /// The progress of `runs` trained together (one: a run alone), shown as `unit`.
    pub(super) fn new(
        progress: Arc<dyn ExperimentProgress>,
        unit: &Unit,
        worker: usize,
        runs: &[&PlannedRun],
    ) -> Self {
        let live = match runs {
            [run] if run.config.train.tensorboard => Some(LiveEvents {
                dir: run.dir.clone(),
                history: Vec::new(),
                failed: false,
            }),
            _ => None,
        };
        RunProgress {
            progress,
            unit: unit.clone(),
            worker,
            max_epochs: runs.first().map_or(0, |r| r.config.train.max_epochs),
            members: runs.len(),
            live,
        }
    }

    /// Rewrites the run's event file with `r` added; a failure is said once, and the run goes
    /// on (its events are written again when it finishes).
    fn write_events(&mut self, r: &EpochRecord) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        live.history.push(r.clone());
        let history = live.dir.join("history.csv");
        let written = write_history_events(&history_csv(&live.history), &history, &live.dir);
        if let (Err(e), false) = (written, live.failed) {
            live.failed = true;
            self.progress.note(&format!(
                "{}: TensorBoard events not written ({e}); the run goes on",
                self.unit.label
            ));
        }
    }
}

impl Progress for RunProgress {
    fn resumed(&mut self, history: &[EpochRecord]) {
        if let Some(live) = self.live.as_mut() {
            live.history = history.to_vec();
        }
        let epoch = history.last().map_or(0, |r| r.epoch);
        let others = match self.members {
            1 => String::new(),
            n => format!(" with {} more of its ensemble", n - 1),
        };
        self.progress.note(&format!(
            "resumed {}{others} at epoch {epoch} from its checkpoint",
            self.unit.label
        ));
    }
    fn epoch(&mut self, r: &EpochRecord) {
        self.write_events(r);
        let ensemble = match self.members {
            1 => String::new(),
            n => format!("ensemble of {n}: "),
        };
        let text = format!(
            "{ensemble}epoch {}/{}  train err {:.2}%  val err {:.2}%",
            r.epoch,
            self.max_epochs,
            100.0 * r.train_error,
            100.0 * r.validation_error
        );
        self.progress.status(self.worker, &self.unit, &text);
    }
    fn stop_requested(&self) -> bool {
        self.progress.stop_requested()
    }
}

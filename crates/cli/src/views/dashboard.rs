//! Burn's terminal dashboard (the TUI of burn-train) fed by our epoch loop.
//!
//! The paper's protocol measures the *full* training and validation splits after every epoch,
//! which Burn's per-batch metrics cannot express, so the loop drives Burn's renderer directly:
//! one point per epoch for the full-split losses, errors and the group norm `Σ‖u_h‖‖v_h‖`, and
//! the batch progress within the epoch. Stopping from the dashboard stops within a mini-batch (the checkpoint keeps the run).

use std::sync::Arc;

use burn::train::Interrupter;
use burn::train::logger::TrainingProgressLogger;
use burn::train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::renderer::{MetricState, MetricsRenderer, MetricsRendererTraining};

use realbias_train::EpochRecord;

struct Metric {
    id: MetricId,
    unit: &'static str,
}

/// The dashboard of one run. Dropping it restores the terminal.
pub struct TuiDashboard {
    tui: TuiMetricsRendererWrapper,
    interrupter: Interrupter,
    /// (training split, validation split). Burn's plot advances its x by one per value a
    /// metric receives, whatever the split: one metric per split keeps x = the epoch.
    loss: (Metric, Metric),
    error: (Metric, Metric),
    group_norm: Metric,
    in_epoch: bool,
}

fn register(
    tui: &mut TuiMetricsRendererWrapper,
    name: &str,
    unit: &'static str,
    description: &str,
) -> Metric {
    let id = MetricId::new(Arc::new(name.to_string()));
    tui.register_metric(MetricDefinition {
        metric_id: id.clone(),
        name: Arc::new(name.to_string()),
        description: Some(description.to_string()),
        attributes: MetricAttributes::Numeric(NumericAttributes {
            unit: (!unit.is_empty()).then(|| unit.to_string()),
            higher_is_better: false,
        }),
    });
    Metric { id, unit }
}

fn state(metric: &Metric, value: f64) -> MetricState {
    let formatted = format!(
        "{value:.4}{}",
        if metric.unit.is_empty() {
            ""
        } else {
            metric.unit
        }
    );
    let entry = MetricEntry::new(
        metric.id.clone(),
        SerializedEntry::new(formatted, value.to_string()),
    );
    MetricState::Numeric(entry, Some(NumericEntry::Value(value)))
}

impl TuiDashboard {
    /// Takes over the terminal (alternate screen) until dropped.
    pub fn new(label: &str, max_epochs: usize) -> Self {
        let interrupter = Interrupter::new();
        let mut tui = TuiMetricsRendererWrapper::new(interrupter.clone(), None);
        let mut both = |name: &str, unit: &'static str, what: &str| {
            (
                register(&mut tui, &format!("{name} (training split)"), unit, what),
                register(&mut tui, &format!("{name} (validation split)"), unit, what),
            )
        };
        let loss = both(
            "Loss",
            "",
            "mean cross-entropy over the whole split, per epoch",
        );
        let error = both(
            "Error",
            " %",
            "classification error over the whole split, per epoch",
        );
        let group_norm = register(
            &mut tui,
            "Group norm",
            "",
            "Σ_h ‖u_h‖·‖v_h‖ (rescaling-invariant)",
        );
        tui.start(max_epochs, 0, None, Some(label));
        TuiDashboard {
            tui,
            interrupter,
            loss,
            error,
            group_norm,
            in_epoch: false,
        }
    }

    pub fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        if !self.in_epoch {
            self.tui.update_epoch(epoch.saturating_sub(1));
            self.tui.start_split("train", batches);
            self.in_epoch = true;
        }
        self.tui.update_split(batch);
    }

    pub fn epoch(&mut self, r: &EpochRecord) {
        if self.in_epoch {
            self.tui.end_split();
            self.in_epoch = false;
        }
        // Every value once per epoch, each metric its own: the plots' x axis counts epochs.
        for (metric, value) in [
            (&self.loss.0, r.train_loss),
            (&self.loss.1, r.validation_loss),
            (&self.error.0, 100.0 * r.train_error),
            (&self.error.1, 100.0 * r.validation_error),
            (&self.group_norm, r.group_norm),
        ] {
            self.tui.update_train(state(metric, value));
        }
    }

    /// True once the user asked the dashboard to stop.
    pub fn stop_requested(&self) -> bool {
        self.interrupter.should_stop()
    }

    pub fn finish(mut self) {
        let _ = self.tui.on_train_end(None);
    }
}

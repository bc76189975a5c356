//! What a `Learner` run tells Burn's event processor, and the metrics it registers there, so
//! that Burn's terminal dashboard shows the paper's protocol: after every epoch, the loss
//! and error of the *whole* training split (train) and validation split (valid), and the
//! group norm `Σ‖u_h‖‖v_h‖`, one point an epoch; the batches of an epoch as its progress.
//!
//! Burn's metrics accumulate per item and give their epoch value when the split ends: here
//! a batch's item carries nothing (no step reads anything back), and the split's last item
//! carries the full-split evaluation the run's history records.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorReadError};
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{ItemLazy, SupervisedTraining};
use burn_std::ExecutionError;

use super::PaperModel;
use crate::run_files::record::EpochRecord;

/// A split's evaluation after an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitSummary {
    pub loss: f64,
    /// Classification error, in percent.
    pub error_percent: f64,
    /// The network's group norm (the training split's summary carries it).
    pub group_norm: Option<f64>,
}

impl SplitSummary {
    /// The training and validation splits' summaries of an epoch's record.
    pub fn of(r: &EpochRecord) -> (SplitSummary, SplitSummary) {
        (
            SplitSummary {
                loss: r.train_loss,
                error_percent: 100.0 * r.train_error,
                group_norm: Some(r.group_norm),
            },
            SplitSummary {
                loss: r.validation_loss,
                error_percent: 100.0 * r.validation_error,
                group_norm: None,
            },
        )
    }
}

/// The item of a training step: a batch (nothing read back) or, as the split's last item,
/// the training split's evaluation after the epoch.
pub enum StepItem {
    Step,
    Epoch(SplitSummary),
}

/// The item of the validation split: a chunk's logits (the model's inference step, which the
/// epoch loop does not call: its record evaluates the whole splits with exact f64 tallies)
/// or the whole split's evaluation after the epoch.
pub enum InferenceItem {
    Logits(#[allow(dead_code)] Box<Tensor<2>>),
    Epoch(SplitSummary),
}

impl ItemLazy for StepItem {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(self)
    }
}

impl ItemLazy for InferenceItem {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(self)
    }
}

/// What an [`EpochMetric`] reads from an item: the epoch's summary, if the item is one.
pub struct EpochSummaryInput(Option<SplitSummary>);

impl Adaptor<EpochSummaryInput> for StepItem {
    fn adapt(&self) -> EpochSummaryInput {
        match self {
            StepItem::Step => EpochSummaryInput(None),
            StepItem::Epoch(s) => EpochSummaryInput(Some(*s)),
        }
    }
}

impl Adaptor<EpochSummaryInput> for InferenceItem {
    fn adapt(&self) -> EpochSummaryInput {
        match self {
            InferenceItem::Logits(_) => EpochSummaryInput(None),
            InferenceItem::Epoch(s) => EpochSummaryInput(Some(*s)),
        }
    }
}

/// One value of a split's summary, one point an epoch.
#[derive(Clone)]
struct EpochMetric {
    name: MetricName,
    description: &'static str,
    unit: Option<&'static str>,
    pick: fn(&SplitSummary) -> Option<f64>,
    value: Option<f64>,
}

impl EpochMetric {
    fn entry(&self) -> SerializedEntry {
        match self.value {
            Some(v) => SerializedEntry::new(
                format!(
                    "{v:.4}{}",
                    self.unit.map_or(String::new(), |u| format!(" {u}"))
                ),
                v.to_string(),
            ),
            None => SerializedEntry::not_available(self.unit),
        }
    }
}

impl Metric for EpochMetric {
    type Input = EpochSummaryInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn description(&self) -> Option<String> {
        Some(self.description.to_string())
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: self.unit.map(str::to_string),
            higher_is_better: false,
        }
        .into()
    }

    fn update(
        &mut self,
        item: &EpochSummaryInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        if let Some(summary) = &item.0 {
            self.value = (self.pick)(summary);
        }
        Ok(self.entry())
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.entry())
    }

    /// Keeps the value: the dashboard shows the last epoch's while the next one trains.
    fn clear(&mut self) {}
}

impl Numeric for EpochMetric {
    /// No value per batch: the epoch's value comes when the split ends.
    fn value(&self) -> Option<NumericEntry> {
        None
    }

    fn running_value(&self) -> Option<NumericEntry> {
        None
    }

    fn final_value(&self) -> NumericEntry {
        NumericEntry::Value(self.value.unwrap_or(f64::NAN))
    }
}

fn metric(
    name: &str,
    description: &'static str,
    unit: Option<&'static str>,
    pick: fn(&SplitSummary) -> Option<f64>,
) -> EpochMetric {
    EpochMetric {
        name: Arc::new(name.to_string()),
        description,
        unit,
        pick,
        value: None,
    }
}

/// `training` with the loss and error of both splits and the group norm registered.
pub(crate) fn register_metrics(
    training: SupervisedTraining<PaperModel>,
) -> SupervisedTraining<PaperModel> {
    let loss = metric(
        "Loss (whole split)",
        "mean cross-entropy over the whole split, after the epoch",
        None,
        |s| Some(s.loss),
    );
    let error = metric(
        "Error (whole split)",
        "classification error over the whole split, after the epoch",
        Some("%"),
        |s| Some(s.error_percent),
    );
    let group_norm = metric(
        "Group norm",
        "Σ_h ‖u_h‖·‖v_h‖ (rescaling-invariant), after the epoch",
        None,
        |s| s.group_norm,
    );
    training
        .metrics((loss, error))
        .metric_train_numeric(group_norm)
}

/// The renderer of a run without a dashboard: the caller's `Progress` shows the run (a
/// sweep's status line, `--plain`'s lines), so Burn's events go nowhere visible.
pub(crate) struct Headless;

impl MetricsRendererTraining for Headless {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
    fn on_train_end(
        &mut self,
        _summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for Headless {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn on_test_end(
        &mut self,
        _summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for Headless {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
    fn update_epoch(&mut self, _epoch: usize) {}
    fn start_split(&mut self, _split: &str, _total_items: usize) {}
    fn update_split(&mut self, _items_processed: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for Headless {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for Headless {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}

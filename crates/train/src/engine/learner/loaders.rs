//! The `Learner`'s data loaders: one epoch's mini-batches gathered on the device from the
//! training split kept there (one index upload an epoch), and the validation split in chunks.

use std::sync::{Arc, Mutex};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress as LoaderProgress};
use burn::data::dataset::DatasetError;
use burn::tensor::{Device, Int, Tensor};
use realbias_data::Dataset;

use crate::engine::batches::batch_ranges;
use crate::engine::classifier::{Batch, TrainingSet};

/// The mini-batches of the current epoch, gathered on the device from the training split
/// kept there: the strategy sets the epoch's shuffled rows ([`EpochBatches::set_epoch`]),
/// then the `Learner` steps through the batches.
#[derive(Clone)]
pub struct EpochBatches {
    pub(super) training: Arc<TrainingSet>,
    pub(super) rows: Arc<Mutex<Option<Tensor<1, Int>>>>,
    pub(super) examples: usize,
    pub(super) batch: usize,
}

impl EpochBatches {
    pub(super) fn set_epoch(&self, rows: Tensor<1, Int>) {
        *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = Some(rows);
    }

    pub(super) fn batches(&self) -> usize {
        self.examples.div_ceil(self.batch.max(1))
    }
}

/// The iteration over one epoch's batches.
pub(super) struct BatchIter {
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
pub(super) struct ValidationChunks {
    pub(super) chunks: Vec<Tensor<2>>,
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

pub(super) struct ChunkIter<'a> {
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

/// The validation split's features in chunks of `chunk` rows, on `device`.
pub(super) fn validation_chunks(data: &Dataset, chunk: usize, device: &Device) -> Vec<Tensor<2>> {
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

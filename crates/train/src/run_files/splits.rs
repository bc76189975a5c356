//! The exact splits a run saw (after its subset, label noise and normalization), as one
//! safetensors file for Python: `train.x` / `validation.x` / `test.x` (f32, `[n, d]`) and
//! `train.y` / `validation.y` / `test.y` (u8 labels), sealed like every file this crate
//! writes. `realbias data export` writes it.

use std::collections::HashMap;
use std::path::Path;

use realbias_data::Dataset;

use crate::TrainError;
use crate::run_files::tensor_file::{NamedMatrix, write_with_bytes};

/// Writes `data`'s three splits to `path` atomically, with `metadata` (what run they are).
pub fn write_splits(
    path: &Path,
    data: &Dataset,
    mut metadata: HashMap<String, String>,
) -> Result<(), TrainError> {
    let splits = [
        ("train.x", "train.y", &data.train),
        ("validation.x", "validation.y", &data.validation),
        ("test.x", "test.y", &data.test),
    ];
    let matrices: Vec<NamedMatrix> = splits
        .iter()
        .map(|&(x, _, split)| NamedMatrix {
            name: x,
            shape: [split.len(), split.dim],
            values: &split.features,
        })
        .collect();
    let labels: Vec<(&str, &[u8])> = splits
        .iter()
        .map(|&(_, y, split)| (y, split.labels.as_slice()))
        .collect();
    metadata.insert("classes".into(), data.classes.to_string());
    metadata.insert("dataset".into(), data.name.clone());
    write_with_bytes(path, &matrices, &labels, metadata)
}

//! A finished run's networks, `network.safetensors` beside its `result.json`: the initial,
//! final and early-stopped weights, so that a measure added later, or an independent check
//! of one, needs no retraining.
//!
//! Six f32 tensors: `initial.u`, `final.u`, `early_stop.u` (`[d, H]`) and `initial.v`,
//! `final.v`, `early_stop.v` (`[H, k]`), with `y = V^T [U^T x]_+` for an input `x` of the run's
//! normalized features. Metadata: the seed, dataset, H, the epochs of the final and
//! early-stopped networks and the digest of the run's config, which with the seed and H bind
//! the file to its run (the config digest covers the dataset); and the file's integrity digest
//! (`tensor_file`).
//!
//! Format 1 files, written before the integrity digest, are read with a warning
//! ([`SavedNetworks::digest_checked`] is false): they are a finished run's only copy of its
//! networks (the 24 committed ones among them), so refusing them would lose them.

use std::collections::HashMap;
use std::path::Path;

use md5::{Digest, Md5};
use realbias_model::TwoLayerNet;

use crate::TrainError;
use crate::config::TrainConfig;
use crate::run_files::record::FinishedRun;
use crate::run_files::state::config_json;
use crate::run_files::tensor_file::{NamedMatrix, Sealing, TensorFile, file_error, write};
use crate::weights::Weights;

pub const NETWORK_FILE: &str = "network.safetensors";

const FORMAT: &str = "realbias-networks-2";
const UNSEALED_FORMAT: &str = "realbias-networks-1";

/// The three networks of a run, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedNetworks {
    pub initial: Weights,
    pub final_: Weights,
    pub early_stop: Weights,
    pub metadata: HashMap<String, String>,
    /// Whether the file's integrity digest was checked: false only for a format 1 file.
    pub digest_checked: bool,
}

/// The MD5 of the settings that decide a run's numbers (the config without how it is kept),
/// as JSON: runs with the same digest are the same run.
pub fn config_digest(config: &TrainConfig) -> Result<String, TrainError> {
    let digest = Md5::digest(config_json(config)?.as_bytes());
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `run`'s networks to `dir/network.safetensors`.
pub fn write_networks(dir: &Path, run: &FinishedRun) -> Result<(), TrainError> {
    let nets = [
        ("initial", Weights::of(&run.initial_net)?),
        ("final", Weights::of(&run.final_net)?),
        ("early_stop", Weights::of(&run.early_stop_net)?),
    ];
    let (d, h, k) = run.final_net.dims();
    let names: Vec<(String, String)> = nets
        .iter()
        .map(|(n, _)| (format!("{n}.u"), format!("{n}.v")))
        .collect();
    let mut matrices = Vec::new();
    for ((u_name, v_name), (_, w)) in names.iter().zip(&nets) {
        matrices.push(NamedMatrix {
            name: u_name,
            shape: [d, h],
            values: &w.u,
        });
        matrices.push(NamedMatrix {
            name: v_name,
            shape: [h, k],
            values: &w.v,
        });
    }
    let r = &run.result;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("seed".into(), r.seed.to_string()),
        ("dataset".into(), r.dataset.clone()),
        ("hidden".into(), h.to_string()),
        ("inputs".into(), d.to_string()),
        ("classes".into(), k.to_string()),
        ("final_epoch".into(), r.epochs.to_string()),
        ("early_stop_epoch".into(), r.early_stop_epoch.to_string()),
        ("config_digest".into(), config_digest(&r.config)?),
        ("git_revision".into(), r.git_revision.clone()),
    ]);
    write(&dir.join(NETWORK_FILE), &matrices, metadata)
}

/// Reads the networks saved in `path`, which must be of the run `config` (its digest) and a
/// `d x H x k` network.
pub fn read_networks(
    path: &Path,
    config: &TrainConfig,
    (d, h, k): (usize, usize, usize),
) -> Result<SavedNetworks, TrainError> {
    // Three networks and a header.
    let limit = 3 * 4 * (d * h + h * k) as u64 + crate::run_files::tensor_file::header_budget(0);
    let file = TensorFile::read(path, limit)?
        .ok_or_else(|| file_error(path, "there is no such file".into()))?;
    let digest_checked = check_format(&file)?;
    check_binding(&file, config)?;
    let dims = (d, h, k);
    Ok(SavedNetworks {
        initial: Weights::read(&file, "initial", dims)?,
        final_: Weights::read(&file, "final", dims)?,
        early_stop: Weights::read(&file, "early_stop", dims)?,
        metadata: file.metadata()?,
        digest_checked,
    })
}

/// Whether `file` is sealed (format 2) or of the format before seals (format 1, read with a
/// warning); an error for any other format, or a format 2 file without its digest.
fn check_format(file: &TensorFile) -> Result<bool, TrainError> {
    match file.sealing(FORMAT, UNSEALED_FORMAT)? {
        Ok(sealing) => Ok(sealing == Sealing::Sealed),
        Err(why) => Err(file_error(file.path(), why)),
    }
}

/// Refuses networks of another run than `config`'s: another config digest (which covers the
/// dataset), seed or H.
fn check_binding(file: &TensorFile, config: &TrainConfig) -> Result<(), TrainError> {
    let expected = [
        ("config_digest", config_digest(config)?),
        ("seed", config.train.seed.to_string()),
        ("hidden", config.model.hidden.to_string()),
    ];
    for (key, want) in expected {
        let found = file.metadata_value(key)?;
        if found != want {
            return Err(file_error(
                file.path(),
                format!(
                    "its networks are of another run than the result.json beside it \
                     (metadata {key:?} is {found:?}, the run's is {want:?})"
                ),
            ));
        }
    }
    Ok(())
}

impl SavedNetworks {
    /// The complexity measures of the final and early-stopped networks, as the run computed
    /// them at its end: on the run's training split `data.train`, with the run's seed.
    pub fn measures(
        &self,
        config: &TrainConfig,
        data: &realbias_data::Dataset,
        device: &burn::tensor::Device,
    ) -> Result<crate::run_files::record::RunMeasures, TrainError> {
        let shape = config.model.network(data.dim(), data.classes);
        let net = |w: &Weights| TwoLayerNet::from_weights(w.u.clone(), w.v.clone(), &shape, device);
        let init = net(&self.initial);
        let train = crate::eval::DeviceSplit::new(&data.train, config.train.eval_batch, device);
        let of = |w: &Weights| {
            crate::measures::measure(&crate::measures::MeasureInputs {
                net: &net(w),
                init: &init,
                split: &data.train,
                train: &train,
                device,
                seed: config.train.seed,
            })
        };
        Ok(crate::run_files::record::RunMeasures {
            at_convergence: of(&self.final_)?,
            early_stop: of(&self.early_stop)?,
        })
    }

    /// The flatness measures of the final network on the run's training split `data.train`,
    /// with the noise directions of the run's seed.
    pub fn flatness(
        &self,
        config: &TrainConfig,
        data: &realbias_data::Dataset,
        device: &burn::tensor::Device,
    ) -> Result<crate::measures::flatness::Flatness, TrainError> {
        let dims = (data.dim(), config.model.hidden, data.classes);
        let relu = config.model.activation == realbias_model::Activation::Relu;
        use crate::measures::flatness::Weights as View;
        crate::measures::flatness::flatness(
            &View::of(&self.final_, dims, relu),
            &View::of(&self.initial, dims, relu),
            &data.train,
            config.train.seed,
            device,
        )
    }
}

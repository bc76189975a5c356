//! A `Learner`'s optimizer state to and from the checkpoint.
//!
//! Burn keeps a `Learner`'s optimizer private; its state leaves only as an `OptimizerRecord`
//! (`ModuleOptimizer::to_record`, reached through a `LearningCheckpointer`) and enters only
//! as one (`Learner::load_optim`). A record's tensors and scalars are public only through
//! its burnpack bytes, so this module reads and writes those with `burn_pack`: each of the
//! model's two weight tensors (fixed parameter ids [`U_PARAM`] and [`V_PARAM`]) has its
//! state under `"{id}.{leaf}"`. The checkpoint keeps the same state under the names it has
//! always had (SGD's `velocity.u`/`.v`, Adam's `optimizer.moment_1.u`, ...), so a checkpoint
//! written before the `Learner` resumes through it, and an ensemble's member checkpoint (the
//! ensemble keeps its velocity itself) resumes as a single run and back.

use std::collections::BTreeMap;

use burn::optim::OptimizerRecord;
use burn::tensor::Bytes;
use burn_pack::{DType, Reader, Scalar, Writer};

use crate::TrainError;
use crate::optim::MiniBatchMethod;
use crate::run_files::state::{OptimizerState, RunCheckpoint};
use crate::weights::Weights;

/// The parameter id of the network's first layer `U` in a `Learner`'s model.
pub(crate) const U_PARAM: u64 = 1;
/// The parameter id of the second layer `V`.
pub(crate) const V_PARAM: u64 = 2;

/// How a method's state leaves are named in Burn's record and in the checkpoint.
struct Leaves {
    /// (record leaf, checkpoint tensor name) of the tensors.
    tensors: &'static [(&'static str, &'static str)],
    /// (record leaf, checkpoint scalar name) of the scalars the checkpoint stores; the
    /// others are derived (SGD's step count: the epochs done times the batches).
    scalars: &'static [(&'static str, &'static str)],
}

/// The state leaves of `method`'s optimizer (the mini-batch methods: the `Learner`'s).
fn leaves(method: MiniBatchMethod) -> Leaves {
    match method {
        MiniBatchMethod::Sgd => Leaves {
            tensors: &[("velocity", "velocity")],
            scalars: &[],
        },
        MiniBatchMethod::Adam => Leaves {
            tensors: &[
                ("momentum.moment_1", "moment_1"),
                ("momentum.moment_2", "moment_2"),
            ],
            scalars: &[("momentum.time", "time")],
        },
    }
}

/// The record Burn hands over (or this module builds) is not the layout it should have.
fn corrupt(message: String) -> TrainError {
    TrainError::Internal {
        what: "the optimizer's record",
        message,
    }
}

/// The state in `record` of a `method` run whose weights are `d x h` and `h x k`: SGD's
/// velocity, or another method's state (none before the first step).
pub(crate) fn from_record(
    record: OptimizerRecord,
    method: MiniBatchMethod,
    (d, h, k): (usize, usize, usize),
) -> Result<(Option<Weights>, Option<OptimizerState>), TrainError> {
    let leaves = leaves(method);
    let bytes = record
        .into_bytes()
        .map_err(|e| corrupt(format!("cannot encode it: {e}")))?;
    let reader = Reader::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    let scalars = reader.scalars().clone();
    let mut tensors = BTreeMap::new();
    for tensor in reader.into_tensors().map_err(|e| corrupt(e.to_string()))? {
        let (name, dtype, _, _, bytes) = tensor.into_parts().map_err(|e| corrupt(e.to_string()))?;
        if dtype != DType::F32 {
            return Err(corrupt(format!("{name} is {dtype:?}, not f32")));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<f32>>();
        tensors.insert(name, values);
    }
    if tensors.is_empty() {
        return Ok((None, None));
    }
    let mut pair = |leaf: &str| -> Result<Weights, TrainError> {
        let mut take = |id: u64, len: usize| {
            let name = format!("{id}.{leaf}");
            match tensors.remove(&name) {
                Some(v) if v.len() == len => Ok(v),
                Some(v) => Err(corrupt(format!("{name} has {} values, not {len}", v.len()))),
                None => Err(corrupt(format!("it has no {name}"))),
            }
        };
        Ok(Weights {
            u: take(U_PARAM, d * h)?,
            v: take(V_PARAM, h * k)?,
        })
    };
    if method == MiniBatchMethod::Sgd {
        return Ok((Some(pair("velocity")?), None));
    }
    let mut state = OptimizerState::default();
    for (leaf, name) in leaves.tensors {
        state.tensors.push((name.to_string(), pair(leaf)?));
    }
    for (leaf, name) in leaves.scalars {
        let key = format!("{U_PARAM}.{leaf}");
        let value = scalars
            .get(&key)
            .and_then(|s| f64::try_from(*s).ok())
            .ok_or_else(|| corrupt(format!("it has no scalar {key}")))?;
        state.scalars.insert(name.to_string(), value);
    }
    Ok((None, Some(state)))
}

/// The optimizer record of a saved `state` of a `method` run with `batches` mini-batches an
/// epoch and weights `d x h`, `h x k`; `None` when it has no optimizer state yet.
pub(crate) fn to_record(
    state: &RunCheckpoint,
    method: MiniBatchMethod,
    batches: usize,
    (d, h, k): (usize, usize, usize),
) -> Result<Option<OptimizerRecord>, TrainError> {
    let leaves = leaves(method);
    let mut tensors = Vec::new();
    let mut scalars: Vec<(String, Scalar)> = Vec::new();
    let mut push = |leaf: &str, w: &Weights| {
        for (id, values, shape) in [(U_PARAM, &w.u, [d, h]), (V_PARAM, &w.v, [h, k])] {
            let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push(burn_pack::Tensor::new(
                format!("{id}.{leaf}"),
                DType::F32,
                shape,
                Some(id),
                Bytes::from_bytes_vec(bytes),
            ));
        }
    };
    match (method, &state.velocity, &state.optimizer) {
        (MiniBatchMethod::Sgd, Some(velocity), _) => {
            push("velocity", velocity);
            let steps = state.epoch() * batches;
            for id in [U_PARAM, V_PARAM] {
                scalars.push((format!("{id}.steps"), Scalar::from(steps)));
            }
        }
        (MiniBatchMethod::Adam, _, Some(o)) => {
            for (leaf, name) in leaves.tensors {
                push(leaf, o.pair(name)?);
            }
            for (leaf, name) in leaves.scalars {
                let value = o.scalar(name)?;
                for id in [U_PARAM, V_PARAM] {
                    // Adam's step count is an integer scalar in Burn's record.
                    scalars.push((format!("{id}.{leaf}"), Scalar::from(value as usize)));
                }
            }
        }
        // Stopped before the first step: no optimizer state yet.
        (MiniBatchMethod::Sgd, None, _) | (MiniBatchMethod::Adam, _, None) => return Ok(None),
    }
    let mut writer = Writer::new(tensors);
    for id in [U_PARAM, V_PARAM] {
        writer = writer.with_scalar(&format!("{id}.__rank"), Scalar::from(2usize));
    }
    for (key, value) in scalars {
        writer = writer.with_scalar(&key, value);
    }
    let bytes = writer
        .into_bytes()
        .map_err(|e| corrupt(format!("cannot write it: {e}")))?;
    OptimizerRecord::from_bytes(bytes)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

//! An ensemble's per-epoch evaluation, all members at once.
//!
//! Evaluated one by one, each member of an ensemble costs a forward pass and two or three
//! read-backs per chunk of every split, plus a read-back of its weights: about 8 device
//! synchronisations per member per epoch, 280 for Figure 2's 35-member ensembles, which is
//! most of an epoch at small widths on the CPU and all of it on a GPU. Here every member's
//! splits are stacked on the device (chunk `c` of a split is `[R, n_c, d]`, member `r`'s rows
//! in block `r`), and each chunk takes one batched forward pass and one read-back of every
//! member's logits (and one of every member's activation-pattern flips); the weights are read
//! back in one piece.
//!
//! The logits are reduced on the host by the [`Tally`] a single run uses, member by member in
//! example order, so each member's record carries the bits it has when trained alone.

use burn::tensor::activation::relu;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rayon::prelude::*;
use realbias_data::{Dataset, Split};
use realbias_model::TwoLayerNet;

use crate::TrainError;
use crate::engine::ledger::{EpochReading, FinalReadings, keeps_patterns};
use crate::eval::{PatternFlips, Tally, read_logits, read_values};
use crate::measures::{HostNet, TrainingForwards, measures_from, sharpness_perturbations};
use crate::run_files::record::RunMeasures;

/// Each member's examples per hidden unit whose activation sign flipped.
type FlipsPerMember = Vec<Vec<f64>>;

/// One split of every member, stacked on the device in chunks.
pub(crate) struct StackedSplit {
    /// Chunk `c`: `[R, n_c, d]`.
    chunks: Vec<Tensor<3>>,
    /// Each member's labels, the whole split in order.
    labels: Vec<Vec<u8>>,
    /// Examples per chunk (the last may have fewer).
    chunk: usize,
}

impl StackedSplit {
    /// The splits `splits` (one per member, all of one length and dimension) in chunks of
    /// `chunk` examples on `device`.
    pub fn new(splits: &[&Split], chunk: usize, device: &Device) -> Self {
        Self::of_range(splits, (0..splits[0].len(), chunk), device)
    }

    /// The examples `range` of `splits`, in chunks of `chunk` examples.
    fn of_range(
        splits: &[&Split],
        (range, chunk): (std::ops::Range<usize>, usize),
        device: &Device,
    ) -> Self {
        let dim = splits[0].dim;
        let chunk = chunk.max(1);
        let chunks = range
            .clone()
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(range.end);
                let values: Vec<f32> = splits
                    .iter()
                    .flat_map(|s| s.features[start * dim..end * dim].iter().copied())
                    .collect();
                let shape = [splits.len(), end - start, dim];
                Tensor::from_data(TensorData::new(values, shape), device)
            })
            .collect();
        StackedSplit {
            chunks,
            labels: splits
                .iter()
                .map(|s| s.labels[range.clone()].to_vec())
                .collect(),
            chunk,
        }
    }

    /// Member `r`'s labels of chunk `c`.
    fn labels(&self, r: usize, c: usize) -> &[u8] {
        let labels = &self.labels[r];
        &labels[c * self.chunk..((c + 1) * self.chunk).min(labels.len())]
    }

    /// Examples in each member's split.
    fn len(&self) -> usize {
        self.labels.first().map_or(0, Vec::len)
    }

    /// Keeps the members `index` (positions in the stack, in order; `keep` the same on the
    /// host).
    fn select(&mut self, index: &Tensor<1, Int>, keep: &[usize]) {
        for x in &mut self.chunks {
            *x = x.clone().select(0, index.clone());
        }
        self.labels = keep
            .iter()
            .map(|&p| std::mem::take(&mut self.labels[p]))
            .collect();
    }

    /// Each member's tally of the networks `(u, v)` (`[R, d, H]`, `[R, H, k]`) on this split;
    /// with `initial` patterns, also each member's sign flips per hidden unit.
    fn tally(
        &self,
        (u, v): (&Tensor<3>, &Tensor<3>),
        relu_on: bool,
        (margins, initial): (bool, Option<&[Tensor<3, Bool>]>),
    ) -> Result<(Vec<Tally>, Option<FlipsPerMember>), TrainError> {
        let [r, _, h] = u.dims();
        let mut tallies: Vec<Tally> = (0..r).map(|_| Tally::new(margins)).collect();
        let mut flips = initial.map(|_| vec![vec![0.0f64; h]; r]);
        for (c, x) in self.chunks.iter().enumerate() {
            let rows = x.dims()[1];
            let pre = x.clone().matmul(u.clone());
            if let (Some(acc), Some(init)) = (flips.as_mut(), initial) {
                let changed = pre.clone().greater_elem(0.0).not_equal(init[c].clone());
                let counts = changed.float().sum_dim(1).try_into_vec_as::<f32>();
                let counts = read_values(counts, r * h, "activation patterns")?;
                for (member, per_unit) in acc.iter_mut().zip(counts.chunks_exact(h)) {
                    for (a, &f) in member.iter_mut().zip(per_unit) {
                        *a += f as f64;
                    }
                }
            }
            let hidden = if relu_on { relu(pre) } else { pre };
            let logits = read_logits(hidden.matmul(v.clone()).try_into_vec_as(), r * rows)?;
            let per_member = logits.len() / r;
            // The host's share, member by member on the run's threads (each member's sums
            // still in example order).
            tallies.par_iter_mut().enumerate().for_each(|(m, tally)| {
                let part = &logits[m * per_member..(m + 1) * per_member];
                tally.add(part, self.labels(m, c));
            });
        }
        Ok((tallies, flips))
    }

    /// Each member's activation pattern (pre-activation > 0) of the networks `u` on every
    /// chunk, kept on the device.
    fn patterns(&self, u: &Tensor<3>) -> Vec<Tensor<3, Bool>> {
        self.chunks
            .iter()
            .map(|x| x.clone().matmul(u.clone()).greater_elem(0.0))
            .collect()
    }
}

/// The splits every epoch's record reads, of every member in the stack, and the members'
/// initial activation patterns on the training split.
pub(crate) struct StackedEvaluation {
    train: StackedSplit,
    validation: StackedSplit,
    /// Only when the test error is recorded every epoch.
    test: Option<StackedSplit>,
    patterns: Option<Vec<Tensor<3, Bool>>>,
    relu: bool,
}

impl StackedEvaluation {
    /// The splits of the members `data` (in stack order) in chunks of `chunk` examples, and
    /// the initial patterns of their initial networks `u0` (`[R, d, H]`).
    pub fn new(
        data: &[&Dataset],
        (chunk, test_every_epoch, relu): (usize, bool, bool),
        u0: &Tensor<3>,
        device: &Device,
    ) -> Self {
        let stack = |pick: fn(&Dataset) -> &Split| {
            let splits: Vec<&Split> = data.iter().map(|d| pick(d)).collect();
            StackedSplit::new(&splits, chunk, device)
        };
        let train = stack(|d| &d.train);
        let h = u0.dims()[2];
        let patterns = keeps_patterns(train.len(), h).then(|| train.patterns(u0));
        StackedEvaluation {
            validation: stack(|d| &d.validation),
            test: test_every_epoch.then(|| stack(|d| &d.test)),
            train,
            patterns,
            relu,
        }
    }

    /// Every member's reading of the stacked networks `(u, v)`, in stack order; each
    /// member's `seconds` is its share of the whole.
    pub fn read(&self, u: &Tensor<3>, v: &Tensor<3>) -> Result<Vec<EpochReading>, TrainError> {
        let t = std::time::Instant::now();
        let r = u.dims()[0];
        let weights = (u, v);
        let patterns = self.patterns.as_deref();
        let (train, flips) = self.train.tally(weights, self.relu, (true, patterns))?;
        let (validation, _) = self.validation.tally(weights, self.relu, (false, None))?;
        let test = match &self.test {
            Some(split) => Some(split.tally(weights, self.relu, (false, None))?.0),
            None => None,
        };
        let nets = host_nets(u, v)?;
        let mut flips = flips.map(Vec::into_iter);
        let mut test = test.map(Vec::into_iter);
        let seconds = t.elapsed().as_secs_f64() / r.max(1) as f64;
        let readings = train
            .into_iter()
            .zip(validation)
            .zip(nets)
            .map(|((tr, va), net)| EpochReading {
                train: tr.training(flips.as_mut().and_then(Iterator::next)),
                validation: va.evaluation(),
                test_error: test
                    .as_mut()
                    .and_then(Iterator::next)
                    .map(|t| t.evaluation().error),
                u: net.u,
                v: net.v,
                seconds,
            });
        Ok(readings.collect())
    }

    /// Keeps the members at positions `keep` of the stack (in order), as `index` on the device.
    pub fn select(&mut self, index: &Tensor<1, Int>, keep: &[usize]) {
        self.train.select(index, keep);
        self.validation.select(index, keep);
        if let Some(test) = self.test.as_mut() {
            test.select(index, keep);
        }
        if let Some(patterns) = self.patterns.as_mut() {
            for p in patterns.iter_mut() {
                *p = p.clone().select(0, index.clone());
            }
        }
    }
}

/// A member whose run ends now: its data, its best-validation and initial networks (its last
/// is its block of the stack), its seed, and whether its complexity measures are due.
pub(crate) struct Ending<'a> {
    pub data: &'a Dataset,
    pub best: &'a TwoLayerNet,
    pub init: &'a TwoLayerNet,
    pub seed: u64,
    pub measures: bool,
}

/// Stacks one weight matrix of every network: `[S, rows, cols]`.
fn stack_of(nets: &[&TwoLayerNet], pick: fn(&TwoLayerNet) -> Tensor<2>) -> Tensor<3> {
    Tensor::stack(nets.iter().map(|n| pick(n)).collect(), 0)
}

/// The networks `(u, v)` (`[S, d, H]`, `[S, H, k]`) on the host, one per member.
fn host_nets(u: &Tensor<3>, v: &Tensor<3>) -> Result<Vec<HostNet>, TrainError> {
    let [s, d, h] = u.dims();
    let k = v.dims()[2];
    let us = read_values(u.clone().try_into_vec_as::<f32>(), s * d * h, "weights")?;
    let vs = read_values(v.clone().try_into_vec_as::<f32>(), s * h * k, "weights")?;
    Ok((0..s)
        .map(|m| HostNet {
            u: us[m * d * h..(m + 1) * d * h].to_vec(),
            v: vs[m * h * k..(m + 1) * h * k].to_vec(),
            d,
            h,
            k,
        })
        .collect())
}

/// Stacks one matrix of every member from the host: `[R, rows, cols]`.
pub(crate) fn stacked(
    parts: Vec<Vec<f32>>,
    [rows, cols]: [usize; 2],
    device: &Device,
) -> Tensor<3> {
    let r = parts.len();
    let values: Vec<f32> = parts.into_iter().flatten().collect();
    Tensor::from_data(TensorData::new(values, [r, rows, cols]), device)
}

impl StackedSplit {
    /// The members at `index` of this stack (`keep`: the same positions on the host).
    fn subset(&self, index: &Tensor<1, Int>, keep: &[usize]) -> StackedSplit {
        StackedSplit {
            chunks: self
                .chunks
                .iter()
                .map(|x| x.clone().select(0, index.clone()))
                .collect(),
            labels: keep.iter().map(|&p| self.labels[p].clone()).collect(),
            chunk: self.chunk,
        }
    }

    /// Each member's sign flips per hidden unit between the networks `u0` and `u`, and
    /// `‖X U₀‖_F`, reduced per member as [`crate::eval::DeviceSplit::pattern_flips`] does.
    fn pattern_flips(
        &self,
        u0: &Tensor<3>,
        u: &Tensor<3>,
    ) -> Result<Vec<PatternFlips>, TrainError> {
        let [s, _, h] = u.dims();
        let mut per_unit = vec![vec![0.0f64; h]; s];
        let mut init_sq = vec![0.0f64; s];
        for x in &self.chunks {
            let rows = x.dims()[1];
            let pre0 = x.clone().matmul(u0.clone());
            let pre = x.clone().matmul(u.clone());
            let flips = (pre0.clone().greater_elem(0.0).float() - pre.greater_elem(0.0).float())
                .abs()
                .sum_dim(1);
            let flips = read_values(flips.try_into_vec_as(), s * h, "activation patterns")?;
            for (acc, member) in per_unit.iter_mut().zip(flips.chunks_exact(h)) {
                for (a, &f) in acc.iter_mut().zip(member) {
                    *a += f as f64;
                }
            }
            for (m, sq) in init_sq.iter_mut().enumerate() {
                // Member by member, so the f32 sum runs in the order a run alone sums it.
                let block = pre0.clone().narrow(0, m, 1).reshape([rows, h]);
                let total = block.powf_scalar(2.0).sum().try_into_vec_as();
                *sq += read_values(total, 1, "pre-activations")?[0] as f64;
            }
        }
        Ok(per_unit
            .into_iter()
            .zip(init_sq)
            .map(|(per_unit, sq)| PatternFlips {
                per_unit,
                init_preactivation_frobenius: sq.sqrt(),
            })
            .collect())
    }
}

/// The test split of each of `data`, streamed to the device chunk by chunk as one stack, and
/// each member's error rate of the stacked networks `nets`.
fn test_errors(
    data: &[&Dataset],
    nets: &[(&Tensor<3>, &Tensor<3>)],
    (chunk, relu_on): (usize, bool),
    device: &Device,
) -> Result<Vec<Vec<f64>>, TrainError> {
    let splits: Vec<&Split> = data.iter().map(|d| &d.test).collect();
    let mut tallies: Vec<Vec<Tally>> = nets
        .iter()
        .map(|_| data.iter().map(|_| Tally::new(false)).collect())
        .collect();
    let len = splits[0].len();
    for start in (0..len).step_by(chunk.max(1)) {
        let end = (start + chunk.max(1)).min(len);
        let one = StackedSplit::of_range(&splits, (start..end, chunk), device);
        for (net, tally) in nets.iter().zip(tallies.iter_mut()) {
            let (t, _) = one.tally(*net, relu_on, (false, None))?;
            for (acc, part) in tally.iter_mut().zip(t) {
                acc.absorb(part);
            }
        }
    }
    Ok(tallies
        .into_iter()
        .map(|t| t.iter().map(|t| t.evaluation().error).collect())
        .collect())
}

/// What the measures of the stacked networks `(u, v)` with initial networks `u0` need from
/// the training split `train` (theirs, stacked), one per member; `perturbations`: each
/// member's sharpness draws.
fn training_forwards(
    train: &StackedSplit,
    (u, v, u0): (&Tensor<3>, &Tensor<3>, &Tensor<3>),
    perturbations: &[Vec<(Vec<f32>, Vec<f32>)>],
    (relu_on, device): (bool, &Device),
) -> Result<Vec<TrainingForwards>, TrainError> {
    let [_, d, h] = u.dims();
    let k = v.dims()[2];
    let (tallies, _) = train.tally((u, v), relu_on, (true, None))?;
    let flips = train.pattern_flips(u0, u)?;
    let draws = perturbations.first().map_or(0, Vec::len);
    let mut perturbed_losses = vec![Vec::with_capacity(draws); perturbations.len()];
    for draw in 0..draws {
        let pu = stacked(
            perturbations.iter().map(|p| p[draw].0.clone()).collect(),
            [d, h],
            device,
        );
        let pv = stacked(
            perturbations.iter().map(|p| p[draw].1.clone()).collect(),
            [h, k],
            device,
        );
        let (t, _) = train.tally((&pu, &pv), relu_on, (false, None))?;
        for (losses, tally) in perturbed_losses.iter_mut().zip(t) {
            losses.push(tally.evaluation().loss);
        }
    }
    Ok(tallies
        .into_iter()
        .zip(flips)
        .zip(perturbed_losses)
        .map(|((tally, flips), perturbed_losses)| {
            let loss = tally.evaluation().loss;
            let training = tally.training(None);
            TrainingForwards {
                margins: training.margins,
                loss,
                flips,
                perturbed_losses,
            }
        })
        .collect())
}

/// The measures of the stacked networks `(u, v)` of the members `ends` (initial networks
/// `u0`), on their stacked training split `train`.
fn stacked_measures(
    train: &StackedSplit,
    (u, v, u0): (&Tensor<3>, &Tensor<3>, &Tensor<3>),
    ends: &[Ending],
    (init, relu_on, device): (&[HostNet], bool, &Device),
) -> Result<Vec<crate::measures::Measures>, TrainError> {
    let start = std::time::Instant::now();
    let nets = host_nets(u, v)?;
    let draws: Vec<_> = nets
        .iter()
        .zip(ends)
        .map(|(net, e)| sharpness_perturbations(net, e.seed))
        .collect();
    let forwards = training_forwards(train, (u, v, u0), &draws, (relu_on, device))?;
    Ok(nets
        .iter()
        .zip(init)
        .zip(forwards)
        .zip(ends)
        .map(|(((net, init), f), e)| measures_from((net, init), &e.data.train, f, start))
        .collect())
}

impl StackedEvaluation {
    /// The end-of-run readings of the members at `positions` of the stack, `ends` (in the
    /// same order), whose last networks are those positions of the stack `(u, v)`: their test
    /// errors and, where due, their measures, with one batched forward pass per chunk for
    /// all of them.
    pub fn final_readings(
        &self,
        positions: &[usize],
        (u, v): (&Tensor<3>, &Tensor<3>),
        ends: &[Ending],
        (chunk, device): (usize, &Device),
    ) -> Result<Vec<FinalReadings>, TrainError> {
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(
                positions.iter().map(|&p| p as i64).collect(),
                [positions.len()],
            ),
            device,
        );
        let last = (
            u.clone().select(0, index.clone()),
            v.clone().select(0, index.clone()),
        );
        let bests: Vec<&TwoLayerNet> = ends.iter().map(|e| e.best).collect();
        let best = (
            stack_of(&bests, |n| n.u.val()),
            stack_of(&bests, |n| n.v.val()),
        );
        let data: Vec<&Dataset> = ends.iter().map(|e| e.data).collect();
        let nets = [(&last.0, &last.1), (&best.0, &best.1)];
        let errors = test_errors(&data, &nets, (chunk, self.relu), device)?;
        let mut measures: Vec<Option<RunMeasures>> = ends.iter().map(|_| None).collect();
        if ends.iter().any(|e| e.measures) {
            let inits: Vec<&TwoLayerNet> = ends.iter().map(|e| e.init).collect();
            let u0 = stack_of(&inits, |n| n.u.val());
            let init = host_nets(&u0, &stack_of(&inits, |n| n.v.val()))?;
            let train = self.train.subset(&index, positions);
            let setting = (init.as_slice(), self.relu, device);
            let at_last = stacked_measures(&train, (&last.0, &last.1, &u0), ends, setting)?;
            let at_best = stacked_measures(&train, (&best.0, &best.1, &u0), ends, setting)?;
            for (((slot, a), b), e) in measures.iter_mut().zip(at_last).zip(at_best).zip(ends) {
                *slot = e.measures.then_some(RunMeasures {
                    at_convergence: a,
                    early_stop: b,
                });
            }
        }
        Ok(errors[0]
            .iter()
            .zip(&errors[1])
            .zip(measures)
            .map(
                |((&test_error, &early_stop_test_error), measures)| FinalReadings {
                    test_error,
                    early_stop_test_error,
                    measures,
                },
            )
            .collect())
    }
}

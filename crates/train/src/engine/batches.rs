//! The mini-batches of an epoch and the batch order of a run.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Random streams derived from the run's seed (the data crate uses streams 1 and 2).
const STREAM_BATCHES: u64 = 10;

/// The mini-batches of an epoch of `examples` examples as `(start, length)` in the shuffled
/// order: full batches of `batch`, the last one shorter.
pub(crate) fn batch_ranges(examples: usize, batch: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..examples)
        .step_by(batch.max(1))
        .map(move |start| (start, batch.min(examples - start)))
}

/// A run's batch order: a fresh permutation of its training examples every epoch, from the
/// run's own seed (a member of an ensemble draws exactly what it would draw alone).
pub(crate) struct BatchOrder {
    rng: ChaCha8Rng,
    order: Vec<usize>,
}

impl BatchOrder {
    pub fn new(seed: u64, examples: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM_BATCHES);
        BatchOrder {
            rng,
            order: (0..examples).collect(),
        }
    }

    /// The next epoch's order.
    pub fn shuffle(&mut self) -> &[usize] {
        self.order.shuffle(&mut self.rng);
        &self.order
    }

    /// The order drawn by the last [`shuffle`](Self::shuffle).
    pub fn current(&self) -> &[usize] {
        &self.order
    }
}

impl BatchOrder {
    /// The order of a run that has done `epochs` epochs: the generator advanced by one
    /// permutation per epoch, exactly as the uninterrupted run advanced it.
    pub fn after(seed: u64, examples: usize, epochs: usize) -> Self {
        let mut order = BatchOrder::new(seed, examples);
        for _ in 0..epochs {
            order.shuffle();
        }
        order
    }
}

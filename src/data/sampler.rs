//! Batches of example indices, reshuffled at every epoch, with a cursor a checkpoint can store.
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::rng;

/// The random stream of the data order, apart from those of the split, dropout and noise.
pub const SAMPLER_STREAM: u64 = 0xDA7A;
/// Each epoch draws from its own window of this many words of the sampler stream, so its order
/// depends only on the seed and the epoch number (a shuffle of `n` items reads about `2n` words).
const WORDS_PER_EPOCH: u128 = 1 << 40;

/// Hands out the indices of `0..len` in batches, one shuffled pass per epoch.
///
/// Only the position (`epoch`, `cursor`) is state: the shuffled order is rebuilt from the seed, so a
/// sampler restored from a checkpoint continues with exactly the batches the original would give.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSampler {
    len: usize,
    batch_size: usize,
    seed: u64,
    drop_last: bool,
    epoch: u64,
    cursor: usize,
    /// The order of the epoch it was built for; rebuilt when `epoch` moves on.
    #[serde(skip)]
    order: Option<(u64, Vec<usize>)>,
}

impl EpochSampler {
    /// A sampler at the start of epoch 0. With `drop_last`, a final batch smaller than
    /// `batch_size` is skipped.
    pub fn new(len: usize, batch_size: usize, seed: u64, drop_last: bool) -> Self {
        Self { len, batch_size, seed, drop_last, epoch: 0, cursor: 0, order: None }
    }

    /// The epoch of the batch handed out last.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many indices of the current epoch have been handed out.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn batches_per_epoch(&self) -> usize {
        match (self.batch_size, self.drop_last) {
            (0, _) => 0,
            (size, true) => self.len / size,
            (size, false) => self.len.div_ceil(size),
        }
    }

    /// The next batch of indices, moving to the next epoch once this one is used up. Empty only if
    /// an epoch has no batch at all (no examples, batch size 0, or fewer examples than a batch with
    /// `drop_last`).
    pub fn next_batch(&mut self) -> Vec<usize> {
        let epoch_end = self.batches_per_epoch() * self.batch_size;
        if epoch_end == 0 {
            return Vec::new();
        }
        if self.cursor >= epoch_end.min(self.len) {
            self.epoch += 1;
            self.cursor = 0;
        }
        let (start, end) = (self.cursor, (self.cursor + self.batch_size).min(self.len));
        let batch = self.epoch_order()[start..end].to_vec();
        self.cursor = end;
        batch
    }

    fn epoch_order(&mut self) -> &[usize] {
        let epoch = self.epoch;
        if !matches!(&self.order, Some((built_for, _)) if *built_for == epoch) {
            let mut rng = rng::stream(self.seed, SAMPLER_STREAM);
            rng.set_word_pos(u128::from(epoch) * WORDS_PER_EPOCH);
            let mut order: Vec<usize> = (0..self.len).collect();
            order.shuffle(&mut rng);
            self.order = Some((epoch, order));
        }
        self.order.as_ref().map_or(&[], |(_, order)| order)
    }
}

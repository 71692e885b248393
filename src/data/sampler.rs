//! Batches of example indices, reshuffled at every epoch, with a cursor a checkpoint can store.
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::rng;

/// The random stream of the data order, apart from those of the split, dropout and noise.
pub const SAMPLER_STREAM: u64 = 0xDA7A;
/// Each epoch draws from its own window of this many words of the sampler stream, so its order
/// depends only on the seed and the epoch number (a shuffle of `n` items reads about `2n` words).
const WORDS_PER_EPOCH: u128 = 1 << 40;
/// The most batches in one length-sorted window under `group_by_length` (transformers' megabatch
/// multiplier, with its limit of a quarter of the examples).
pub const GROUP_WINDOW_BATCHES: usize = 50;

/// Hands out the indices of `0..len` in batches, one shuffled pass per epoch.
///
/// Only the position (`epoch`, `cursor`) is state: the shuffled order is rebuilt from the seed, so a
/// sampler restored from a checkpoint continues with exactly the batches the original would give.
///
/// With example lengths ([`EpochSampler::group_by_length`]), each window of the shuffled order (at most
/// [`GROUP_WINDOW_BATCHES`] batches, and at most a quarter of the examples) is sorted by length, longest
/// first, so a batch holds examples of
/// similar length and pads less (transformers' `group_by_length`). The windows still come in random
/// order, and the order is still a function of the seed, the epoch and the lengths.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSampler {
    len: usize,
    batch_size: usize,
    seed: u64,
    drop_last: bool,
    epoch: u64,
    cursor: usize,
    /// Example lengths when batches are grouped by length. Not saved: a restored sampler gets them
    /// again from the data (they follow from the dataset and the tokenizer).
    #[serde(skip)]
    lengths: Option<Vec<usize>>,
    /// The order of the epoch it was built for; rebuilt when `epoch` moves on.
    #[serde(skip)]
    order: Option<(u64, Vec<usize>)>,
}

impl EpochSampler {
    /// A sampler at the start of epoch 0. With `drop_last`, a final batch smaller than
    /// `batch_size` is skipped.
    pub fn new(len: usize, batch_size: usize, seed: u64, drop_last: bool) -> Self {
        Self { len, batch_size, seed, drop_last, epoch: 0, cursor: 0, lengths: None, order: None }
    }

    /// Groups batches by the examples' `lengths` (one per index) from now on; a sampler restored from
    /// a checkpoint is given them again before its next batch.
    pub fn group_by_length(&mut self, lengths: Vec<usize>) {
        assert_eq!(lengths.len(), self.len, "one length per example");
        self.lengths = Some(lengths);
        self.order = None;
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
            if let Some(lengths) = &self.lengths {
                let batches = (self.len / (4 * self.batch_size).max(1)).clamp(1, GROUP_WINDOW_BATCHES);
                let window = (batches * self.batch_size).max(1);
                // A stable sort: ties keep their shuffled order.
                order.chunks_mut(window).for_each(|w| w.sort_by_key(|&i| std::cmp::Reverse(lengths[i])));
            }
            self.order = Some((epoch, order));
        }
        self.order.as_ref().map_or(&[], |(_, order)| order)
    }
}

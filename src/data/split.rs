//! Seeded, stratified train/held-out splits.
use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use crate::rng;

/// The random stream of the split, apart from those of data order, dropout and noise.
pub const SPLIT_STREAM: u64 = 0x5_0117;

/// Splits example indices into two sorted, disjoint sets that together cover `0..labels.len()`.
///
/// Each class is shuffled with the seeded generator and `round(fraction × class size)` of its
/// examples go to the first set: at least one if `fraction > 0`, all of them if `fraction >= 1`.
pub fn stratified_split(labels: &[u32], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(index);
    }
    let mut rng = rng::stream(seed, SPLIT_STREAM);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for mut members in by_class.into_values() {
        members.shuffle(&mut rng);
        let (taken, left) = members.split_at(first_share(members.len(), fraction));
        first.extend_from_slice(taken);
        second.extend_from_slice(left);
    }
    first.sort_unstable();
    second.sort_unstable();
    (first, second)
}

/// How many of a class's `count` examples go to the first set. NaN counts as 0.
fn first_share(count: usize, fraction: f64) -> usize {
    if count == 0 || fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    ((fraction * count as f64).round() as usize).clamp(1, count)
}

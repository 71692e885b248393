//! Stratified splits, the resumable epoch sampler and batch collation.
use candle_core::{DType, Device};
use proptest::prelude::*;
use sift_tui::data::{collate, stratified_split, EpochSampler};
use sift_tui::model::tokenizer::Encoded;

proptest! {
    #[test]
    fn stratified_split_is_a_deterministic_stratified_partition(
        labels in prop::collection::vec(0u32..4, 0..200),
        fraction in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let (first, second) = stratified_split(&labels, fraction, seed);
        prop_assert!(first.windows(2).all(|w| w[0] < w[1]), "first set sorted");
        prop_assert!(second.windows(2).all(|w| w[0] < w[1]), "second set sorted");
        let mut all = [first.clone(), second.clone()].concat();
        all.sort_unstable();
        prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>(), "disjoint and covering");
        for class in 0..4 {
            let size = labels.iter().filter(|&&l| l == class).count();
            let taken = first.iter().filter(|&&i| labels[i] == class).count();
            prop_assert!((taken as f64 - fraction * size as f64).abs() <= 1.0, "class {class}: {taken} of {size}");
            prop_assert!(fraction == 0.0 || size == 0 || taken >= 1, "at least one per class");
        }
        prop_assert_eq!(stratified_split(&labels, fraction, seed), (first, second));
    }
}

#[test]
fn stratified_split_depends_on_the_seed() {
    let labels: Vec<u32> = (0..100).map(|i| i % 2).collect();
    let (a, _) = stratified_split(&labels, 0.3, 1);
    let (b, _) = stratified_split(&labels, 0.3, 2);
    assert_eq!((a.len(), b.len()), (30, 30));
    assert_ne!(a, b);
}

/// The indices of the next `count` batches.
fn batches(sampler: &mut EpochSampler, count: usize) -> Vec<Vec<usize>> {
    (0..count).map(|_| sampler.next_batch()).collect()
}

#[test]
fn every_epoch_is_a_fresh_permutation() {
    let mut sampler = EpochSampler::new(23, 5, 7, false);
    assert_eq!(sampler.batches_per_epoch(), 5);
    let epochs: Vec<Vec<usize>> = (0..3).map(|_| batches(&mut sampler, 5).concat()).collect();
    for order in &epochs {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>());
    }
    assert_ne!(epochs[0], epochs[1]);
    assert_eq!(sampler.epoch(), 2);
}

#[test]
fn drop_last_skips_the_partial_batch() {
    let mut sampler = EpochSampler::new(23, 5, 7, true);
    assert_eq!(sampler.batches_per_epoch(), 4);
    assert!(batches(&mut sampler, 12).iter().all(|batch| batch.len() == 5));
    assert_eq!(sampler.epoch(), 2);
    assert!(EpochSampler::new(3, 5, 7, true).next_batch().is_empty());
    assert!(EpochSampler::new(0, 5, 7, false).next_batch().is_empty());
    assert!(EpochSampler::new(3, 0, 7, false).next_batch().is_empty());
}

#[test]
fn a_resumed_sampler_continues_identically() {
    for (drop_last, done) in [(false, 0), (false, 3), (false, 5), (true, 9), (false, 13)] {
        let mut original = EpochSampler::new(23, 5, 11, drop_last);
        batches(&mut original, done);
        let saved = serde_json::to_string(&original).unwrap();
        let mut resumed: EpochSampler = serde_json::from_str(&saved).unwrap();
        assert_eq!((resumed.epoch(), resumed.cursor()), (original.epoch(), original.cursor()));
        assert_eq!(batches(&mut resumed, 12), batches(&mut original, 12), "after {done} batches");
    }
}

#[test]
fn collate_pads_to_the_longest_row() -> candle_core::Result<()> {
    let long = Encoded { ids: vec![101, 7, 8, 102], type_ids: vec![0, 0, 1, 1] };
    let short = Encoded { ids: vec![101, 102], type_ids: vec![0, 0] };
    let batch = collate(&[(&long, 1), (&short, 0)], 3, None, &Device::Cpu)?;
    let inputs = &batch.inputs;
    for tensor in [&inputs.input_ids, &inputs.attention_mask, &inputs.token_type_ids, &batch.labels] {
        assert_eq!(tensor.dtype(), DType::U32);
    }
    assert_eq!(inputs.input_ids.to_vec2::<u32>()?, [[101, 7, 8, 102], [101, 102, 3, 3]]);
    assert_eq!(inputs.attention_mask.to_vec2::<u32>()?, [[1, 1, 1, 1], [1, 1, 0, 0]]);
    assert_eq!(inputs.token_type_ids.to_vec2::<u32>()?, [[0, 0, 1, 1], [0, 0, 0, 0]]);
    assert_eq!(batch.labels.to_vec1::<u32>()?, [1, 0]);
    assert!(collate(&[], 0, None, &Device::Cpu).is_err());
    Ok(())
}

/// Example lengths for 400 examples: 5 to 100 tokens, in no particular order.
fn lengths() -> Vec<usize> {
    (0..400).map(|i| 5 + (i * 37) % 96).collect()
}

/// Tokens of padding the batches of one epoch carry, padded to their longest example.
fn padding(batches: &[Vec<usize>], lengths: &[usize]) -> usize {
    batches
        .iter()
        .map(|b| b.iter().map(|&i| b.iter().map(|&j| lengths[j]).max().unwrap() - lengths[i]).sum::<usize>())
        .sum()
}

#[test]
fn grouping_by_length_pads_less_and_stays_a_seeded_permutation() {
    let (lengths, per_epoch) = (lengths(), 400 / 8);
    let mut plain = EpochSampler::new(400, 8, 3, false);
    let mut grouped = EpochSampler::new(400, 8, 3, false);
    grouped.group_by_length(lengths.clone());
    let (plain, grouped_batches) = (batches(&mut plain, per_epoch), batches(&mut grouped, per_epoch));
    let mut order = grouped_batches.concat();
    order.sort_unstable();
    assert_eq!(order, (0..400).collect::<Vec<_>>());
    let (before, after) = (padding(&plain, &lengths), padding(&grouped_batches, &lengths));
    assert!(after * 5 < before, "padding {after} tokens grouped against {before} shuffled");
    // Windows of 400 / (4 · 8) = 12 batches: sorted, longest first, within each window only.
    let window: Vec<usize> = grouped_batches[..12].concat();
    assert!(window.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
    assert!(lengths[grouped_batches[12][0]] > lengths[grouped_batches[11][7]], "windows are sorted apart");
    let mut again = EpochSampler::new(400, 8, 3, false);
    again.group_by_length(lengths);
    assert_eq!(batches(&mut again, per_epoch), grouped_batches, "the order follows from the seed");
}

#[test]
fn a_resumed_grouped_sampler_continues_identically() {
    for done in [0, 7, 50, 61] {
        let mut original = EpochSampler::new(400, 8, 11, false);
        original.group_by_length(lengths());
        batches(&mut original, done);
        let mut resumed: EpochSampler = serde_json::from_str(&serde_json::to_string(&original).unwrap()).unwrap();
        resumed.group_by_length(lengths());
        assert_eq!(batches(&mut resumed, 60), batches(&mut original, 60), "after {done} batches");
    }
}

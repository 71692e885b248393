//! Padding tokenized rows into the tensors of one batch.
use candle_core::{DType, Device, Result, Tensor};
use rand::Rng as _;

use crate::model::tokenizer::Encoded;
use crate::model::Inputs;
use crate::rng::Rng;

/// One batch on the model's device.
#[derive(Debug, Clone)]
pub struct Batch {
    pub inputs: Inputs,
    /// Class labels, `u32` `[B]`.
    pub labels: Tensor,
}

/// Pads `rows` to the longest one (or to `min_width` if that is longer, so that chunks of one
/// padded set line up): `pad_id` for ids, 0 for token types and the attention mask.
pub fn collate(rows: &[(&Encoded, u32)], pad_id: u32, min_width: Option<usize>, device: &Device) -> Result<Batch> {
    if rows.is_empty() {
        candle_core::bail!("cannot collate an empty batch");
    }
    let longest = rows.iter().map(|(row, _)| row.ids.len()).max().unwrap_or(0);
    let width = longest.max(min_width.unwrap_or(0));
    let mut ids = Vec::with_capacity(rows.len() * width);
    let mut mask: Vec<u32> = Vec::with_capacity(rows.len() * width);
    let mut type_ids = Vec::with_capacity(rows.len() * width);
    for (row, _) in rows {
        if row.type_ids.len() != row.ids.len() {
            candle_core::bail!("encoded row has {} ids but {} type ids", row.ids.len(), row.type_ids.len());
        }
        let padding = width - row.ids.len();
        ids.extend(row.ids.iter().copied().chain(std::iter::repeat_n(pad_id, padding)));
        mask.extend(std::iter::repeat_n(1, row.ids.len()).chain(std::iter::repeat_n(0, padding)));
        type_ids.extend(row.type_ids.iter().copied().chain(std::iter::repeat_n(0, padding)));
    }
    let shape = (rows.len(), width);
    let labels: Vec<u32> = rows.iter().map(|&(_, label)| label).collect();
    Ok(Batch {
        inputs: Inputs {
            input_ids: Tensor::from_vec(ids, shape, device)?,
            attention_mask: Tensor::from_vec(mask, shape, device)?,
            token_type_ids: Tensor::from_vec(type_ids, shape, device)?,
        },
        labels: Tensor::new(labels, device)?,
    })
}

/// A batch of `batch` × `seq` random ids over the whole vocabulary, no padding, and random labels
/// among `num_labels`: the fixed input of `bench`, the step benchmark and tests.
pub fn synthetic_batch(
    rng: &mut Rng,
    batch: usize,
    seq: usize,
    vocab: usize,
    num_labels: usize,
    device: &Device,
) -> Result<Batch> {
    let vocab = u32::try_from(vocab).map_err(|_| candle_core::Error::Msg("vocabulary too large".into()))?;
    let ids: Vec<u32> = (0..batch * seq).map(|_| rng.random_range(0..vocab)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..num_labels as u32)).collect();
    Ok(Batch {
        inputs: Inputs {
            input_ids: Tensor::from_vec(ids, (batch, seq), device)?,
            attention_mask: Tensor::ones((batch, seq), DType::U32, device)?,
            token_type_ids: Tensor::zeros((batch, seq), DType::U32, device)?,
        },
        labels: Tensor::from_vec(labels, batch, device)?,
    })
}

//! Batching (placeholder type; the data module defines the real collation).
use candle_core::Tensor;

use crate::model::Inputs;

pub struct Batch {
    pub inputs: Inputs,
    /// `u32` `[B]`.
    pub labels: Tensor,
}

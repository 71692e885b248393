//! Dataset readers, label maps, splits and batching.
pub mod batch;
pub mod labels;

//! Tokenizer loading for every format the supported checkpoints ship.

/// One tokenized text (or text pair) with special tokens, truncated to the run's maximum length and
/// not padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

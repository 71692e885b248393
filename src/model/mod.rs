//! Trainable transformer encoders with explicit perturbation points.
//!
//! Every family implements [`Encoder`], which splits the forward pass at the three points that the
//! fine-tuning methods perturb (see `docs/methods.md` §0.1 of the specification):
//!
//! ```text
//! ids ─word_embeddings─> P0 ─layer_norm_input─> P1 ─embedding_output─> P2 ─encode─> hidden ─head─> logits
//! ```
//!
//! A method can start the rest of the model from a perturbed tensor at any of these points, and get the
//! gradient with respect to the perturbation by making it a `Var`.
pub mod bert;
pub mod config;
pub mod deberta;
pub mod deberta_v2;
pub mod head;
pub mod nn;
pub mod resolve;
pub mod spm;
pub mod tokenizer;
pub mod weights;

use candle_core::{Result, Tensor};

use crate::rng::Rng;

/// The tokenized inputs of one batch, all on the model's device.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Token ids, `u32` `[B, T]`.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding, `u32` `[B, T]`.
    pub attention_mask: Tensor,
    /// Segment ids, `u32` `[B, T]`.
    pub token_type_ids: Tensor,
}

/// Forward-pass context: train or eval mode, and the seeded generator that draws dropout masks.
pub struct Ctx<'a> {
    pub train: bool,
    pub rng: &'a mut Rng,
}

impl<'a> Ctx<'a> {
    pub fn train(rng: &'a mut Rng) -> Self {
        Self { train: true, rng }
    }

    pub fn eval(rng: &'a mut Rng) -> Self {
        Self { train: false, rng }
    }
}

/// A transformer encoder split at its perturbation points.
pub trait Encoder: Send + Sync {
    /// P0: the raw word-embedding lookup `W[ids]`, `[B, T, E]`.
    fn word_embeddings(&self, input_ids: &Tensor) -> Result<Tensor>;

    /// P1: the input of the embedding LayerNorm built from (possibly perturbed) word embeddings:
    /// positions and token types added, DeBERTa's `embed_proj` applied. `[B, T, H]`.
    fn layer_norm_input(&self, words: &Tensor, inputs: &Inputs) -> Result<Tensor>;

    /// P2: the embedding module's output: the affine LayerNorm, DeBERTa's padding mask, dropout.
    fn embedding_output(&self, ln_input: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor>;

    /// Runs the transformer layers on an embedding output; returns the last hidden state `[B, T, H]`.
    fn encode(&self, embedded: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor>;

    /// The hidden size `H`.
    fn hidden_size(&self) -> usize;

    /// The whole forward pass from token ids to the last hidden state.
    fn forward(&self, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let words = self.word_embeddings(&inputs.input_ids)?;
        let s = self.layer_norm_input(&words, inputs)?;
        let e = self.embedding_output(&s, inputs, ctx)?;
        self.encode(&e, inputs, ctx)
    }
}

//! R3F (Aghajanyan et al. 2020), as fairseq's `sentence_prediction_r3f.py` runs it.
//!
//! The clean pass starts from the token ids, so the word-embedding lookup stays in the graph. The noisy
//! pass starts at P0 from `sg(W[ids]) + ν`, ν ~ Uniform(−eps, eps) or N(0, eps²) drawn per element
//! (padding included): positions, token types, the embedding LayerNorm and dropout follow on the normal
//! path. There is no ascent step. The loss per example is CE + λ·SKL_full(z̃, z), the symmetric KL with
//! gradient through both sides, averaged over rows. Choices: the noise is drawn after the clean pass
//! (the order matters only for reproducing a run's numbers); regression heads are not handled (the
//! reference falls back to plain MSE there).
use candle_core::Result;
use serde::{Deserialize, Serialize};

use super::divergence::{cross_entropy, skl_full, Reduction};
use super::noise;
use super::standard::differentiate;
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::Batch;
use crate::model::{Classifier, Ctx, Start};

/// The distribution of R3F's noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseType {
    /// Uniform(−eps, eps) (the fairseq default).
    Uniform,
    /// N(0, eps²).
    Normal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct R3fConfig {
    pub noise_type: NoiseType,
    /// The uniform bound or the normal standard deviation (`--eps`).
    pub eps: f64,
    /// The weight of the symmetric KL (`--r3f-lambda`).
    pub lambda: f64,
}

impl Default for R3fConfig {
    fn default() -> Self {
        Self { noise_type: NoiseType::Uniform, eps: 1e-5, lambda: 1.0 }
    }
}

pub struct R3f {
    config: R3fConfig,
}

impl R3f {
    pub fn new(config: R3fConfig) -> Self {
        Self { config }
    }
}

impl Method for R3f {
    fn name(&self) -> MethodName {
        MethodName::R3f
    }

    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, _at: Progress) -> Result<StepOutput> {
        let inputs = &batch.inputs;
        let clean = model.logits(inputs, ctx)?;
        let task = cross_entropy(&clean, &batch.labels)?;

        let words = model.encoder.word_embeddings(&inputs.input_ids)?.detach();
        let (eps, device) = (self.config.eps, words.device());
        let nu = match self.config.noise_type {
            NoiseType::Uniform => noise::uniform(ctx.rng, words.shape(), eps, device)?,
            NoiseType::Normal => noise::normal(ctx.rng, words.shape(), eps, device)?,
        };
        let noisy_words = (&words + nu.to_dtype(words.dtype())?)?;
        let noisy = model.logits_from(Start::Words(&noisy_words), inputs, ctx)?;

        let symmetric_kl = skl_full(&noisy, &clean, Reduction::Mean)?;
        let total = (&task + (&symmetric_kl * self.config.lambda)?)?;
        differentiate(&total, &task, Some(&symmetric_kl))
    }
}

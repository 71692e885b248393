//! ALUM (Liu et al. 2020): a curriculum of plain fine-tuning, then the adversarial objective of
//! mt-dnn's `alum/adv_masked_lm.py` (branch `v0.2`) applied to sequence classification
//! (`docs/methods.md` §3).
//!
//! For the first `standard_share` of the stage's updates (`step < standard_share·total_steps`) a batch is
//! trained exactly as [`Standard`](super::standard::Standard). Afterwards:
//! 1. clean pass e = embeddings(x), z = f(e), CE(z, y);
//! 2. the perturbation point is e **detached** (P2): the adversarial branch sends no gradient into the
//!    embeddings;
//! 3. noise₀ = N(0, 1)·`noise_std`; one ascent step on KL(sg(q)‖p̃) averaged over rows (`batchmean`),
//!    g = ∂/∂noise, noise ← (noise + η·g)/(max_h |·| + `noise_gamma`); if g is not finite the batch is
//!    trained on CE alone (`adv_kl` is then `None`);
//! 4. L_adv = mean_rows SKL_sg(f(sg(e) + noise), z); total = CE + `alpha`·L_adv.
//!
//! The reference sums the final term over masked tokens and normalises by their count; for one
//! prediction per example that is the mean over rows. `alpha` defaults to 1 (fine-tuning); the
//! pre-training script uses 10. `norm = "l2"` is the plugin's other `project_norm_type`.
use candle_core::Result;
use serde::{Deserialize, Serialize};

use super::divergence::{cross_entropy, kl_sg, skl_sg, Reduction};
use super::noise::{self, TokenNorm};
use super::smart::{clean_pass_at_embedding, logits_at_embedding, EmbeddingAscent, NoiseStep};
use super::standard::{differentiate, Standard};
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::Batch;
use crate::model::{Classifier, Ctx};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlumConfig {
    /// The share (0–1) of the stage's updates trained with the standard objective first.
    pub standard_share: f64,
    /// The standard deviation of the initial noise (`noise_var`).
    pub noise_std: f64,
    /// η (`adv_step_size`).
    pub step_size: f64,
    /// The denominator stabiliser of the renormalisation.
    pub noise_gamma: f64,
    /// The weight of the adversarial term (`adv_alpha`).
    pub alpha: f64,
    /// The per-token norm of the renormalisation (`project_norm_type`).
    pub norm: TokenNorm,
}

impl Default for AlumConfig {
    fn default() -> Self {
        Self {
            standard_share: 0.5,
            noise_std: 1e-5,
            step_size: 1e-3,
            noise_gamma: 1e-6,
            alpha: 1.0,
            norm: TokenNorm::Inf,
        }
    }
}

pub struct Alum {
    config: AlumConfig,
}

impl Alum {
    pub fn new(config: AlumConfig) -> Self {
        Self { config }
    }

    /// Whether update `at.step` still belongs to the standard part of the curriculum.
    pub fn is_standard(&self, at: Progress) -> bool {
        (at.step as f64) < self.config.standard_share * at.total_steps as f64
    }

    fn ascent(&self) -> EmbeddingAscent {
        let c = &self.config;
        let update = NoiseStep::Renormalise { step_size: c.step_size, norm: c.norm, eps: c.noise_gamma };
        EmbeddingAscent { steps: 1, update, loss: |p, q| kl_sg(p, q, Reduction::Mean) }
    }
}

impl Method for Alum {
    fn name(&self) -> MethodName {
        MethodName::Alum
    }

    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, at: Progress) -> Result<StepOutput> {
        if self.is_standard(at) {
            return Standard.step(model, batch, ctx, at);
        }
        let inputs = &batch.inputs;
        let (embedded, clean) = clean_pass_at_embedding(model, inputs, ctx)?;
        let task = cross_entropy(&clean, &batch.labels)?;

        let base = embedded.detach();
        let noise = noise::normal(ctx.rng, base.shape(), self.config.noise_std, base.device())?;
        let Some(noise) = self.ascent().run(model, inputs, ctx, &base, &clean.detach(), noise)? else {
            return differentiate(&task, &task, None);
        };
        let perturbed = logits_at_embedding(model, inputs, ctx, &base, &noise)?;
        let adversarial = skl_sg(&perturbed, &clean, Reduction::Mean)?;
        let total = (&task + (&adversarial * self.config.alpha)?)?;
        differentiate(&total, &task, Some(&adversarial))
    }
}

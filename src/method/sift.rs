//! SiFT, scale-invariant fine-tuning, as microsoft/DeBERTa's `DeBERTa/sift/sift.py` runs it
//! (`docs/methods.md` §1.1).
//!
//! The input s of the embedding LayerNorm (P1) is first re-normalised by a LayerNorm without affine
//! parameters, u = LN0(s) (eps 1e-7), in every pass, evaluation included. Per batch:
//! 1. clean pass z = f(u), CE(z, y), dropout active;
//! 2. δ₀ = clamp(N(0, σ²), −2σ, 2σ) over B×T×H (padding included), kept in f32;
//! 3. one ascent step: z̃ = f(sg(u) + δ₀) with a fresh dropout mask, L_asc = Σ_rows D(z̃, sg(z)),
//!    g = ∂L_asc/∂δ; δ₁ = δ₀ + η·g/(1e-6 + max_h |g|), no projection; δ₁ = δ₀ when g is not finite;
//! 4. final pass z̃′ = f(sg(u) + δ₁), fresh dropout; L_adv = mean_rows SKL_sg(z̃′, z) with z **not**
//!    detached, so the clean path also gets the gradient q − p;
//! 5. total = CE + λ·L_adv.
//!
//! Choices and deviations:
//! - `lambda` defaults to 5 (DeBERTa's `*-sift` presets); the reference default 0 means off, and
//!   λ = 0 here also runs the clean pass alone (with LN0), as `run.py` does.
//! - `ascent_loss = "symmetric-kl"` uses [`skl_sg`]: DeBERTa writes it as two cross-entropies, whose
//!   value is higher by H(p) + H(q) but whose gradient is the same. `"kl"` uses [`kl_sg`] (same
//!   gradient argument); `"mse"` sums squared differences per row, where DeBERTa averages over all
//!   elements, a constant factor that the max-abs normalisation removes.
//! - `adv_kl` reports L_adv, the true symmetric KL (0 when the predictions agree).
//! - The ascent pass runs with frozen weights (`Ctx::frozen`), as the reference's `requires_grad_(False)`:
//!   its backward forms only the gradient with respect to δ.
use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::divergence::{cross_entropy, kl_sg, skl_sg, squared_error, Reduction};
use super::noise;
use super::standard::differentiate;
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::Batch;
use crate::model::nn::normalize;
use crate::model::{Classifier, Ctx, Inputs, Start};

/// The eps of the non-affine LayerNorm LN0.
pub const LN0_EPS: f64 = 1e-7;
/// The stabiliser of the per-token max-abs normalisation of the ascent gradient.
const GRADIENT_NORM_EPS: f64 = 1e-6;

/// The divergence the ascent step climbs (`vat_loss_fn`); the final term is always the symmetric KL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AscentLoss {
    SymmetricKl,
    Kl,
    Mse,
}

impl AscentLoss {
    /// Σ_rows D(perturbed, clean); `clean` must already be detached.
    fn value(self, perturbed: &Tensor, clean: &Tensor) -> Result<Tensor> {
        match self {
            Self::SymmetricKl => skl_sg(perturbed, clean, Reduction::Sum),
            Self::Kl => kl_sg(perturbed, clean, Reduction::Sum),
            Self::Mse => squared_error(perturbed, clean, Reduction::Sum),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiftConfig {
    /// λ, the weight of the adversarial term (`vat_lambda`); 0 turns it off.
    pub lambda: f64,
    /// η, the ascent step size (`vat_learning_rate`).
    pub learning_rate: f64,
    /// σ, the standard deviation of the initial perturbation (`vat_init_perturbation`).
    pub init_perturbation: f64,
    /// D, the ascent divergence (`vat_loss_fn`).
    pub ascent_loss: AscentLoss,
}

impl Default for SiftConfig {
    fn default() -> Self {
        Self { lambda: 5.0, learning_rate: 1e-4, init_perturbation: 1e-2, ascent_loss: AscentLoss::SymmetricKl }
    }
}

pub struct Sift {
    config: SiftConfig,
}

impl Sift {
    pub fn new(config: SiftConfig) -> Self {
        Self { config }
    }

    /// δ₁: one ascent step from δ₀, or δ₀ itself when the gradient is not finite.
    fn ascend(&self, pass: &PerturbedPass, clean: &Tensor, delta: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let clean = clean.detach();
        // Frozen weights, as the reference sets `requires_grad_(False)`: backward forms only ∂L/∂δ.
        let loss_at = |d: &Tensor| self.config.ascent_loss.value(&pass.logits(d, &mut ctx.frozen())?, &clean);
        let grad = noise::perturbation_gradient(&delta, loss_at)?;
        match grad {
            Some(g) => delta + (noise::per_token_max_abs(&g, GRADIENT_NORM_EPS)? * self.config.learning_rate)?,
            None => Ok(delta),
        }
    }
}

/// u = LN0(s), the re-normalised input of the embedding LayerNorm.
fn normalized_ln_input(model: &Classifier, inputs: &Inputs) -> Result<Tensor> {
    let words = model.encoder.word_embeddings(&inputs.input_ids)?;
    normalize(&model.encoder.layer_norm_input(&words, inputs)?, LN0_EPS)
}

/// Forward passes from sg(u) + δ at P1.
struct PerturbedPass<'a> {
    model: &'a Classifier,
    inputs: &'a Inputs,
    /// sg(u) in f32, where δ lives.
    base: Tensor,
    dtype: DType,
}

impl PerturbedPass<'_> {
    fn logits(&self, delta: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let perturbed = (&self.base + delta)?.to_dtype(self.dtype)?;
        self.model.logits_from(Start::LayerNormInput(&perturbed), self.inputs, ctx)
    }
}

impl Method for Sift {
    fn name(&self) -> MethodName {
        MethodName::Sift
    }

    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, _at: Progress) -> Result<StepOutput> {
        let inputs = &batch.inputs;
        let u = normalized_ln_input(model, inputs)?;
        let clean = model.logits_from(Start::LayerNormInput(&u), inputs, ctx)?;
        let task = cross_entropy(&clean, &batch.labels)?;
        if self.config.lambda == 0.0 {
            return differentiate(&task, &task, None);
        }

        let pass = PerturbedPass { model, inputs, base: u.detach().to_dtype(DType::F32)?, dtype: u.dtype() };
        let delta = noise::clamped_normal(ctx.rng, u.shape(), self.config.init_perturbation, u.device())?;
        let delta = self.ascend(&pass, &clean, delta, ctx)?;
        let adversarial = skl_sg(&pass.logits(&delta, ctx)?, &clean, Reduction::Mean)?;
        let total = (&task + (&adversarial * self.config.lambda)?)?;
        differentiate(&total, &task, Some(&adversarial))
    }

    fn eval_logits(&self, model: &Classifier, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let normalized = normalized_ln_input(model, inputs)?;
        // In a frozen (inference) pass the tables are constants, as in `Classifier::logits_from`.
        let normalized = if ctx.frozen { normalized.detach() } else { normalized };
        model.logits_from(Start::LayerNormInput(&normalized), inputs, ctx)
    }
}

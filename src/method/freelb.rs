//! FreeLB (Zhu et al. 2020), as zhuchen03/FreeLB's `run_glue_freelb.py` runs it (`docs/methods.md` §5).
//!
//! Supervised adversarial training at P0, with no clean-loss term:
//! 1. δ₀ on real tokens only: `l2`: U(−1, 1)·m/√(L_b·E) with L_b the example's length and E the
//!    word-embedding width (P0's, which differs from the hidden size under DeBERTa's `embed_proj`); `linf`:
//!    U(−m, m); m = `init_mag` = 0 gives δ₀ = 0 (and draws nothing);
//! 2. K = `steps` passes, each CE(f(W[ids] + δ), y)/K with the lookup in the graph; the parameter
//!    gradients of the K backward passes are summed, i.e. the optimizer sees their average;
//! 3. between passes δ ← δ + α·g/max(‖g[b]‖, 1e-8) per example (Frobenius norm for `l2`, max-abs for
//!    `linf`), then, when `max_norm` ε > 0, the projection onto the ε-ball (rescaling for `l2`,
//!    clamping for `linf`);
//! 4. every pass reuses the first pass's dropout masks (the generator is rewound before each pass).
//!
//! `task_loss` is the first pass's CE (at δ₀), `total_loss` the objective Σ_k CE_k/K, and `adv_kl` is
//! `None`: FreeLB has no divergence term.
use candle_core::{DType, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::divergence::{cross_entropy, scalar};
use super::noise;
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::Batch;
use crate::model::{Classifier, Ctx, Inputs, Start};
use crate::rng::Rng;

/// The floor of the per-example gradient norm.
const GRADIENT_NORM_FLOOR: f64 = 1e-8;

/// The norm of FreeLB's initialisation, steps and ball (`--norm-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormType {
    L2,
    Linf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreelbConfig {
    /// K, the passes per batch (`--adv-steps`).
    pub steps: usize,
    /// α, the ascent step size (`--adv-lr`).
    pub adv_lr: f64,
    /// m, the initial perturbation's magnitude (`--adv-init-mag`).
    pub init_mag: f64,
    pub norm_type: NormType,
    /// ε, the radius of the perturbation ball; 0 = unbounded (`--adv-max-norm`).
    pub max_norm: f64,
}

impl Default for FreelbConfig {
    fn default() -> Self {
        Self { steps: 3, adv_lr: 0.1, init_mag: 0.1, norm_type: NormType::L2, max_norm: 0.0 }
    }
}

pub struct Freelb {
    config: FreelbConfig,
}

impl Freelb {
    pub fn new(config: FreelbConfig) -> Self {
        Self { config }
    }

    /// δ₀ `[B, T, E]` in f32 (E the word-embedding width), zero on padding.
    pub fn initial_delta(&self, rng: &mut Rng, inputs: &Inputs, width: usize) -> Result<Tensor> {
        let (b, t) = inputs.attention_mask.dims2()?;
        let device = inputs.attention_mask.device();
        let magnitude = self.config.init_mag;
        if magnitude == 0.0 {
            return Tensor::zeros((b, t, width), DType::F32, device);
        }
        let mask = inputs.attention_mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        match self.config.norm_type {
            NormType::L2 => {
                // m/√(L_b·E), with empty rows counted as length 1 to keep them finite.
                let dims = (mask.sum((1, 2))?.clamp(1.0, f64::INFINITY)? * width as f64)?;
                let scale = (dims.sqrt()?.recip()? * magnitude)?.reshape((b, 1, 1))?;
                noise::uniform(rng, (b, t, width), 1.0, device)?.broadcast_mul(&mask)?.broadcast_mul(&scale)
            }
            NormType::Linf => noise::uniform(rng, (b, t, width), magnitude, device)?.broadcast_mul(&mask),
        }
    }

    /// δ after one ascent step along `grad` and the projection.
    pub fn ascend(&self, delta: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let (alpha, radius) = (self.config.adv_lr, self.config.max_norm);
        match self.config.norm_type {
            NormType::L2 => {
                let delta = (delta + (noise::per_example_l2(grad, GRADIENT_NORM_FLOOR)? * alpha)?)?;
                if radius > 0.0 {
                    noise::project_example_l2(&delta, radius)
                } else {
                    Ok(delta)
                }
            }
            NormType::Linf => {
                let delta = (delta + (noise::per_example_max_abs(grad, GRADIENT_NORM_FLOOR)? * alpha)?)?;
                if radius > 0.0 {
                    delta.clamp(-radius, radius)
                } else {
                    Ok(delta)
                }
            }
        }
    }
}

impl Method for Freelb {
    fn name(&self) -> MethodName {
        MethodName::Freelb
    }

    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, _at: Progress) -> Result<StepOutput> {
        let passes = self.config.steps;
        if passes == 0 {
            candle_core::bail!("freelb.steps must be at least 1");
        }
        let inputs = &batch.inputs;
        let mut delta = self.initial_delta(ctx.rng, inputs, model.config.embedding_size())?;
        let dropout_masks = ctx.rng.clone();

        let mut accumulated = None;
        let (mut first_loss, mut objective) = (0.0, 0.0);
        for pass in 0..passes {
            *ctx.rng = dropout_masks.clone();
            let delta_var = Var::from_tensor(&delta)?;
            let words = model.encoder.word_embeddings(&inputs.input_ids)?;
            let perturbed = (&words + delta_var.as_tensor().to_dtype(words.dtype())?)?;
            let loss = cross_entropy(&model.logits_from(Start::Words(&perturbed), inputs, ctx)?, &batch.labels)?;
            let mut grads = (&loss / passes as f64)?.backward()?;
            // Under f16 loss scaling every gradient of this pass is scaled; δ's ascent wants the true one.
            let delta_grad = grads.remove(delta_var.as_tensor()).map(|g| g / ctx.loss_scale).transpose()?;

            let loss = scalar(&loss)?;
            if pass == 0 {
                first_loss = loss;
            }
            objective += loss / passes as f32;
            match &mut accumulated {
                None => accumulated = Some(grads),
                Some(sum) => sum.extend(grads)?,
            }
            let is_last = pass + 1 == passes;
            if let Some(grad) = delta_grad.filter(|_| !is_last) {
                delta = self.ascend(&delta, &grad)?;
            }
        }
        let Some(grads) = accumulated else { candle_core::bail!("freelb ran no pass") };
        Ok(StepOutput { grads, task_loss: first_loss, total_loss: objective, adv_kl: None })
    }
}

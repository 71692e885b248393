//! SMART (Jiang et al. 2020): a smoothness-inducing adversarial regulariser and a Bregman proximal
//! point term with a momentum teacher (`docs/methods.md` §2).
//!
//! Adversarial term, as namisan/mt-dnn's `SmartPerturbation` (since Aug 2020) runs it, at P2 (the
//! embedding output after LayerNorm and dropout):
//! 1. clean pass e = embeddings(x), z = f(e), CE(z, y);
//! 2. noise₀ = N(0, 1)·`noise_std` over B×T×H (padding included);
//! 3. `steps` times: z̃ = f(sg(e) + noise) (fresh dropout), L_asc = stable_kl(z̃, sg(z)) summed over
//!    rows, g = ∂L_asc/∂noise; if g is not finite the batch skips the adversarial term (`adv_kl` is
//!    then `None`, which the trainer can count); otherwise noise ← norm(noise + η·g), unit norm per
//!    token with `epsilon` as the denominator stabiliser (`projection = "unit"`);
//! 4. final pass z̃′ = f(e + noise) with e **not** detached (mt-dnn sends this gradient into the
//!    embeddings), L_adv = mean_rows SKL_sg(z̃′, z), weight `lambda`.
//!
//! `projection = "ball"` is the paper's step instead: noise ← clamp(noise + η·g/‖g‖_∞, ±`eps_ball`),
//! with the ∞-norm taken over each example's whole T×H slice. The ascent pass starts from sg(e):
//! the gradient w.r.t. the noise is the same, and the embedding tables get no wasted gradient.
//!
//! `step_size` defaults to 1e-3 (the paper and the `SmartPerturbation` class default); mt-dnn's
//! `train.py` passes 1e-5. Either way the unit renormalisation makes the final noise ≈ 1 per token in
//! max-abs, far from the paper's ε = 1e-5 ball, and keeps the initial noise's direction: near noise 0
//! the divergence is second order, so η·g is orders of magnitude below noise₀ (measured on the test
//! fixture: ≈6e-12 against ≈2e-5) and the "ascent" is random unit-scale noise. `projection = "ball"`
//! follows the gradient's direction.
//!
//! Deviation: the adversarial passes start from the clean pass's embedding output e, which carries
//! that pass's embedding-dropout mask; mt-dnn's `embed_encode` recomputes the embeddings, with a fresh
//! mask. Here the noise perturbs exactly the input the clean logits saw, one embedding pass is saved,
//! and the encoder layers still draw fresh dropout in every pass as in the reference. Its effect on
//! scores has not been measured (docs/methods.md §2).
//!
//! Proximal term (no public reference code; our reading of the paper): a teacher θ̃₀ = θ₀ copied at
//! construction, run in eval mode unless `teacher_dropout`, adds μ·mean_rows SKL(z, sg(z_teacher)),
//! the full symmetric KL differentiated through the student side only. After each optimizer update
//! θ̃ ← (1−β)θ + βθ̃, with β = `beta_early` while `step ≤ beta_switch·total_steps`, then `beta_late`.
//! The teacher's variables never reach the student's optimizer; `state()` carries them as `teacher.*`.
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::divergence::{cross_entropy, skl_full, skl_sg, stable_kl, Reduction};
use super::noise::{self, TokenNorm};
use super::standard::differentiate;
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::Batch;
use crate::model::{Classifier, Ctx, Inputs, Start};

/// How the ascent step bounds the noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    /// mt-dnn: renormalise noise + η·g to unit norm per token.
    Unit,
    /// The paper: clamp to the ∞-ball of radius `eps_ball` after a step along g/‖g‖_∞.
    Ball,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmartConfig {
    /// Whether to add the adversarial smoothness term.
    pub adversarial: bool,
    /// λs, its weight (`adv_alpha`).
    pub lambda: f64,
    /// The standard deviation of the initial noise (`adv_noise_var`, which is a std despite its name).
    pub noise_std: f64,
    /// Ascent steps (`adv_k`).
    pub steps: usize,
    /// η (`adv_step_size`).
    pub step_size: f64,
    /// The denominator stabiliser of the unit renormalisation (`adv_epsilon`), not a ball radius.
    pub epsilon: f64,
    /// The per-token norm of the unit projection (`adv_p_norm`).
    pub norm: TokenNorm,
    pub projection: Projection,
    /// The ∞-ball radius of the paper's projection.
    pub eps_ball: f64,
    /// Whether to add the Bregman proximal term with the momentum teacher.
    pub proximal: bool,
    /// μ, its weight.
    pub mu: f64,
    /// Whether the teacher's forward pass uses dropout.
    pub teacher_dropout: bool,
    /// β while `step ≤ beta_switch·total_steps`.
    pub beta_early: f64,
    /// β afterwards.
    pub beta_late: f64,
    /// The share of the stage's updates that use `beta_early`.
    pub beta_switch: f64,
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self {
            adversarial: true,
            lambda: 1.0,
            noise_std: 1e-5,
            steps: 1,
            step_size: 1e-3,
            epsilon: 1e-6,
            norm: TokenNorm::Inf,
            projection: Projection::Unit,
            eps_ball: 1e-5,
            proximal: true,
            mu: 1.0,
            teacher_dropout: false,
            beta_early: 0.99,
            beta_late: 0.999,
            beta_switch: 0.1,
        }
    }
}

/// The checkpoint-state prefix of the teacher's weights.
pub const TEACHER_PREFIX: &str = "teacher.";

pub struct Smart {
    config: SmartConfig,
    /// The momentum teacher θ̃, present when `proximal` is on.
    teacher: Option<Classifier>,
}

impl Smart {
    pub fn new(config: SmartConfig, model: &Classifier) -> Result<Self> {
        let teacher = if config.proximal {
            Some(model.duplicate().map_err(|e| candle_core::Error::Msg(format!("SMART teacher: {e:#}")))?)
        } else {
            None
        };
        Ok(Self { config, teacher })
    }

    /// The teacher's momentum for the update after `at.step`.
    pub fn beta(&self, at: Progress) -> f64 {
        let early = at.step as f64 <= self.config.beta_switch * at.total_steps as f64;
        if early {
            self.config.beta_early
        } else {
            self.config.beta_late
        }
    }

    fn ascent(&self) -> EmbeddingAscent {
        let c = &self.config;
        let update = match c.projection {
            Projection::Unit => NoiseStep::Renormalise { step_size: c.step_size, norm: c.norm, eps: c.epsilon },
            Projection::Ball => NoiseStep::Ball { step_size: c.step_size, radius: c.eps_ball },
        };
        EmbeddingAscent { steps: c.steps, update, loss: |p, q| stable_kl(p, q, Reduction::Sum) }
    }

    /// L_adv = mean_rows SKL_sg(f(e + noise), z) after the ascent, or `None` when the ascent gradient was
    /// not finite.
    fn adversarial_term(
        &self,
        model: &Classifier,
        inputs: &Inputs,
        ctx: &mut Ctx,
        embedded: &Tensor,
        clean: &Tensor,
    ) -> Result<Option<Tensor>> {
        let noise = noise::normal(ctx.rng, embedded.shape(), self.config.noise_std, embedded.device())?;
        let ascended = self.ascent().run(model, inputs, ctx, &embedded.detach(), &clean.detach(), noise)?;
        let Some(noise) = ascended else { return Ok(None) };
        let perturbed = logits_at_embedding(model, inputs, ctx, embedded, &noise)?;
        skl_sg(&perturbed, clean, Reduction::Mean).map(Some)
    }

    /// mean_rows SKL(z, sg(z_teacher)).
    fn proximal_term(&self, teacher: &Classifier, inputs: &Inputs, ctx: &mut Ctx, clean: &Tensor) -> Result<Tensor> {
        let train = ctx.train && self.config.teacher_dropout;
        let mut teacher_ctx = Ctx { train, frozen: true, loss_scale: 1.0, rng: &mut *ctx.rng };
        let teacher_logits = teacher.logits(inputs, &mut teacher_ctx)?.detach();
        skl_full(clean, &teacher_logits, Reduction::Mean)
    }
}

fn locked(vars: &Mutex<HashMap<String, Var>>) -> MutexGuard<'_, HashMap<String, Var>> {
    // A panic elsewhere while the map was held cannot leave a `HashMap` of handles half-updated.
    vars.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Method for Smart {
    fn name(&self) -> MethodName {
        MethodName::Smart
    }

    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, _at: Progress) -> Result<StepOutput> {
        let inputs = &batch.inputs;
        let (embedded, clean) = clean_pass_at_embedding(model, inputs, ctx)?;
        let task = cross_entropy(&clean, &batch.labels)?;
        let mut total = task.clone();

        let adversarial =
            if self.config.adversarial { self.adversarial_term(model, inputs, ctx, &embedded, &clean)? } else { None };
        if let Some(adversarial) = &adversarial {
            total = (total + (adversarial * self.config.lambda)?)?;
        }
        if let Some(teacher) = &self.teacher {
            total = (total + (self.proximal_term(teacher, inputs, ctx, &clean)? * self.config.mu)?)?;
        }
        differentiate(&total, &task, adversarial.as_ref())
    }

    fn after_update(&mut self, model: &Classifier, at: Progress) -> Result<()> {
        let Some(teacher) = &self.teacher else { return Ok(()) };
        let beta = self.beta(at);
        let student = locked(model.varmap.data());
        for (name, teacher_var) in locked(teacher.varmap.data()).iter() {
            let Some(student_var) = student.get(name) else {
                candle_core::bail!("SMART teacher: the student has no variable `{name}`");
            };
            let student_part = (student_var.as_tensor().detach() * (1.0 - beta))?;
            teacher_var.set(&(student_part + (teacher_var.as_tensor().detach() * beta)?)?)?;
        }
        Ok(())
    }

    /// The teacher's weights as views of the live variables: serialise them before the next update.
    fn state(&self) -> Vec<(String, Tensor)> {
        let Some(teacher) = &self.teacher else { return Vec::new() };
        let vars = locked(teacher.varmap.data());
        let mut state: Vec<_> =
            vars.iter().map(|(name, var)| (format!("{TEACHER_PREFIX}{name}"), var.as_tensor().detach())).collect();
        state.sort_by(|a, b| a.0.cmp(&b.0));
        state
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let Some(teacher) = &self.teacher else { return Ok(()) };
        for (name, var) in locked(teacher.varmap.data()).iter() {
            let key = format!("{TEACHER_PREFIX}{name}");
            let Some(saved) = tensors.get(&key) else {
                candle_core::bail!("the checkpoint has no SMART teacher weight `{key}`");
            };
            var.set(&saved.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}

/// The clean pass split at P2: the embedding output e (dropout applied) and the logits f(e).
pub(crate) fn clean_pass_at_embedding(model: &Classifier, inputs: &Inputs, ctx: &mut Ctx) -> Result<(Tensor, Tensor)> {
    let encoder = &model.encoder;
    let words = encoder.word_embeddings(&inputs.input_ids)?;
    let embedded = encoder.embedding_output(&encoder.layer_norm_input(&words, inputs)?, inputs, ctx)?;
    let logits = model.logits_from(Start::Embedded(&embedded), inputs, ctx)?;
    Ok((embedded, logits))
}

/// Logits from `embedded + noise` at P2 (the noise is f32, cast to the model dtype).
pub(crate) fn logits_at_embedding(
    model: &Classifier,
    inputs: &Inputs,
    ctx: &mut Ctx,
    embedded: &Tensor,
    noise: &Tensor,
) -> Result<Tensor> {
    let perturbed = (embedded + noise.to_dtype(embedded.dtype())?)?;
    model.logits_from(Start::Embedded(&perturbed), inputs, ctx)
}

/// The floor of ‖g‖_∞ in the paper's step, which normalises by the norm alone. It only guards against
/// a zero gradient: near noise 0 the divergence is second order, so g is tiny (≈5e-9 on the test
/// fixture) and a floor like `epsilon` = 1e-6 would shrink the step below the ball.
pub const BALL_GRADIENT_FLOOR: f64 = f32::MIN_POSITIVE as f64;

/// How one ascent step moves the noise, given the ascent gradient g.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NoiseStep {
    /// noise ← norm(noise + η·g): mt-dnn since Aug 2020 and ALUM.
    Renormalise { step_size: f64, norm: TokenNorm, eps: f64 },
    /// noise ← clamp(noise + η·g/‖g[b]‖_∞, −radius, radius): the SMART paper.
    Ball { step_size: f64, radius: f64 },
}

impl NoiseStep {
    fn apply(self, noise: &Tensor, grad: &Tensor) -> Result<Tensor> {
        match self {
            Self::Renormalise { step_size, norm, eps } => norm.apply(&(noise + (grad * step_size)?)?, eps),
            Self::Ball { step_size, radius } => {
                let step = (noise::per_example_max_abs(grad, BALL_GRADIENT_FLOOR)? * step_size)?;
                (noise + step)?.clamp(-radius, radius)
            }
        }
    }
}

/// The ascent on noise added at P2, shared by SMART and ALUM: each step differentiates
/// `loss(f(sg(e) + noise), sg(z))` with respect to the noise and moves the noise by `update`.
pub(crate) struct EmbeddingAscent {
    pub steps: usize,
    pub update: NoiseStep,
    /// The ascent loss of (perturbed logits, detached clean logits).
    pub loss: fn(&Tensor, &Tensor) -> Result<Tensor>,
}

impl EmbeddingAscent {
    /// The noise after the ascent, or `None` as soon as a gradient is not finite. `embedded` and
    /// `clean` must be detached.
    pub fn run(
        &self,
        model: &Classifier,
        inputs: &Inputs,
        ctx: &mut Ctx,
        embedded: &Tensor,
        clean: &Tensor,
        mut noise: Tensor,
    ) -> Result<Option<Tensor>> {
        for _ in 0..self.steps {
            // Frozen weights: backward forms only the gradient with respect to the noise.
            let grad = noise::perturbation_gradient(&noise, |n| {
                (self.loss)(&logits_at_embedding(model, inputs, &mut ctx.frozen(), embedded, n)?, clean)
            })?;
            let Some(grad) = grad else { return Ok(None) };
            noise = self.update.apply(&noise, &grad)?;
        }
        Ok(Some(noise))
    }
}

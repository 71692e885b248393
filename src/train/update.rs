//! One optimizer update, as the trainer runs it and `bench` times it: the method's passes over
//! `accumulate` micro-batches (gradients averaged), the global gradient norm, clipping, AdamW and the
//! method's after-update hook. A non-finite loss or gradient norm leaves the weights untouched.
//!
//! A model computing in f16 gets dynamic loss scaling, as `torch.cuda.amp.GradScaler`: the backward
//! passes run scaled by S (start 2^16), the gradients are unscaled in f32 before the norm; a
//! non-finite gradient skips the update and halves S, and 2000 finite updates in a row double it.
use candle_core::backprop::GradStore;
use candle_core::{DType, Var};
use serde::{Deserialize, Serialize};

use super::optim::{self, AdamW, AdamWConfig};
use crate::data::Batch;
use crate::method::{Method, Progress};
use crate::model::{Classifier, Ctx};
use crate::rng::Rng;

/// The optimizer over a model's trainable weights, with the clipping threshold.
pub struct Updater {
    optimizer: AdamW,
    vars: Vec<Var>,
    /// Global-norm clipping threshold; 0 disables clipping.
    grad_clip: f64,
    /// Present when the model computes in f16.
    loss_scale: Option<LossScale>,
}

/// The state of dynamic loss scaling; a checkpoint carries it, so a resumed run scales as the
/// uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// S, the factor of the backward passes.
    pub scale: f64,
    /// Finite updates since S last changed.
    pub finite_in_row: usize,
}

impl LossScale {
    /// GradScaler's `init_scale`.
    pub const INITIAL: f64 = 65536.0;
    /// GradScaler's `growth_interval`.
    pub const GROWTH_INTERVAL: usize = 2000;

    pub fn new() -> Self {
        Self { scale: Self::INITIAL, finite_in_row: 0 }
    }

    fn finite(&mut self) {
        self.finite_in_row += 1;
        if self.finite_in_row == Self::GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.finite_in_row = 0;
        }
    }

    /// Halves S after a non-finite gradient. Returns false, leaving S at 1, when S was already 1:
    /// the unscaled gradient itself is not finite, which scaling cannot cure.
    fn overflowed(&mut self) -> bool {
        self.finite_in_row = 0;
        if self.scale <= 1.0 {
            return false;
        }
        self.scale = (self.scale / 2.0).max(1.0);
        true
    }
}

impl Default for LossScale {
    fn default() -> Self {
        Self::new()
    }
}

/// What one call of [`Updater::update`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Applied(Applied),
    /// A loss or the gradient was not finite (at loss scale 1, if scaled): the weights are unchanged.
    NonFinite,
    /// The f16-scaled gradient overflowed: the weights are unchanged and the loss scale is now `scale`.
    /// Part of normal f16 training, not a sign of divergence.
    Overflow {
        scale: f64,
    },
}

impl Outcome {
    pub fn applied(self) -> Option<Applied> {
        match self {
            Self::Applied(applied) => Some(applied),
            Self::NonFinite | Self::Overflow { .. } => None,
        }
    }
}

/// What one applied update reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Applied {
    /// The differentiated objective, averaged over micro-batches.
    pub loss: f32,
    /// The clean cross-entropy, averaged over micro-batches.
    pub task_loss: f32,
    /// The method's adversarial / noise divergence, averaged over micro-batches.
    pub adv_kl: Option<f32>,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
}

impl Updater {
    pub fn new(model: &Classifier, config: AdamWConfig, grad_clip: f64) -> candle_core::Result<Self> {
        let named = model.named_vars();
        let vars = named.iter().map(|(_, var)| var.clone()).collect();
        let loss_scale = (model.compute_dtype() == DType::F16).then(LossScale::new);
        Ok(Self { optimizer: AdamW::new(named, config)?, vars, grad_clip, loss_scale })
    }

    /// The loss-scaling state, present when the model computes in f16.
    pub fn loss_scale(&self) -> Option<LossScale> {
        self.loss_scale
    }

    /// Restores the loss-scaling state of a checkpoint (ignored for a model that does not scale).
    pub fn set_loss_scale(&mut self, state: Option<LossScale>) {
        if let (Some(scale), Some(saved)) = (self.loss_scale.as_mut(), state) {
            *scale = saved;
        }
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.optimizer
    }

    /// Runs one update at learning rate `lr`: `accumulate` micro-batches from `next_batch`, then the
    /// clipped AdamW step and `method.after_update`. `progress` counts the updates done before this
    /// one. The weights are unchanged unless the outcome is [`Outcome::Applied`].
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        method: &mut dyn Method,
        model: &Classifier,
        accumulate: usize,
        mut next_batch: impl FnMut() -> anyhow::Result<Batch>,
        rng: &mut Rng,
        lr: f64,
        progress: Progress,
    ) -> anyhow::Result<Outcome> {
        let mut total: Option<GradStore> = None;
        let (mut loss, mut task_loss, mut adv_kl) = (0f32, 0f32, None::<f32>);
        let scale = self.loss_scale.map_or(1.0, |s| s.scale);
        for _ in 0..accumulate.max(1) {
            let batch = next_batch()?;
            let out = method.step(model, &batch, &mut Ctx::train(rng).with_loss_scale(scale), progress)?;
            if !out.total_loss.is_finite() {
                return Ok(Outcome::NonFinite);
            }
            loss += out.total_loss;
            task_loss += out.task_loss;
            if let Some(kl) = out.adv_kl {
                adv_kl = Some(adv_kl.unwrap_or(0.0) + kl);
            }
            match total.as_mut() {
                None => total = Some(out.grads),
                Some(sum) => optim::accumulate(sum, out.grads, &self.vars)?,
            }
        }
        let Some(mut grads) = total else { return Ok(Outcome::NonFinite) };
        let n = accumulate.max(1);
        // The mean over micro-batches and the loss scale, divided out in one pass (the gradients of
        // the f32 master weights are f32).
        let factor = 1.0 / (n as f64 * scale);
        if factor != 1.0 {
            optim::scale_grads(&mut grads, &self.vars, factor)?;
        }
        let grad_norm = optim::grad_norm(&grads, &self.vars)?;
        if !grad_norm.is_finite() {
            let rescued = self.loss_scale.as_mut().is_some_and(LossScale::overflowed);
            return Ok(match self.loss_scale {
                Some(s) if rescued => Outcome::Overflow { scale: s.scale },
                _ => Outcome::NonFinite,
            });
        }
        if let Some(s) = self.loss_scale.as_mut() {
            s.finite();
        }
        if self.grad_clip > 0.0 && grad_norm as f64 > self.grad_clip {
            // torch.nn.utils.clip_grad_norm_'s factor, so clipped updates match transformers' exactly.
            optim::scale_grads(&mut grads, &self.vars, self.grad_clip / (grad_norm as f64 + 1e-6))?;
        }
        self.optimizer.step(&grads, lr)?;
        method.after_update(model, Progress { step: progress.step + 1, ..progress })?;
        let n = n as f32;
        Ok(Outcome::Applied(Applied {
            loss: loss / n,
            task_loss: task_loss / n,
            adv_kl: adv_kl.map(|kl| kl / n),
            grad_norm,
        }))
    }
}

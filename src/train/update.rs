//! One optimizer update, as the trainer runs it and `bench` times it: the method's passes over
//! `accumulate` micro-batches (gradients averaged), the global gradient norm, clipping, AdamW and the
//! method's after-update hook. A non-finite loss or gradient norm leaves the weights untouched.
use candle_core::backprop::GradStore;
use candle_core::Var;

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
        Ok(Self { optimizer: AdamW::new(named, config)?, vars, grad_clip })
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.optimizer
    }

    /// Runs one update at learning rate `lr`: `accumulate` micro-batches from `next_batch`, then the
    /// clipped AdamW step and `method.after_update`. `progress` counts the updates done before this
    /// one. Returns `None`, with the weights unchanged, when a loss or the gradient norm is not finite.
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
    ) -> anyhow::Result<Option<Applied>> {
        let mut total: Option<GradStore> = None;
        let (mut loss, mut task_loss, mut adv_kl) = (0f32, 0f32, None::<f32>);
        for _ in 0..accumulate.max(1) {
            let batch = next_batch()?;
            let out = method.step(model, &batch, &mut Ctx::train(rng), progress)?;
            if !out.total_loss.is_finite() {
                return Ok(None);
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
        let Some(mut grads) = total else { return Ok(None) };
        let n = accumulate.max(1);
        if n > 1 {
            optim::scale_grads(&mut grads, &self.vars, 1.0 / n as f64)?;
        }
        let grad_norm = optim::grad_norm(&grads, &self.vars)?;
        if !grad_norm.is_finite() {
            return Ok(None);
        }
        if self.grad_clip > 0.0 && grad_norm as f64 > self.grad_clip {
            // torch.nn.utils.clip_grad_norm_'s factor, so clipped updates match transformers' exactly.
            optim::scale_grads(&mut grads, &self.vars, self.grad_clip / (grad_norm as f64 + 1e-6))?;
        }
        self.optimizer.step(&grads, lr)?;
        method.after_update(model, Progress { step: progress.step + 1, ..progress })?;
        let n = n as f32;
        Ok(Some(Applied { loss: loss / n, task_loss: task_loss / n, adv_kl: adv_kl.map(|kl| kl / n), grad_norm }))
    }
}

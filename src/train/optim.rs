//! AdamW with decoupled weight decay and state the checkpoint can save, plus gradient clipping.
//!
//! candle-nn's `AdamW` keeps its moments private and decays every parameter; fine-tuning recipes spare
//! biases and LayerNorm weights, and an exact resume needs the moments.
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

pub use crate::experiment::preset::AdamWConfig;
use crate::model::kernels::optim::{adamw_in_place, sum_of_squares, AdamWStep};

struct Param {
    name: String,
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    params: Vec<Param>,
    config: AdamWConfig,
    /// Updates applied so far (the bias-correction exponent).
    steps: usize,
}

/// Biases and LayerNorm weights take no weight decay (the usual fine-tuning parameter groups). As in
/// transformers' recipes, a bias is any name containing `bias`: DeBERTa v1's `q_bias` / `v_bias` too.
pub fn takes_weight_decay(name: &str) -> bool {
    !(name.contains("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

impl AdamW {
    pub fn new(mut vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                // Two allocations: the fused update writes the moments in place.
                let zeros = || var.as_tensor().zeros_like()?.to_dtype(DType::F32);
                Ok(Param { decay: takes_weight_decay(&name), name, m: zeros()?, v: zeros()?, var })
            })
            .collect::<Result<_>>()?;
        Ok(Self { params, config, steps: 0 })
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left untouched.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        let c = &self.config;
        let t = self.steps as i32;
        let (bias1, bias2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else { continue };
            let fused = AdamWStep {
                lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: if p.decay { c.weight_decay } else { 0.0 },
                bias_correction1: bias1,
                bias_correction2: bias2,
            };
            if adamw_in_place(p.var.as_tensor(), g, &p.m, &p.v, &fused)? {
                continue;
            }
            let g = g.to_dtype(DType::F32)?;
            p.m = ((&p.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            p.v = ((&p.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&p.m / bias1)? / ((&p.v / bias2)?.sqrt()? + c.eps)?)?;
            let mut w = p.var.as_tensor().to_dtype(DType::F32)?;
            if p.decay && c.weight_decay > 0.0 {
                w = (&w * (1.0 - lr * c.weight_decay))?;
            }
            let w = (w - (update * lr)?)?;
            p.var.set(&w.to_dtype(p.var.dtype())?)?;
        }
        Ok(())
    }

    /// The moments by name (`m.<param>`, `v.<param>`), for a checkpoint. They share storage with the
    /// live moments, which the next step updates in place: serialise them before it.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .flat_map(|p| [(format!("m.{}", p.name), p.m.clone()), (format!("v.{}", p.name), p.v.clone())])
            .collect()
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: usize) -> Result<()> {
        for p in &mut self.params {
            let get = |key: String| {
                tensors
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks `{key}`")))
            };
            // Copies: the moments are updated in place and must not alias the caller's tensors.
            p.m = get(format!("m.{}", p.name))?.to_device(p.var.device())?.copy()?;
            p.v = get(format!("v.{}", p.name))?.to_device(p.var.device())?.copy()?;
        }
        self.steps = steps;
        Ok(())
    }
}

/// The global L2 norm of all gradients.
pub fn grad_norm(grads: &GradStore, vars: &[Var]) -> Result<f32> {
    let mut total = 0f32;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += match sum_of_squares(g)? {
                Some(sum) => sum as f32,
                None => g.to_dtype(DType::F32)?.sqr()?.sum_all()?.to_scalar::<f32>()?,
            };
        }
    }
    Ok(total.sqrt())
}

/// Scales every gradient by `factor` in place.
pub fn scale_grads(grads: &mut GradStore, vars: &[Var], factor: f64) -> Result<()> {
    for var in vars {
        if let Some(g) = grads.remove(var.as_tensor()) {
            grads.insert(var.as_tensor(), (g * factor)?);
        }
    }
    Ok(())
}

/// Adds the gradients of `from` into `into` (gradient accumulation).
pub fn accumulate(into: &mut GradStore, from: GradStore, vars: &[Var]) -> Result<()> {
    let mut from = from;
    for var in vars {
        if let Some(g) = from.remove(var.as_tensor()) {
            let sum = match into.remove(var.as_tensor()) {
                Some(acc) => (acc + g)?,
                None => g,
            };
            into.insert(var.as_tensor(), sum);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::takes_weight_decay;

    #[test]
    fn biases_and_layer_norms_take_no_decay() {
        for name in [
            "encoder.layer.0.attention.self.query.bias",
            "encoder.layer.0.attention.self.q_bias",
            "encoder.layer.0.attention.self.v_bias",
            "embeddings.LayerNorm.weight",
            "encoder.rel_embeddings.layer_norm.weight",
        ] {
            assert!(!takes_weight_decay(name), "{name}");
        }
        for name in
            ["encoder.layer.0.attention.self.in_proj.weight", "classifier.weight", "embeddings.word_embeddings.weight"]
        {
            assert!(takes_weight_decay(name), "{name}");
        }
    }
}

//! AdamW with decoupled weight decay and state the checkpoint can save, plus gradient clipping.
//!
//! candle-nn's `AdamW` keeps its moments private and decays every parameter; fine-tuning recipes spare
//! biases and LayerNorm weights, and an exact resume needs the moments.
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

pub use crate::experiment::preset::AdamWConfig;
use crate::model::kernels::optim::{adamw_applies, adamw_in_place, sum_of_squares, AdamWStep};

struct Param {
    name: String,
    var: Var,
    decay: bool,
    moments: Moments,
}

/// A parameter's first and second moments.
enum Moments {
    /// f32 weights on the fused CPU path: buffers that the fused update rewrites in the same pass as
    /// the weight.
    Host { m: Vec<f32>, v: Vec<f32> },
    /// Anything else (GPUs, `train.kernels = "portable"`, half precision): f32 tensors for the composed
    /// update.
    Tensors { m: Tensor, v: Tensor },
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
                let moments = if adamw_applies(var.as_tensor()) {
                    let n = var.elem_count();
                    Moments::Host { m: vec![0.0; n], v: vec![0.0; n] }
                } else {
                    let zeros = || var.as_tensor().zeros_like()?.to_dtype(DType::F32);
                    Moments::Tensors { m: zeros()?, v: zeros()? }
                };
                Ok(Param { decay: takes_weight_decay(&name), name, moments, var })
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
            let (m, v) = match &mut p.moments {
                Moments::Host { m, v } => {
                    adamw_in_place(p.var.as_tensor(), g, m, v, &fused)?;
                    continue;
                }
                Moments::Tensors { m, v } => (m, v),
            };
            let g = g.to_dtype(DType::F32)?;
            *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&*m / bias1)? / ((&*v / bias2)?.sqrt()? + c.eps)?)?;
            let mut w = p.var.as_tensor().to_dtype(DType::F32)?;
            if p.decay && c.weight_decay > 0.0 {
                w = (&w * (1.0 - lr * c.weight_decay))?;
            }
            let w = (w - (update * lr)?)?;
            p.var.set(&w.to_dtype(p.var.dtype())?)?;
        }
        Ok(())
    }

    /// The moments by name (`m.<param>`, `v.<param>`), for a checkpoint. Tensor moments share storage
    /// with the live ones, which the next step updates in place: serialise them before it.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::with_capacity(2 * self.params.len());
        for p in &self.params {
            let (m, v) = match &p.moments {
                Moments::Host { m, v } => {
                    let tensor = |data: &[f32]| Tensor::from_slice(data, p.var.shape(), p.var.device());
                    (tensor(m)?, tensor(v)?)
                }
                Moments::Tensors { m, v } => (m.clone(), v.clone()),
            };
            state.push((format!("m.{}", p.name), m));
            state.push((format!("v.{}", p.name), v));
        }
        Ok(state)
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: usize) -> Result<()> {
        for p in &mut self.params {
            let get = |key: String| {
                let tensor = tensors
                    .get(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks `{key}`")))?;
                if tensor.shape() != p.var.shape() {
                    candle_core::bail!(
                        "optimizer state `{key}` has shape {:?}, the parameter {:?}",
                        tensor.shape(),
                        p.var.shape()
                    );
                }
                Ok(tensor)
            };
            let (m, v) = (get(format!("m.{}", p.name))?, get(format!("v.{}", p.name))?);
            match &mut p.moments {
                Moments::Host { m: host_m, v: host_v } => {
                    let host = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
                    (*host_m, *host_v) = (host(m)?, host(v)?);
                }
                // Copies: the moments are updated in place and must not alias the caller's tensors.
                Moments::Tensors { m: live_m, v: live_v } => {
                    *live_m = m.to_device(p.var.device())?.copy()?;
                    *live_v = v.to_device(p.var.device())?.copy()?;
                }
            }
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

//! Layers whose backward passes Candle actually computes.
//!
//! `candle_nn::LayerNorm` and `ops::softmax_last_dim` take fused paths without a backward pass, which
//! silently cuts the gradient (see `docs/candle-notes.md`). The layers here are composed from
//! differentiable primitives; `Linear` and `Embedding` come from candle-nn, whose ops do have backward.
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Embedding, Init, Linear, VarBuilder};
use rand::Rng as _;

use super::Ctx;

/// A LayerNorm over the last dimension, composed of differentiable ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }

    pub fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", Init::Const(0.0))?;
        Ok(Self::new(weight, bias, eps))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        normalize(x, self.eps)?.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension: a LayerNorm without affine parameters.
/// Statistics are taken in f32 whatever the input dtype, as PyTorch does.
pub fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)
}

/// Softmax over the last dimension with a backward pass.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// The activation functions that configs name in `hidden_act` / `pooler_hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The exact, erf-based GELU (transformers' `gelu`).
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    Relu,
    Tanh,
}

impl Activation {
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu => x.gelu_erf(),
            Self::GeluNew => x.gelu(),
            Self::Relu => x.relu(),
            Self::Tanh => x.tanh(),
        }
    }
}

/// Dropout whose mask comes from the run's seeded generator, so that a run is reproducible.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    pub fn new(p: f64) -> Self {
        Self { p: p as f32 }
    }

    pub fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        if !ctx.train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p);
        // Comparing raw u32 draws against a threshold is several times cheaper than drawing floats.
        let threshold = (self.p as f64 * u32::MAX as f64) as u32;
        let mask: Vec<f32> =
            (0..x.elem_count()).map(|_| if ctx.rng.random::<u32>() >= threshold { keep } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}

/// A linear layer `x W^T + b` loaded from the checkpoint (required: no fallback initialisation).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

/// A linear layer initialised as transformers does when the checkpoint lacks it (heads):
/// weights from N(0, std²), zero bias.
pub fn linear_init(in_dim: usize, out_dim: usize, std: f64, vb: VarBuilder) -> Result<Linear> {
    let init = Init::Randn { mean: 0.0, stdev: std };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

pub fn embedding(vocab: usize, dim: usize, vb: VarBuilder) -> Result<Embedding> {
    let table = vb.get((vocab, dim), "weight")?;
    Ok(Embedding::new(table, dim))
}

/// Applies a linear layer to a `[B, T, in]` tensor as one 2-D matmul (faster than candle's batched one).
pub fn apply_linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    match x.dims() {
        [b, t, d] => layer.forward(&x.reshape((b * t, *d))?)?.reshape((*b, *t, ())),
        _ => layer.forward(x),
    }
}

//! Layers whose backward passes Candle actually computes, on the fused kernels of [`super::kernels`].
//!
//! `candle_nn::LayerNorm` and `ops::softmax_last_dim` take fused paths without a backward pass, which
//! silently cuts the gradient (see `docs/design.md`). The layers here run the project's own
//! kernels (hand-written backward, f32 on the CPU) or, elsewhere, composed differentiable primitives.
//! Their weights enter the graph through [`Ctx::param`], detached in a frozen pass and cast to the dtype
//! of the activations they meet (half precision keeps f32 master weights).
use candle_core::{DType, Result, Tensor};
use candle_nn::{Embedding, Init, Linear, VarBuilder};

use super::kernels::dropout::{self as dropout_kernel, DropoutMask};
use super::kernels::{activation, feed_forward, layer_norm, linear as linear_kernel, softmax as softmax_kernel};
use super::Ctx;

/// A LayerNorm over the last dimension.
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

    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let dtype = x.dtype();
        layer_norm::layer_norm(x, &ctx.param(&self.weight, dtype)?, &ctx.param(&self.bias, dtype)?, self.eps)
    }

    /// `forward(dropout(x) + residual)` as one operation (the output blocks of a layer).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor, dropout: &Dropout, ctx: &mut Ctx) -> Result<Tensor> {
        let mask = dropout.mask(x.elem_count(), ctx);
        let (weight, bias) = (ctx.param(&self.weight, x.dtype())?, ctx.param(&self.bias, x.dtype())?);
        layer_norm::residual_layer_norm(x, residual, &weight, &bias, self.eps, mask.as_ref())
    }
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension: a LayerNorm without affine parameters.
/// Statistics are taken in f32 whatever the input dtype, as PyTorch does.
pub fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    layer_norm::normalize(x, eps)
}

/// Softmax over the last dimension with a backward pass.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    softmax_kernel::softmax(x)
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
            Self::Gelu => activation::gelu_erf(x),
            Self::GeluNew => x.gelu(),
            Self::Relu => x.relu(),
            Self::Tanh => x.tanh(),
        }
    }
}

/// Dropout whose mask comes from the run's seeded generator, so that a run is reproducible.
/// `p` is expected in [0, 1).
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    pub fn new(p: f64) -> Self {
        Self { p: p as f32 }
    }

    /// A fresh mask for `len` elements, or `None` when dropout is off (evaluation, p = 0).
    pub fn mask(&self, len: usize, ctx: &mut Ctx) -> Option<DropoutMask> {
        (ctx.train && self.p > 0.0).then(|| DropoutMask::draw(ctx.rng, len, self.p))
    }

    pub fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        match self.mask(x.elem_count(), ctx) {
            Some(mask) => dropout_kernel::dropout(x, &mask),
            None => Ok(x.clone()),
        }
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

/// Applies a linear layer over the last dimension (any rank) as one 2-D product, with the layer's
/// weights as the context gives them.
pub fn apply_linear(layer: &Linear, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    let bias = layer.bias().map(|b| ctx.param(b, x.dtype())).transpose()?;
    linear_kernel::linear(x, &ctx.param(layer.weight(), x.dtype())?, bias.as_ref())
}

/// Linear layers over the same input stacked into one: their weights (`[Σ out, in]`) and biases
/// (`[Σ out]`) in the order given, as the context gives them (a layer's query, key and value
/// projections, applied as one GEMM). Every layer has a bias.
pub fn stack_linears(layers: &[&Linear], dtype: DType, ctx: &Ctx) -> Result<(Tensor, Tensor)> {
    let weights = layers.iter().map(|layer| ctx.param(layer.weight(), dtype)).collect::<Result<Vec<_>>>()?;
    let biases = layers
        .iter()
        .map(|layer| match layer.bias() {
            Some(bias) => ctx.param(bias, dtype),
            None => candle_core::bail!("stacked linear layers: one has no bias"),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((Tensor::cat(&weights, 0)?, Tensor::cat(&biases, 0)?))
}

/// `activation(layer(x))`, the exact GELU fused into the layer (the feed-forward blocks).
fn apply_linear_activation(layer: &Linear, activation: Activation, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    match activation {
        Activation::Gelu => {
            let bias = layer.bias().map(|b| ctx.param(b, x.dtype())).transpose()?;
            linear_kernel::linear_gelu(x, &ctx.param(layer.weight(), x.dtype())?, bias.as_ref())
        }
        other => other.forward(&apply_linear(layer, x, ctx)?),
    }
}

/// A feed-forward block, `second(activation(first(x)))`. With the exact GELU and both biases (BERT's
/// and DeBERTa's blocks) it is one node, and the GELU output, the widest tensor of a layer, is no
/// graph node whose gradient Candle would accumulate.
pub fn apply_feed_forward(
    first: &Linear,
    activation: Activation,
    second: &Linear,
    x: &Tensor,
    ctx: &Ctx,
) -> Result<Tensor> {
    match (activation, first.bias(), second.bias()) {
        (Activation::Gelu, Some(b1), Some(b2)) => {
            let param = |t: &Tensor| ctx.param(t, x.dtype());
            feed_forward::feed_forward(x, &param(first.weight())?, &param(b1)?, &param(second.weight())?, &param(b2)?)
        }
        _ => apply_linear(second, &apply_linear_activation(first, activation, x, ctx)?, ctx),
    }
}

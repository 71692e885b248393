//! BERT (absolute positions, token types), as transformers' `BertModel`.
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::config::BertConfig;
use super::kernels::attention::{attention, projected_attention};
use super::nn::{apply_feed_forward, apply_linear, embedding, linear, stack_linears, Activation, Dropout, LayerNorm};
use super::{Ctx, Encoder, Inputs};

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    layer_norm: LayerNorm,
    dropout: Dropout,
}

impl Embeddings {
    fn load(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            words: embedding(cfg.common.vocab_size, cfg.common.hidden_size, vb.pp("word_embeddings"))?,
            positions: embedding(
                cfg.common.max_position_embeddings,
                cfg.common.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_types: embedding(cfg.type_vocab_size, cfg.common.hidden_size, vb.pp("token_type_embeddings"))?,
            layer_norm: LayerNorm::load(cfg.common.hidden_size, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: Dropout::new(cfg.common.hidden_dropout_prob),
        })
    }
}

struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    probs_dropout: Dropout,
    output_dropout: Dropout,
    heads: usize,
}

impl SelfAttention {
    fn load(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.common.hidden_size;
        let sv = vb.pp("self");
        let out = vb.pp("output");
        Ok(Self {
            query: linear(h, h, sv.pp("query"))?,
            key: linear(h, h, sv.pp("key"))?,
            value: linear(h, h, sv.pp("value"))?,
            output: linear(h, h, out.pp("dense"))?,
            layer_norm: LayerNorm::load(h, cfg.layer_norm_eps, out.pp("LayerNorm"))?,
            probs_dropout: Dropout::new(cfg.common.attention_probs_dropout_prob),
            output_dropout: Dropout::new(cfg.common.hidden_dropout_prob),
            heads: cfg.common.num_attention_heads,
        })
    }

    /// Self-attention, its output projection, dropout, the residual and the LayerNorm, for the
    /// positions in `queries` attending over all positions `x` (`queries` is `x`, or a prefix of it).
    fn forward(&self, queries: &Tensor, x: &Tensor, key_bias: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let q_len = queries.dim(1)?;
        let probs_mask = self.probs_dropout.mask(b * self.heads * q_len * t, ctx);
        let context = if q_len == t {
            // Every position: the three projections as one product, inside the attention's node.
            let (weight, bias) = stack_linears(&[&self.query, &self.key, &self.value], x.dtype(), ctx)?;
            projected_attention(x, &weight, &bias, key_bias, self.heads, probs_mask.as_ref())?
        } else {
            let q = apply_linear(&self.query, queries, ctx)?;
            let k = apply_linear(&self.key, x, ctx)?;
            let v = apply_linear(&self.value, x, ctx)?;
            attention(&q, &k, &v, key_bias, self.heads, probs_mask.as_ref())?
        };
        let projected = apply_linear(&self.output, &context, ctx)?;
        self.layer_norm.forward_residual(&projected, queries, &self.output_dropout, ctx)
    }
}

struct Layer {
    attention: SelfAttention,
    intermediate: Linear,
    activation: Activation,
    output: Linear,
    layer_norm: LayerNorm,
    dropout: Dropout,
}

impl Layer {
    fn load(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.common.hidden_size, cfg.common.intermediate_size);
        Ok(Self {
            attention: SelfAttention::load(cfg, vb.pp("attention"))?,
            intermediate: linear(h, i, vb.pp("intermediate").pp("dense"))?,
            activation: cfg.common.hidden_act,
            output: linear(i, h, vb.pp("output").pp("dense"))?,
            layer_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            dropout: Dropout::new(cfg.common.hidden_dropout_prob),
        })
    }

    /// The layer's output at the positions in `queries` (`x` itself, or a prefix of it).
    fn forward(&self, queries: &Tensor, x: &Tensor, key_bias: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let attended = self.attention.forward(queries, x, key_bias, ctx)?;
        let out = apply_feed_forward(&self.intermediate, self.activation, &self.output, &attended, ctx)?;
        self.layer_norm.forward_residual(&out, &attended, &self.dropout, ctx)
    }
}

/// A BERT encoder: embeddings and the transformer layers (the pooler belongs to the head).
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    hidden_size: usize,
}

impl Bert {
    pub fn load(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        if let Some(kind) = cfg.position_embedding_type.as_deref().filter(|k| *k != "absolute") {
            candle_core::bail!("position_embedding_type `{kind}` is not supported (only `absolute`)");
        }
        let layers = (0..cfg.common.num_hidden_layers)
            .map(|i| Layer::load(cfg, vb.pp("encoder").pp("layer").pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self {
            embeddings: Embeddings::load(cfg, vb.pp("embeddings"))?,
            layers,
            hidden_size: cfg.common.hidden_size,
        })
    }
}

/// The additive key mask `[B, 1, 1, T]`: 0 for tokens, the dtype's minimum for padding.
pub(crate) fn additive_key_mask(attention_mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let keep = attention_mask.to_dtype(dtype)?;
    let min = match dtype {
        DType::F16 => -65504.0,
        DType::BF16 => -3.38e38,
        _ => f32::MIN as f64,
    };
    ((keep - 1.0)? * -min)?.reshape((b, 1, 1, t))
}

impl Encoder for Bert {
    fn word_embeddings(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.embeddings.words.forward(input_ids)
    }

    fn layer_norm_input(&self, words: &Tensor, inputs: &Inputs) -> Result<Tensor> {
        let t = words.dim(1)?;
        let positions = Tensor::arange(0u32, t as u32, words.device())?;
        let positions = self.embeddings.positions.forward(&positions)?;
        let types = self.embeddings.token_types.forward(&inputs.token_type_ids)?;
        words.broadcast_add(&positions)? + types
    }

    fn embedding_output(&self, ln_input: &Tensor, _inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let normed = self.embeddings.layer_norm.forward(ln_input, ctx)?;
        self.embeddings.dropout.forward(&normed, ctx)
    }

    fn encode(&self, embedded: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let key_bias = additive_key_mask(&inputs.attention_mask, embedded.dtype())?;
        self.layers.iter().try_fold(embedded.clone(), |x, layer| layer.forward(&x, &x, &key_bias, ctx))
    }

    /// The last layer computes the first token's output alone: its attention reads every position,
    /// but its output projection and feed-forward block (three quarters of a layer's work) run on one
    /// row per example.
    fn encode_first_token(&self, embedded: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let key_bias = additive_key_mask(&inputs.attention_mask, embedded.dtype())?;
        let Some((last, earlier)) = self.layers.split_last() else { return embedded.narrow(1, 0, 1) };
        let hidden = earlier.iter().try_fold(embedded.clone(), |x, layer| layer.forward(&x, &x, &key_bias, ctx))?;
        last.forward(&hidden.narrow(1, 0, 1)?.contiguous()?, &hidden, &key_bias, ctx)
    }

    fn hidden_size(&self) -> usize {
        self.hidden_size
    }
}

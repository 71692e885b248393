//! DeBERTa v1 (`model_type = "deberta"`), and the pieces DeBERTa v2/v3 share with it.
//!
//! Follows transformers' `modeling_deberta.py`: disentangled attention whose scores add
//! content→content, content→position (c2p) and position→content (p2c) terms, with relative
//! distances addressing a table of relative embeddings.
//!
//! Attention tensors are head-major, `[heads, batch * seq, head_dim]`. The position keys and queries
//! are per head and shared by the whole batch, so in this layout the c2p and p2c products are one
//! matmul per head with the batch folded into the rows, where transformers repeats the position
//! projections once per batch element. The relative-position gathers become one `index_select` over
//! the flattened `[seq, 2 * span]` score rows, with a `[seq * seq]` index built once per length.
use std::sync::{Arc, Mutex};

use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::config::DebertaConfig;
use super::kernels::linear::linear;
use super::nn::{self, apply_feed_forward, apply_linear, softmax, Activation, Dropout, LayerNorm};
use super::{Ctx, Encoder, Inputs};

/// The embedding module of both versions: word, position and token-type tables, `embed_proj`, then a
/// LayerNorm whose output is zeroed at padding positions.
pub(crate) struct Embeddings {
    words: Embedding,
    positions: Option<Embedding>,
    token_types: Option<Embedding>,
    projection: Option<Linear>,
    layer_norm: LayerNorm,
    dropout: Dropout,
    max_positions: usize,
}

impl Embeddings {
    pub(crate) fn load(config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        let width = config.embedding_size();
        let positions = if config.position_biased_input {
            Some(nn::embedding(config.common.max_position_embeddings, width, vb.pp("position_embeddings"))?)
        } else {
            None
        };
        let token_types = if config.type_vocab_size > 0 {
            Some(nn::embedding(config.type_vocab_size, width, vb.pp("token_type_embeddings"))?)
        } else {
            None
        };
        let projection = if width != config.common.hidden_size {
            let weight = vb.pp("embed_proj").get((config.common.hidden_size, width), "weight")?;
            Some(Linear::new(weight, None))
        } else {
            None
        };
        Ok(Self {
            words: nn::embedding(config.common.vocab_size, width, vb.pp("word_embeddings"))?,
            positions,
            token_types,
            projection,
            layer_norm: LayerNorm::load(config.common.hidden_size, config.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: Dropout::new(config.common.hidden_dropout_prob),
            max_positions: config.common.max_position_embeddings,
        })
    }

    pub(crate) fn words(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.words.forward(input_ids)
    }

    pub(crate) fn layer_norm_input(&self, words: &Tensor, inputs: &Inputs) -> Result<Tensor> {
        let mut sum = words.clone();
        if let Some(positions) = &self.positions {
            let seq_len = words.dim(1)?;
            if seq_len > self.max_positions {
                bail!("sequence length {seq_len} exceeds max_position_embeddings {}", self.max_positions);
            }
            let ids = Tensor::arange(0u32, seq_len as u32, words.device())?;
            sum = sum.broadcast_add(&positions.forward(&ids)?)?;
        }
        if let Some(token_types) = &self.token_types {
            sum = (sum + token_types.forward(&inputs.token_type_ids)?)?;
        }
        match &self.projection {
            Some(projection) => linear(&sum, projection.weight(), None),
            None => Ok(sum),
        }
    }

    pub(crate) fn output(&self, ln_input: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let normed = self.layer_norm.forward(ln_input, ctx)?;
        let is_token = inputs.attention_mask.to_dtype(normed.dtype())?.unsqueeze(2)?;
        self.dropout.forward(&normed.broadcast_mul(&is_token)?, ctx)
    }
}

/// `dense → dropout → LayerNorm(· + residual)`: the attention output and the layer output blocks.
pub(crate) struct ResidualOutput {
    dense: Linear,
    layer_norm: LayerNorm,
    dropout: Dropout,
}

impl ResidualOutput {
    pub(crate) fn load(in_dim: usize, config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            dense: nn::linear(in_dim, config.common.hidden_size, vb.pp("dense"))?,
            layer_norm: LayerNorm::load(config.common.hidden_size, config.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: Dropout::new(config.common.hidden_dropout_prob),
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, residual: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let projected = apply_linear(&self.dense, x, ctx)?;
        self.layer_norm.forward_residual(&projected, residual, &self.dropout, ctx)
    }

    /// The feed-forward block ending in this output's projection, `dense(activation(first(x)))`, with
    /// `x` as the residual.
    pub(crate) fn forward_feed_forward(
        &self,
        first: &Linear,
        activation: Activation,
        x: &Tensor,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let projected = apply_feed_forward(first, activation, &self.dense, x, ctx)?;
        self.layer_norm.forward_residual(&projected, x, &self.dropout, ctx)
    }
}

/// The self-attention of one layer, `[B, T, H] → [B, T, H]` (before the output block).
pub(crate) trait SelfAttention: Send + Sync {
    fn forward(&self, hidden: &Tensor, batch: &AttentionBatch, ctx: &mut Ctx) -> Result<Tensor>;
}

/// One transformer layer; the versions differ only in their self-attention.
pub(crate) struct Layer<A> {
    attention: A,
    attention_output: ResidualOutput,
    intermediate: Linear,
    activation: Activation,
    output: ResidualOutput,
}

impl<A: SelfAttention> Layer<A> {
    /// `vb` is rooted at `encoder.layer.<i>`.
    pub(crate) fn load(attention: A, config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        let (hidden, inner) = (config.common.hidden_size, config.common.intermediate_size);
        Ok(Self {
            attention,
            attention_output: ResidualOutput::load(hidden, config, vb.pp("attention.output"))?,
            intermediate: nn::linear(hidden, inner, vb.pp("intermediate.dense"))?,
            activation: config.common.hidden_act,
            output: ResidualOutput::load(inner, config, vb.pp("output"))?,
        })
    }

    pub(crate) fn forward(&self, hidden: &Tensor, batch: &AttentionBatch, ctx: &mut Ctx) -> Result<Tensor> {
        let context = self.attention.forward(hidden, batch, ctx)?;
        let attended = self.attention_output.forward(&context, hidden, ctx)?;
        self.output.forward_feed_forward(&self.intermediate, self.activation, &attended, ctx)
    }
}

/// Runs a layer stack on an embedding output.
pub(crate) fn run_layers<A: SelfAttention>(
    layers: &[Layer<A>],
    embedded: &Tensor,
    batch: &AttentionBatch,
    ctx: &mut Ctx,
) -> Result<Tensor> {
    let mut hidden = embedded.clone();
    for layer in layers {
        hidden = layer.forward(&hidden, batch, ctx)?;
    }
    Ok(hidden)
}

/// What every layer's attention needs about the current batch, built once per forward pass.
pub(crate) struct AttentionBatch {
    batch: usize,
    seq_len: usize,
    /// `u8 [1, B, T, T]`: 1 where both the query and the key are real tokens.
    allowed: Tensor,
    /// The scalar masked scores are set to: the lowest finite value of the dtype, as transformers.
    masked_score: Tensor,
    relative: Option<RelativeBatch>,
}

impl AttentionBatch {
    pub(crate) fn new(attention_mask: &Tensor, dtype: DType, relative: Option<RelativeBatch>) -> Result<Self> {
        let (batch, seq_len) = attention_mask.dims2()?;
        let allowed =
            attention_mask.unsqueeze(2)?.broadcast_mul(&attention_mask.unsqueeze(1)?)?.ne(0u32)?.unsqueeze(0)?;
        Ok(Self {
            batch,
            seq_len,
            allowed,
            masked_score: Tensor::new(lowest_value(dtype)?, attention_mask.device())?.to_dtype(dtype)?,
            relative,
        })
    }
}

/// The lowest finite value of a float dtype (`torch.finfo(dtype).min`).
/// The lowest finite value of a float dtype (`torch.finfo(dtype).min`).
fn lowest_value(dtype: DType) -> Result<f64> {
    Ok(match dtype {
        DType::F16 => -65504.0,
        DType::BF16 => -3.389_531_389_251_535_5e38,
        DType::F32 => f32::MIN as f64,
        DType::F64 => f64::MIN,
        other => bail!("attention scores in {other:?} are not supported"),
    })
}

/// The relative-position inputs of one forward pass.
pub(crate) struct RelativeBatch {
    /// The rows of the relative-embedding table the attention reads, `[2 * span, H]`.
    table: Tensor,
    index: Arc<RelativeIndex>,
}

impl RelativeBatch {
    pub(crate) fn new(table: Tensor, index: Arc<RelativeIndex>) -> Self {
        Self { table, index }
    }
}

/// Flat indices into position scores laid out `[.., T * 2 * span]` (one row of `2 * span` scores per
/// token) that pick, for each query `q` and key `k` at `q * T + k`, the c2p and p2c terms.
#[derive(Debug)]
pub(crate) struct RelativeIndex {
    c2p: Tensor,
    p2c: Tensor,
}

impl RelativeIndex {
    /// `relative(d)` maps the distance `d = i - j` between two positions to a signed offset into the
    /// table (the identity in v1, log buckets in v2); offsets are clamped to `[-span, span)`.
    pub(crate) fn new(seq_len: usize, span: usize, relative: impl Fn(i64) -> i64, device: &Device) -> Result<Self> {
        let (c2p, p2c) = relative_index_values(seq_len, span, relative);
        let len = seq_len * seq_len;
        Ok(Self { c2p: Tensor::from_vec(c2p, len, device)?, p2c: Tensor::from_vec(p2c, len, device)? })
    }
}

/// The values of [`RelativeIndex`]: c2p reads the query's row at `relative(q - k) + span`; p2c reads
/// the key's row at `-relative(k - q) + span` (transformers' p2c gather followed by its transpose).
fn relative_index_values(seq_len: usize, span: usize, relative: impl Fn(i64) -> i64) -> (Vec<u32>, Vec<u32>) {
    let row_len = 2 * span as i64;
    let slot = |offset: i64| (offset + span as i64).clamp(0, row_len - 1);
    let mut c2p = Vec::with_capacity(seq_len * seq_len);
    let mut p2c = Vec::with_capacity(seq_len * seq_len);
    for q in 0..seq_len as i64 {
        for k in 0..seq_len as i64 {
            c2p.push((q * row_len + slot(relative(q - k))) as u32);
            p2c.push((k * row_len + slot(-relative(k - q))) as u32);
        }
    }
    (c2p, p2c)
}

/// Keeps the relative index of the last sequence length seen: batches are usually padded to one
/// length, so each forward pass reuses it instead of rebuilding and uploading it.
#[derive(Default)]
pub(crate) struct RelativeIndexCache(Mutex<Option<(usize, Arc<RelativeIndex>)>>);

impl RelativeIndexCache {
    pub(crate) fn get(
        &self,
        seq_len: usize,
        build: impl FnOnce() -> Result<RelativeIndex>,
    ) -> Result<Arc<RelativeIndex>> {
        let mut cached = self.0.lock().map_err(|_| candle_core::Error::Msg("relative index cache poisoned".into()))?;
        if let Some((len, index)) = cached.as_ref() {
            if *len == seq_len {
                return Ok(index.clone());
            }
        }
        let index = Arc::new(build()?);
        *cached = Some((seq_len, index.clone()));
        Ok(index)
    }
}

/// Query, key and value of every head, `[heads, B * T, head_dim]`.
pub(crate) struct Heads {
    pub(crate) query: Tensor,
    pub(crate) key: Tensor,
    pub(crate) value: Tensor,
}

/// Position keys (for c2p) and position queries (for p2c) of every head, `[heads, 2 * span, head_dim]`.
#[derive(Default)]
pub(crate) struct PositionHeads {
    pub(crate) key: Option<Tensor>,
    pub(crate) query: Option<Tensor>,
}

/// The part of disentangled attention both versions share: scores, masking, softmax, dropout and
/// the weighted sum of values. Each version projects its own heads.
pub(crate) struct Disentangled {
    heads: usize,
    head_dim: usize,
    /// `sqrt(head_dim * scale_factor)`; every score term is divided by it.
    scale: f64,
    probs_dropout: Dropout,
    position_dropout: Dropout,
}

impl Disentangled {
    /// `scale_factor` is 1 plus the number of relative terms (the versions count them differently).
    pub(crate) fn new(config: &DebertaConfig, scale_factor: usize) -> Self {
        let head_dim = config.common.hidden_size / config.common.num_attention_heads;
        Self {
            heads: config.common.num_attention_heads,
            head_dim,
            scale: ((head_dim * scale_factor) as f64).sqrt(),
            probs_dropout: Dropout::new(config.common.attention_probs_dropout_prob),
            position_dropout: Dropout::new(config.common.hidden_dropout_prob),
        }
    }

    /// The relative-embedding rows with this layer's position dropout applied, if relative
    /// attention is on.
    pub(crate) fn position_table(&self, batch: &AttentionBatch, ctx: &mut Ctx) -> Result<Option<Tensor>> {
        batch.relative.as_ref().map(|relative| self.position_dropout.forward(&relative.table, ctx)).transpose()
    }

    /// Views a contiguous `[N, heads * k]` or `[B, T, heads * k]` projection output as
    /// `[N (or B * T), heads, k]`.
    pub(crate) fn per_head(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?;
        x.reshape((rows, self.heads, ()))
    }

    /// `[N, heads, head_dim]` → contiguous `[heads, N, head_dim]`, adding a `[heads * head_dim]` bias
    /// on the way when there is one.
    pub(crate) fn head_major(&self, per_head: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let transposed = per_head.transpose(0, 1)?;
        match bias {
            Some(bias) => transposed.broadcast_add(&bias.reshape((self.heads, 1, self.head_dim))?),
            None => transposed.contiguous(),
        }
    }

    /// Splits a projection output into contiguous head-major heads.
    pub(crate) fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        self.head_major(&self.per_head(x)?, None)
    }

    /// Attention of head-major heads, returning the merged context `[B, T, heads * head_dim]`.
    pub(crate) fn attend(
        &self,
        heads: &Heads,
        positions: &PositionHeads,
        batch: &AttentionBatch,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let (b, t) = (batch.batch, batch.seq_len);
        let (h, d) = (self.heads, self.head_dim);
        let query = (&heads.query / self.scale)?;
        let key_t = heads.key.reshape((h * b, t, d))?.t()?;
        let mut scores = query.reshape((h * b, t, d))?.matmul(&key_t)?.reshape((h, b, t, t))?;
        if let Some(relative) = &batch.relative {
            if let Some(position_key) = &positions.key {
                let c2p = query.matmul(&position_key.t()?)?;
                scores = (scores + select_relative(&c2p, &relative.index.c2p, (h, b, t))?)?;
            }
            if let Some(position_query) = &positions.query {
                let p2c = heads.key.matmul(&(position_query / self.scale)?.t()?)?;
                scores = (scores + select_relative(&p2c, &relative.index.p2c, (h, b, t))?)?;
            }
        }
        // As transformers 4.57 (not the older XSoftmax): masked scores get the lowest finite value and the
        // softmax is taken as is, so a padding query attends uniformly to all keys.
        let shape = scores.shape();
        let scores =
            batch.allowed.broadcast_as(shape)?.where_cond(&scores, &batch.masked_score.broadcast_as(shape)?)?;
        let probs = self.probs_dropout.forward(&softmax(&scores)?, ctx)?;
        let context = probs.reshape((h * b, t, t))?.matmul(&heads.value.reshape((h * b, t, d))?)?;
        context.reshape((h, b, t, d))?.permute((1, 2, 0, 3))?.reshape((b, t, h * d))
    }
}

/// Picks the relative terms out of position scores `[heads, B * T, 2 * span]` with a flat index of
/// [`RelativeIndex`]; returns `[heads, B, T, T]`.
fn select_relative(scores: &Tensor, index: &Tensor, (h, b, t): (usize, usize, usize)) -> Result<Tensor> {
    scores.reshape((h * b, ()))?.index_select(index, 1)?.reshape((h, b, t, t))
}

/// DeBERTa v1 self-attention: one fused `in_proj` (no bias) whose output interleaves query, key and
/// value per head, separate query and value biases, `pos_proj`/`pos_q_proj` for the position heads.
pub struct SelfAttentionV1 {
    in_proj: Linear,
    query_bias: Tensor,
    value_bias: Tensor,
    position_key: Option<Linear>,
    position_query: Option<Linear>,
    core: Disentangled,
}

impl SelfAttentionV1 {
    /// `vb` is rooted at `encoder.layer.<i>.attention.self`.
    fn load(config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        let hidden = config.common.hidden_size;
        let relative = |kind: &str| config.relative_attention && config.has_att_type(kind);
        let position_key = if relative("c2p") {
            Some(Linear::new(vb.pp("pos_proj").get((hidden, hidden), "weight")?, None))
        } else {
            None
        };
        let position_query =
            if relative("p2c") { Some(nn::linear(hidden, hidden, vb.pp("pos_q_proj"))?) } else { None };
        Ok(Self {
            in_proj: Linear::new(vb.pp("in_proj").get((3 * hidden, hidden), "weight")?, None),
            query_bias: vb.get(hidden, "q_bias")?,
            value_bias: vb.get(hidden, "v_bias")?,
            position_key,
            position_query,
            // v1 counts every listed type, `p2p` included.
            core: Disentangled::new(config, 1 + config.pos_att_type.len()),
        })
    }
}

impl SelfAttention for SelfAttentionV1 {
    fn forward(&self, hidden: &Tensor, batch: &AttentionBatch, ctx: &mut Ctx) -> Result<Tensor> {
        let core = &self.core;
        let table = core.position_table(batch, ctx)?;
        let fused = core.per_head(&apply_linear(&self.in_proj, hidden, ctx)?)?;
        let d = core.head_dim;
        let heads = Heads {
            query: core.head_major(&fused.narrow(2, 0, d)?, Some(&ctx.param(&self.query_bias, fused.dtype())?))?,
            key: core.head_major(&fused.narrow(2, d, d)?, None)?,
            value: core.head_major(&fused.narrow(2, 2 * d, d)?, Some(&ctx.param(&self.value_bias, fused.dtype())?))?,
        };
        let mut positions = PositionHeads::default();
        if let Some(table) = table {
            let project = |layer: &Linear| core.split_heads(&apply_linear(layer, &table, ctx)?);
            positions.key = self.position_key.as_ref().map(project).transpose()?;
            positions.query = self.position_query.as_ref().map(project).transpose()?;
        }
        core.attend(&heads, &positions, batch, ctx)
    }
}

/// DeBERTa v1's relative embeddings: a `[2 * max_relative_positions, H]` table centred on distance 0.
pub struct RelativeTableV1 {
    table: Tensor,
    max_relative: usize,
    cache: RelativeIndexCache,
}

impl RelativeTableV1 {
    fn batch(&self, seq_len: usize, dtype: DType, ctx: &Ctx) -> Result<RelativeBatch> {
        let span = seq_len.min(self.max_relative);
        let index = self.cache.get(seq_len, || RelativeIndex::new(seq_len, span, |d| d, self.table.device()))?;
        let rows = ctx.param(&self.table, dtype)?.narrow(0, self.max_relative - span, 2 * span)?;
        Ok(RelativeBatch::new(rows, index))
    }
}

/// `max_relative_positions` with transformers' fallback: below 1 means `max_position_embeddings`.
pub(crate) fn max_relative_positions(config: &DebertaConfig) -> usize {
    if config.max_relative_positions < 1 {
        config.common.max_position_embeddings
    } else {
        config.max_relative_positions as usize
    }
}

/// A table of relative-position embeddings: the rows and indices one batch of length `seq_len` uses.
pub(crate) trait RelativeTable: Send + Sync {
    /// `dtype` is the compute dtype of the layers that read the rows.
    fn batch(&self, seq_len: usize, dtype: DType, ctx: &Ctx) -> Result<RelativeBatch>;
}

impl RelativeTable for RelativeTableV1 {
    fn batch(&self, seq_len: usize, dtype: DType, ctx: &Ctx) -> Result<RelativeBatch> {
        RelativeTableV1::batch(self, seq_len, dtype, ctx)
    }
}

/// A DeBERTa encoder (the model without its pooler); v1 and v2/v3 differ in their self-attention `A`
/// and their relative-position table `R`.
pub struct DisentangledEncoder<A, R> {
    pub(crate) embeddings: Embeddings,
    pub(crate) layers: Vec<Layer<A>>,
    pub(crate) relative: Option<R>,
    pub(crate) hidden_size: usize,
}

/// The DeBERTa v1 encoder (`DebertaModel` without its pooler).
pub type Deberta = DisentangledEncoder<SelfAttentionV1, RelativeTableV1>;

impl Deberta {
    /// `vb` is rooted at the backbone (names without the `deberta.` prefix).
    pub fn load(config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        let layers_vb = vb.pp("encoder.layer");
        let layers = (0..config.common.num_hidden_layers)
            .map(|i| {
                let vb = layers_vb.pp(i);
                let attention = SelfAttentionV1::load(config, vb.pp("attention.self"))?;
                Layer::load(attention, config, vb)
            })
            .collect::<Result<_>>()?;
        let relative = if config.relative_attention {
            let max_relative = max_relative_positions(config);
            let table = vb.get((2 * max_relative, config.common.hidden_size), "encoder.rel_embeddings.weight")?;
            Some(RelativeTableV1 { table, max_relative, cache: RelativeIndexCache::default() })
        } else {
            None
        };
        Ok(Self {
            embeddings: Embeddings::load(config, vb.pp("embeddings"))?,
            layers,
            relative,
            hidden_size: config.common.hidden_size,
        })
    }
}

impl<A: SelfAttention + Send + Sync, R: RelativeTable> Encoder for DisentangledEncoder<A, R> {
    fn word_embeddings(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.embeddings.words(input_ids)
    }

    fn layer_norm_input(&self, words: &Tensor, inputs: &Inputs) -> Result<Tensor> {
        self.embeddings.layer_norm_input(words, inputs)
    }

    fn embedding_output(&self, ln_input: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        self.embeddings.output(ln_input, inputs, ctx)
    }

    fn encode(&self, embedded: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let seq_len = embedded.dim(1)?;
        let relative = self.relative.as_ref().map(|r| r.batch(seq_len, embedded.dtype(), ctx)).transpose()?;
        let batch = AttentionBatch::new(&inputs.attention_mask, embedded.dtype(), relative)?;
        run_layers(&self.layers, embedded, &batch, ctx)
    }

    fn hidden_size(&self) -> usize {
        self.hidden_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a `[T, T]` grid of (table row, slot) pairs out of flat indices with rows of `row_len`.
    fn slots(flat: &[u32], row_len: u32) -> Vec<(u32, u32)> {
        flat.iter().map(|&i| (i / row_len, i % row_len)).collect()
    }

    #[test]
    fn c2p_reads_the_query_row_at_its_distance_to_the_key() {
        // T = 3, span 3 (v1: min(T, max_relative)): relative positions q - k are
        // [[0,-1,-2],[1,0,-1],[2,1,0]], c2p slots q - k + 3.
        let (c2p, _) = relative_index_values(3, 3, |d| d);
        let expected = [(0, 3), (0, 2), (0, 1), (1, 4), (1, 3), (1, 2), (2, 5), (2, 4), (2, 3)];
        assert_eq!(slots(&c2p, 6), expected);
    }

    #[test]
    fn p2c_reads_the_key_row_at_the_negated_distance() {
        // Entry (q, k) reads key row k at slot -(k - q) + span = q - k + span.
        let (_, p2c) = relative_index_values(3, 3, |d| d);
        let expected = [(0, 3), (1, 2), (2, 1), (0, 4), (1, 3), (2, 2), (0, 5), (1, 4), (2, 3)];
        assert_eq!(slots(&p2c, 6), expected);
    }

    #[test]
    fn slots_are_clamped_to_the_table() {
        // Span 1 for T = 3: distances ±2 fall outside [-1, 1) and clamp to slots 0 and 1.
        let (c2p, p2c) = relative_index_values(3, 1, |d| d);
        let c2p_slots: Vec<u32> = slots(&c2p, 2).into_iter().map(|(_, s)| s).collect();
        assert_eq!(c2p_slots, [1, 0, 0, 1, 1, 0, 1, 1, 1]);
        let p2c_slots: Vec<u32> = slots(&p2c, 2).into_iter().map(|(_, s)| s).collect();
        assert_eq!(p2c_slots, [1, 0, 0, 1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn masked_pairs_need_both_tokens_real() -> Result<()> {
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu)?;
        let batch = AttentionBatch::new(&mask, DType::F32, None)?;
        let allowed = batch.allowed.squeeze(0)?.squeeze(0)?.to_vec2::<u8>()?;
        assert_eq!(allowed, [[1, 1, 0], [1, 1, 0], [0, 0, 0]]);
        Ok(())
    }
}

//! DeBERTa v2 and v3 (`model_type = "deberta-v2"`), after transformers' `modeling_deberta_v2.py`.
//!
//! Differs from v1 (see [`super::deberta`], which holds the shared pieces) in its attention: separate
//! query/key/value projections with biases, relative distances grouped into log buckets, position
//! heads projected either by the content projections (`share_att_key`) or by their own, and an
//! optional LayerNorm over the relative-embedding table (`norm_rel_ebd = "layer_norm"`).
use candle_core::{bail, DType, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::DebertaConfig;
use super::deberta::{
    max_relative_positions, AttentionBatch, Disentangled, DisentangledEncoder, Embeddings, Heads, Layer, PositionHeads,
    RelativeBatch, RelativeIndex, RelativeIndexCache, RelativeTable, SelfAttention,
};
use super::nn::{self, apply_linear, LayerNorm};
use super::Ctx;

/// transformers' `make_log_bucket_position` for one distance: distances within `bucket_size / 2` keep
/// their value, longer ones share logarithmically wider buckets up to `max_position`. Computed in f32
/// in the same order as PyTorch, so that rounding at bucket edges agrees.
fn log_bucket(distance: i64, bucket_size: i64, max_position: i64) -> i64 {
    let mid = bucket_size / 2;
    if distance.abs() <= mid {
        return distance;
    }
    let ratio = distance.abs() as f32 / mid as f32;
    let growth = (((max_position - 1) as f64 / mid as f64) as f32).ln();
    let bucket = (ratio.ln() / growth * (mid - 1) as f32).ceil() + mid as f32;
    distance.signum() * bucket as i64
}

/// The relative-embedding table and how distances address it.
pub struct RelativeTableV2 {
    table: Tensor,
    layer_norm: Option<LayerNorm>,
    /// Half the table length: offsets run over `[-span, span)`.
    span: usize,
    /// `(position_buckets, max_relative_positions)` when distances are bucketed.
    buckets: Option<(i64, i64)>,
    cache: RelativeIndexCache,
}

impl RelativeTableV2 {
    fn load(config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        let max_relative = max_relative_positions(config);
        let (span, buckets) = if config.position_buckets > 0 {
            let buckets = config.position_buckets;
            (buckets as usize, Some((buckets, max_relative as i64)))
        } else {
            (max_relative, None)
        };
        let table = vb.get((2 * span, config.common.hidden_size), "rel_embeddings.weight")?;
        let normalises = config
            .norm_rel_ebd
            .as_deref()
            .is_some_and(|kinds| kinds.split('|').any(|k| k.trim().eq_ignore_ascii_case("layer_norm")));
        let layer_norm = if normalises {
            Some(LayerNorm::load(config.common.hidden_size, config.layer_norm_eps, vb.pp("LayerNorm"))?)
        } else {
            None
        };
        Ok(Self { table, layer_norm, span, buckets, cache: RelativeIndexCache::default() })
    }

    fn relative(&self, distance: i64) -> i64 {
        match self.buckets {
            Some((size, max_position)) => log_bucket(distance, size, max_position),
            None => distance,
        }
    }

    fn batch(&self, seq_len: usize, dtype: DType, ctx: &Ctx) -> Result<RelativeBatch> {
        let index = self
            .cache
            .get(seq_len, || RelativeIndex::new(seq_len, self.span, |d| self.relative(d), self.table.device()))?;
        // Normalised on every pass: the table is trainable.
        let rows = match &self.layer_norm {
            Some(layer_norm) => layer_norm.forward(&ctx.param(&self.table, dtype)?, ctx)?,
            None => ctx.param(&self.table, dtype)?,
        };
        Ok(RelativeBatch::new(rows, index))
    }
}

/// DeBERTa v2/v3 self-attention.
pub struct SelfAttentionV2 {
    query: Linear,
    key: Linear,
    value: Linear,
    /// Projects relative embeddings into c2p position keys: `key_proj` itself with `share_att_key`.
    position_key: Option<Linear>,
    /// Projects relative embeddings into p2c position queries: `query_proj` with `share_att_key`.
    position_query: Option<Linear>,
    core: Disentangled,
}

impl SelfAttentionV2 {
    /// `vb` is rooted at `encoder.layer.<i>.attention.self`.
    fn load(config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        let hidden = config.common.hidden_size;
        let query = nn::linear(hidden, hidden, vb.pp("query_proj"))?;
        let key = nn::linear(hidden, hidden, vb.pp("key_proj"))?;
        let relative = |kind: &str| config.relative_attention && config.has_att_type(kind);
        let position_layer = |kind: &str, shared: &Linear, own: &str| -> Result<Option<Linear>> {
            match (relative(kind), config.share_att_key) {
                (false, _) => Ok(None),
                (true, true) => Ok(Some(shared.clone())),
                (true, false) => Ok(Some(nn::linear(hidden, hidden, vb.pp(own))?)),
            }
        };
        let scale_factor = 1 + usize::from(config.has_att_type("c2p")) + usize::from(config.has_att_type("p2c"));
        Ok(Self {
            position_key: position_layer("c2p", &key, "pos_key_proj")?,
            position_query: position_layer("p2c", &query, "pos_query_proj")?,
            value: nn::linear(hidden, hidden, vb.pp("value_proj"))?,
            query,
            key,
            core: Disentangled::new(config, scale_factor),
        })
    }
}

impl SelfAttention for SelfAttentionV2 {
    fn forward(&self, hidden: &Tensor, batch: &AttentionBatch, ctx: &mut Ctx) -> Result<Tensor> {
        let core = &self.core;
        let table = core.position_table(batch, ctx)?;
        let project = |layer: &Linear, x: &Tensor| core.split_heads(&apply_linear(layer, x, ctx)?);
        let heads = Heads {
            query: project(&self.query, hidden)?,
            key: project(&self.key, hidden)?,
            value: project(&self.value, hidden)?,
        };
        let mut positions = PositionHeads::default();
        if let Some(table) = table {
            let project = |layer: &Linear| project(layer, &table);
            positions.key = self.position_key.as_ref().map(project).transpose()?;
            positions.query = self.position_query.as_ref().map(project).transpose()?;
        }
        core.attend(&heads, &positions, batch, ctx)
    }
}

/// The DeBERTa v2/v3 encoder (`DebertaV2Model` without its pooler).
pub type DebertaV2 = DisentangledEncoder<SelfAttentionV2, RelativeTableV2>;

impl DebertaV2 {
    /// `vb` is rooted at the backbone (names without the `deberta.` prefix).
    pub fn load(config: &DebertaConfig, vb: VarBuilder) -> Result<Self> {
        if config.conv_kernel_size > 0 {
            bail!("conv_kernel_size > 0 is not supported (the convolution of deberta-v2-xlarge/xxlarge)");
        }
        let layers_vb = vb.pp("encoder.layer");
        let layers = (0..config.common.num_hidden_layers)
            .map(|i| {
                let vb = layers_vb.pp(i);
                let attention = SelfAttentionV2::load(config, vb.pp("attention.self"))?;
                Layer::load(attention, config, vb)
            })
            .collect::<Result<_>>()?;
        let relative =
            if config.relative_attention { Some(RelativeTableV2::load(config, vb.pp("encoder"))?) } else { None };
        Ok(Self {
            embeddings: Embeddings::load(config, vb.pp("embeddings"))?,
            layers,
            relative,
            hidden_size: config.common.hidden_size,
        })
    }
}

impl RelativeTable for RelativeTableV2 {
    fn batch(&self, seq_len: usize, dtype: DType, ctx: &Ctx) -> Result<RelativeBatch> {
        RelativeTableV2::batch(self, seq_len, dtype, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_distances_keep_their_value() {
        // bucket_size 8: mid = 4, so |d| <= 4 is exact.
        let buckets: Vec<i64> = (-4..=4).map(|d| log_bucket(d, 8, 512)).collect();
        assert_eq!(buckets, (-4..=4).collect::<Vec<_>>());
    }

    #[test]
    fn long_distances_share_log_buckets() {
        // mid = 4, growth = ln(511 / 4) = 4.850: ceil(ln(|d| / 4) / 4.850 * 3) + 4.
        // |d| = 5: ln 1.25 = 0.223 -> ceil(0.138) = 1 -> 5; |d| = 20: ln 5 = 1.609 -> ceil(0.995) -> 5;
        // |d| = 21: ln 5.25 = 1.658 -> ceil(1.026) -> 6; |d| = 100: ln 25 = 3.219 -> ceil(1.991) -> 6;
        // |d| = 101: ln 25.25 = 3.229 -> ceil(1.997) -> 6; |d| = 102 -> ceil(2.003) -> 7;
        // |d| = 511: exactly 3 -> 7; |d| = 600: ln 150 = 5.011 -> ceil(3.099) -> 8.
        let cases = [(5, 5), (20, 5), (21, 6), (100, 6), (101, 6), (102, 7), (511, 7), (600, 8)];
        for (distance, bucket) in cases {
            assert_eq!(log_bucket(distance, 8, 512), bucket, "distance {distance}");
            assert_eq!(log_bucket(-distance, 8, 512), -bucket, "distance -{distance}");
        }
    }
}

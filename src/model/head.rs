//! Sequence-classification heads as transformers defines them.
//!
//! BERT (`BertForSequenceClassification`): pooler (dense + tanh on the first token), dropout, linear.
//! DeBERTa (`DebertaForSequenceClassification`, `DebertaV2...`): context pooler (dropout, dense,
//! activation on the first token), dropout, linear. Loaded from the checkpoint when it has them,
//! otherwise initialised as transformers does (N(0, initializer_range²) weights, zero biases).
use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::{BertConfig, DebertaConfig};
use super::nn::{apply_linear, linear_init, Activation, Dropout};
use super::Ctx;

/// Parameter-name prefixes of the head, which a backbone-only checkpoint may lack.
pub const HEAD_PREFIXES: &[&str] = &["pooler.", "classifier."];

pub struct ClassificationHead {
    pooler_dropout: Dropout,
    pooler: Linear,
    activation: Activation,
    dropout: Dropout,
    classifier: Linear,
}

impl ClassificationHead {
    pub fn load_bert(cfg: &BertConfig, num_labels: usize, vb: VarBuilder) -> Result<Self> {
        let h = cfg.common.hidden_size;
        let std = cfg.common.initializer_range;
        Ok(Self {
            pooler_dropout: Dropout::new(0.0),
            pooler: linear_init(h, h, std, vb.pp("pooler").pp("dense"))?,
            activation: Activation::Tanh,
            dropout: Dropout::new(cfg.classifier_dropout.unwrap_or(cfg.common.hidden_dropout_prob)),
            classifier: linear_init(h, num_labels, std, vb.pp("classifier"))?,
        })
    }

    pub fn load_deberta(cfg: &DebertaConfig, num_labels: usize, vb: VarBuilder) -> Result<Self> {
        let pooled = cfg.pooler_hidden_size.unwrap_or(cfg.common.hidden_size);
        let std = cfg.common.initializer_range;
        Ok(Self {
            pooler_dropout: Dropout::new(cfg.pooler_dropout),
            pooler: linear_init(cfg.common.hidden_size, pooled, std, vb.pp("pooler").pp("dense"))?,
            activation: cfg.pooler_hidden_act.unwrap_or(Activation::Gelu),
            dropout: Dropout::new(cfg.cls_dropout.unwrap_or(cfg.common.hidden_dropout_prob)),
            classifier: linear_init(pooled, num_labels, std, vb.pp("classifier"))?,
        })
    }

    /// Logits `[B, C]` from the last hidden state `[B, T, H]`.
    pub fn forward(&self, hidden: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let first = self.pooler_dropout.forward(&first, ctx)?;
        // Through `Ctx::param`, like every encoder weight: a frozen pass forms no head gradients.
        let pooled = self.activation.forward(&apply_linear(&self.pooler, &first, ctx)?)?;
        apply_linear(&self.classifier, &self.dropout.forward(&pooled, ctx)?, ctx)
    }
}

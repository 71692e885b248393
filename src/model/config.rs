//! `config.json` of the supported families, with transformers' defaults for absent optional keys.
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Deserializer};

use super::nn::Activation;

/// The architecture a checkpoint's `model_type` names.
#[derive(Debug, Clone)]
pub enum ModelConfig {
    Bert(BertConfig),
    /// DeBERTa v1 (`model_type = "deberta"`).
    Deberta(DebertaConfig),
    /// DeBERTa v2 and v3 (`model_type = "deberta-v2"`).
    DebertaV2(DebertaConfig),
}

impl ModelConfig {
    /// Reads and validates a `config.json`; errors name the file and the offending key.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .with_context(|| format!("{}: missing key `model_type`", path.display()))?
            .to_string();
        let parse_err = |e: serde_json::Error| anyhow::anyhow!("{}: {e}", path.display());
        let config = match model_type.as_str() {
            "bert" => Self::Bert(serde_json::from_value(value).map_err(parse_err)?),
            "deberta" => Self::Deberta(serde_json::from_value(value).map_err(parse_err)?),
            "deberta-v2" => Self::DebertaV2(serde_json::from_value(value).map_err(parse_err)?),
            other => bail!("{}: unknown model_type `{other}` (supported: bert, deberta, deberta-v2)", path.display()),
        };
        config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// The keys every family has.
    pub fn common(&self) -> &TransformerConfig {
        match self {
            Self::Bert(c) => &c.common,
            Self::Deberta(c) | Self::DebertaV2(c) => &c.common,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let c = self.common();
        let (hidden, heads, layers, vocab) = (c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.vocab_size);
        if heads == 0 || hidden % heads != 0 {
            bail!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}");
        }
        if layers == 0 || vocab == 0 {
            bail!("num_hidden_layers and vocab_size must be positive");
        }
        Ok(())
    }

    /// The width of the word embeddings, P0 (DeBERTa v3's `embedding_size` may differ from the
    /// hidden size; `embed_proj` maps between them).
    pub fn embedding_size(&self) -> usize {
        match self {
            Self::Bert(c) => c.common.hidden_size,
            Self::Deberta(c) | Self::DebertaV2(c) => c.embedding_size(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.common().vocab_size
    }

    /// The longest input the model can embed: `max_position_embeddings` for models with absolute
    /// position embeddings; `None` for purely relative ones (DeBERTa without
    /// `position_biased_input`), whose relative positions are clamped or bucketed at any length.
    pub fn max_positions(&self) -> Option<usize> {
        match self {
            Self::Bert(c) => Some(c.common.max_position_embeddings),
            Self::Deberta(c) | Self::DebertaV2(c) => {
                c.position_biased_input.then_some(c.common.max_position_embeddings)
            }
        }
    }

    /// Fails when sequences of `max_len` tokens (the setting named `key`) would run past the
    /// model's position embeddings, which would fail only later, inside a forward pass.
    pub fn check_max_len(&self, max_len: usize, key: &str, config: &Path) -> anyhow::Result<()> {
        if let Some(positions) = self.max_positions().filter(|&positions| max_len > positions) {
            bail!(
                "{key} = {max_len} exceeds the model's {positions} positions (max_position_embeddings in {}); \
                 use at most {positions}",
                config.display()
            );
        }
        Ok(())
    }

    pub fn family(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert",
            Self::Deberta(_) => "deberta",
            Self::DebertaV2(_) => "deberta-v2",
        }
    }
}

fn default_gelu() -> Activation {
    Activation::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_deberta_ln_eps() -> f64 {
    1e-7
}
fn default_init_range() -> f64 {
    0.02
}
fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_minus_one() -> i64 {
    -1
}
fn default_true() -> bool {
    true
}

/// The keys and defaults that BERT and DeBERTa configs share.
#[derive(Debug, Clone, Deserialize)]
pub struct TransformerConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_gelu")]
    pub hidden_act: Activation,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub pad_token_id: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    #[serde(flatten)]
    pub common: TransformerConfig,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// transformers' `classifier_dropout`; `hidden_dropout_prob` when absent.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

/// The config of DeBERTa v1 and v2/v3; keys one version lacks take transformers' defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct DebertaConfig {
    #[serde(flatten)]
    pub common: TransformerConfig,
    #[serde(default)]
    pub type_vocab_size: usize,
    #[serde(default = "default_deberta_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub relative_attention: bool,
    /// -1 (or absent) means `max_position_embeddings`.
    #[serde(default = "default_minus_one")]
    pub max_relative_positions: i64,
    #[serde(default = "default_true")]
    pub position_biased_input: bool,
    /// Which disentangled terms are used: `c2p`, `p2c` (and `p2p`, ignored as in transformers).
    #[serde(default, deserialize_with = "att_types")]
    pub pos_att_type: Vec<String>,
    #[serde(default)]
    pub pooler_dropout: f64,
    #[serde(default)]
    pub pooler_hidden_act: Option<Activation>,
    #[serde(default)]
    pub pooler_hidden_size: Option<usize>,
    #[serde(default)]
    pub cls_dropout: Option<f64>,
    /// Width of the embedding tables; `embed_proj` maps it to `hidden_size` when it differs.
    #[serde(default)]
    pub embedding_size: Option<usize>,
    // DeBERTa v2/v3 only.
    #[serde(default = "default_minus_one")]
    pub position_buckets: i64,
    #[serde(default)]
    pub share_att_key: bool,
    #[serde(default)]
    pub norm_rel_ebd: Option<String>,
    #[serde(default)]
    pub conv_kernel_size: usize,
}

impl DebertaConfig {
    pub fn embedding_size(&self) -> usize {
        self.embedding_size.unwrap_or(self.common.hidden_size)
    }

    pub fn has_att_type(&self, kind: &str) -> bool {
        self.pos_att_type.iter().any(|t| t == kind)
    }
}

/// `pos_att_type` appears as `"c2p|p2c"` (v1), `["p2c", "c2p"]` (v2/v3) or `null`.
fn att_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Joined(String),
        List(Vec<String>),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::Joined(s)) => s.split('|').map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect(),
        Some(Raw::List(v)) => v.into_iter().map(|t| t.to_lowercase()).collect(),
    })
}

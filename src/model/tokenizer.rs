//! Tokenizer loading for every format the supported checkpoints ship.
//!
//! A checkpoint directory holds one of these, looked for in this order:
//! - `tokenizer.json`: a serialized `tokenizers` pipeline, used as is;
//! - `spm.model`: a SentencePiece unigram model (DeBERTa v2/v3);
//! - `vocab.json` + `merges.txt`: a GPT-2 byte-level BPE (DeBERTa v1);
//! - `vocab.txt`: a WordPiece vocabulary (BERT).
//!
//! The last three are rebuilt into the pipelines transformers' fast tokenizers convert them to
//! (`convert_slow_tokenizer.py`: `DebertaV2Converter`, `DebertaConverter`, `BertConverter`), with the
//! options of `tokenizer_config.json`. Whatever truncation or padding a `tokenizer.json` bakes in is
//! replaced by the run's maximum length and no padding: the batcher pads.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::metaspace::{Metaspace, PrependScheme};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{BertNormalizer, Lowercase, Precompiled, Replace, Sequence as NormalizerSequence, Strip};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, EncodeInput, NormalizerWrapper, PostProcessor, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
    TruncationParams,
};

use super::spm::{PieceKind, SpmModel};

/// One tokenized text (or text pair) with special tokens, truncated to the run's maximum length and
/// not padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// A checkpoint's tokenizer, set up to truncate to the run's maximum length.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The file the tokenizer was built from, named in errors.
    source: PathBuf,
    max_len: usize,
    pad_id: u32,
}

impl TextTokenizer {
    /// Loads the tokenizer of a checkpoint directory (see the module docs for the formats).
    pub fn from_dir(dir: &Path, max_len: usize) -> anyhow::Result<Self> {
        let config = TokenizerConfig::read(dir)?;
        let source = Source::find(dir)?;
        let in_file = |e: anyhow::Error| anyhow::anyhow!("{}: {e:#}", source.describe());
        let mut inner = build_pipeline(&source, &config).map_err(in_file)?;
        limit_length(&mut inner, max_len).map_err(in_file)?;
        let source = source.path().to_path_buf();
        let pad_token = &config.special.pad.content;
        let pad_id = inner.token_to_id(pad_token).with_context(|| {
            format!("{}: the padding token `{pad_token}` is not in the vocabulary", source.display())
        })?;
        Ok(Self { inner, source, max_len, pad_id })
    }

    /// Tokenizes a text, or a text pair, with special tokens and truncation.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> anyhow::Result<Encoded> {
        let encoding = self
            .inner
            .encode(encode_input(text, pair), true)
            .map_err(|e| anyhow::anyhow!("{}: cannot tokenize: {e}", self.source.display()))?;
        Ok(Encoded { ids: encoding.get_ids().to_vec(), type_ids: encoding.get_type_ids().to_vec() })
    }

    /// Tokenizes many texts (or pairs) in parallel.
    pub fn encode_batch(&self, texts: &[(&str, Option<&str>)]) -> anyhow::Result<Vec<Encoded>> {
        let inputs = texts.iter().map(|&(text, pair)| encode_input(text, pair)).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| anyhow::anyhow!("{}: cannot tokenize: {e}", self.source.display()))?;
        Ok(encodings
            .iter()
            .map(|e| Encoded { ids: e.get_ids().to_vec(), type_ids: e.get_type_ids().to_vec() })
            .collect())
    }

    /// The id the batcher pads with.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The maximum number of tokens of an encoding, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The tokenizer file this was built from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Fails when the tokenizer can produce an id the model's embedding table does not have.
    pub fn check_vocab(&self, model_vocab_size: usize, dir: &Path) -> anyhow::Result<()> {
        let vocab = self.inner.get_vocab(true);
        let Some((token, &largest)) = vocab.iter().max_by_key(|&(_, &id)| id) else {
            bail!("{}: the tokenizer has an empty vocabulary", self.source.display());
        };
        if largest as usize >= model_vocab_size {
            bail!(
                "{}: token `{token}` has id {largest}, but the model in {} has only {model_vocab_size} embeddings \
                 (vocab_size in config.json); the tokenizer does not belong to this checkpoint",
                self.source.display(),
                dir.display()
            );
        }
        Ok(())
    }
}

fn encode_input<'s>(text: &'s str, pair: Option<&'s str>) -> EncodeInput<'s> {
    match pair {
        Some(pair) => (text, pair).into(),
        None => text.into(),
    }
}

/// Truncates every encoding to `max_len` tokens, special tokens included, and pads none.
fn limit_length(tokenizer: &mut Tokenizer, max_len: usize) -> anyhow::Result<()> {
    let pair_specials = tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(true));
    if max_len <= pair_specials {
        bail!("max_len {max_len} leaves no room for text next to the {pair_specials} special tokens of a pair");
    }
    // Longest-first removes tokens from the longer text of a pair, after the special tokens are
    // accounted for, so the final separator is always kept.
    let truncation = TruncationParams { max_length: max_len, ..TruncationParams::default() };
    tokenizer.with_truncation(Some(truncation)).map_err(tk_err)?;
    tokenizer.with_padding(None);
    Ok(())
}

/// The tokenizer files of a checkpoint, by format.
enum Source {
    Json(PathBuf),
    SentencePiece(PathBuf),
    ByteLevelBpe { vocab: PathBuf, merges: PathBuf },
    WordPiece(PathBuf),
}

impl Source {
    /// The first format present in `dir`, in the order of the module docs.
    fn find(dir: &Path) -> anyhow::Result<Self> {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        if let Some(path) = file("tokenizer.json") {
            return Ok(Self::Json(path));
        }
        if let Some(path) = file("spm.model") {
            return Ok(Self::SentencePiece(path));
        }
        if let (Some(vocab), Some(merges)) = (file("vocab.json"), file("merges.txt")) {
            return Ok(Self::ByteLevelBpe { vocab, merges });
        }
        if let Some(path) = file("vocab.txt") {
            return Ok(Self::WordPiece(path));
        }
        bail!(
            "no tokenizer in {}: looked for tokenizer.json, spm.model, vocab.json + merges.txt, vocab.txt",
            dir.display()
        )
    }

    /// The main file: the vocabulary for BPE.
    fn path(&self) -> &Path {
        match self {
            Self::Json(path) | Self::SentencePiece(path) | Self::WordPiece(path) => path,
            Self::ByteLevelBpe { vocab, .. } => vocab,
        }
    }

    /// The file(s) as named in errors.
    fn describe(&self) -> String {
        match self {
            Self::ByteLevelBpe { vocab, merges } => {
                format!("{} + {}", vocab.display(), merges.display())
            }
            other => other.path().display().to_string(),
        }
    }
}

/// The options of `tokenizer_config.json` the pipelines depend on; absent keys take transformers'
/// defaults for the family.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    do_lower_case: Option<bool>,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: Option<bool>,
    add_prefix_space: Option<bool>,
    #[serde(default)]
    split_by_punct: bool,
    #[serde(flatten)]
    special: SpecialTokens,
    /// Added tokens by id, as `save_pretrained` writes them.
    #[serde(default)]
    added_tokens_decoder: HashMap<String, TokenSpec>,
}

impl TokenizerConfig {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("tokenizer_config.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: invalid tokenizer config: {e}", path.display()))
    }

    /// The added tokens in id order, so that tokens missing from the model's vocabulary get the
    /// ids transformers gave them.
    fn added_tokens(&self) -> Vec<AddedToken> {
        let mut by_id: Vec<(u64, &TokenSpec)> =
            self.added_tokens_decoder.iter().map(|(id, spec)| (id.parse().unwrap_or(u64::MAX), spec)).collect();
        by_id.sort_by_key(|&(id, _)| id);
        by_id.into_iter().map(|(_, spec)| spec.to_added_token(true)).collect()
    }
}

/// The special tokens by role; all supported families use the same strings by default.
#[derive(Debug, Deserialize)]
struct SpecialTokens {
    #[serde(default = "SpecialTokens::default_unk")]
    unk_token: TokenSpec,
    #[serde(default = "SpecialTokens::default_sep")]
    sep_token: TokenSpec,
    #[serde(default = "SpecialTokens::default_pad", rename = "pad_token")]
    pad: TokenSpec,
    #[serde(default = "SpecialTokens::default_cls")]
    cls_token: TokenSpec,
    mask_token: Option<TokenSpec>,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        Self {
            unk_token: Self::default_unk(),
            sep_token: Self::default_sep(),
            pad: Self::default_pad(),
            cls_token: Self::default_cls(),
            mask_token: None,
        }
    }
}

impl SpecialTokens {
    fn default_unk() -> TokenSpec {
        TokenSpec::plain("[UNK]")
    }
    fn default_sep() -> TokenSpec {
        TokenSpec::plain("[SEP]")
    }
    fn default_pad() -> TokenSpec {
        TokenSpec::plain("[PAD]")
    }
    fn default_cls() -> TokenSpec {
        TokenSpec::plain("[CLS]")
    }

    /// The special tokens as added tokens; `default_mask` is the family's mask token when the
    /// config names none (DeBERTa v1 strips the space before its mask token).
    fn added_tokens(&self, default_mask: TokenSpec) -> Vec<AddedToken> {
        let mask = self.mask_token.clone().unwrap_or(default_mask);
        [&self.pad, &self.unk_token, &self.cls_token, &self.sep_token, &mask]
            .into_iter()
            .map(|spec| spec.to_added_token(true))
            .collect()
    }
}

/// A token as `tokenizer_config.json` writes it: a plain string or a serialized `AddedToken`.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "TokenSpecJson")]
struct TokenSpec {
    content: String,
    lstrip: bool,
    rstrip: bool,
    single_word: bool,
    special: Option<bool>,
    normalized: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TokenSpecJson {
    Plain(String),
    Full {
        content: String,
        #[serde(default)]
        lstrip: bool,
        #[serde(default)]
        rstrip: bool,
        #[serde(default)]
        single_word: bool,
        special: Option<bool>,
        normalized: Option<bool>,
    },
}

impl From<TokenSpecJson> for TokenSpec {
    fn from(json: TokenSpecJson) -> Self {
        match json {
            TokenSpecJson::Plain(content) => Self::plain(&content),
            TokenSpecJson::Full { content, lstrip, rstrip, single_word, special, normalized } => {
                Self { content, lstrip, rstrip, single_word, special, normalized }
            }
        }
    }
}

impl TokenSpec {
    fn plain(content: &str) -> Self {
        Self {
            content: content.to_string(),
            lstrip: false,
            rstrip: false,
            single_word: false,
            special: None,
            normalized: None,
        }
    }

    /// Unless the config says otherwise, special tokens match the raw text (`normalized = false`),
    /// as transformers adds them.
    fn to_added_token(&self, special_by_default: bool) -> AddedToken {
        let special = self.special.unwrap_or(special_by_default);
        AddedToken::from(self.content.clone(), special)
            .lstrip(self.lstrip)
            .rstrip(self.rstrip)
            .single_word(self.single_word)
            .normalized(self.normalized.unwrap_or(!special))
    }
}

/// Builds the pipeline of a tokenizer file; errors do not name the file (the caller does).
fn build_pipeline(source: &Source, config: &TokenizerConfig) -> anyhow::Result<Tokenizer> {
    match source {
        Source::Json(path) => load_tokenizer_json(path, config),
        Source::SentencePiece(path) => {
            let bytes = std::fs::read(path).context("cannot read")?;
            let spm = SpmModel::from_bytes(&bytes).context("not a SentencePiece model")?;
            unigram_pipeline(&spm, config)
        }
        Source::ByteLevelBpe { vocab, merges } => byte_level_bpe_pipeline(vocab, merges, config),
        Source::WordPiece(path) => wordpiece_pipeline(path, config),
    }
}

/// Converts the boxed errors of the `tokenizers` crate.
fn tk_err(e: tokenizers::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Loads a `tokenizer.json`; an explicit `do_lower_case` of the config overrides a BERT
/// normalizer's, as `BertTokenizerFast` does.
fn load_tokenizer_json(path: &Path, config: &TokenizerConfig) -> anyhow::Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| anyhow::anyhow!("not a valid tokenizer.json: {e}"))?;
    if let (Some(lowercase), Some(&NormalizerWrapper::BertNormalizer(mut bert))) =
        (config.do_lower_case, tokenizer.get_normalizer())
    {
        bert.lowercase = lowercase;
        tokenizer.with_normalizer(Some(bert)).map_err(tk_err)?;
    }
    Ok(tokenizer)
}

/// BERT's WordPiece pipeline (`BertConverter`); lowercases unless the config says otherwise.
fn wordpiece_pipeline(vocab_path: &Path, config: &TokenizerConfig) -> anyhow::Result<Tokenizer> {
    let vocab = WordPiece::read_file(&vocab_path.to_string_lossy())
        .map_err(|e| anyhow::anyhow!("not a readable WordPiece vocabulary: {e}"))?;
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token(config.special.unk_token.content.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(tk_err)?;
    let mut tokenizer = Tokenizer::new(model);
    let normalizer = BertNormalizer::new(
        true,
        config.tokenize_chinese_chars.unwrap_or(true),
        config.strip_accents,
        config.do_lower_case.unwrap_or(true),
    );
    tokenizer.with_normalizer(Some(normalizer)).map_err(tk_err)?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    finish_pipeline(tokenizer, config, Vec::new(), TokenSpec::plain("[MASK]"))
}

/// DeBERTa v1's GPT-2 byte-level BPE (`DebertaConverter`).
fn byte_level_bpe_pipeline(vocab: &Path, merges: &Path, config: &TokenizerConfig) -> anyhow::Result<Tokenizer> {
    let model = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| anyhow::anyhow!("not a readable BPE vocabulary and merges file: {e}"))?;
    let mut tokenizer = Tokenizer::new(model);
    let byte_level = ByteLevel::new(config.add_prefix_space.unwrap_or(false), true, true);
    tokenizer.with_pre_tokenizer(Some(byte_level));
    tokenizer.with_decoder(Some(byte_level));
    let mask = TokenSpec { lstrip: true, ..TokenSpec::plain("[MASK]") };
    finish_pipeline(tokenizer, config, Vec::new(), mask)
}

/// DeBERTa v2/v3's SentencePiece unigram pipeline (`DebertaV2Converter`).
fn unigram_pipeline(spm: &SpmModel, config: &TokenizerConfig) -> anyhow::Result<Tokenizer> {
    let vocab = spm.pieces.iter().map(|p| (p.piece.clone(), f64::from(p.score))).collect();
    let mut tokenizer = Tokenizer::new(Unigram::from(vocab, Some(spm.unk_id), false).map_err(tk_err)?);
    tokenizer.with_normalizer(Some(spm_normalizer(spm, config)?)).map_err(tk_err)?;

    let prepend = if config.add_prefix_space.unwrap_or(true) { PrependScheme::Always } else { PrependScheme::Never };
    let metaspace = Metaspace::new('▁', prepend, true);
    let mut pre_tokenizers: Vec<PreTokenizerWrapper> = Vec::new();
    if config.split_by_punct {
        pre_tokenizers.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre_tokenizers.push(metaspace.clone().into());
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(pre_tokenizers)));
    tokenizer.with_decoder(Some(metaspace));

    // User-defined pieces are always kept whole; declared control symbols are special tokens.
    let user_defined = spm.pieces.iter().filter(|p| p.kind == PieceKind::UserDefined);
    let spm_tokens = user_defined
        .map(|p| AddedToken::from(p.piece.clone(), false).normalized(false))
        .chain(spm.control_symbols.iter().map(|s| AddedToken::from(s.clone(), true)))
        .collect();
    finish_pipeline(tokenizer, config, spm_tokens, TokenSpec::plain("[MASK]"))
}

/// SentencePiece normalization as the converter approximates it: optional lowercasing, outer
/// whitespace stripped, the model's compiled character map (NFKC-like), runs of spaces collapsed.
fn spm_normalizer(spm: &SpmModel, config: &TokenizerConfig) -> anyhow::Result<NormalizerSequence> {
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if config.do_lower_case.unwrap_or(false) {
        normalizers.push(Lowercase.into());
    }
    normalizers.push(Strip::new(true, true).into());
    if !spm.precompiled_charsmap.is_empty() {
        let charsmap = Precompiled::from(&spm.precompiled_charsmap)
            .map_err(|e| anyhow::anyhow!("invalid precompiled_charsmap: {e}"))?;
        normalizers.push(charsmap.into());
    }
    normalizers.push(Replace::new(ReplacePattern::Regex(" {2,}".into()), " ").map_err(tk_err)?.into());
    Ok(NormalizerSequence::new(normalizers))
}

/// Adds the model's own added tokens, then the config's, then the special tokens (the order in
/// which transformers assigns ids to tokens missing from the vocabulary), and the
/// `[CLS] A [SEP] (B [SEP])` post-processor with type ids 0 / 1.
fn finish_pipeline(
    mut tokenizer: Tokenizer,
    config: &TokenizerConfig,
    model_tokens: Vec<AddedToken>,
    default_mask: TokenSpec,
) -> anyhow::Result<Tokenizer> {
    let tokens = model_tokens.into_iter().chain(config.added_tokens()).chain(config.special.added_tokens(default_mask));
    tokenizer.add_tokens(tokens).map_err(tk_err)?;

    let cls = &config.special.cls_token.content;
    let sep = &config.special.sep_token.content;
    let id_of = |token: &str| {
        tokenizer.token_to_id(token).with_context(|| format!("special token `{token}` is not in the vocabulary"))
    };
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| anyhow::anyhow!("invalid special tokens `{cls}`, `{sep}`: {e}"))?
        .special_tokens(vec![(cls.as_str(), id_of(cls)?), (sep.as_str(), id_of(sep)?)])
        .build()?;
    tokenizer.with_post_processor(Some(template));
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spm::Piece;

    /// A DeBERTa-v3-like vocabulary: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3, then scored pieces.
    fn tiny_spm() -> SpmModel {
        let piece = |piece: &str, score: f32, kind: PieceKind| Piece { piece: piece.into(), score, kind };
        let mut pieces = vec![
            piece("[PAD]", 0.0, PieceKind::Control),
            piece("[CLS]", 0.0, PieceKind::Control),
            piece("[SEP]", 0.0, PieceKind::Control),
            piece("[UNK]", 0.0, PieceKind::Unknown),
            piece("▁", -2.0, PieceKind::Normal),
            piece("▁hello", -1.0, PieceKind::Normal),
            piece("▁world", -1.0, PieceKind::Normal),
            piece("llo", -3.0, PieceKind::Normal),
        ];
        pieces.extend("helowrd".chars().map(|c| piece(&c.to_string(), -5.0, PieceKind::Normal)));
        SpmModel { pieces, unk_id: 3, control_symbols: Vec::new(), precompiled_charsmap: Vec::new() }
    }

    fn unigram(config: &str) -> Tokenizer {
        let config: TokenizerConfig = serde_json::from_str(config).unwrap();
        unigram_pipeline(&tiny_spm(), &config).unwrap()
    }

    fn ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
        tokenizer.encode(text, true).unwrap().get_ids().to_vec()
    }

    #[test]
    fn unigram_prepends_metaspace_and_collapses_spaces() {
        let tokenizer = unigram("{}");
        assert_eq!(ids(&tokenizer, "  hello   world "), vec![1, 5, 6, 2]);
        let pair = tokenizer.encode(("hello", "world"), true).unwrap();
        assert_eq!(pair.get_ids(), [1, 5, 2, 6, 2]);
        assert_eq!(pair.get_type_ids(), [0, 0, 0, 1, 1]);
        // [MASK] is not a piece: transformers appends it to the vocabulary.
        assert_eq!(tokenizer.token_to_id("[MASK]"), Some(15));
    }

    #[test]
    fn unigram_lowercases_only_when_configured() {
        assert!(ids(&unigram("{}"), "Hello").contains(&3));
        assert_eq!(ids(&unigram(r#"{"do_lower_case": true}"#), "Hello World"), vec![1, 5, 6, 2]);
    }

    #[test]
    fn unigram_without_prefix_space() {
        let tokenizer = unigram(r#"{"add_prefix_space": false}"#);
        assert_eq!(ids(&tokenizer, "hello"), vec![1, 8, 9, 7, 2]);
    }

    #[test]
    fn config_tokens_may_be_added_token_objects() {
        let config: TokenizerConfig = serde_json::from_str(
            r#"{"pad_token": {"content": "<pad>", "lstrip": false, "__type": "AddedToken"},
                "strip_accents": null,
                "added_tokens_decoder": {"7": {"content": "<x>", "special": false}}}"#,
        )
        .unwrap();
        assert_eq!(config.special.pad.content, "<pad>");
        assert_eq!(config.added_tokens()[0].content, "<x>");
        assert!(!config.added_tokens()[0].special);
    }
}

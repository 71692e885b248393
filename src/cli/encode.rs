//! `sift-tui encode`: last hidden states of a text file, for parity checks and feature extraction.
use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use candle_core::{DType, Tensor};

use super::progress::DownloadBars;
use crate::data::collate;
use crate::model::kernels::{use_kernels, Kernels};
use crate::model::resolve::{resolve_model_with, SearchEnv};
use crate::model::tokenizer::TextTokenizer;
use crate::model::{load_encoder, select_device, Ctx, ModelFiles};

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// Model id (`org/name`) or checkpoint directory.
    #[arg(long)]
    model: String,
    /// Text file, one text per line (split on '\n' only).
    #[arg(long)]
    texts: PathBuf,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
    /// Tokens per text, at most the model's positions [default: 128, or the model's positions when
    /// fewer].
    #[arg(long)]
    max_len: Option<usize>,
    /// Texts encoded per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// `fused` CPU kernels, or the `portable` composed ops that CUDA and Metal run (on any device).
    #[arg(long, value_enum, default_value_t = Kernels::Fused)]
    kernels: Kernels,
}

/// Tokens per text when `--max-len` is not given (and the model has that many positions).
const DEFAULT_MAX_LEN: usize = 128;

pub fn run(args: &EncodeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be positive");
    let dir = resolve_model_with(&args.model, &SearchEnv::from_env(), &mut DownloadBars::default())?;
    let files = ModelFiles::in_dir(&dir)?;
    let device = select_device(&args.device)?;
    use_kernels(args.kernels);
    let (encoder, config) = load_encoder(&files, &device, DType::F32)?;
    let max_len = match args.max_len {
        Some(max_len) => max_len,
        None => config.max_positions().map_or(DEFAULT_MAX_LEN, |positions| positions.min(DEFAULT_MAX_LEN)),
    };
    config.check_max_len(max_len, "--max-len", &files.config)?;
    let tokenizer = TextTokenizer::from_dir(&dir, max_len)?;
    tokenizer.check_vocab(config.vocab_size(), &dir)?;

    let texts = read_texts(&args.texts)?;
    let rows: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (t.as_str(), None)).collect();
    let encoded = tokenizer.encode_batch(&rows)?;
    // Every chunk is padded to the longest row overall, as one padded batch in transformers would be.
    let len = encoded.iter().map(|e| e.ids.len()).max().unwrap_or(0);

    let mut rng = crate::rng::stream(0, 0);
    let (mut ids, mut masks, mut hidden) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in encoded.chunks(args.batch_size) {
        let rows: Vec<_> = chunk.iter().map(|e| (e, 0u32)).collect();
        let batch = collate(&rows, tokenizer.pad_id(), Some(len), &device)?;
        hidden.push(encoder.forward(&batch.inputs, &mut Ctx::inference(&mut rng))?);
        ids.push(batch.inputs.input_ids.to_dtype(DType::I64)?);
        masks.push(batch.inputs.attention_mask.to_dtype(DType::I64)?);
    }
    anyhow::ensure!(!hidden.is_empty(), "{}: no texts to encode", args.texts.display());
    let tensors = HashMap::from([
        ("input_ids".to_string(), Tensor::cat(&ids, 0)?),
        ("attention_mask".to_string(), Tensor::cat(&masks, 0)?),
        ("last_hidden_state".to_string(), Tensor::cat(&hidden, 0)?.to_dtype(DType::F32)?),
    ]);
    crate::atomic::write_safetensors(&args.out, &tensors)?;
    eprintln!("encoded {} texts ({} tokens each) into {}", texts.len(), len, args.out.display());
    Ok(())
}

/// One text per '\n'-separated line; a final newline does not add an empty text. A file with no
/// text at all is an error rather than one empty row.
fn read_texts(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{}: not valid UTF-8", path.display()))?;
    anyhow::ensure!(!text.trim().is_empty(), "{}: no texts to encode (the file is empty)", path.display());
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.split('\n').map(str::to_string).collect())
}

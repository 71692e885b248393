//! Trainable transformer encoders with explicit perturbation points.
//!
//! Every family implements [`Encoder`], which splits the forward pass at the three points that the
//! fine-tuning methods perturb (`docs/methods.md` §0.1):
//!
//! ```text
//! ids ─word_embeddings─> P0 ─layer_norm_input─> P1 ─embedding_output─> P2 ─encode─> hidden ─head─> logits
//! ```
//!
//! A method can start the rest of the model from a perturbed tensor at any of these points, and get the
//! gradient with respect to the perturbation by making it a `Var`.
pub mod bert;
pub mod config;
pub mod deberta;
pub mod deberta_v2;
pub mod head;
mod hub;
pub mod kernels;
pub mod nn;
pub mod resolve;
pub mod spm;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use config::ModelConfig;
use head::{ClassificationHead, HEAD_PREFIXES};
use kernels::Kernels;
use weights::{Checkpoint, TrainableWeights};

/// The tokenized inputs of one batch, all on the model's device.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Token ids, `u32` `[B, T]`.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding, `u32` `[B, T]`.
    pub attention_mask: Tensor,
    /// Segment ids, `u32` `[B, T]`.
    pub token_type_ids: Tensor,
}

/// Forward-pass context: train or eval mode, frozen weights or not, the loss scale of its backward
/// pass, and the seeded generator that draws dropout masks.
pub struct Ctx<'a> {
    pub train: bool,
    /// Every layer weight (encoder and head) enters the graph detached, so backward forms no parameter
    /// gradient: the ascent passes of SiFT, SMART and ALUM need only the gradient with respect to a
    /// perturbation. They start at P1 or P2, past the embedding tables, which a frozen pass never reads.
    pub frozen: bool,
    /// f16 loss scaling: the gradient that reaches the model from the logits of a pass that is not
    /// frozen is multiplied by this (1 otherwise), so that small half-precision gradients do not flush
    /// to zero. Parameter gradients come out scaled by it; the updater divides it out.
    pub loss_scale: f64,
    pub rng: &'a mut Rng,
}

impl<'a> Ctx<'a> {
    pub fn train(rng: &'a mut Rng) -> Self {
        Self { train: true, frozen: false, loss_scale: 1.0, rng }
    }

    pub fn eval(rng: &'a mut Rng) -> Self {
        Self { train: false, frozen: false, loss_scale: 1.0, rng }
    }

    /// Evaluation with frozen weights: no dropout, and nothing of the pass is tracked for a backward
    /// pass (Candle has no no-grad mode; untracked inputs are its equivalent), so scoring a split
    /// builds no graph.
    pub fn inference(rng: &'a mut Rng) -> Self {
        Self { train: false, frozen: true, loss_scale: 1.0, rng }
    }

    /// The same context with its backward pass scaled by `loss_scale`.
    pub fn with_loss_scale(self, loss_scale: f64) -> Self {
        Self { loss_scale, ..self }
    }

    /// The same context with frozen weights, drawing from the same generator.
    pub fn frozen(&mut self) -> Ctx<'_> {
        Ctx { train: self.train, frozen: true, loss_scale: self.loss_scale, rng: &mut *self.rng }
    }

    /// A weight as this pass uses it: in `dtype`, the dtype of the activations it meets (the f32
    /// master weights cast to the compute dtype; the cast is differentiable, so the gradient reaches
    /// the f32 variable in f32), and detached when frozen.
    pub fn param(&self, weight: &Tensor, dtype: DType) -> Result<Tensor> {
        if self.frozen {
            weight.detach().to_dtype(dtype)
        } else {
            weight.to_dtype(dtype)
        }
    }
}

/// The precision a run computes in (`train.dtype`, `--dtype`). Weights and AdamW's moments stay f32
/// whatever it is (master weights); `bf16` and `f16` run the encoder layers and the head in half
/// precision, with LayerNorm and softmax statistics and the losses in f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    /// Needs loss scaling (dynamic, in the updater): f16 has 5 exponent bits.
    F16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

/// The kernel path a run takes, and why it differs from the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPath {
    pub kernels: Kernels,
    /// Set when `kernels = "fused"` was asked for but cannot apply: for the run's log.
    pub note: Option<String>,
}

/// The one place that decides which kernels a run uses, from its device, `train.kernels` and
/// `train.dtype`. The fused CPU kernels are f32-only, so half precision on the CPU takes the
/// portable path (the composed ops GPUs run) and says so, rather than failing a preset whose
/// `kernels = "fused"` line was written for f32. On other devices the fused kernels never apply.
pub fn kernel_path(device: &Device, kernels: Kernels, precision: Precision) -> KernelPath {
    if device.is_cpu() && kernels == Kernels::Fused && precision != Precision::F32 {
        let note = format!(
            "train.dtype = \"{}\": the fused CPU kernels are f32-only, so this run takes the portable path \
             (train.kernels = \"portable\")",
            precision.as_str()
        );
        return KernelPath { kernels: Kernels::Portable, note: Some(note) };
    }
    KernelPath { kernels, note: None }
}

/// A transformer encoder split at its perturbation points.
pub trait Encoder: Send + Sync {
    /// P0: the raw word-embedding lookup `W[ids]`, `[B, T, E]`.
    fn word_embeddings(&self, input_ids: &Tensor) -> Result<Tensor>;

    /// P1: the input of the embedding LayerNorm built from (possibly perturbed) word embeddings:
    /// positions and token types added, DeBERTa's `embed_proj` applied. `[B, T, H]`.
    fn layer_norm_input(&self, words: &Tensor, inputs: &Inputs) -> Result<Tensor>;

    /// P2: the embedding module's output: the affine LayerNorm, DeBERTa's padding mask, dropout.
    fn embedding_output(&self, ln_input: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor>;

    /// Runs the transformer layers on an embedding output; returns the last hidden state `[B, T, H]`.
    fn encode(&self, embedded: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor>;

    /// The last hidden state of the first token alone, `[B, 1, H]`: all that a sequence-classification
    /// head reads, so an encoder may skip the other positions' work in its last layer.
    fn encode_first_token(&self, embedded: &Tensor, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        self.encode(embedded, inputs, ctx)?.narrow(1, 0, 1)
    }

    /// The hidden size `H`.
    fn hidden_size(&self) -> usize;

    /// The whole forward pass from token ids to the last hidden state.
    fn forward(&self, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let words = self.word_embeddings(&inputs.input_ids)?;
        let s = self.layer_norm_input(&words, inputs)?;
        // A frozen pass reads the embedding tables as constants too: its graph holds no weight.
        let s = if ctx.frozen { s.detach() } else { s };
        let e = self.embedding_output(&s, inputs, ctx)?;
        self.encode(&e, inputs, ctx)
    }
}

/// Where a forward pass starts: the token ids, or a (perturbed) tensor at one of the points.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    Ids,
    /// P0, the word-embedding lookup.
    Words(&'a Tensor),
    /// P1, the input of the embedding LayerNorm.
    LayerNormInput(&'a Tensor),
    /// P2, the embedding output.
    Embedded(&'a Tensor),
}

/// The files of a resolved checkpoint directory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub weights: PathBuf,
}

impl ModelFiles {
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let config = dir.join("config.json");
        if !config.is_file() {
            anyhow::bail!("{}: missing config.json", dir.display());
        }
        Ok(Self { dir: dir.to_path_buf(), config, weights: resolve::weights_file(dir)? })
    }
}

/// An encoder with a sequence-classification head and the `VarMap` of all its trainable weights.
pub struct Classifier {
    pub encoder: Box<dyn Encoder>,
    pub head: ClassificationHead,
    pub varmap: VarMap,
    pub config: ModelConfig,
    pub num_labels: usize,
    /// The dtype of the encoder layers and the head ([`Classifier::with_precision`]); the weights
    /// keep the dtype they were loaded in.
    compute: DType,
}

impl Classifier {
    /// Loads a checkpoint directory; the head is initialised from `seed` when the checkpoint lacks it
    /// or has another label count.
    pub fn load(
        files: &ModelFiles,
        num_labels: usize,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let config = ModelConfig::from_file(&files.config)?;
        let checkpoint = Checkpoint::load(&files.weights)?;
        Self::from_checkpoint(config, checkpoint, num_labels, device, dtype, seed)
    }

    pub fn from_checkpoint(
        config: ModelConfig,
        checkpoint: Checkpoint,
        num_labels: usize,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let varmap = VarMap::new();
        let vb = TrainableWeights::new(checkpoint, varmap.clone(), HEAD_PREFIXES, seed).into_var_builder(dtype, device);
        let encoder = build_encoder(&config, vb.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let head = match &config {
            ModelConfig::Bert(c) => ClassificationHead::load_bert(c, num_labels, vb),
            ModelConfig::Deberta(c) | ModelConfig::DebertaV2(c) => ClassificationHead::load_deberta(c, num_labels, vb),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self { encoder, head, varmap, config, num_labels, compute: dtype })
    }

    /// The same model computing in `precision`: the embeddings (P0 to P2, where the methods add
    /// their f32 perturbations) stay in the weights' dtype, the embedding output is cast to the
    /// compute dtype, and the logits come back in f32.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { compute: precision.dtype(), ..self }
    }

    /// The dtype the encoder layers and the head compute in.
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    /// An independent copy with its own variables (SMART's teacher, evaluation snapshots).
    pub fn duplicate(&self) -> anyhow::Result<Self> {
        let tensors = self.named_tensors()?;
        let (device, dtype) = tensors
            .first()
            .map(|(_, t)| (t.device().clone(), t.dtype()))
            .ok_or_else(|| anyhow::anyhow!("the model has no variables"))?;
        let checkpoint = Checkpoint::from_tensors(Path::new("<in-memory copy>"), tensors);
        let copy = Self::from_checkpoint(self.config.clone(), checkpoint, self.num_labels, &device, dtype, 0)?;
        Ok(Self { compute: self.compute, ..copy })
    }

    /// The trainable weights, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, candle_core::Var)> {
        let data = self.varmap.data().lock().expect("varmap poisoned");
        let mut vars: Vec<_> = data.iter().map(|(name, var)| (name.clone(), var.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Copies of all weights, sorted by name.
    pub fn named_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let data = self.varmap.data().lock().expect("varmap poisoned");
        let mut named =
            data.iter().map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?))).collect::<Result<Vec<_>>>()?;
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(named)
    }

    /// Logits `[B, C]` in f32, starting the forward pass at `start`.
    pub fn logits_from(&self, start: Start, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        let enc = &self.encoder;
        // A frozen pass reads the embedding tables as constants too: its graph holds no weight.
        let frozen = |s: Tensor| if ctx.frozen { s.detach() } else { s };
        let embedded = match start {
            Start::Embedded(e) => e.clone(),
            Start::LayerNormInput(s) => enc.embedding_output(s, inputs, ctx)?,
            Start::Words(w) => enc.embedding_output(&enc.layer_norm_input(w, inputs)?, inputs, ctx)?,
            Start::Ids => {
                let words = enc.word_embeddings(&inputs.input_ids)?;
                let s = frozen(enc.layer_norm_input(&words, inputs)?);
                enc.embedding_output(&s, inputs, ctx)?
            }
        };
        // The one activation cast: every layer casts its weights to the dtype of what it receives.
        let embedded = embedded.to_dtype(self.compute)?;
        let logits = self.head.forward(&enc.encode_first_token(&embedded, inputs, ctx)?, ctx)?.to_dtype(DType::F32)?;
        if ctx.loss_scale == 1.0 || ctx.frozen {
            return Ok(logits);
        }
        scale_gradient(&logits, ctx.loss_scale)
    }

    pub fn logits(&self, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        self.logits_from(Start::Ids, inputs, ctx)
    }
}

/// `x` unchanged in value, with the gradient that flows back through it multiplied by `factor`:
/// x + (x·f − sg(x·f)). The difference is exactly 0 while x·f is finite, which it is for f32 logits.
fn scale_gradient(x: &Tensor, factor: f64) -> Result<Tensor> {
    let scaled = (x * factor)?;
    x.detach() + (&scaled - scaled.detach())?
}

/// Loads only the encoder (for `encode` and feature extraction).
pub fn load_encoder(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
) -> anyhow::Result<(Box<dyn Encoder>, ModelConfig)> {
    let config = ModelConfig::from_file(&files.config)?;
    let checkpoint = Checkpoint::load(&files.weights)?;
    let vb = TrainableWeights::new(checkpoint, VarMap::new(), HEAD_PREFIXES, 0).into_var_builder(dtype, device);
    let encoder = build_encoder(&config, vb).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((encoder, config))
}

fn build_encoder(config: &ModelConfig, vb: VarBuilder) -> Result<Box<dyn Encoder>> {
    Ok(match config {
        ModelConfig::Bert(c) => Box::new(bert::Bert::load(c, vb)?),
        ModelConfig::Deberta(c) => Box::new(deberta::Deberta::load(c, vb)?),
        ModelConfig::DebertaV2(c) => Box::new(deberta_v2::DebertaV2::load(c, vb)?),
    })
}

/// The device named on the command line or in a preset: `cpu`, `cuda` (`cuda:N`) or `metal`.
pub fn select_device(name: &str) -> anyhow::Result<Device> {
    let device = DeviceName::parse(name)?;
    let (kind, label) = match device {
        DeviceName::Cpu => ("cpu", "CPU"),
        DeviceName::Cuda(_) => ("cuda", "CUDA"),
        DeviceName::Metal(_) => ("metal", "Metal"),
    };
    anyhow::ensure!(
        built_devices().contains(&kind),
        "device `{name}`: this build has no {label} support (build with `cargo build --release --features {kind}`)"
    );
    match device {
        DeviceName::Cpu => Ok(Device::Cpu),
        DeviceName::Cuda(ordinal) => {
            Device::new_cuda(ordinal).map_err(|e| anyhow::anyhow!("cannot open CUDA device {ordinal}: {e}"))
        }
        DeviceName::Metal(ordinal) => {
            Device::new_metal(ordinal).map_err(|e| anyhow::anyhow!("cannot open Metal device {ordinal}: {e}"))
        }
    }
}

/// The device kinds this build can run on: `cpu`, and `cuda` / `metal` when built with that feature.
pub fn built_devices() -> Vec<&'static str> {
    let mut devices = vec!["cpu"];
    if cfg!(feature = "cuda") {
        devices.push("cuda");
    }
    if cfg!(feature = "metal") {
        devices.push("metal");
    }
    devices
}

/// A device as presets and `--device` name it: `cpu`, `cuda`, `cuda:1`, `metal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    Cuda(usize),
    Metal(usize),
}

impl DeviceName {
    /// Checks the name only; whether the device exists is known when it is opened.
    pub fn parse(name: &str) -> anyhow::Result<DeviceName> {
        let (kind, ordinal) = name.split_once(':').unwrap_or((name, "0"));
        let ordinal: usize = ordinal.parse().map_err(|_| anyhow::anyhow!("bad device ordinal in `{name}`"))?;
        match kind {
            "cpu" => Ok(DeviceName::Cpu),
            "cuda" => Ok(DeviceName::Cuda(ordinal)),
            "metal" => Ok(DeviceName::Metal(ordinal)),
            _ => anyhow::bail!("unknown device `{name}` (cpu, cuda, cuda:N, metal)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_this_build_lacks_is_one_clear_error() {
        assert!(built_devices().contains(&"cpu"));
        assert!(select_device("cpu").is_ok());
        if !cfg!(feature = "cuda") {
            let error = select_device("cuda:1").unwrap_err().to_string();
            assert_eq!(
                error,
                "device `cuda:1`: this build has no CUDA support (build with `cargo build --release --features cuda`)"
            );
            assert!(!built_devices().contains(&"cuda"));
        }
    }
}

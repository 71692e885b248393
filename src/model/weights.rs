//! Checkpoint tensors and the trainable parameter store the models are built from.
//!
//! Models are written against candle's `VarBuilder` with transformers' parameter names *without* the
//! family prefix (`encoder.layer.0...`, `pooler.dense...`, `classifier...`). [`Checkpoint`] normalises
//! what is on disk to those names; [`TrainableWeights`] turns each requested tensor into a `Var`
//! recorded in a `VarMap`, so every weight is trainable and the optimizer sees them all.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::rng::Rng;

/// The tensors of a checkpoint file, keyed by normalised parameter name.
pub struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

/// Prefixes under which `*For...` model classes store the backbone.
const BACKBONE_PREFIXES: &[&str] = &["bert.", "deberta.", "model."];

impl Checkpoint {
    /// Reads `model.safetensors` or `pytorch_model.bin` onto the CPU.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let is_pth = path.extension().is_some_and(|e| e == "bin" || e == "pt" || e == "pth");
        let raw: Vec<(String, Tensor)> = if is_pth {
            candle_core::pickle::read_all(path)
                .map_err(|e| anyhow::anyhow!("{}: not a readable PyTorch checkpoint: {e}", path.display()))?
        } else {
            let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                .map_err(|e| anyhow::anyhow!("{}: corrupt or truncated safetensors file: {e}", path.display()))?
                .into_iter()
                .collect()
        };
        if raw.is_empty() {
            bail!("{}: the checkpoint holds no tensors", path.display());
        }
        Ok(Self::from_tensors(path, raw))
    }

    /// Normalises names: strips the backbone prefix and renames TF-era `gamma`/`beta` LayerNorm names.
    pub fn from_tensors(path: &Path, raw: Vec<(String, Tensor)>) -> Self {
        let tensors = raw
            .into_iter()
            .map(|(name, t)| {
                let name = BACKBONE_PREFIXES.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(&name).to_string();
                let name = if let Some(stem) = name.strip_suffix(".gamma") {
                    format!("{stem}.weight")
                } else if let Some(stem) = name.strip_suffix(".beta") {
                    format!("{stem}.bias")
                } else {
                    name
                };
                (name, t)
            })
            .collect();
        Self { path: path.to_path_buf(), tensors }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// A `VarBuilder` backend that makes every parameter a trainable `Var`.
///
/// Tensors come from the checkpoint. Names under one of the `initialisable` prefixes (the task head)
/// may be missing or have another shape (a different label count); they are then initialised as
/// transformers does, from the run's seeded generator. Any other missing tensor is an error naming the
/// checkpoint file.
pub struct TrainableWeights {
    checkpoint: Checkpoint,
    varmap: VarMap,
    initialisable: Vec<String>,
    rng: Mutex<Rng>,
}

impl TrainableWeights {
    pub fn new(checkpoint: Checkpoint, varmap: VarMap, initialisable: &[&str], seed: u64) -> Self {
        Self {
            checkpoint,
            varmap,
            initialisable: initialisable.iter().map(|s| s.to_string()).collect(),
            rng: Mutex::new(Rng::seed_from_u64(seed)),
        }
    }

    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    fn may_initialise(&self, name: &str) -> bool {
        self.initialisable.iter().any(|p| name.starts_with(p.as_str()))
    }

    fn initialise(&self, shape: &Shape, init: Init) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let values: Vec<f32> = match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Randn { mean, stdev } => {
                let normal =
                    Normal::new(mean as f32, stdev as f32).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let mut rng = self.rng.lock().expect("weight rng poisoned");
                (0..n).map(|_| normal.sample(&mut *rng)).collect()
            }
            other => candle_core::bail!("unsupported initialiser {other:?}"),
        };
        Tensor::from_vec(values, shape, &Device::Cpu)
    }

    fn register(&self, name: &str, tensor: Tensor, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&tensor.to_dtype(dtype)?.to_device(dev)?)?;
        let t = var.as_tensor().clone();
        self.varmap.data().lock().expect("varmap poisoned").insert(name.to_string(), var);
        Ok(t)
    }
}

impl SimpleBackend for TrainableWeights {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if let Some(existing) = self.varmap.data().lock().expect("varmap poisoned").get(name) {
            return Ok(existing.as_tensor().clone());
        }
        let file = self.checkpoint.path().display();
        let tensor = match self.checkpoint.get(name) {
            Some(t) if t.shape() == &shape => t.clone(),
            Some(_) | None if self.may_initialise(name) => self.initialise(&shape, init)?,
            Some(t) => candle_core::bail!(
                "{file}: tensor `{name}` has shape {:?}, the config implies {:?}",
                t.dims(),
                shape.dims()
            ),
            None => candle_core::bail!("{file}: missing tensor `{name}`"),
        };
        self.register(name, tensor, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.checkpoint.get(name) {
            Some(t) => self.register(name, t.clone(), dtype, dev),
            None => candle_core::bail!("{}: missing tensor `{name}`", self.checkpoint.path().display()),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.checkpoint.contains(name)
    }
}

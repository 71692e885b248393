//! Fine-tuning methods behind one small trait.
//!
//! A method turns one batch into parameter gradients: it runs as many forward and backward passes as
//! it needs (SiFT: clean, ascent and final; FreeLB: K accumulated passes), starting the model at the
//! perturbation points that [`Classifier::logits_from`] exposes. The trainer owns everything else
//! (optimizer, schedule, clipping, accumulation). The specification is `docs/methods.md`.
pub mod alum;
pub mod divergence;
pub mod freelb;
pub mod noise;
pub mod r3f;
pub mod sift;
pub mod smart;
pub mod standard;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Batch;
use crate::model::{Classifier, Ctx, Inputs};

/// The methods a sweep can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    Standard,
    R3f,
    Smart,
    Alum,
    Sift,
    Freelb,
}

impl MethodName {
    pub const ALL: [MethodName; 6] = [Self::Standard, Self::R3f, Self::Smart, Self::Alum, Self::Sift, Self::Freelb];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::R3f => "r3f",
            Self::Smart => "smart",
            Self::Alum => "alum",
            Self::Sift => "sift",
            Self::Freelb => "freelb",
        }
    }
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MethodName {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown method `{s}` (standard, r3f, smart, alum, sift, freelb)"))
    }
}

/// The hyperparameters of every method; each defaults to the reference value (`docs/methods.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodsConfig {
    pub r3f: r3f::R3fConfig,
    pub smart: smart::SmartConfig,
    pub alum: alum::AlumConfig,
    pub sift: sift::SiftConfig,
    pub freelb: freelb::FreelbConfig,
}

/// Where the trainer is in the schedule, for methods that change behaviour over time.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Optimizer updates done so far in this stage.
    pub step: usize,
    /// Optimizer updates planned for this stage.
    pub total_steps: usize,
}

/// The gradients of one batch and what to log about it.
pub struct StepOutput {
    pub grads: GradStore,
    /// The task loss (cross-entropy) on the clean pass.
    pub task_loss: f32,
    /// The whole objective that was differentiated.
    pub total_loss: f32,
    /// The adversarial / noise divergence, for methods that have one.
    pub adv_kl: Option<f32>,
}

pub trait Method: Send {
    fn name(&self) -> MethodName;

    /// Runs the method's passes over one batch and returns the parameter gradients.
    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, at: Progress) -> Result<StepOutput>;

    /// Called after each optimizer update (SMART's momentum teacher follows the student here).
    fn after_update(&mut self, _model: &Classifier, _at: Progress) -> Result<()> {
        Ok(())
    }

    /// Evaluation logits. SiFT keeps its non-affine re-normalisation in every pass once installed.
    fn eval_logits(&self, model: &Classifier, inputs: &Inputs, ctx: &mut Ctx) -> Result<Tensor> {
        model.logits(inputs, ctx)
    }

    /// Extra state a checkpoint must carry (SMART's teacher weights), by name.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn load_state(&mut self, _tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
}

/// Builds the named method for a model.
pub fn build(name: MethodName, config: &MethodsConfig, model: &Classifier) -> Result<Box<dyn Method>> {
    Ok(match name {
        MethodName::Standard => Box::new(standard::Standard),
        MethodName::R3f => Box::new(r3f::R3f::new(config.r3f.clone())),
        MethodName::Smart => Box::new(smart::Smart::new(config.smart.clone(), model)?),
        MethodName::Alum => Box::new(alum::Alum::new(config.alum.clone())),
        MethodName::Sift => Box::new(sift::Sift::new(config.sift.clone())),
        MethodName::Freelb => Box::new(freelb::Freelb::new(config.freelb.clone())),
    })
}

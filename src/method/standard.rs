//! Plain fine-tuning: the mean cross-entropy of one clean pass, one backward.
use candle_core::{Result, Tensor};

use super::divergence::{cross_entropy, scalar};
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::Batch;
use crate::model::{Classifier, Ctx};

pub struct Standard;

impl Method for Standard {
    fn name(&self) -> MethodName {
        MethodName::Standard
    }

    fn step(&mut self, model: &Classifier, batch: &Batch, ctx: &mut Ctx, _at: Progress) -> Result<StepOutput> {
        let task = cross_entropy(&model.logits(&batch.inputs, ctx)?, &batch.labels)?;
        differentiate(&task, &task, None)
    }
}

/// Runs the backward pass of `total` and collects what the trainer logs. `adv_kl` is the adversarial
/// divergence before weighting.
pub(crate) fn differentiate(total: &Tensor, task: &Tensor, adv_kl: Option<&Tensor>) -> Result<StepOutput> {
    Ok(StepOutput {
        grads: total.backward()?,
        task_loss: scalar(task)?,
        total_loss: scalar(total)?,
        adv_kl: adv_kl.map(scalar).transpose()?,
    })
}

//! Placeholder until branch `methods` merges.
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::batch::Batch;
use crate::model::{Classifier, Ctx};
pub struct Standard;
impl Method for Standard {
    fn name(&self) -> MethodName {
        MethodName::Standard
    }
    fn step(&mut self, _: &Classifier, _: &Batch, _: &mut Ctx, _: Progress) -> candle_core::Result<StepOutput> {
        candle_core::bail!("not merged yet")
    }
}

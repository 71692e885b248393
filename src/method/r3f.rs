//! Placeholder until branch `methods` merges.
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::batch::Batch;
use crate::model::{Classifier, Ctx};
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct R3fConfig {}
pub struct R3f;
impl R3f {
    pub fn new(_: R3fConfig) -> Self {
        Self
    }
}
impl Method for R3f {
    fn name(&self) -> MethodName {
        MethodName::R3f
    }
    fn step(&mut self, _: &Classifier, _: &Batch, _: &mut Ctx, _: Progress) -> candle_core::Result<StepOutput> {
        candle_core::bail!("not merged yet")
    }
}

//! Placeholder until branch `methods` merges.
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::batch::Batch;
use crate::model::{Classifier, Ctx};
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SmartConfig {}
pub struct Smart;
impl Smart {
    pub fn new(_: SmartConfig, _: &Classifier) -> candle_core::Result<Self> {
        Ok(Self)
    }
}
impl Method for Smart {
    fn name(&self) -> MethodName {
        MethodName::Smart
    }
    fn step(&mut self, _: &Classifier, _: &Batch, _: &mut Ctx, _: Progress) -> candle_core::Result<StepOutput> {
        candle_core::bail!("not merged yet")
    }
}

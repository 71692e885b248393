//! Placeholder until branch `methods` merges.
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::batch::Batch;
use crate::model::{Classifier, Ctx};
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FreelbConfig {}
pub struct Freelb;
impl Freelb {
    pub fn new(_: FreelbConfig) -> Self {
        Self
    }
}
impl Method for Freelb {
    fn name(&self) -> MethodName {
        MethodName::Freelb
    }
    fn step(&mut self, _: &Classifier, _: &Batch, _: &mut Ctx, _: Progress) -> candle_core::Result<StepOutput> {
        candle_core::bail!("not merged yet")
    }
}

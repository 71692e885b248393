//! Placeholder until branch `methods` merges.
use super::{Method, MethodName, Progress, StepOutput};
use crate::data::batch::Batch;
use crate::model::{Classifier, Ctx};
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SiftConfig {}
pub struct Sift;
impl Sift {
    pub fn new(_: SiftConfig) -> Self {
        Self
    }
}
impl Method for Sift {
    fn name(&self) -> MethodName {
        MethodName::Sift
    }
    fn step(&mut self, _: &Classifier, _: &Batch, _: &mut Ctx, _: Progress) -> candle_core::Result<StepOutput> {
        candle_core::bail!("not merged yet")
    }
}

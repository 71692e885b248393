//! TODO (being written on branch `deberta`).
use super::config::DebertaConfig;
pub struct DebertaV2;
impl DebertaV2 {
    pub fn load(_: &DebertaConfig, _: candle_nn::VarBuilder) -> candle_core::Result<super::bert::Bert> {
        candle_core::bail!("DeBERTa v2 is not merged yet")
    }
}

//! TODO (being written on branch `deberta`).
use super::config::DebertaConfig;
pub struct Deberta;
impl Deberta {
    pub fn load(_: &DebertaConfig, _: candle_nn::VarBuilder) -> candle_core::Result<super::bert::Bert> {
        candle_core::bail!("DeBERTa v1 is not merged yet")
    }
}

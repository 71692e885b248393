//! Placeholder until branch `data` merges.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelMap(pub Vec<u32>);

//! Explicit maps from a source dataset's labels to the labels of a target task.
//!
//! In a config a map is written either as a preset name (`"identity"`, `"hate-to-negative"`) or as
//! the list of target labels indexed by source label (`[1, 0]`).
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::DataError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LabelMapForm", into = "LabelMapForm")]
pub enum LabelMap {
    /// Every label maps to itself.
    Identity,
    /// The semantic map from hate speech to sentiment: non-hate 0 → positive 1, hate 1 → negative 0.
    HateToNegative,
    /// `targets[source]` is the target label of `source`.
    Explicit(Vec<u32>),
}

/// How a [`LabelMap`] is written in a config file.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LabelMapForm {
    Preset(String),
    Targets(Vec<u32>),
}

const HATE_TO_NEGATIVE: [u32; 2] = [1, 0];

impl LabelMap {
    /// The target label of `label`; an error if the map has no entry for it.
    pub fn apply(&self, label: u32) -> Result<u32, DataError> {
        let targets = match self {
            Self::Identity => return Ok(label),
            Self::HateToNegative => &HATE_TO_NEGATIVE[..],
            Self::Explicit(targets) => targets,
        };
        let target = targets.get(label as usize).copied();
        target.ok_or_else(|| DataError::LabelOutsideMap { label, map: self.to_string() })
    }

    /// [`LabelMap::apply`] on every label.
    pub fn apply_all(&self, labels: &[u32]) -> Result<Vec<u32>, DataError> {
        labels.iter().map(|&label| self.apply(label)).collect()
    }
}

impl FromStr for LabelMap {
    type Err = DataError;

    fn from_str(name: &str) -> Result<Self, DataError> {
        match name {
            "identity" => Ok(Self::Identity),
            "hate-to-negative" => Ok(Self::HateToNegative),
            _ => Err(DataError::UnknownLabelMap(name.to_owned())),
        }
    }
}

impl fmt::Display for LabelMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity => f.write_str("identity"),
            Self::HateToNegative => f.write_str("hate-to-negative"),
            Self::Explicit(targets) => write!(f, "{targets:?}"),
        }
    }
}

impl TryFrom<LabelMapForm> for LabelMap {
    type Error = DataError;

    fn try_from(form: LabelMapForm) -> Result<Self, DataError> {
        match form {
            LabelMapForm::Preset(name) => name.parse(),
            LabelMapForm::Targets(targets) => Ok(Self::Explicit(targets)),
        }
    }
}

impl From<LabelMap> for LabelMapForm {
    fn from(map: LabelMap) -> Self {
        match map {
            LabelMap::Explicit(targets) => Self::Targets(targets),
            preset => Self::Preset(preset.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Config {
        map: LabelMap,
    }

    #[test]
    fn presets_and_lists_round_trip_through_toml() {
        for map in [LabelMap::Identity, LabelMap::HateToNegative, LabelMap::Explicit(vec![2, 0, 1])] {
            let config = Config { map };
            let text = toml::to_string(&config).unwrap();
            assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
        }
        let config: Config = toml::from_str("map = \"hate-to-negative\"").unwrap();
        assert_eq!(config.map, LabelMap::HateToNegative);
        assert!(toml::from_str::<Config>("map = \"sideways\"").is_err());
    }

    #[test]
    fn hate_to_negative_is_the_semantic_map() {
        let map = LabelMap::HateToNegative;
        assert_eq!(map.apply_all(&[0, 1, 0]).unwrap(), vec![1, 0, 1]);
        let error = map.apply(2).unwrap_err().to_string();
        assert!(error.contains("label 2") && error.contains("hate-to-negative"), "{error}");
        assert_eq!(LabelMap::Identity.apply(7).unwrap(), 7);
    }
}

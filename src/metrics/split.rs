//! Which examples an evaluation scored: typed everywhere, and written as the strings that
//! `metrics.jsonl` and `results.json` have always held (`source-dev`, `target-test`, `10%`, or an
//! evaluation set's name).
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Split {
    /// The source dev split, scored during stage 1; it selects the best update.
    SourceDev,
    /// The target test split, scored during a target stage: shown live, never selects anything.
    TargetTest,
    /// A table column: the target test split scored after fine-tuning on this fraction of the
    /// target pool (0: the selected source model as it is).
    Fraction(f64),
    /// A table column: a further source evaluation set, by its preset name (CoLA's
    /// `out_of_domain_dev`).
    Named(String),
}

const SOURCE_DEV: &str = "source-dev";
const TARGET_TEST: &str = "target-test";

impl Split {
    /// Whether this split is scored on the target domain (the live test scores and the fraction
    /// columns).
    pub fn is_target(&self) -> bool {
        matches!(self, Self::TargetTest | Self::Fraction(_))
    }

    /// Whether this split is a column of the results table.
    pub fn is_column(&self) -> bool {
        matches!(self, Self::Fraction(_) | Self::Named(_))
    }

    /// A fraction in tenths of a percent, the resolution of its label: two fractions with one
    /// label are one column.
    fn per_mille(fraction: f64) -> i64 {
        (fraction * 1000.0).round() as i64
    }
}

impl PartialEq for Split {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::SourceDev, Self::SourceDev) | (Self::TargetTest, Self::TargetTest) => true,
            (Self::Fraction(a), Self::Fraction(b)) => Self::per_mille(*a) == Self::per_mille(*b),
            (Self::Named(a), Self::Named(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SourceDev => f.write_str(SOURCE_DEV),
            Self::TargetTest => f.write_str(TARGET_TEST),
            Self::Fraction(fraction) => write!(f, "{}%", Self::per_mille(*fraction) as f64 / 10.0),
            Self::Named(name) => f.write_str(name),
        }
    }
}

/// Any string names a split: the fixed names and percentages are read as such, anything else is
/// an evaluation set's name (presets reject evaluation names that would read otherwise).
impl From<String> for Split {
    fn from(text: String) -> Self {
        match text.as_str() {
            SOURCE_DEV => Self::SourceDev,
            TARGET_TEST => Self::TargetTest,
            _ => match text.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()).filter(|p| p.is_finite()) {
                Some(percent) => Self::Fraction(percent / 100.0),
                None => Self::Named(text),
            },
        }
    }
}

impl From<&str> for Split {
    fn from(text: &str) -> Self {
        Self::from(text.to_string())
    }
}

impl From<Split> for String {
    fn from(split: Split) -> Self {
        split.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_round_trip_through_their_strings() {
        for split in [
            Split::SourceDev,
            Split::TargetTest,
            Split::Fraction(0.0),
            Split::Fraction(0.1),
            Split::Fraction(0.125),
            Split::Named("out_of_domain_dev".into()),
        ] {
            let json = serde_json::to_string(&split).unwrap();
            assert_eq!(serde_json::from_str::<Split>(&json).unwrap(), split, "{json}");
        }
        assert_eq!(Split::Fraction(0.1).to_string(), "10%");
        assert_eq!(Split::Fraction(0.0).to_string(), "0%");
        assert_eq!(Split::Fraction(0.125).to_string(), "12.5%");
        assert_eq!(Split::from("target-test"), Split::TargetTest);
        assert_eq!(Split::from("in_domain_dev"), Split::Named("in_domain_dev".into()));
        assert_eq!(Split::from("x%"), Split::Named("x%".into()));
    }

    #[test]
    fn fractions_with_one_label_are_one_split() {
        assert_eq!(Split::Fraction(0.1), Split::from("10%"));
        assert_eq!(Split::Fraction(0.1234), Split::Fraction(0.1229));
        assert_ne!(Split::Fraction(0.1), Split::Fraction(0.2));
        assert!(Split::Fraction(0.0).is_target() && Split::TargetTest.is_target() && !Split::SourceDev.is_target());
        assert!(Split::Named("a".into()).is_column() && !Split::TargetTest.is_column());
    }
}

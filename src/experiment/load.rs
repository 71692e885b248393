//! Reading a preset: TOML, `--set KEY=VALUE` overrides, typed deserialisation and validation.
//!
//! Every error is one line that names the file and the offending key, with the line in the file
//! when the key is written there, or `(--set)` when an override put it in.
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use toml::de::{DeTable, DeValue};

use super::preset::Preset;
use super::sweep::model_slug;
use crate::metrics::Split;

impl Preset {
    /// Reads the preset at `path`, applies `overrides` (`KEY=VALUE`, dotted keys, TOML values) in
    /// order, and checks the result.
    pub fn load(path: &Path, overrides: &[String]) -> anyhow::Result<Preset> {
        let file = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("{file}: cannot read"))?;
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|span| format!(":{}", line_at(&text, span.start))).unwrap_or_default();
            anyhow!("{file}{at}: {}", e.message().trim_end())
        })?;
        let mut overridden = Vec::with_capacity(overrides.len());
        for arg in overrides {
            let key = apply_override(&mut table, arg).with_context(|| format!("{file}: --set `{arg}`"))?;
            overridden.push(key);
        }
        let located = |key: &KeyPath, message: &str| {
            let origin = if overridden.iter().any(|set| set.is_prefix_of(key)) {
                format!(": `{key}` (--set)")
            } else {
                match line_of(&text, key) {
                    Some(line) => format!(":{line}: `{key}`"),
                    None => format!(": `{key}`"),
                }
            };
            anyhow!("{file}{origin}: {message}")
        };
        let preset: Preset = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| located(&KeyPath::from_serde(e.path()), e.inner().message()))?;
        validate(&preset).map_err(|invalid| located(&invalid.key, &invalid.message))?;
        Ok(preset)
    }

    /// The fully resolved preset as TOML, for a run's `config.toml`.
    pub fn to_toml_string(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("cannot serialise the preset as TOML")
    }
}

/// A key inside the preset document, e.g. `sweep.seeds[1]`.
#[derive(Debug, Clone, PartialEq)]
struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    fn new(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Segment::Key(k.to_string())).collect())
    }

    fn at(mut self, index: usize) -> Self {
        self.0.push(Segment::Index(index));
        self
    }

    fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        Self(
            path.iter()
                .filter_map(|segment| match segment {
                    S::Map { key } => Some(Segment::Key(key.clone())),
                    S::Seq { index } => Some(Segment::Index(*index)),
                    S::Enum { .. } | S::Unknown => None,
                })
                .collect(),
        )
    }

    fn is_prefix_of(&self, other: &KeyPath) -> bool {
        other.0.starts_with(&self.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Sets one `KEY=VALUE` in the document, creating intermediate tables, and returns the key.
fn apply_override(table: &mut toml::Table, arg: &str) -> anyhow::Result<KeyPath> {
    let (key, value) = arg.split_once('=').context("expected KEY=VALUE")?;
    let keys: Vec<&str> = key.split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("empty key segment in `{key}`");
    }
    let value = parse_value(value.trim())?;
    let (last, parents) = keys.split_last().context("empty key")?;
    let mut current = table;
    for (depth, name) in parents.iter().enumerate() {
        let entry = current.entry(name.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().with_context(|| format!("`{}` is not a table", keys[..=depth].join(".")))?;
    }
    current.insert(last.to_string(), value);
    Ok(KeyPath::new(&keys))
}

/// A TOML value; a bare word that is not TOML (`cuda`, `quick-test`) is taken as a string.
fn parse_value(raw: &str) -> anyhow::Result<toml::Value> {
    match raw.parse::<toml::Value>() {
        Ok(value) => Ok(value),
        Err(_) if is_bare_word(raw) => Ok(toml::Value::String(raw.to_string())),
        Err(e) => bail!("`{raw}` is not a TOML value: {}", e.message().trim_end()),
    }
}

fn is_bare_word(raw: &str) -> bool {
    !raw.is_empty() && raw.chars().all(|c| c.is_alphanumeric() || "-_./:@+".contains(c))
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line of `key` in the document, or of its deepest ancestor that is written there.
fn line_of(text: &str, key: &KeyPath) -> Option<usize> {
    let document = DeTable::parse(text).ok()?;
    let mut current = &DeValue::Table(document.into_inner());
    let mut line = None;
    for segment in &key.0 {
        let next = match segment {
            Segment::Key(name) => current.get(name.as_str()),
            Segment::Index(index) => current.get(*index),
        };
        let Some(next) = next else { break };
        line = Some(line_at(text, next.span().start));
        current = next.get_ref();
    }
    line
}

/// A value that deserialised but makes no sense.
struct Invalid {
    key: KeyPath,
    message: String,
}

fn ensure(ok: bool, key: KeyPath, message: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid { key, message: message() })
    }
}

fn validate(preset: &Preset) -> Result<(), Invalid> {
    ensure(!preset.name.trim().is_empty(), KeyPath::new(&["name"]), || "must not be empty".into())?;
    // The name goes into run ids, logs and the `slurm` job script, where a newline would start a line.
    ensure(!preset.name.chars().any(char::is_control), KeyPath::new(&["name"]), || {
        format!("must not contain control characters (got {:?})", preset.name)
    })?;
    validate_sweep(preset)?;
    validate_source(preset)?;
    validate_target(preset)?;
    validate_train(preset)
}

fn validate_sweep(preset: &Preset) -> Result<(), Invalid> {
    let sweep = &preset.sweep;
    non_empty_unique(&sweep.models, &["sweep", "models"])?;
    non_empty_unique(&sweep.methods, &["sweep", "methods"])?;
    non_empty_unique(&sweep.seeds, &["sweep", "seeds"])?;
    for (i, model) in sweep.models.iter().enumerate() {
        let key = KeyPath::new(&["sweep", "models"]).at(i);
        ensure(!model_slug(model).is_empty(), key.clone(), || format!("`{model}` is not a model name"))?;
        // Run ids name a model by its last path component, so two models must not share one.
        if let Some(other) = sweep.models[..i].iter().find(|other| model_slug(other) == model_slug(model)) {
            let message = format!("`{model}` and `{other}` would share run ids (`{}`)", model_slug(model));
            return Err(Invalid { key, message });
        }
    }
    Ok(())
}

fn validate_source(preset: &Preset) -> Result<(), Invalid> {
    let source = &preset.source;
    let dev = source.dev_fraction;
    ensure(dev > 0.0 && dev < 1.0, KeyPath::new(&["source", "dev_fraction"]), || {
        format!("must lie strictly between 0 and 1 (got {dev})")
    })?;
    let names: Vec<&str> = source.evaluate.iter().map(|e| e.name.as_str()).collect();
    if let Some(i) = names.iter().position(|name| name.trim().is_empty()) {
        return Err(Invalid { key: KeyPath::new(&["source", "evaluate"]).at(i), message: "empty name".into() });
    }
    // A name is written where splits are (metrics.jsonl, results.json), so it must read back as a name.
    if let Some(i) = names.iter().position(|name| !matches!(Split::from(*name), Split::Named(_))) {
        return Err(Invalid {
            key: KeyPath::new(&["source", "evaluate"]).at(i),
            message: format!("`{}` names a split of its own (source-dev, target-test or a percentage)", names[i]),
        });
    }
    unique(&names, &["source", "evaluate"])
}

fn validate_target(preset: &Preset) -> Result<(), Invalid> {
    let Some(target) = &preset.target else { return Ok(()) };
    non_empty_unique(&target.fractions, &["target", "fractions"])?;
    for (i, &fraction) in target.fractions.iter().enumerate() {
        fraction_in_unit_interval(fraction, KeyPath::new(&["target", "fractions"]).at(i))?;
    }
    if let Some(epochs) = target.epochs {
        ensure(epochs > 0.0 && epochs.is_finite(), KeyPath::new(&["target", "epochs"]), || {
            format!("must be positive (got {epochs})")
        })?;
    }
    Ok(())
}

fn validate_train(preset: &Preset) -> Result<(), Invalid> {
    let train = &preset.train;
    let key = |name: &str| KeyPath::new(&["train", name]);
    for (name, value) in
        [("batch_size", train.batch_size), ("accumulate", train.accumulate), ("eval_batch_size", train.eval_batch_size)]
    {
        ensure(value > 0, key(name), || "must be at least 1".into())?;
    }
    let lr = train.lr;
    ensure(lr > 0.0 && lr.is_finite(), key("lr"), || format!("must be positive (got {lr})"))?;
    let epochs = train.epochs;
    ensure(epochs.is_finite() && epochs >= 0.0, key("epochs"), || format!("must not be negative (got {epochs})"))?;
    ensure(epochs > 0.0 || train.max_steps > 0, key("epochs"), || "must be positive when max_steps is 0".into())?;
    fraction_in_unit_interval(train.warmup_ratio, key("warmup_ratio"))?;
    let clip = train.grad_clip;
    ensure(clip >= 0.0 && clip.is_finite(), key("grad_clip"), || format!("must not be negative (got {clip})"))?;
    let max_len = train.max_len;
    ensure(max_len >= 8, key("max_len"), || format!("must be at least 8 (got {max_len})"))?;
    crate::model::DeviceName::parse(&train.device)
        .map(drop)
        .map_err(|e| Invalid { key: key("device"), message: e.to_string() })
}

fn fraction_in_unit_interval(value: f64, key: KeyPath) -> Result<(), Invalid> {
    ensure((0.0..=1.0).contains(&value), key, || format!("must lie in [0, 1] (got {value})"))
}

fn non_empty_unique<T: PartialEq + fmt::Display>(items: &[T], key: &[&str]) -> Result<(), Invalid> {
    ensure(!items.is_empty(), KeyPath::new(key), || "must not be empty".into())?;
    unique(items, key)
}

fn unique<T: PartialEq + fmt::Display>(items: &[T], key: &[&str]) -> Result<(), Invalid> {
    let duplicate = (1..items.len()).find(|&i| items[..i].contains(&items[i]));
    match duplicate {
        // Named as the preset spells it (`sift`, not the type's `Sift`).
        Some(i) => Err(Invalid { key: KeyPath::new(key).at(i), message: format!("duplicate entry `{}`", items[i]) }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_create_tables_and_parse_values() {
        let mut table = toml::Table::new();
        apply_override(&mut table, "train.lr=3e-5").unwrap();
        apply_override(&mut table, "sweep.models=[\"org/m\"]").unwrap();
        apply_override(&mut table, "train.device=cuda").unwrap();
        assert_eq!(table["train"]["lr"].as_float(), Some(3e-5));
        assert_eq!(table["train"]["device"].as_str(), Some("cuda"));
        assert_eq!(table["sweep"]["models"][0].as_str(), Some("org/m"));
    }

    #[test]
    fn malformed_overrides_are_rejected() {
        let mut table = toml::Table::new();
        assert!(apply_override(&mut table, "train.lr").is_err());
        assert!(apply_override(&mut table, "train..lr=1").is_err());
        assert!(apply_override(&mut table, "sweep.models=[bert").is_err());
        apply_override(&mut table, "name=quick").unwrap();
        let err = apply_override(&mut table, "name.x=1").unwrap_err();
        assert!(err.to_string().contains("`name` is not a table"), "{err}");
    }

    #[test]
    fn lines_are_found_for_nested_keys_and_indices() {
        let text = "name = \"x\"\n[sweep]\nseeds = [\n  1,\n  2,\n]\n";
        assert_eq!(line_of(text, &KeyPath::new(&["sweep", "seeds"]).at(1)), Some(5));
        assert_eq!(line_of(text, &KeyPath::new(&["sweep", "missing"])), Some(2));
        assert_eq!(KeyPath::new(&["sweep", "seeds"]).at(1).to_string(), "sweep.seeds[1]");
    }
}

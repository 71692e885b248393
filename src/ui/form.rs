//! The setup form: a preset, and the fields a user most often changes before a launch.
//!
//! Each changed field becomes a `--set KEY=VALUE` override of the preset, and the preset is read
//! again with them, so the form validates exactly as `sift-tui run --set` does and its errors name
//! the key. A field only checks its own syntax (a number, a list); ranges are the preset's rules.
use std::path::PathBuf;

use crate::experiment::assets::{self, Item, Need, Sources};
use crate::experiment::preset::Preset;
use crate::experiment::sweep::RunSpec;
use crate::method::MethodName;
use crate::model::built_devices;
use crate::model::resolve::Availability;

/// Models offered in the picker besides the preset's and the local ones.
pub const KNOWN_MODELS: [&str; 4] = [
    "bert-base-uncased",
    "microsoft/deberta-base",
    "microsoft/deberta-v3-base",
    "sentence-transformers/all-MiniLM-L6-v2",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Preset,
    Model,
    Method,
    Seeds,
    BatchSize,
    LearningRate,
    Epochs,
    MaxSteps,
    MaxLen,
    Fractions,
    Device,
    Runs,
}

impl FieldKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Preset => "preset",
            Self::Model => "model",
            Self::Method => "method",
            Self::Seeds => "seeds",
            Self::BatchSize => "batch size",
            Self::LearningRate => "learning rate",
            Self::Epochs => "epochs",
            Self::MaxSteps => "max steps",
            Self::MaxLen => "max length",
            Self::Fractions => "target fractions",
            Self::Device => "device",
            Self::Runs => "launch",
        }
    }

    /// The preset key a changed field overrides.
    fn key(self) -> Option<&'static str> {
        match self {
            Self::Model => Some("sweep.models"),
            Self::Method => Some("sweep.methods"),
            Self::Seeds => Some("sweep.seeds"),
            Self::BatchSize => Some("train.batch_size"),
            Self::LearningRate => Some("train.lr"),
            Self::Epochs => Some("train.epochs"),
            Self::MaxSteps => Some("train.max_steps"),
            Self::MaxLen => Some("train.max_len"),
            Self::Fractions => Some("target.fractions"),
            Self::Device => Some("train.device"),
            Self::Preset | Self::Runs => None,
        }
    }

    /// The TOML value of a text field, or why the text is not one.
    fn parse(self, text: &str) -> Result<toml::Value, String> {
        let items: Vec<&str> = text.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        let integer = |s: &str| s.parse::<u64>().map_err(|_| format!("`{s}` is not a whole number"));
        let float = |s: &str| s.parse::<f64>().map_err(|_| format!("`{s}` is not a number"));
        let int_value = |v: u64| i64::try_from(v).map(toml::Value::Integer).map_err(|_| format!("{v} is too large"));
        match self {
            Self::Seeds => {
                let seeds = items.iter().map(|s| integer(s).and_then(int_value)).collect::<Result<Vec<_>, _>>()?;
                Ok(toml::Value::Array(seeds))
            }
            Self::Fractions => {
                let fractions = items.iter().map(|s| float(s).map(toml::Value::Float)).collect::<Result<_, _>>()?;
                Ok(toml::Value::Array(fractions))
            }
            Self::BatchSize | Self::MaxSteps | Self::MaxLen => int_value(integer(text.trim())?),
            Self::LearningRate | Self::Epochs => Ok(toml::Value::Float(float(text.trim())?)),
            _ => Ok(toml::Value::String(text.to_string())),
        }
    }
}

/// A field's value: one of several options, or free text.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Option 0 is the preset's own value.
    Choice {
        options: Vec<String>,
        selected: usize,
    },
    Text {
        text: String,
        initial: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub kind: FieldKind,
    pub input: Input,
    pub error: Option<String>,
}

impl Field {
    fn choice(kind: FieldKind, options: Vec<String>) -> Self {
        Self { kind, input: Input::Choice { options, selected: 0 }, error: None }
    }

    fn text(kind: FieldKind, initial: String) -> Self {
        Self { kind, input: Input::Text { text: initial.clone(), initial }, error: None }
    }

    /// The value as shown.
    pub fn display(&self) -> &str {
        match &self.input {
            Input::Choice { options, selected } => options.get(*selected).map_or("", String::as_str),
            Input::Text { text, .. } => text,
        }
    }

    /// The `--set` override this field asks for, if it was changed.
    fn override_arg(&self) -> Result<Option<String>, String> {
        let Some(key) = self.kind.key() else { return Ok(None) };
        let value = match &self.input {
            Input::Choice { selected: 0, .. } => return Ok(None),
            Input::Text { text, initial } if text == initial => return Ok(None),
            Input::Choice { options, selected } => {
                let chosen = toml::Value::String(options[*selected].clone());
                // The sweep lists take one entry; the device is a plain string.
                if self.kind == FieldKind::Device {
                    chosen
                } else {
                    toml::Value::Array(vec![chosen])
                }
            }
            Input::Text { text, .. } => self.kind.parse(text)?,
        };
        Ok(Some(format!("{key}={value}")))
    }
}

#[derive(Debug, Clone)]
pub struct SetupForm {
    pub presets: Vec<PathBuf>,
    models: Vec<String>,
    pub fields: Vec<Field>,
    pub focus: usize,
    /// The text being typed into the focused field.
    pub editing: Option<String>,
    /// The preset with the form's overrides, or why it cannot be used.
    pub resolved: Result<Preset, String>,
    /// Where models and datasets are found and fetched from.
    sources: Sources,
    /// The models and datasets of the resolved preset, and where each would come from.
    pub needs: Vec<Need>,
}

impl SetupForm {
    /// A form over the preset files `presets` (the first is loaded), offering `models` besides the
    /// known ones.
    pub fn new(presets: Vec<PathBuf>, models: Vec<String>) -> Self {
        Self::with_sources(presets, models, Sources::from_env())
    }

    /// [`SetupForm::new`] with explicit model and data sources instead of the environment's.
    pub fn with_sources(presets: Vec<PathBuf>, models: Vec<String>, sources: Sources) -> Self {
        let mut form = Self {
            presets,
            models,
            fields: Vec::new(),
            focus: 0,
            editing: None,
            resolved: Err("no preset: start with --preset FILE, or run where presets/*.toml are".into()),
            sources,
            needs: Vec::new(),
        };
        form.load_preset(0);
        form
    }

    fn preset_path(&self) -> Option<&PathBuf> {
        let index = match self.fields.first().map(|f| &f.input) {
            Some(Input::Choice { selected, .. }) => *selected,
            _ => 0,
        };
        self.presets.get(index)
    }

    /// Loads preset `index` and lays out the fields with its values.
    fn load_preset(&mut self, index: usize) {
        let Some(path) = self.presets.get(index) else { return };
        let names: Vec<String> = self.presets.iter().map(|p| p.display().to_string()).collect();
        let preset_field =
            Field { kind: FieldKind::Preset, input: Input::Choice { options: names, selected: index }, error: None };
        match Preset::load(path, &[]) {
            Ok(preset) => {
                self.fields = std::iter::once(preset_field).chain(self.fields_of(&preset)).collect();
                self.resolve();
            }
            Err(e) => {
                self.fields = vec![preset_field];
                self.resolved = Err(format!("{e:#}"));
            }
        }
        self.focus = self.focus.min(self.fields.len() - 1);
    }

    fn fields_of(&self, preset: &Preset) -> Vec<Field> {
        let sweep = &preset.sweep;
        let join = |items: Vec<String>| items.join(", ");
        let mut models = vec![format!("sweep: {}", sweep.models.join(", "))];
        for model in KNOWN_MODELS.iter().map(|m| m.to_string()).chain(self.models.iter().cloned()) {
            if !models.contains(&model) && sweep.models != [model.clone()] {
                models.push(model);
            }
        }
        let mut methods = vec![format!("sweep: {}", join(sweep.methods.iter().map(|m| m.to_string()).collect()))];
        methods.extend(MethodName::ALL.iter().filter(|m| sweep.methods != [**m]).map(|m| m.to_string()));
        let train = &preset.train;
        let mut devices = vec![train.device.clone()];
        // Only the devices this build supports are offered (a preset may still name another: it is
        // shown, and fails with a clear error when launched).
        devices.extend(built_devices().into_iter().filter(|d| *d != train.device).map(String::from));
        let float = |v: f64| toml::Value::Float(v).to_string();
        let mut fields = vec![
            Field::choice(FieldKind::Model, models),
            Field::choice(FieldKind::Method, methods),
            Field::text(FieldKind::Seeds, join(sweep.seeds.iter().map(u64::to_string).collect())),
            Field::text(FieldKind::BatchSize, train.batch_size.to_string()),
            Field::text(FieldKind::LearningRate, format!("{:e}", train.lr)),
            Field::text(FieldKind::Epochs, float(train.epochs)),
            Field::text(FieldKind::MaxSteps, train.max_steps.to_string()),
            Field::text(FieldKind::MaxLen, train.max_len.to_string()),
        ];
        if let Some(target) = &preset.target {
            fields.push(Field::text(FieldKind::Fractions, join(target.fractions.iter().map(|f| float(*f)).collect())));
        }
        fields.push(Field::choice(FieldKind::Device, devices));
        fields.push(Field::choice(FieldKind::Runs, Vec::new()));
        fields
    }

    /// Reads the preset again with the form's overrides; errors are pinned to their field.
    fn resolve(&mut self) {
        let Some(path) = self.preset_path().cloned() else { return };
        let mut overrides = Vec::new();
        let mut syntax_errors = false;
        for field in &mut self.fields {
            match field.override_arg() {
                Ok(arg) => {
                    field.error = None;
                    overrides.extend(arg);
                }
                Err(e) => {
                    field.error = Some(e);
                    syntax_errors = true;
                }
            }
        }
        if syntax_errors {
            self.resolved = Err("fix the marked fields".into());
            return;
        }
        self.resolved = Preset::load(&path, &overrides).map_err(|e| format!("{e:#}"));
        self.refresh_needs();
        match &self.resolved {
            Ok(preset) => self.set_run_options(&preset.runs()),
            Err(message) => {
                let culprit = self.fields.iter_mut().find(|f| f.kind.key().is_some_and(|k| message.contains(k)));
                if let Some(field) = culprit {
                    field.error = Some(message.rsplit(": ").next().unwrap_or(message).to_string());
                }
            }
        }
    }

    fn set_run_options(&mut self, runs: &[RunSpec]) {
        let Some(field) = self.fields.iter_mut().find(|f| f.kind == FieldKind::Runs) else { return };
        let mut options = vec![match runs.len() {
            1 => "the run".to_string(),
            n => format!("all {n} runs, one after another"),
        }];
        if runs.len() > 1 {
            options.extend(runs.iter().map(|r| format!("only #{} {}", r.index, r.run_id)));
        }
        let selected = match &field.input {
            Input::Choice { selected, .. } => (*selected).min(options.len() - 1),
            Input::Text { .. } => 0,
        };
        field.input = Input::Choice { options, selected };
    }

    pub fn focused(&self) -> Option<&Field> {
        self.fields.get(self.focus)
    }

    pub fn move_focus(&mut self, down: bool) {
        let last = self.fields.len().saturating_sub(1);
        self.focus = if down { (self.focus + 1).min(last) } else { self.focus.saturating_sub(1) };
    }

    /// Steps the focused choice field; `forward` picks the next option.
    pub fn cycle(&mut self, forward: bool) {
        let Some(field) = self.fields.get_mut(self.focus) else { return };
        let Input::Choice { options, selected } = &mut field.input else { return };
        if options.is_empty() {
            return;
        }
        *selected =
            if forward { (*selected + 1) % options.len() } else { (*selected + options.len() - 1) % options.len() };
        if field.kind == FieldKind::Preset {
            let index = *selected;
            self.load_preset(index);
        } else {
            self.resolve();
        }
    }

    /// Starts editing the focused text field; false for a choice field.
    pub fn start_editing(&mut self) -> bool {
        match self.fields.get(self.focus).map(|f| &f.input) {
            Some(Input::Text { text, .. }) => {
                self.editing = Some(text.clone());
                true
            }
            _ => false,
        }
    }

    /// Keeps the typed text and validates the form again.
    pub fn finish_editing(&mut self) {
        let Some(typed) = self.editing.take() else { return };
        if let Some(Field { input: Input::Text { text, .. }, .. }) = self.fields.get_mut(self.focus) {
            *text = typed.trim().to_string();
        }
        self.resolve();
    }

    /// Looks again where the models and datasets are (a run may have downloaded them).
    pub fn refresh_needs(&mut self) {
        self.needs = self.resolved.as_ref().map_or_else(|_| Vec::new(), |preset| assets::needs(preset, &self.sources));
    }

    /// Where the sweep's model comes from, when it has one model.
    pub fn model_availability(&self) -> Option<&Availability> {
        let mut models = self.needs.iter().filter(|need| matches!(need.item, Item::Model(_)));
        match (models.next(), models.next()) {
            (Some(only), None) => Some(&only.availability),
            _ => None,
        }
    }

    /// What is missing while downloads are off, one line each; a launch refuses to start then.
    pub fn offline_problems(&self) -> Option<String> {
        assets::offline_problems(&self.needs, &self.sources)
    }

    /// The runs a launch would queue, or why there are none.
    pub fn runs(&self) -> Result<Vec<RunSpec>, String> {
        if self.fields.iter().any(|f| f.error.is_some()) {
            return Err("fix the marked fields first".into());
        }
        let runs = self.resolved.as_ref().map_err(Clone::clone)?.runs();
        let only = self.fields.iter().find_map(|f| match (&f.kind, &f.input) {
            (FieldKind::Runs, Input::Choice { selected, .. }) if *selected > 0 => Some(*selected),
            _ => None,
        });
        Ok(match only {
            Some(k) => runs.into_iter().filter(|r| r.index == k).collect(),
            None => runs,
        })
    }
}

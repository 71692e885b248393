//! Key bindings: the actions of the console, their default keys, and the user's overrides.
//!
//! Overrides live in `$XDG_CONFIG_HOME/sift-tui/keys.toml` (else `~/.config/sift-tui/keys.toml`).
//! Each entry names an action and replaces all of its default keys; actions left out keep theirs:
//!
//! ```toml
//! pause = ["p", "space"]   # a list of keys
//! checkpoint = "ctrl-s"    # or one key
//! quit = ["q", "ctrl-c"]
//! ```
//!
//! A key is a character (`p`, `E`, `?`), a name (`space`, `enter`, `esc`, `tab`, `backtab`,
//! `backspace`, `up`, `down`, `left`, `right`, `home`, `end`, `pageup`, `pagedown`, `f1`…`f12`), or
//! either with `ctrl-` / `alt-` in front. Binding one key to two actions is an error.
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Everything a key can ask of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    NextView,
    PrevView,
    Up,
    Down,
    Left,
    Right,
    Launch,
    Edit,
    Confirm,
    Cancel,
    PauseResume,
    Checkpoint,
    Stop,
    LogScale,
    SmoothMore,
    SmoothLess,
    Overlay,
    Zoom,
    Metric,
    Refresh,
    ExportMarkdown,
    ExportCsv,
    WriteFigures,
}

impl Action {
    pub const ALL: [Action; 25] = [
        Self::Launch,
        Self::PauseResume,
        Self::Checkpoint,
        Self::Stop,
        Self::Quit,
        Self::Help,
        Self::NextView,
        Self::PrevView,
        Self::Up,
        Self::Down,
        Self::Left,
        Self::Right,
        Self::Edit,
        Self::Confirm,
        Self::Cancel,
        Self::LogScale,
        Self::SmoothMore,
        Self::SmoothLess,
        Self::Overlay,
        Self::Zoom,
        Self::Metric,
        Self::Refresh,
        Self::ExportMarkdown,
        Self::ExportCsv,
        Self::WriteFigures,
    ];

    /// The name used in `keys.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Quit => "quit",
            Self::Help => "help",
            Self::NextView => "next-view",
            Self::PrevView => "prev-view",
            Self::Up => "up",
            Self::Down => "down",
            Self::Left => "left",
            Self::Right => "right",
            Self::Launch => "launch",
            Self::Edit => "edit",
            Self::Confirm => "confirm",
            Self::Cancel => "cancel",
            Self::PauseResume => "pause",
            Self::Checkpoint => "checkpoint",
            Self::Stop => "stop",
            Self::LogScale => "log-scale",
            Self::SmoothMore => "smooth-more",
            Self::SmoothLess => "smooth-less",
            Self::Overlay => "overlay",
            Self::Zoom => "zoom",
            Self::Metric => "metric",
            Self::Refresh => "refresh",
            Self::ExportMarkdown => "export-markdown",
            Self::ExportCsv => "export-csv",
            Self::WriteFigures => "write-figures",
        }
    }

    /// What the action does, for the help popup.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Quit => "quit (asks first while training; the run is checkpointed)",
            Self::Help => "show or hide this help",
            Self::NextView => "next view (setup, run, results)",
            Self::PrevView => "previous view",
            Self::Up => "previous field / run",
            Self::Down => "next field / run",
            Self::Left => "previous choice / chart",
            Self::Right => "next choice / chart",
            Self::Launch => "launch the selected runs (setup)",
            Self::Edit => "edit the focused field (Enter keeps, Esc drops)",
            Self::Confirm => "answer yes",
            Self::Cancel => "answer no, close a popup",
            Self::PauseResume => "pause or resume training",
            Self::Checkpoint => "write a checkpoint now",
            Self::Stop => "stop the run and the queue (checkpoint kept)",
            Self::LogScale => "log scale for loss and KL charts",
            Self::SmoothMore => "smooth loss and KL more",
            Self::SmoothLess => "smooth loss and KL less",
            Self::Overlay => "overlay the selected run on the charts",
            Self::Zoom => "enlarge the focused chart",
            Self::Metric => "metric of overlaid eval charts (acc, F1, MCC)",
            Self::Refresh => "re-read the results table",
            Self::ExportMarkdown => "export the table as Markdown (runs dir)",
            Self::ExportCsv => "export the table as CSV (runs dir)",
            Self::WriteFigures => "write the SVG figures (runs dir/figures)",
        }
    }

    fn from_name(name: &str) -> Option<Action> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    fn default_keys(self) -> &'static [&'static str] {
        match self {
            Self::Quit => &["q", "ctrl-c"],
            Self::Help => &["?", "f1"],
            Self::NextView => &["tab"],
            Self::PrevView => &["backtab"],
            Self::Up => &["up", "k"],
            Self::Down => &["down", "j"],
            Self::Left => &["left", "h"],
            Self::Right => &["right", "l"],
            Self::Launch => &["enter"],
            Self::Edit => &["i"],
            Self::Confirm => &["y"],
            Self::Cancel => &["n", "esc"],
            Self::PauseResume => &["p", "space"],
            Self::Checkpoint => &["c"],
            Self::Stop => &["s"],
            Self::LogScale => &["L"],
            Self::SmoothMore => &["]"],
            Self::SmoothLess => &["["],
            Self::Overlay => &["o"],
            Self::Zoom => &["z"],
            Self::Metric => &["m"],
            Self::Refresh => &["r"],
            Self::ExportMarkdown => &["e"],
            Self::ExportCsv => &["E"],
            Self::WriteFigures => &["P"],
        }
    }
}

/// A key with its modifiers, normalised so that `E` and shift-`e` are one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    code: KeyCode,
    modifiers: KeyModifiers,
}

impl Key {
    pub fn new(code: KeyCode, modifiers: KeyModifiers) -> Self {
        // Terminals report shifted characters as the character itself, with or without SHIFT.
        let mut modifiers = modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(code, KeyCode::Char(_) | KeyCode::BackTab) {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        Self { code, modifiers }
    }

    pub fn parse(text: &str) -> anyhow::Result<Key> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
                modifiers |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-").filter(|r| !r.is_empty()) {
                modifiers |= KeyModifiers::ALT;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "space" => KeyCode::Char(' '),
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            f if f.starts_with('f') && f[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) => {
                KeyCode::F(f[1..].parse().context("function key number")?)
            }
            single if single.chars().count() == 1 => KeyCode::Char(single.chars().next().context("one character")?),
            _ => bail!("`{text}` is not a key (e.g. `p`, `E`, `space`, `ctrl-c`, `f1`)"),
        };
        Ok(Key::new(code, modifiers))
    }
}

impl From<KeyEvent> for Key {
    fn from(event: KeyEvent) -> Self {
        Key::new(event.code, event.modifiers)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Which action each key triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyMap {
    actions: HashMap<Key, Action>,
}

impl Default for KeyMap {
    fn default() -> Self {
        Self::from_bindings(&default_bindings()).expect("default keys do not clash")
    }
}

/// Every action with its default keys (constants, so parsing them cannot fail).
fn default_bindings() -> Vec<(Action, Vec<Key>)> {
    let parse = |text: &&str| Key::parse(text).expect("default keys parse");
    Action::ALL.iter().map(|&action| (action, action.default_keys().iter().map(parse).collect())).collect()
}

impl KeyMap {
    /// The action of a key press, if any.
    pub fn action(&self, key: KeyEvent) -> Option<Action> {
        self.actions.get(&Key::from(key)).copied()
    }

    /// The keys of an action, in a stable order, for the help popup and hints.
    pub fn keys_of(&self, action: Action) -> Vec<Key> {
        let mut keys: Vec<Key> = self.actions.iter().filter(|(_, a)| **a == action).map(|(k, _)| *k).collect();
        // Plain characters first: `q` before `ctrl-c`, `p` before `space`.
        keys.sort_by_key(|k| (!k.modifiers.is_empty(), !matches!(k.code, KeyCode::Char(c) if c != ' '), k.to_string()));
        keys
    }

    /// The first key of an action as text, for hints (`?` for help).
    pub fn hint(&self, action: Action) -> String {
        self.keys_of(action).first().map(Key::to_string).unwrap_or_else(|| "(unbound)".into())
    }

    /// Every key of an action, `n/esc`, for popups that say how to answer.
    pub fn all_hints(&self, action: Action) -> String {
        let keys: Vec<String> = self.keys_of(action).iter().map(Key::to_string).collect();
        if keys.is_empty() {
            "(unbound)".into()
        } else {
            keys.join("/")
        }
    }

    /// The default bindings with a `keys.toml` document applied.
    pub fn from_toml(text: &str) -> anyhow::Result<KeyMap> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
        let mut bindings = default_bindings();
        for (name, value) in &table {
            let action = Action::from_name(name).with_context(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                format!("unknown action `{name}` (actions: {})", names.join(", "))
            })?;
            let texts: Vec<&str> = match value {
                toml::Value::String(key) => vec![key.as_str()],
                toml::Value::Array(keys) => keys
                    .iter()
                    .map(|k| k.as_str().with_context(|| format!("`{name}`: keys are strings")))
                    .collect::<anyhow::Result<_>>()?,
                _ => bail!("`{name}`: expected a key or a list of keys"),
            };
            let keys = texts.into_iter().map(Key::parse).collect::<anyhow::Result<Vec<_>>>()?;
            if let Some(entry) = bindings.iter_mut().find(|(a, _)| *a == action) {
                entry.1 = keys;
            }
        }
        Self::from_bindings(&bindings)
    }

    fn from_bindings(bindings: &[(Action, Vec<Key>)]) -> anyhow::Result<KeyMap> {
        let mut actions = HashMap::new();
        for (action, keys) in bindings {
            for key in keys {
                if let Some(other) = actions.insert(*key, *action).filter(|other| other != action) {
                    bail!("key `{key}` is bound to both `{}` and `{}`", other.name(), action.name());
                }
            }
        }
        Ok(KeyMap { actions })
    }

    /// The user's bindings, or the defaults when there is no file. A broken file yields the
    /// defaults and a message saying why.
    pub fn load() -> (KeyMap, Option<String>) {
        let Some(path) = config_path() else { return (KeyMap::default(), None) };
        match std::fs::read_to_string(&path) {
            Ok(text) => match KeyMap::from_toml(&text) {
                Ok(map) => (map, None),
                Err(e) => (KeyMap::default(), Some(format!("{}: {e:#}; using the default keys", path.display()))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (KeyMap::default(), None),
            Err(e) => (KeyMap::default(), Some(format!("{}: {e}; using the default keys", path.display()))),
        }
    }
}

/// `$XDG_CONFIG_HOME/sift-tui/keys.toml`, else `$HOME/.config/sift-tui/keys.toml`.
pub fn config_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let config = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|home| home.join(".config")))?;
    Some(config_file(&config))
}

fn config_file(config_dir: &Path) -> PathBuf {
    config_dir.join("sift-tui").join("keys.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_cover_the_documented_keys() {
        let map = KeyMap::default();
        assert_eq!(map.action(press(KeyCode::Char('p'), KeyModifiers::NONE)), Some(Action::PauseResume));
        assert_eq!(map.action(press(KeyCode::Char(' '), KeyModifiers::NONE)), Some(Action::PauseResume));
        assert_eq!(map.action(press(KeyCode::Char('E'), KeyModifiers::SHIFT)), Some(Action::ExportCsv));
        assert_eq!(map.action(press(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(Action::Quit));
        assert_eq!(map.action(press(KeyCode::BackTab, KeyModifiers::SHIFT)), Some(Action::PrevView));
        assert_eq!(map.action(press(KeyCode::Char('x'), KeyModifiers::NONE)), None);
    }

    #[test]
    fn overrides_replace_an_actions_keys() {
        let map = KeyMap::from_toml("pause = \"ctrl-p\"\ncheckpoint = [\"C\", \"f5\"]\n").unwrap();
        assert_eq!(map.action(press(KeyCode::Char('p'), KeyModifiers::CONTROL)), Some(Action::PauseResume));
        assert_eq!(map.action(press(KeyCode::Char('p'), KeyModifiers::NONE)), None);
        assert_eq!(map.action(press(KeyCode::F(5), KeyModifiers::NONE)), Some(Action::Checkpoint));
        assert_eq!(map.hint(Action::Checkpoint), "C");
    }

    #[test]
    fn bad_files_are_explained() {
        let unknown = KeyMap::from_toml("paws = \"p\"").unwrap_err().to_string();
        assert!(unknown.contains("unknown action `paws`"), "{unknown}");
        let clash = KeyMap::from_toml("stop = \"p\"").unwrap_err().to_string();
        assert!(clash.contains("bound to both"), "{clash}");
        let key = KeyMap::from_toml("stop = \"shift-s\"").unwrap_err().to_string();
        assert!(key.contains("not a key"), "{key}");
    }

    #[test]
    fn config_file_sits_in_a_sift_tui_folder() {
        assert_eq!(config_file(Path::new("/cfg")), Path::new("/cfg/sift-tui/keys.toml"));
    }
}

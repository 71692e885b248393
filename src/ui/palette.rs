//! The console's colours by meaning, so that every view says "a hint" or "an error" the same way.
use ratatui::style::{Color, Modifier, Style};

/// Secondary text: hints, footnotes, idle borders, axes; runs that are not moving.
pub const QUIET: Color = Color::DarkGray;
pub const DIM: Style = Style::new().fg(QUIET);
/// Values the user can change, and titles.
pub const ACCENT: Style = Style::new().fg(Color::Cyan);
/// The focused field, chart or choice.
pub const FOCUS: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// A field being edited.
pub const EDITING: Style = Style::new().fg(Color::Black).bg(Color::Yellow);
/// The console's name in the tab bar.
pub const BADGE: Style = Style::new().fg(Color::Black).bg(Color::Cyan);
/// A trainer failure across the top of the run view.
pub const BANNER: Style = Style::new().fg(Color::White).bg(Color::Red);

pub const GOOD: Color = Color::Green;
pub const WARN: Color = Color::Yellow;
pub const ERROR: Color = Color::Red;
/// Finished runs.
pub const DONE: Color = Color::Cyan;
/// Gauge troughs.
pub const TROUGH: Color = Color::Black;
/// The sweep's progress gauge.
pub const PROGRESS: Color = Color::Blue;

/// One colour per overlaid run, in order; a single run's adversarial KL takes [`KL_ALONE`].
pub const SERIES: [Color; 6] =
    [Color::Cyan, Color::Magenta, Color::Yellow, Color::Green, Color::LightBlue, Color::LightRed];
pub const KL_ALONE: Color = Color::Magenta;
/// The two scores of the evaluation chart.
pub const ACCURACY: Color = Color::Green;
pub const MCC: Color = Color::Yellow;

/// Text in one of the plain colours above.
pub const fn fg(color: Color) -> Style {
    Style::new().fg(color)
}

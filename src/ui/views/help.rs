//! The help popup: every action and its keys, as bound now (including `keys.toml` overrides).
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::centered;
use crate::ui::app::App;
use crate::ui::keys::Action;
use crate::ui::palette;

pub fn draw(frame: &mut Frame, app: &App) {
    let mut lines: Vec<Line> = Action::ALL
        .iter()
        .map(|&action| {
            let keys: Vec<String> = app.keys.keys_of(action).iter().map(ToString::to_string).collect();
            Line::from(vec![
                Span::styled(format!("{:<16}", keys.join(" ")), palette::FOCUS),
                Span::raw(action.describe()),
            ])
        })
        .collect();
    let file =
        app.keys_file.as_ref().map_or("sift-tui/keys.toml in the config directory".into(), |p| p.display().to_string());
    let gray = palette::DIM;
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(format!("Rebind in {file}:"), gray)));
    lines.push(Line::from(Span::styled(
        "one line per action, e.g.  pause = [\"p\", \"space\"]  stop = \"ctrl-x\"",
        gray,
    )));
    let area = centered(frame.area(), 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" Keys ").border_style(palette::ACCENT);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

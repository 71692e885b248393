//! The results view: the transfer table as it fills in, and how to export it.
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::ui::app::App;
use crate::ui::keys::Action;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let keys = &app.keys;
    let title = format!(
        " Results · {} Markdown · {} CSV · {} refresh ",
        keys.hint(Action::ExportMarkdown),
        keys.hint(Action::ExportCsv),
        keys.hint(Action::Refresh)
    );
    let block = Block::bordered().title(title);
    let table = match &app.results {
        Ok(table) => table,
        Err(why) => {
            frame.render_widget(Paragraph::new(why.as_str()).block(block), area);
            return;
        }
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [table_area, notes_area] =
        Layout::vertical([Constraint::Length(table.rows.len() as u16 + 2), Constraint::Min(0)]).areas(inner);
    let widths: Vec<Constraint> = (0..table.header.len())
        .map(|c| {
            let widest =
                table.rows.iter().filter_map(|r| r.get(c)).chain(table.header.get(c)).map(|s| s.chars().count());
            Constraint::Length(widest.max().unwrap_or(0) as u16)
        })
        .collect();
    let header = Row::new(table.header.clone()).style(Style::new().add_modifier(Modifier::BOLD)).bottom_margin(1);
    let rows = table.rows.iter().map(|cells| {
        let significant = cells.iter().any(|c| c.ends_with('*'));
        Row::new(cells.clone()).style(if significant { Style::new().fg(Color::Green) } else { Style::new() })
    });
    frame.render_widget(Table::new(rows, widths).header(header).column_spacing(2), table_area);
    let notes: Vec<Line> =
        table.notes.iter().map(|n| Line::from(n.as_str()).style(Style::new().fg(Color::DarkGray))).collect();
    frame.render_widget(Paragraph::new(notes).wrap(Wrap { trim: true }), notes_area);
}

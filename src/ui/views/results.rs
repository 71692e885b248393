//! The results view: the transfer table as it fills in, the forest plot of every method's
//! difference from standard beside it, and how to export both.
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::experiment::table::{header, row_texts, Summary};
use crate::plot::forest::{forest_panels, ForestPanel};
use crate::ui::app::App;
use crate::ui::keys::Action;
use crate::ui::palette;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let keys = &app.keys;
    let title = format!(
        " Results · {} Markdown · {} CSV · {} figures · {} refresh ",
        keys.hint(Action::ExportMarkdown),
        keys.hint(Action::ExportCsv),
        keys.hint(Action::WriteFigures),
        keys.hint(Action::Refresh)
    );
    let block = Block::bordered().title(title);
    let summary = match &app.results {
        Ok(summary) => summary,
        Err(why) => {
            frame.render_widget(Paragraph::new(why.as_str()).block(block), area);
            return;
        }
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let panels = forest_panels(summary);
    let rows = summary.rows().count() as u16;
    let forest_height = forest_height(&panels);
    let [table_area, forest_area, notes_area] =
        Layout::vertical([Constraint::Length(rows + 2), Constraint::Length(forest_height), Constraint::Min(0)])
            .areas(inner);
    draw_table(frame, table_area, summary);
    draw_forest(frame, forest_area, &panels);
    let notes: Vec<Line> = summary.footnotes.iter().map(|n| Line::from(n.as_str()).style(palette::DIM)).collect();
    frame.render_widget(Paragraph::new(notes).wrap(Wrap { trim: true }), notes_area);
}

fn draw_table(frame: &mut Frame, area: Rect, summary: &Summary) {
    let header_texts = header(summary);
    let texts: Vec<Vec<String>> = summary.rows().map(|row| row_texts(summary, row)).collect();
    let widths: Vec<Constraint> = (0..header_texts.len())
        .map(|c| {
            let widest = texts.iter().filter_map(|r| r.get(c)).chain(header_texts.get(c)).map(|s| s.chars().count());
            Constraint::Length(widest.max().unwrap_or(0) as u16)
        })
        .collect();
    let header = Row::new(header_texts).style(Style::new().add_modifier(Modifier::BOLD)).bottom_margin(1);
    let rows = summary.rows().zip(texts).map(|(row, texts)| {
        let significant = row.iter().any(|cell| cell.is_significant());
        // After the row's labels come (value, Δ) pairs in column order; a single-class value is yellow.
        let labels = texts.len() - 2 * summary.columns.len();
        let single_class = summary
            .columns
            .iter()
            .flat_map(|column| [row.iter().any(|cell| &cell.column == column && cell.single_class_runs > 0), false]);
        let flags = std::iter::repeat_n(false, labels).chain(single_class);
        let cells = texts.into_iter().zip(flags).map(|(text, single)| {
            Cell::from(text).style(if single { palette::fg(palette::WARN) } else { Style::new() })
        });
        Row::new(cells.collect::<Vec<_>>()).style(if significant { palette::fg(palette::GOOD) } else { Style::new() })
    });
    frame.render_widget(Table::new(rows, widths).header(header).column_spacing(2), area);
}

/// Rows of the tallest panel, its borders and its axis line; nothing without panels.
fn forest_height(panels: &[ForestPanel]) -> u16 {
    panels.iter().map(|p| p.rows.len() as u16 + 3).max().unwrap_or(0)
}

/// The panels side by side, each a bordered box: a row per method with its interval `├──●──┤`,
/// the zero line `│` and the majority-class baseline `┊` (named in the bottom border when it is off
/// scale), and the range on the axis line.
fn draw_forest(frame: &mut Frame, area: Rect, panels: &[ForestPanel]) {
    if panels.is_empty() {
        return;
    }
    let several_models = panels.iter().any(|p| (p.preset, p.model) != (panels[0].preset, panels[0].model));
    let constraints = vec![Constraint::Ratio(1, panels.len() as u32); panels.len()];
    for (panel, cell) in panels.iter().zip(Layout::horizontal(constraints).split(area).iter()) {
        let title = if several_models {
            format!(" {} · {} ", panel.model, panel.title())
        } else {
            format!(" {} ", panel.title())
        };
        let mut block = Block::bordered().title(title).border_style(palette::DIM);
        match (panel.baseline_on_scale(), panel.baseline) {
            (Some(_), _) => block = block.title_bottom(" ┊ majority-class baseline "),
            (None, Some(b)) => block = block.title_bottom(format!(" majority-class baseline {b:+.3}, off scale ")),
            (None, None) => {}
        }
        let inner = block.inner(*cell);
        frame.render_widget(block, *cell);
        frame.render_widget(Paragraph::new(forest_lines(panel, inner.width as usize)), inner);
    }
}

/// The text lines of one panel `width` cells wide.
fn forest_lines(panel: &ForestPanel, width: usize) -> Vec<Line<'static>> {
    let labels: Vec<String> = panel.rows.iter().map(|r| r.label()).collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 1;
    let plot_width = width.saturating_sub(label_width);
    if plot_width < 3 {
        return Vec::new();
    }
    let [lo, hi] = panel.range();
    let column = |v: f64| {
        (((v - lo) / (hi - lo)) * (plot_width - 1) as f64).round().clamp(0.0, (plot_width - 1) as f64) as usize
    };
    let zero = column(0.0);
    let baseline = panel.baseline_on_scale().map(column);
    let mut lines = Vec::new();
    for (row, label) in panel.rows.iter().zip(&labels) {
        let mut chars = vec![' '; plot_width];
        if let Some(b) = baseline {
            chars[b] = '┊';
        }
        chars[zero] = '│';
        let d = row.difference;
        let (from, to) = (column(d.lo), column(d.hi));
        for c in &mut chars[from..=to] {
            *c = '─';
        }
        if from < zero && zero < to {
            chars[zero] = '┼';
        }
        chars[from] = '├';
        chars[to] = '┤';
        chars[column(d.diff)] = '●';
        let style = if d.significant { palette::fg(palette::GOOD) } else { Style::new() };
        let text: String = chars.into_iter().collect();
        lines.push(Line::from(vec![Span::raw(format!("{label:<label_width$}")), Span::styled(text, style)]));
    }
    // The axis: the range's ends and 0, where they fit without overlapping.
    let mut axis = vec![' '; plot_width];
    let (left, right) = (format!("{lo:+.2}"), format!("{hi:+.2}"));
    if left.len() < zero {
        axis.splice(..left.len(), left.chars());
    }
    axis[zero] = '0';
    if let Some(start) = plot_width.checked_sub(right.len()).filter(|&start| start > zero + 1) {
        axis.splice(start.., right.chars());
    }
    let axis: String = axis.into_iter().collect();
    lines.push(Line::from(vec![Span::raw(" ".repeat(label_width)), Span::styled(axis, palette::DIM)]));
    lines
}

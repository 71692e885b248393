//! The setup view: the form on the left, what a launch would queue on the right.
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use crate::model::resolve::Availability;
use crate::ui::app::App;
use crate::ui::form::{Field, FieldKind, Input};
use crate::ui::keys::Action;
use crate::ui::palette;

const LABEL_WIDTH: usize = 17;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let [form_area, plan_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    draw_form(frame, form_area, app);
    draw_plan(frame, plan_area, app);
}

fn draw_form(frame: &mut Frame, area: Rect, app: &App) {
    let form = &app.setup;
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        lines.push(field_line(field, focused, form.editing.as_deref().filter(|_| focused)));
        // On a line of its own: a model id can take the whole width.
        if let Some(availability) = form.model_availability().filter(|_| field.kind == FieldKind::Model) {
            let pad = Span::raw(" ".repeat(LABEL_WIDTH + 1));
            lines.push(Line::from(vec![pad, availability_span(availability)]));
        }
        if let Some(error) = &field.error {
            let pad = " ".repeat(LABEL_WIDTH + 2);
            lines.push(Line::from(Span::styled(format!("{pad}{error}"), palette::fg(palette::ERROR))));
        }
    }
    let keys = &app.keys;
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        format!(
            "{}/{} field · {}/{} choose · {} edit · {} launch",
            keys.hint(Action::Up),
            keys.hint(Action::Down),
            keys.hint(Action::Left),
            keys.hint(Action::Right),
            keys.hint(Action::Edit),
            keys.hint(Action::Launch)
        ),
        palette::DIM,
    )));
    let block = Block::bordered().title(" Setup ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn field_line<'a>(field: &'a Field, focused: bool, editing: Option<&'a str>) -> Line<'a> {
    let marker = if focused { "▶ " } else { "  " };
    let label = format!("{marker}{:<LABEL_WIDTH$}", field.kind.label());
    let label_style = if focused { palette::FOCUS } else { Style::new() };
    let value = match (editing, &field.input) {
        (Some(text), _) => Span::styled(format!("{text}▏"), palette::EDITING),
        (None, Input::Choice { options, .. }) if focused && options.len() > 1 => {
            Span::styled(format!("◀ {} ▶", field.display()), palette::ACCENT)
        }
        (None, Input::Text { text, initial }) if text != initial => {
            Span::styled(field.display(), palette::ACCENT.add_modifier(Modifier::BOLD))
        }
        (None, _) => Span::raw(field.display()),
    };
    let style = if field.error.is_some() { palette::fg(palette::ERROR) } else { label_style };
    Line::from(vec![Span::styled(label, style), value])
}

fn draw_plan(frame: &mut Frame, area: Rect, app: &App) {
    let form = &app.setup;
    let mut lines: Vec<Line> = Vec::new();
    match (form.runs(), &form.resolved) {
        (Ok(runs), Ok(preset)) => {
            if !preset.description.is_empty() {
                lines.push(Line::from(Span::styled(preset.description.clone(), palette::DIM)));
                lines.push(Line::from(""));
            }
            let title = match runs.len() {
                1 => "Enter launches 1 run:".to_string(),
                n => format!("Enter queues {n} runs, one after another:"),
            };
            lines.push(Line::from(Span::styled(title, Style::new().add_modifier(Modifier::BOLD))));
            lines.extend(runs.iter().map(|r| Line::from(format!("{:>3}  {}", r.index, r.run_id))));
            lines.push(Line::from(""));
            let target = match &preset.target {
                Some(t) => format!("target fractions {:?}", t.fractions),
                None => "no target stage".into(),
            };
            lines.push(Line::from(Span::styled(
                format!("source limit {} · {target} · eval every {}", preset.source.limit, preset.train.eval_every),
                palette::DIM,
            )));
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled("Needs:", Style::new().add_modifier(Modifier::BOLD))));
            for need in &form.needs {
                lines.push(Line::from(vec![
                    Span::raw(format!("  {}:", need.item)),
                    availability_span(&need.availability),
                ]));
            }
            if let Some(problems) = form.offline_problems() {
                lines.push(Line::from(""));
                lines.extend(
                    problems.lines().map(|line| Line::from(Span::styled(line.to_owned(), palette::fg(palette::ERROR)))),
                );
            }
        }
        (Err(why), _) => {
            lines.push(Line::from(Span::styled(why, palette::fg(palette::ERROR))));
        }
        (Ok(_), Err(why)) => lines.push(Line::from(Span::styled(why.clone(), palette::fg(palette::ERROR)))),
    }
    let block = Block::bordered().title(" Launch ");
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), area);
}

/// `local <dir>`, `cached`, `download` or `missing (offline)`, coloured by what a launch will do.
fn availability_span(availability: &Availability) -> Span<'static> {
    let color = match availability {
        Availability::Local(_) | Availability::Cached(_) => palette::GOOD,
        Availability::Download => palette::WARN,
        Availability::MissingOffline => palette::ERROR,
    };
    Span::styled(format!(" {availability}"), Style::new().fg(color))
}

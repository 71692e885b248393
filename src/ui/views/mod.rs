//! Rendering: one function per view, all reading the [`App`] and nothing else.
mod help;
mod results;
mod run;
mod setup;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Tabs, Wrap};
use ratatui::Frame;

use super::app::{App, Mode, Popup};
use super::keys::Action;
use super::runs::Level;
use crate::ui::palette;

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &App) {
    let [header, body, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(frame.area());
    draw_header(frame, header, app);
    match app.view {
        super::app::View::Setup => setup::draw(frame, body, app),
        super::app::View::Run => run::draw(frame, body, app),
        super::app::View::Results => results::draw(frame, body, app),
    }
    draw_footer(frame, footer, app);
    match &app.popup {
        Some(Popup::Help) => help::draw(frame, app),
        Some(Popup::ConfirmQuit) => draw_confirm_quit(frame, app),
        Some(Popup::Failure { run, message }) => draw_failure(frame, app, run, message),
        None => {}
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let titles: Vec<&str> = app.views().iter().map(|v| v.title()).collect();
    let selected = app.views().iter().position(|v| *v == app.view);
    let name = match app.mode {
        Mode::Console => " sift-tui ",
        Mode::Watch => " sift-tui watch ",
    };
    let place = format!("runs: {} ", app.runs_dir);
    let [left, tabs, right] = Layout::horizontal([
        Constraint::Length(name.len() as u16),
        Constraint::Min(0),
        Constraint::Length(place.chars().count() as u16),
    ])
    .areas(area);
    frame.render_widget(Span::styled(name, palette::BADGE), left);
    let tabs_widget = Tabs::new(titles).select(selected).highlight_style(palette::FOCUS).divider("│");
    frame.render_widget(tabs_widget, tabs);
    frame.render_widget(Span::styled(place, palette::DIM), right);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = match &app.notice {
        Some(notice) => Line::from(Span::styled(notice.text.clone(), level_style(notice.level))),
        None => {
            let keys = &app.keys;
            let hint = |action: Action, what: &str| format!("{} {what}", keys.hint(action));
            let mut hints = vec![hint(Action::Help, "help"), hint(Action::NextView, "view")];
            if app.mode == Mode::Console {
                hints.extend([
                    hint(Action::Launch, "launch"),
                    hint(Action::PauseResume, "pause"),
                    hint(Action::Checkpoint, "checkpoint"),
                    hint(Action::Stop, "stop"),
                ]);
            }
            hints.push(hint(Action::Quit, "quit"));
            Line::from(Span::styled(hints.join(" · "), palette::DIM))
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

pub(super) fn level_style(level: Level) -> Style {
    match level {
        Level::Info => Style::new(),
        Level::Good => palette::fg(palette::GOOD),
        Level::Warn => palette::fg(palette::WARN),
        Level::Error => palette::fg(palette::ERROR).add_modifier(Modifier::BOLD),
    }
}

/// A rectangle of `width` × `height` cells in the middle of `area`, clipped to it.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] =
        Layout::vertical([Constraint::Length(height.min(area.height))]).flex(ratatui::layout::Flex::Center).areas(area);
    let [cell] =
        Layout::horizontal([Constraint::Length(width.min(area.width))]).flex(ratatui::layout::Flex::Center).areas(row);
    cell
}

fn draw_confirm_quit(frame: &mut Frame, app: &App) {
    let keys = &app.keys;
    let text = vec![
        Line::from("A run is training. Quit?"),
        Line::from("The trainer writes a checkpoint first;"),
        Line::from("the same launch resumes it later."),
        Line::from(""),
        Line::from(format!(
            "{} quit    {} keep training",
            keys.all_hints(Action::Confirm),
            keys.all_hints(Action::Cancel)
        )),
    ];
    let area = centered(frame.area(), 44, 7);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" Quit ").border_style(palette::fg(palette::WARN));
    frame.render_widget(Paragraph::new(text).block(block), area);
}

fn draw_failure(frame: &mut Frame, app: &App, run: &str, message: &str) {
    let red = palette::fg(palette::ERROR);
    let width = frame.area().width.saturating_sub(8).min(100);
    let inner = usize::from(width.saturating_sub(2).max(1));
    // Borders and two fixed lines, plus the message's wrapped lines: as many as fit on the screen.
    // The close hint sits in the bottom border, so no message hides it.
    let fits = usize::from(frame.area().height.saturating_sub(6).max(1));
    let wrapped = message.chars().count().div_ceil(inner).min(fits);
    let mut shown: String = message.chars().take(wrapped * inner).collect();
    if shown.len() < message.len() {
        shown = shown.chars().take(wrapped * inner - 1).collect::<String>() + "…";
    }
    let text = vec![
        Line::from(Span::styled(format!("run {run} failed:"), red.add_modifier(Modifier::BOLD))),
        Line::from(""),
        Line::from(shown),
    ];
    let hint = Line::from(Span::styled(
        format!(" {} close; the run's log and charts stay in the run view ", app.keys.all_hints(Action::Cancel)),
        palette::DIM,
    ));
    let area = centered(frame.area(), width, 4 + wrapped as u16);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(" Training failed ").title_bottom(hint).border_style(red);
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }).block(block), area);
}

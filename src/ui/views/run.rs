//! The run view: the runs, four braille charts (loss, adversarial KL, source dev, target), the
//! stage and sweep gauges, throughput and process figures, and the run's log.
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, LegendPosition, List, ListItem, Paragraph};
use ratatui::Frame;

use super::level_style;
use crate::metrics::{Metric, Split};
use crate::plot::scale::{format_number, Scale};
use crate::ui::app::{App, ChartKind, Mode};
use crate::ui::charts::{ChartView, Series};
use crate::ui::palette;
use crate::ui::procstat::format_bytes;
use crate::ui::runs::{clock, RunState, RunStatus};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(run) = app.runs.get(app.selected) else {
        let text = match app.mode {
            Mode::Console => "No runs yet: set one up in the Setup view and press Enter.".to_string(),
            Mode::Watch => format!("No runs under {} yet; waiting for some to appear.", app.runs_dir),
        };
        frame.render_widget(Paragraph::new(text).block(Block::bordered().title(" Run ")), area);
        return;
    };
    let banner = matches!(run.status, RunStatus::Failed(_)) as u16;
    let [banner_area, main, gauges, stats, log] = Layout::vertical([
        Constraint::Length(banner),
        Constraint::Min(10),
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Length(8),
    ])
    .areas(area);
    if let RunStatus::Failed(message) = &run.status {
        let text = format!(" ✗ {} failed: {message}", run.label());
        frame.render_widget(Paragraph::new(text).style(palette::BANNER), banner_area);
    }
    let [list_area, charts_area] = Layout::horizontal([Constraint::Length(28), Constraint::Min(20)]).areas(main);
    draw_run_list(frame, list_area, app);
    draw_charts(frame, charts_area, app);
    draw_gauges(frame, gauges, app, run);
    draw_stats(frame, stats, app, run);
    draw_log(frame, log, run);
}

fn status_symbol(status: &RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "·",
        RunStatus::Running => "▶",
        RunStatus::Paused => "‖",
        RunStatus::Finished => "✓",
        RunStatus::Stopped => "■",
        RunStatus::Failed(_) => "✗",
        RunStatus::Cancelled => "–",
        RunStatus::Skipped => "»",
        RunStatus::Idle => "?",
    }
}

fn status_color(status: &RunStatus) -> Color {
    match status {
        RunStatus::Running => palette::GOOD,
        RunStatus::Paused | RunStatus::Idle => palette::WARN,
        RunStatus::Finished => palette::DONE,
        RunStatus::Failed(_) => palette::ERROR,
        _ => palette::QUIET,
    }
}

/// The colour of each charted run, by run index.
fn run_color(app: &App, run: usize) -> Color {
    let position = app.charted_runs().iter().position(|&r| r == run).unwrap_or(0);
    palette::SERIES[position % palette::SERIES.len()]
}

fn draw_run_list(frame: &mut Frame, area: Rect, app: &App) {
    let same_model = app.runs.windows(2).all(|w| w[0].id.split("__").nth(1) == w[1].id.split("__").nth(1));
    let charted = app.charted_runs();
    let items: Vec<ListItem> = app
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let label = if same_model { run.short_label() } else { run.label() };
            let mark = if charted.len() > 1 && charted.contains(&i) {
                Span::styled("◆ ", Style::new().fg(run_color(app, i)))
            } else {
                Span::raw("  ")
            };
            let symbol =
                Span::styled(format!("{} ", status_symbol(&run.status)), Style::new().fg(status_color(&run.status)));
            let mut line = Line::from(vec![symbol, mark, Span::raw(label)]);
            if i == app.selected {
                line = line.style(Style::new().add_modifier(Modifier::REVERSED));
            }
            ListItem::new(line)
        })
        .collect();
    let (done, total) = app.sweep_progress();
    let block = Block::bordered().title(format!(" Runs {done}/{total} "));
    frame.render_widget(List::new(items).block(block), area);
}

fn draw_charts(frame: &mut Frame, area: Rect, app: &App) {
    let settings = &app.charts;
    if settings.zoomed {
        chart_view(app, settings.focus, &series_of(app, settings.focus)).render(frame, area);
        return;
    }
    let [top, bottom] = Layout::vertical([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(area);
    let [a, b] = Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(top);
    let [c, d] = Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(bottom);
    for (kind, cell) in ChartKind::ALL.into_iter().zip([a, b, c, d]) {
        chart_view(app, kind, &series_of(app, kind)).render(frame, cell);
    }
}

fn chart_view<'a>(app: &App, kind: ChartKind, series: &'a [Series]) -> ChartView<'a> {
    let settings = &app.charts;
    let trained = Scale { log_y: settings.log_y, smoothing: settings.smoothing_weight() };
    let mut options = Vec::new();
    if settings.log_y {
        options.push("log".to_string());
    }
    if settings.smoothing > 0 {
        options.push(format!("smooth {}", settings.smoothing_weight()));
    }
    let options = if options.is_empty() { String::new() } else { format!(" ({})", options.join(", ")) };
    let metric = if app.charted_runs().len() > 1 { settings.metric.label() } else { "accuracy, MCC" };
    let (title, scale, empty) = match kind {
        ChartKind::Loss => (format!("training loss{options}"), trained, "waiting for the first update…"),
        ChartKind::AdvKl => {
            (format!("adversarial KL{options}"), trained, "no adversarial term yet (standard has none)")
        }
        ChartKind::SourceDev => (format!("source dev · {metric}"), Scale::LINEAR, "no dev evaluation yet"),
        ChartKind::Target => (format!("target · {metric}"), Scale::LINEAR, "no target evaluation yet"),
    };
    // Losses fall and scores rise: each legend goes to the top corner its curves tend to leave.
    let legend = match kind {
        ChartKind::Loss | ChartKind::AdvKl => LegendPosition::TopRight,
        ChartKind::SourceDev | ChartKind::Target => LegendPosition::TopLeft,
    };
    let focused = settings.focus == kind;
    ChartView { title, series, scale, focused, x_range: Some(x_range(app)), legend, empty }
}

/// From 0 to the furthest update any charted run has reached, so the four charts line up.
fn x_range(app: &App) -> [f64; 2] {
    let furthest = app.charted_runs().into_iter().map(|i| &app.runs[i]).flat_map(|run| {
        let last_step = run.loss.last().map(|p| p.0);
        let last_eval = run.evals.last().map(|e| e.x);
        last_step.into_iter().chain(last_eval)
    });
    [0.0, furthest.fold(1.0, f64::max)]
}

/// The lines of one chart: per charted run, or a run's accuracy and MCC when it is alone.
fn series_of(app: &App, kind: ChartKind) -> Vec<Series> {
    let charted = app.charted_runs();
    let alone = charted.len() == 1;
    let mut series = Vec::new();
    for &index in &charted {
        let run = &app.runs[index];
        let color = run_color(app, index);
        let name = run.short_label();
        let named = |name: String, color: Color, points: Vec<(f64, f64)>| Series { name, color, points };
        match kind {
            ChartKind::Loss => series.push(named(name, color, run.loss.clone())),
            ChartKind::AdvKl => {
                series.push(named(name, if alone { palette::KL_ALONE } else { color }, run.adv_kl.clone()))
            }
            ChartKind::SourceDev | ChartKind::Target => {
                let wanted = |split: &Split| {
                    if kind == ChartKind::Target {
                        split.is_target()
                    } else {
                        *split == Split::SourceDev
                    }
                };
                if alone {
                    series.push(named("accuracy".into(), palette::ACCURACY, run.eval_points(wanted, Metric::Accuracy)));
                    series.push(named("MCC".into(), palette::MCC, run.eval_points(wanted, Metric::Mcc)));
                } else {
                    series.push(named(name, color, run.eval_points(wanted, app.charts.metric)));
                }
            }
        }
    }
    series.retain(|s| !s.points.is_empty());
    series
}

fn draw_gauges(frame: &mut Frame, area: Rect, app: &App, run: &RunState) {
    let [stage_area, sweep_area] = Layout::horizontal([Constraint::Ratio(2, 3), Constraint::Ratio(1, 3)]).areas(area);
    let (ratio, label, title) = match &run.stage {
        Some(stage) if stage.total_steps > 0 => {
            let step = stage.step().min(stage.total_steps);
            let of = if stage.count > 0 { format!(" {}/{}", stage.index + 1, stage.count) } else { String::new() };
            (
                step as f64 / stage.total_steps as f64,
                format!("{step}/{} updates", stage.total_steps),
                format!(" stage {}{of} ", stage.name),
            )
        }
        Some(stage) => (0.0, format!("update {}", stage.step()), format!(" stage {} ", stage.name)),
        // Downloading what the run lacks is its first phase.
        None => match &run.download {
            Some(transfer) => (
                transfer.total.map_or(0.0, |total| transfer.done as f64 / total.max(1) as f64),
                format!("{}: {}", transfer.file, transfer.describe()),
                " download ".to_string(),
            ),
            None => (0.0, run.status.word().to_string(), " stage ".to_string()),
        },
    };
    let stage_gauge = Gauge::default()
        .block(Block::bordered().title(title))
        .gauge_style(Style::new().fg(status_color(&run.status)).bg(palette::TROUGH))
        .ratio(ratio.clamp(0.0, 1.0))
        .label(label);
    frame.render_widget(stage_gauge, stage_area);
    let (done, total) = app.sweep_progress();
    let sweep_gauge = Gauge::default()
        .block(Block::bordered().title(" sweep "))
        .gauge_style(palette::fg(palette::PROGRESS).bg(palette::TROUGH))
        .ratio(if total > 0 { done as f64 / total as f64 } else { 0.0 })
        .label(format!("{done}/{total} runs"));
    frame.render_widget(sweep_gauge, sweep_area);
}

fn draw_stats(frame: &mut Frame, area: Rect, app: &App, run: &RunState) {
    let mut parts = vec![Span::styled(
        format!(" {} ", run.status.word()),
        Style::new().fg(palette::TROUGH).bg(status_color(&run.status)),
    )];
    let mut add = |text: String| parts.push(Span::raw(format!(" {text} ·")));
    if let Some(step) = &run.last_step {
        add(format!("loss {}", format_number(step.loss as f64)));
        if let Some(kl) = step.adv_kl {
            add(format!("adv KL {}", format_number(kl as f64)));
        }
        add(format!("lr {:.2e}", step.lr));
        add(format!("{:.1} samples/s", step.samples_per_sec));
    }
    let training = matches!(run.status, RunStatus::Running | RunStatus::Paused);
    if let Some(eta) = run.stage.as_ref().and_then(|s| s.eta()).filter(|_| training) {
        add(format!("ETA {}", clock(eta)));
    }
    // Watch mode would show its own process, not the runs' (they may be on other machines).
    if app.mode == Mode::Console {
        let usage = &app.usage;
        add(format!("CPU {}", usage.cpu_percent.map_or("n/a".into(), |p| format!("{p:.0}%"))));
        add(format!("RSS {}", usage.resident_bytes.map_or("n/a".into(), format_bytes)));
        if let Some(threads) = usage.threads {
            add(format!("{threads} thread{}", if threads == 1 { "" } else { "s" }));
        }
    }
    if let Some(last) = parts.last_mut() {
        *last = Span::raw(last.content.trim_end_matches(" ·").to_string());
    }
    frame.render_widget(Paragraph::new(Line::from(parts)), area);
}

fn draw_log(frame: &mut Frame, area: Rect, run: &RunState) {
    let visible = area.height.saturating_sub(2) as usize;
    let start = run.log.len().saturating_sub(visible);
    let lines: Vec<Line> =
        run.log[start..].iter().map(|l| Line::from(Span::styled(l.text.clone(), level_style(l.level)))).collect();
    let block = Block::bordered().title(format!(" log · {} ", run.id)).border_style(palette::DIM);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

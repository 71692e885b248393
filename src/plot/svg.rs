//! Drawing the figures with plotters' SVG backend: one file per figure, panels in a grid, a shared
//! legend on top. Methods keep one colour and one marker shape in every figure; the colours
//! (Okabe–Ito) differ in hue for the screen and the shapes tell them apart in grey print.
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::curves::Band;
use super::forest::ForestPanel;
use super::scale::{decimate, format_number};
use crate::method::MethodName;

type Panel<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Width of one panel in pixels (and its resolution for decimation).
const PANEL_WIDTH: u32 = 460;
const PANEL_HEIGHT: u32 = 320;
const HEADER_HEIGHT: u32 = 64;
const FONT: &str = "sans-serif";
/// The majority-class line.
const REFERENCE: RGBColor = RGBColor(0x80, 0x80, 0x80);
/// Markers drawn along a long line, enough to identify it without cluttering it.
const MARKERS_PER_LINE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    None,
    Cross,
    Triangle,
    Diamond,
    Square,
    Circle,
}

/// The colour and marker of a method, the same in every figure.
fn style(method: MethodName) -> (RGBColor, Shape) {
    match method {
        // Near-black, so that it is not mistaken for the axes.
        MethodName::Standard => (RGBColor(0x22, 0x22, 0x22), Shape::None),
        MethodName::R3f => (RGBColor(0xD5, 0x5E, 0x00), Shape::Cross),
        MethodName::Smart => (RGBColor(0xE6, 0x9F, 0x00), Shape::Triangle),
        MethodName::Alum => (RGBColor(0x00, 0x9E, 0x73), Shape::Diamond),
        MethodName::Sift => (RGBColor(0x00, 0x72, 0xB2), Shape::Square),
        MethodName::Freelb => (RGBColor(0xCC, 0x79, 0xA7), Shape::Circle),
    }
}

/// The `#rrggbb` a method's lines are drawn with, as plotters writes it.
pub fn method_color(method: MethodName) -> String {
    let (RGBColor(r, g, b), _) = style(method);
    format!("#{r:02X}{g:02X}{b:02X}")
}

fn failed(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{}: cannot draw the figure: {e}", path.display())
}

/// One panel of a line figure.
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    /// Each method's band, already transformed (smoothed, log10 when `log_y`).
    pub lines: Vec<(MethodName, Band)>,
    /// Draw a marker on every point (sparse curves such as evaluations) instead of a few.
    pub mark_every_point: bool,
}

/// A figure of line panels in `columns` columns, with a title and the methods' legend.
pub fn line_figure(
    path: &Path,
    title: &str,
    methods: &[MethodName],
    panels: &[LinePanel],
    columns: usize,
) -> anyhow::Result<()> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let size = (PANEL_WIDTH * columns as u32, HEADER_HEIGHT + PANEL_HEIGHT * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let (header, body) = root.split_vertically(HEADER_HEIGHT);
    draw_header(&header, title, methods).map_err(|e| failed(path, e))?;
    for (panel, area) in panels.iter().zip(body.split_evenly((rows, columns))) {
        draw_line_panel(&area, panel).map_err(|e| failed(path, e))?;
    }
    root.present().map_err(|e| failed(path, e))
}

type DrawResult = Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_header(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    methods: &[MethodName],
) -> DrawResult {
    area.draw(&Text::new(title.to_string(), (12, 8), (FONT, 20).into_font()))?;
    let y = 44;
    let mut x = 14;
    for &method in methods {
        let (color, shape) = style(method);
        area.draw(&PathElement::new(vec![(x, y), (x + 36, y)], color.stroke_width(2)))?;
        draw_pixel_marker(area, (x + 18, y), shape, color)?;
        area.draw(&Text::new(method.to_string(), (x + 44, y - 7), (FONT, 15).into_font()))?;
        x += 60 + 9 * method.as_str().len() as i32;
    }
    Ok(())
}

/// A marker at a pixel position of a drawing area (the legend).
fn draw_pixel_marker(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    at: (i32, i32),
    shape: Shape,
    color: RGBColor,
) -> DrawResult {
    let fill = color.filled();
    let (x, y) = at;
    match shape {
        Shape::None => Ok(()),
        Shape::Cross => area.draw(&Cross::new(at, 5, color.stroke_width(2))),
        Shape::Triangle => area.draw(&TriangleMarker::new(at, 6, fill)),
        Shape::Circle => area.draw(&Circle::new(at, 5, fill)),
        Shape::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], fill)),
        Shape::Diamond => area.draw(&Polygon::new(vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], fill)),
    }
}

/// Markers at data points of a panel.
fn draw_markers(chart: &mut Panel, points: &[(f64, f64)], shape: Shape, color: RGBColor) -> DrawResult {
    let fill = color.filled();
    let at = points.iter().copied();
    match shape {
        Shape::None => {}
        Shape::Cross => {
            chart.draw_series(at.map(|p| Cross::new(p, 5, color.stroke_width(2))))?;
        }
        Shape::Triangle => {
            chart.draw_series(at.map(|p| TriangleMarker::new(p, 6, fill)))?;
        }
        Shape::Circle => {
            chart.draw_series(at.map(|p| Circle::new(p, 5, fill)))?;
        }
        Shape::Square => {
            chart.draw_series(at.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], fill)))?;
        }
        Shape::Diamond => {
            let diamond = vec![(0, -6), (6, 0), (0, 6), (-6, 0)];
            chart.draw_series(at.map(|p| EmptyElement::at(p) + Polygon::new(diamond.clone(), fill)))?;
        }
    }
    Ok(())
}

/// Every `len / count`-th point, so that a long line carries `count` markers.
fn spaced(points: &[(f64, f64)], count: usize) -> Vec<(f64, f64)> {
    let stride = points.len().div_ceil(count.max(1)).max(1);
    points.iter().copied().step_by(stride).collect()
}

fn draw_line_panel(area: &DrawingArea<SVGBackend, plotters::coord::Shift>, panel: &LinePanel) -> DrawResult {
    let all = panel.lines.iter().flat_map(|(_, b)| b.low.iter().chain(&b.high).chain(&b.mean));
    let (mut x, mut y) = ([f64::INFINITY, f64::NEG_INFINITY], [f64::INFINITY, f64::NEG_INFINITY]);
    for &(px, py) in all.filter(|(px, py)| px.is_finite() && py.is_finite()) {
        x = [x[0].min(px), x[1].max(px)];
        y = [y[0].min(py), y[1].max(py)];
    }
    if !x[0].is_finite() {
        return Ok(());
    }
    x[1] = x[1].max(x[0] + 1.0);
    let pad = ((y[1] - y[0]) * 0.06).max(1e-3);
    let log_y = panel.log_y;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x[0]..x[1], (y[0] - pad)..(y[1] + pad))?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_labels(6)
        .y_labels(6)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format_number(if log_y { 10f64.powf(*v) } else { *v }))
        .draw()?;
    let buckets = (PANEL_WIDTH / 2) as usize;
    for (method, band) in &panel.lines {
        let (color, shape) = style(*method);
        let (low, high) = (decimate(&band.low, buckets), decimate(&band.high, buckets));
        if band.low != band.high {
            let outline: Vec<(f64, f64)> = low.iter().chain(high.iter().rev()).copied().collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.15).filled())))?;
        }
        let mean = decimate(&band.mean, buckets);
        chart.draw_series(LineSeries::new(mean.iter().copied(), color.stroke_width(2)))?;
        let marked = if panel.mark_every_point { mean.clone() } else { spaced(&mean, MARKERS_PER_LINE) };
        draw_markers(&mut chart, &marked, shape, color)?;
    }
    Ok(())
}

/// The forest plot: one panel per column, one row per method, Δ with its interval, a zero line and
/// the majority-class line, and the table's numbers printed beside each row.
pub fn forest_figure(path: &Path, title: &str, panels: &[ForestPanel]) -> anyhow::Result<()> {
    let columns = panels.len().max(1);
    let rows = panels.iter().map(|p| p.rows.len()).max().unwrap_or(1);
    let height = HEADER_HEIGHT + 110 + 46 * rows as u32;
    let root = SVGBackend::new(path, (PANEL_WIDTH * columns as u32, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let (header, body) = root.split_vertically(HEADER_HEIGHT);
    let note = "Δ from standard with its 95 % bootstrap interval (the table's); dashed: majority-class baseline \
                (named at the edge when off scale)";
    header.draw(&Text::new(title.to_string(), (12, 8), (FONT, 20).into_font())).map_err(|e| failed(path, e))?;
    header.draw(&Text::new(note, (12, 38), (FONT, 13).into_font())).map_err(|e| failed(path, e))?;
    for (panel, area) in panels.iter().zip(body.split_evenly((1, columns))) {
        draw_forest_panel(&area, panel, rows).map_err(|e| failed(path, e))?;
    }
    root.present().map_err(|e| failed(path, e))
}

fn draw_forest_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    panel: &ForestPanel,
    rows: usize,
) -> DrawResult {
    let [lo, hi] = panel.range();
    let (area, labels) = area.split_horizontally(PANEL_WIDTH as i32 - 150);
    let mut chart = ChartBuilder::on(&area)
        .caption(panel.title(), (FONT, 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(lo..hi, -0.5..(rows as f64 - 0.5))?;
    let names: Vec<String> = panel.rows.iter().map(|r| r.label()).collect();
    let row_name = |v: &f64| {
        let index = v.round();
        if (v - index).abs() < 1e-6 && index >= 0.0 {
            names.get(rows - 1 - index as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(format!("Δ {} vs standard", panel.metric.label()))
        .x_labels(5)
        .y_labels(rows * 2 + 1)
        .disable_mesh()
        .x_label_formatter(&|v| format!("{v:+.2}"))
        .y_label_formatter(&row_name)
        .draw()?;
    let top = rows as f64 - 0.5;
    chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, -0.5), (0.0, top)], BLACK.stroke_width(1))))?;
    match (panel.baseline_on_scale(), panel.baseline) {
        (Some(baseline), _) => {
            // Dashes a tenth of a row long, a tenth apart.
            let dashes = (0..rows * 5).map(|i| -0.5 + i as f64 / 5.0).map(|y| vec![(baseline, y), (baseline, y + 0.1)]);
            chart.draw_series(dashes.map(|dash| PathElement::new(dash, REFERENCE.stroke_width(2))))?;
        }
        (None, Some(baseline)) => {
            let (x, arrow) = if baseline < lo { (lo, "←") } else { (hi, "→") };
            let (px, py) = chart.backend_coord(&(x, top));
            let (bx, by) = area.get_base_pixel();
            let text = format!("{arrow} baseline {baseline:+.3}");
            let at = if arrow == "←" { px - bx + 4 } else { px - bx - 7 * text.chars().count() as i32 };
            area.draw(&Text::new(text, (at, py - by + 2), (FONT, 12).into_font().color(&REFERENCE)))?;
        }
        (None, None) => {}
    }
    for (i, row) in panel.rows.iter().enumerate() {
        let y = (rows - 1 - i) as f64;
        let (color, shape) = style(row.cell.method);
        let d = row.difference;
        chart.draw_series(std::iter::once(PathElement::new(vec![(d.lo, y), (d.hi, y)], color.stroke_width(2))))?;
        draw_markers(&mut chart, &[(d.diff, y)], if shape == Shape::None { Shape::Circle } else { shape }, color)?;
        let (_, py) = chart.backend_coord(&(0.0, y));
        let text = row.cell.format_difference();
        labels.draw(&Text::new(text, (4, py - area.get_base_pixel().1 - 8), (FONT, 13).into_font()))?;
    }
    Ok(())
}

//! Chart series, bounds and labels, and the braille line chart that draws them (smoothing, log
//! scale and decimation are [`crate::plot::scale`]'s, shared with the SVG figures).
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, LegendPosition, Paragraph};
use ratatui::Frame;

use crate::plot::scale::{decimate, format_number, Scale};
use crate::ui::palette;

/// One line of a chart: `(x, y)` points in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: Color,
    pub points: Vec<(f64, f64)>,
}

/// The x and y ranges a chart shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub x: [f64; 2],
    pub y: [f64; 2],
}

/// The range of all finite points, with a little room above and below; `None` without points.
pub fn bounds(series: &[Series]) -> Option<Bounds> {
    let finite = series.iter().flat_map(|s| &s.points).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x, mut y) = ([f64::INFINITY, f64::NEG_INFINITY], [f64::INFINITY, f64::NEG_INFINITY]);
    for &(px, py) in finite {
        x = [x[0].min(px), x[1].max(px)];
        y = [y[0].min(py), y[1].max(py)];
    }
    if !x[0].is_finite() {
        return None;
    }
    if x[1] - x[0] < 1.0 {
        x[1] = x[0] + 1.0;
    }
    let span = y[1] - y[0];
    let pad = if span > 0.0 { span * 0.05 } else { y[0].abs().max(1e-3) * 0.1 };
    Some(Bounds { x, y: [y[0] - pad, y[1] + pad] })
}

/// Labels at the ends and the middle of the y axis; `log` ranges are labelled with 10^v.
fn y_labels(range: [f64; 2], log: bool) -> Vec<String> {
    let mid = (range[0] + range[1]) / 2.0;
    [range[0], mid, range[1]].iter().map(|&v| format_number(if log { 10f64.powf(v) } else { v })).collect()
}

/// Labels of the x axis, which counts updates.
fn x_labels(range: [f64; 2]) -> Vec<String> {
    let mid = (range[0] + range[1]) / 2.0;
    [range[0], mid, range[1]].iter().map(|v| format!("{v:.0}")).collect()
}

/// One chart as the run view draws it.
pub struct ChartView<'a> {
    pub title: String,
    pub series: &'a [Series],
    pub scale: Scale,
    pub focused: bool,
    /// The x range, shared by the charts of a view so that they line up; else the data's.
    pub x_range: Option<[f64; 2]>,
    /// Where the legend goes when several series are drawn: a corner the curves tend to leave free.
    pub legend: LegendPosition,
    /// Shown inside the frame while there is nothing to plot.
    pub empty: &'a str,
}

impl ChartView<'_> {
    /// Smoothed, log-scaled and decimated series for a plot `columns` cells wide.
    fn plotted(&self, columns: u16) -> Vec<Series> {
        // A braille cell holds two dots across, and decimation keeps up to four points a bucket.
        let buckets = (columns as usize / 2).max(1);
        self.series
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                color: s.color,
                points: decimate(&self.scale.apply(&s.points), buckets),
            })
            .collect()
    }

    pub fn render(&self, frame: &mut Frame, area: Rect) {
        let border = if self.focused { palette::fg(palette::WARN) } else { palette::DIM };
        let block = Block::bordered()
            .title(Span::styled(format!(" {} ", self.title), Style::new().add_modifier(Modifier::BOLD)))
            .border_style(border);
        let plotted = self.plotted(area.width.saturating_sub(10));
        let Some(mut bounds) = bounds(&plotted) else {
            let text = Paragraph::new(Line::from(self.empty).style(palette::DIM)).block(block);
            frame.render_widget(text, area);
            return;
        };
        if let Some(x) = self.x_range {
            bounds.x = x;
        }
        let datasets: Vec<Dataset> = plotted
            .iter()
            .map(|s| {
                Dataset::default()
                    .name(s.name.clone())
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(s.color))
                    .data(&s.points)
            })
            .collect();
        let axis_style = palette::DIM;
        let x_axis = Axis::default().style(axis_style).bounds(bounds.x).labels(x_labels(bounds.x));
        let y_axis = Axis::default().style(axis_style).bounds(bounds.y).labels(y_labels(bounds.y, self.scale.log_y));
        let legend = (plotted.len() > 1).then_some(self.legend);
        let chart = Chart::new(datasets)
            .block(block)
            .x_axis(x_axis)
            .y_axis(y_axis)
            .legend_position(legend)
            .hidden_legend_constraints((
                ratatui::layout::Constraint::Ratio(1, 2),
                ratatui::layout::Constraint::Ratio(1, 2),
            ));
        frame.render_widget(chart, area);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_pad_and_widen_degenerate_ranges() {
        let series = |points: Vec<(f64, f64)>| vec![Series { name: "s".into(), color: Color::Reset, points }];
        assert_eq!(bounds(&series(vec![])), None);
        let flat = bounds(&series(vec![(3.0, 0.5)])).unwrap();
        assert_eq!(flat.x, [3.0, 4.0]);
        assert!(flat.y[0] < 0.5 && flat.y[1] > 0.5);
        let b = bounds(&series(vec![(0.0, 0.0), (10.0, 1.0), (5.0, f64::NAN)])).unwrap();
        assert_eq!(b.x, [0.0, 10.0]);
        assert!((b.y[0] + 0.05).abs() < 1e-12 && (b.y[1] - 1.05).abs() < 1e-12);
    }

    #[test]
    fn axis_labels_are_compact() {
        assert_eq!(y_labels([-1.0, 1.0], true), vec!["0.100", "1.000", "10.0"]);
        assert_eq!(x_labels([0.0, 25.0]), vec!["0", "12", "25"]);
    }
}

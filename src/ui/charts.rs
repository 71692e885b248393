//! Chart series: smoothing, log scale, downsampling to the chart's resolution, bounds and labels,
//! and the braille line chart that draws them.
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, LegendPosition, Paragraph};
use ratatui::Frame;

/// Exponential smoothing weights that `[` and `]` step through (0: raw values).
pub const SMOOTHING_STEPS: [f64; 6] = [0.0, 0.6, 0.8, 0.9, 0.95, 0.99];

/// One line of a chart: `(x, y)` points in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: Color,
    pub points: Vec<(f64, f64)>,
}

/// How a chart transforms its series before drawing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Plot log10(y); values ≤ 0 are left out.
    pub log_y: bool,
    /// Exponential moving average weight in [0, 1).
    pub smoothing: f64,
}

impl Scale {
    pub const LINEAR: Scale = Scale { log_y: false, smoothing: 0.0 };
}

/// The x and y ranges a chart shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub x: [f64; 2],
    pub y: [f64; 2],
}

/// Exponential moving average with bias correction (as TensorBoard smooths), so the first points
/// are not pulled towards zero.
pub fn smooth(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    if weight <= 0.0 {
        return points.to_vec();
    }
    let mut average = 0.0;
    let mut correction = 1.0;
    points
        .iter()
        .map(|&(x, y)| {
            average = weight * average + (1.0 - weight) * y;
            correction *= weight;
            (x, average / (1.0 - correction))
        })
        .collect()
}

/// Points with positive y, as (x, log10 y).
pub fn log10_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points.iter().filter(|(_, y)| *y > 0.0).map(|&(x, y)| (x, y.log10())).collect()
}

/// At most `buckets` points: the mean of each run of consecutive points that falls into one of
/// `buckets` equal x intervals. A chart cannot show more than its braille resolution anyway.
pub fn downsample(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    if points.len() <= buckets.max(1) {
        return points.to_vec();
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    let width = (last - first) / buckets as f64;
    let bucket_of = |x: f64| if width > 0.0 { (((x - first) / width) as usize).min(buckets - 1) } else { 0 };
    let mut out = Vec::with_capacity(buckets);
    for group in points.chunk_by(|a, b| bucket_of(a.0) == bucket_of(b.0)) {
        let n = group.len() as f64;
        let (sx, sy) = group.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
        out.push((sx / n, sy / n));
    }
    out
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

/// A compact number: `0.123`, `12.3`, `1.2e-5`.
pub fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".into()
    } else if !(1e-2..1e4).contains(&magnitude) {
        format!("{value:.1e}")
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
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
    /// Smoothed, log-scaled and downsampled series for a plot `columns` cells wide.
    fn plotted(&self, columns: u16) -> Vec<Series> {
        // A braille cell holds two dots across.
        let resolution = (columns as usize * 2).max(2);
        self.series
            .iter()
            .map(|s| {
                let smoothed = smooth(&s.points, self.scale.smoothing);
                let scaled = if self.scale.log_y { log10_points(&smoothed) } else { smoothed };
                Series { name: s.name.clone(), color: s.color, points: downsample(&scaled, resolution) }
            })
            .collect()
    }

    pub fn render(&self, frame: &mut Frame, area: Rect) {
        let border = if self.focused { Style::new().fg(Color::Yellow) } else { Style::new().fg(Color::DarkGray) };
        let block = Block::bordered()
            .title(Span::styled(format!(" {} ", self.title), Style::new().add_modifier(Modifier::BOLD)))
            .border_style(border);
        let plotted = self.plotted(area.width.saturating_sub(10));
        let Some(mut bounds) = bounds(&plotted) else {
            let text = Paragraph::new(Line::from(self.empty).style(Style::new().fg(Color::DarkGray))).block(block);
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
        let axis_style = Style::new().fg(Color::DarkGray);
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
    fn smoothing_is_bias_corrected() {
        let points = [(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)];
        for (_, y) in smooth(&points, 0.9) {
            assert!((y - 2.0).abs() < 1e-12);
        }
        let step = smooth(&[(1.0, 0.0), (2.0, 1.0)], 0.5);
        assert!((step[1].1 - 2.0 / 3.0).abs() < 1e-12, "{step:?}");
    }

    #[test]
    fn log_scale_drops_non_positive_values() {
        assert_eq!(log10_points(&[(1.0, 100.0), (2.0, 0.0), (3.0, -1.0), (4.0, 0.1)]), vec![(1.0, 2.0), (4.0, -1.0)]);
    }

    #[test]
    fn downsampling_keeps_the_shape_and_the_ends() {
        let points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 2) as f64)).collect();
        let few = downsample(&points, 10);
        assert_eq!(few.len(), 10);
        assert!(few.iter().all(|(_, y)| (y - 0.5).abs() < 0.01), "{few:?}");
        assert!(few[0].0 < 100.0 && few[9].0 > 900.0);
        assert_eq!(downsample(&points[..5], 10), points[..5].to_vec());
    }

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
    fn numbers_are_compact() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.5432), "0.543");
        assert_eq!(format_number(12.34), "12.3");
        assert_eq!(format_number(2e-5), "2.0e-5");
        assert_eq!(y_labels([-1.0, 1.0], true), vec!["0.100", "1.000", "10.0"]);
        assert_eq!(x_labels([0.0, 25.0]), vec!["0", "12", "25"]);
    }
}

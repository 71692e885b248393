//! How curves are transformed for drawing, shared by the console's charts and the SVG figures so
//! that both show the same thing: exponential smoothing, log scale, and decimation to the
//! resolution of the drawing that keeps every extreme.

/// Exponential smoothing weights that `[` and `]` step through (0: raw values).
pub const SMOOTHING_STEPS: [f64; 6] = [0.0, 0.6, 0.8, 0.9, 0.95, 0.99];

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

    /// Smoothed, then on the log scale if it is one.
    pub fn apply(&self, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let smoothed = smooth(points, self.smoothing);
        if self.log_y {
            log10_points(&smoothed)
        } else {
            smoothed
        }
    }
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

/// At most about `4 × buckets` points: of each run of consecutive points that falls into one of
/// `buckets` equal x intervals, the first, the lowest, the highest and the last, in x order. A
/// drawing cannot resolve more than its width, and a spike (a loss blow-up) survives, where an
/// average over the bucket would hide it.
pub fn decimate(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    let buckets = buckets.max(1);
    if points.len() <= 4 * buckets {
        return points.to_vec();
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    let width = (last - first) / buckets as f64;
    let bucket_of = |x: f64| if width > 0.0 { (((x - first) / width) as usize).min(buckets - 1) } else { 0 };
    let mut out = Vec::with_capacity(4 * buckets);
    for group in points.chunk_by(|a, b| bucket_of(a.0) == bucket_of(b.0)) {
        let by_y = |a: &&(f64, f64), b: &&(f64, f64)| a.1.total_cmp(&b.1);
        let low = group.iter().min_by(by_y).expect("chunks are never empty");
        let high = group.iter().max_by(by_y).expect("chunks are never empty");
        let mut kept = [&group[0], low, high, &group[group.len() - 1]];
        kept.sort_by(|a, b| a.0.total_cmp(&b.0));
        for point in kept {
            if out.last() != Some(point) {
                out.push(*point);
            }
        }
    }
    out
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
        let scale = Scale { log_y: true, smoothing: 0.0 };
        assert_eq!(scale.apply(&[(1.0, 10.0), (2.0, 0.0)]), vec![(1.0, 1.0)]);
    }

    #[test]
    fn decimation_keeps_the_extremes_and_the_ends() {
        let mut points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 2) as f64 * 0.1)).collect();
        points[500].1 = 50.0;
        points[700].1 = -3.0;
        let few = decimate(&points, 10);
        assert!(few.len() <= 40 && few.len() >= 20, "{}", few.len());
        assert!(few.contains(&(500.0, 50.0)) && few.contains(&(700.0, -3.0)), "{few:?}");
        assert_eq!((few[0], few[few.len() - 1]), (points[0], points[999]));
        assert!(few.windows(2).all(|w| w[0].0 < w[1].0), "x order, no repeats");
        assert_eq!(decimate(&points[..5], 10), points[..5].to_vec());
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.5432), "0.543");
        assert_eq!(format_number(12.34), "12.3");
        assert_eq!(format_number(2e-5), "2.0e-5");
    }
}

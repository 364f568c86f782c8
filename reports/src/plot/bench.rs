//! Benchmark figures: a line chart of named series over any x axis (linear or logarithmic), used by
//! `faultline bench` for throughput against concurrency, failover times per trial and replication lag from
//! two sources over time.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::frame::{AXIS_PX, LABEL_PX, builder, headroom, legend, legend_line, no_data, tick};
use super::style::series_color;
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::series::Series;

/// How the x axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XScale {
    /// Linear, from 0 (or the smallest x, if negative).
    Linear,
    /// Logarithmic (every x must be > 0); good for concurrency levels 1, 8, 32, 128.
    Log,
}

/// A line chart: one line with point markers per series; NaN y values break a line.
pub struct LineChart<'a> {
    /// The file stem under `plots/`.
    pub name: &'static str,
    /// The title drawn on the figure.
    pub title: String,
    /// The x axis description, with its unit.
    pub x_axis: String,
    /// The y axis description, with its unit.
    pub y_axis: String,
    /// How the x axis is scaled.
    pub x_scale: XScale,
    /// Draw lines between points (false: markers only).
    pub lines: bool,
    /// The series.
    pub series: &'a [Series],
}

impl LineChart<'_> {
    fn finite_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    }

    fn x_bounds(&self) -> (f64, f64) {
        let (lo, hi) = self
            .finite_points()
            .map(|p| p.0)
            .filter(|x| self.x_scale == XScale::Linear || *x > 0.0)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        match self.x_scale {
            XScale::Linear => (lo.min(0.0), (hi * 1.05).max(lo.min(0.0) + 1.0)),
            XScale::Log => (lo / 1.5, (hi * 1.5).max(lo * 2.0)),
        }
    }

    fn draw_on<DB, X>(&self, root: &DrawingArea<DB, Shift>, x_range: X, top: f64) -> DrawResult
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = builder(root, &self.title)?
            .build_cartesian_2d(x_range, 0.0..headroom((top * 1.05).max(1e-9), self.series.len()))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_axis.as_str())
            .x_label_formatter(&tick)
            .y_desc(self.y_axis.as_str())
            .y_label_formatter(&tick)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .draw()
            .map_err(draw_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
            let runs: Vec<Vec<(f64, f64)>> = if self.lines {
                s.points
                    .split(|p| !(p.0.is_finite() && p.1.is_finite()))
                    .filter(|run| !run.is_empty())
                    .map(<[(f64, f64)]>::to_vec)
                    .collect()
            } else {
                Vec::new()
            };
            chart
                .draw_series(runs.into_iter().map(|run| PathElement::new(run, color.stroke_width(2))))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(legend_line(color));
            let dots = s
                .points
                .iter()
                .filter(finite)
                .map(|p| Circle::new(*p, 4, color.filled()));
            chart.draw_series(dots).map_err(draw_err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

impl Figure for LineChart<'_> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn title(&self) -> String {
        self.title.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let top = self.finite_points().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = self.x_bounds();
        if !top.is_finite() || !lo.is_finite() || !hi.is_finite() {
            let axes = (self.x_axis.as_str(), self.y_axis.as_str());
            return no_data(root, &self.title, axes, "no measurements");
        }
        let top = top.max(0.0);
        match self.x_scale {
            XScale::Linear => self.draw_on(root, lo..hi, top),
            XScale::Log => self.draw_on(root, (lo..hi).log_scale(), top),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::write_figure;

    fn chart(series: &[Series], x_scale: XScale) -> LineChart<'_> {
        LineChart {
            name: "bench-test",
            title: "Throughput against clients".into(),
            x_axis: "concurrent clients".into(),
            y_axis: "throughput (ops/s)".into(),
            x_scale,
            lines: true,
            series,
        }
    }

    #[test]
    fn draws_every_series_on_a_log_axis_in_png_and_svg() {
        let mut a = Series::new("3 nodes, w=1");
        a.points = vec![(1.0, 900.0), (8.0, 4000.0), (32.0, 6000.0), (128.0, 6100.0)];
        let mut b = Series::new("3 nodes, w=majority");
        b.points = vec![(1.0, 400.0), (8.0, f64::NAN), (32.0, 2500.0)];
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_figure(&chart(&[a, b], XScale::Log), dir.path()).expect("render");
        let svg = std::fs::read_to_string(&files.svg).expect("svg");
        assert!(svg.contains("3 nodes, w=majority"), "legend names every series");
        assert!(svg.contains("concurrent clients"));
        let png = std::fs::read(&files.png).expect("png");
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn no_points_or_non_positive_log_x_render_a_no_data_plot() {
        let mut zero = Series::new("zero");
        zero.points = vec![(0.0, 1.0)];
        let dir = tempfile::tempdir().expect("tempdir");
        for (series, scale) in [(vec![], XScale::Linear), (vec![zero], XScale::Log)] {
            let files = write_figure(&chart(&series, scale), dir.path()).expect("render");
            let svg = std::fs::read_to_string(&files.svg).expect("svg");
            assert!(svg.contains("no data"), "{scale:?}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::plot::write_figure;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![4 => 0.0..20_000.0f64, 1 => Just(f64::NAN), 1 => Just(0.0), 1 => 0.0..1e-6f64, 1 => 1e6..1e9f64]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn any_series_renders(
            points in proptest::collection::vec(proptest::collection::vec((prop_oneof![0.0..30.0f64, Just(0.0), 1e-9..1e-6f64], value()), 0..40), 0..8),
            log in any::<bool>(),
        ) {
            let series: Vec<Series> = points
                .into_iter()
                .enumerate()
                .map(|(i, p)| Series { name: format!("s{i}"), points: p })
                .collect();
            let chart = LineChart {
                name: "any",
                title: "any".into(),
                x_axis: "x".into(),
                y_axis: "y".into(),
                x_scale: if log { XScale::Log } else { XScale::Linear },
                lines: true,
                series: &series,
            };
            let dir = tempfile::tempdir().expect("tempdir");
            prop_assert!(write_figure(&chart, dir.path()).is_ok());
        }
    }
}

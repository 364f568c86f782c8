//! Staleness of reads: its distribution per member, and P(read is fresh | time since the write).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{AXIS_PX, LABEL_PX, builder, legend, legend_line, no_data, tick};
use super::latency::format_ms;
use super::style::series_color;
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::series::Series;

const STALENESS_AXIS: &str = "staleness: time since the value read was overwritten (ms)";
const CDF_AXIS: &str = "reads at most this stale (%)";

/// Per member, the cumulative distribution of read staleness (fresh reads count as 0 ms).
pub struct StalenessCdf<'a> {
    /// One series per member.
    pub series: &'a [Series],
}

impl Figure for StalenessCdf<'_> {
    fn name(&self) -> &'static str {
        "staleness"
    }

    fn title(&self) -> String {
        "Staleness of reads per serving member (cumulative; fresh reads at 0 ms)".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.series.is_empty() {
            return no_data(root, &self.title(), (STALENESS_AXIS, CDF_AXIS), "no classifiable reads");
        }
        let right = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max);
        let right = if right > 0.0 { right * 1.05 } else { 1.0 };
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(0.0..right, 0.0..130.0)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(STALENESS_AXIS)
            .y_desc(CDF_AXIS)
            .x_label_formatter(&tick)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .y_label_formatter(&|v| if *v <= 100.0 { format!("{v:.0}") } else { String::new() })
            .draw()
            .map_err(draw_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            chart
                .draw_series(LineSeries::new(step_points(&s.points, right), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// A cumulative distribution as a staircase from 0 to `right`.
fn step_points(points: &[(f64, f64)], right: f64) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0)];
    for (x, y) in points {
        let previous = out.last().map_or(0.0, |p| p.1);
        out.push((*x, previous));
        out.push((*x, *y));
    }
    let last = out.last().map_or(0.0, |p| p.1);
    out.push((right, last));
    out
}

const SINCE_WRITE_AXIS: &str =
    "time from the latest acknowledged write to the read (ms, log scale; binned 0-1, 1-2, 2-5, 5-10, ...)";
const FRESH_AXIS: &str = "reads that saw the latest value (%)";

/// Per member, the fraction of fresh reads as a function of the time since the latest write.
pub struct Freshness<'a> {
    /// One series per member, x in ms.
    pub series: &'a [Series],
}

impl Figure for Freshness<'_> {
    fn name(&self) -> &'static str {
        "freshness"
    }

    fn title(&self) -> String {
        "P(read is fresh | time since the write), per serving member".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.series.is_empty() {
            return no_data(
                root,
                &self.title(),
                (SINCE_WRITE_AXIS, FRESH_AXIS),
                "no reads after a write",
            );
        }
        let xs = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let x = (lo.min(0.5) / 2.0)..(hi.max(lo * 10.0) * 2.0);
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(x.log_scale(), 0.0..135.0)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(SINCE_WRITE_AXIS)
            .y_desc(FRESH_AXIS)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .x_label_formatter(&|v| format_ms(*v))
            .y_label_formatter(&|v| if *v <= 100.0 { format!("{v:.0}") } else { String::new() })
            .draw()
            .map_err(draw_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(legend_line(color));
            let dots = s.points.iter().map(|p| Circle::new(*p, 4, color.filled()));
            chart.draw_series(dots).map_err(draw_err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

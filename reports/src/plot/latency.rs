//! Latency plots: every operation's latency over time, and latency quantiles over time.

use faultline_checker::history::Outcome;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{
    AXIS_PX, LABEL_PX, TIME_AXIS, TimeSpan, builder, draw_markers, legend, legend_entry, legend_fraction, legend_line,
    no_data, shade_faults, tick,
};
use super::style::{Shape, outcome_color, series_color, shape};
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::faults::FaultInterval;
use crate::series::Series;
use crate::series::latency::{LatencyPoint, outcome_name};

/// At most this many points are drawn; beyond it, `ok` operations are thinned evenly (failures and
/// indeterminate operations are always drawn).
pub const MAX_POINTS: usize = 25_000;

const LATENCY_AXIS: &str = "latency (ms, log scale)";

/// The most the log-scale y axis extends above the slowest operation to make room for the legend. Without
/// a cap the headroom grows with the range of the data: sub-millisecond reads and 10 s timeouts put the top
/// of the axis at 10⁷ ms, squashing every point into the bottom half.
const MAX_LOG_HEADROOM: f64 = 8.0;

/// The log-scale y range covering `values` (ms), with headroom above for a legend of `rows` entries (at
/// most [`MAX_LOG_HEADROOM`]; the legend may then cover the very slowest points).
fn log_range(values: impl Iterator<Item = f64>, rows: usize) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo.is_finite() { lo.max(0.001) / 1.5 } else { 0.1 };
    let hi = hi.max(lo * 10.0) * 1.2;
    let fraction = legend_fraction(rows);
    lo..hi * (hi / lo).powf(fraction / (1.0 - fraction)).min(MAX_LOG_HEADROOM)
}

/// Every client operation: x = invocation time, y = latency; colour = outcome, shape = function.
pub struct LatencyRaw<'a> {
    /// The operations.
    pub points: &'a [LatencyPoint],
    /// The fault intervals.
    pub faults: &'a [FaultInterval],
    /// The run's time span.
    pub span: TimeSpan,
}

impl LatencyRaw<'_> {
    /// The functions in order of first appearance (their shapes follow this order).
    fn functions(&self) -> Vec<&str> {
        let mut fs: Vec<&str> = Vec::new();
        for p in self.points {
            if !fs.contains(&p.f.as_str()) {
                fs.push(&p.f);
            }
        }
        fs
    }

    /// Draws one `ok` point in `stride`; all `fail` and `info` points.
    fn stride(&self) -> usize {
        let ok = self.points.iter().filter(|p| p.outcome == Outcome::Ok).count();
        let budget = MAX_POINTS.saturating_sub(self.points.len() - ok).max(1);
        ok.div_ceil(budget).max(1)
    }
}

impl Figure for LatencyRaw<'_> {
    fn name(&self) -> &'static str {
        "latency-raw"
    }

    fn title(&self) -> String {
        match self.stride() {
            1 => "Latency of every operation".to_string(),
            n => format!("Latency of operations (1 in {n} ok ops shown)"),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.points.is_empty() {
            return no_data(
                root,
                &self.title(),
                (TIME_AXIS, LATENCY_AXIS),
                "no completed client operations",
            );
        }
        let rows = 3 + self.functions().len() + crate::faults::kinds(self.faults).len();
        let y = log_range(self.points.iter().map(|p| p.latency_ms), rows);
        let floor = y.start;
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(self.span.range(), y.log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(TIME_AXIS)
            .x_label_formatter(&tick)
            .y_desc(LATENCY_AXIS)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(draw_err)?;
        shade_faults(&mut chart, self.faults)?;
        let functions = self.functions();
        let stride = self.stride();
        for outcome in [Outcome::Ok, Outcome::Info, Outcome::Fail] {
            let color = outcome_color(outcome);
            let points = self.points.iter().filter(|p| p.outcome == outcome);
            let every = if outcome == Outcome::Ok { stride } else { 1 };
            let shown: Vec<&LatencyPoint> = points.step_by(every).collect();
            for (i, f) in functions.iter().enumerate() {
                let of_f = shown
                    .iter()
                    .filter(|p| p.f == *f)
                    .map(|p| (p.start_s, p.latency_ms.max(floor)));
                draw_markers(&mut chart, of_f.collect(), shape(i), color, 3)?;
            }
        }
        for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
            legend_entry(&mut chart, outcome_name(outcome), Shape::Circle, outcome_color(outcome))?;
        }
        for (i, f) in functions.iter().enumerate() {
            legend_entry(&mut chart, &format!("f = {f}"), shape(i), RGBColor(90, 90, 90))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Latency quantiles of `ok` operations per time window.
pub struct LatencyQuantiles<'a> {
    /// p50, p90, p99, max series.
    pub series: &'a [Series],
    /// The window width, s.
    pub window_s: f64,
    /// The fault intervals.
    pub faults: &'a [FaultInterval],
    /// The run's time span.
    pub span: TimeSpan,
}

impl Figure for LatencyQuantiles<'_> {
    fn name(&self) -> &'static str {
        "latency-quantiles"
    }

    fn title(&self) -> String {
        format!(
            "Latency quantiles of ok operations (per {} window)",
            format_seconds(self.window_s)
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.series.iter().all(|s| s.points.is_empty()) {
            return no_data(
                root,
                &self.title(),
                (TIME_AXIS, LATENCY_AXIS),
                "no ok client operations",
            );
        }
        let rows = self.series.len() + crate::faults::kinds(self.faults).len();
        let y = log_range(self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), rows);
        let floor = y.start;
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(self.span.range(), y.log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(TIME_AXIS)
            .x_label_formatter(&tick)
            .y_desc(LATENCY_AXIS)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(draw_err)?;
        shade_faults(&mut chart, self.faults)?;
        for (i, s) in self.series.iter().enumerate().rev() {
            let color = series_color(i);
            let line = s.points.iter().map(|(x, v)| (*x, v.max(floor)));
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// A latency tick label: `0.5`, `20`, `1500` (ms).
pub fn format_ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// A window width for titles: `500 ms`, `2 s`.
pub fn format_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s} s")
    } else if s >= 1e-3 {
        format!("{} ms", (s * 1e3 * 1e3).round() / 1e3)
    } else {
        format!("{} µs", (s * 1e6 * 1e3).round() / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_axis_ends_within_a_decade_of_the_slowest_operation() {
        // Sub-millisecond reads and 10 s timeouts under a legend of 8 rows: the axis once ran to 10⁷ ms.
        for rows in [1, 4, 8, 20] {
            let y = log_range([0.04, 0.3, 12.0, 10_000.0].into_iter(), rows);
            assert!(y.end >= 10_000.0 * 1.2, "{rows} rows: {y:?} cuts the slowest operation");
            assert!(y.end <= 10_000.0 * 10.0, "{rows} rows: {y:?} runs far above the data");
            assert!(y.start <= 0.04, "{rows} rows: {y:?}");
        }
    }
}

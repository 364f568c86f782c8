//! Throughput over time: completed operations per second, per outcome.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{
    AXIS_PX, LABEL_PX, TIME_AXIS, TimeSpan, builder, headroom, legend, legend_line, no_data, shade_faults, tick,
};
use super::latency::format_seconds;
use super::style::outcome_color;
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::faults::FaultInterval;
use crate::series::Series;
use faultline_checker::history::Outcome;

const RATE_AXIS: &str = "throughput (operations/s)";

/// Completions per second per window; series named `ok`, `fail`, `info`.
pub struct Throughput<'a> {
    /// One series per outcome.
    pub series: &'a [Series],
    /// The window width, s.
    pub window_s: f64,
    /// The fault intervals.
    pub faults: &'a [FaultInterval],
    /// The run's time span.
    pub span: TimeSpan,
}

fn color_of(name: &str) -> RGBColor {
    match name {
        "fail" => outcome_color(Outcome::Fail),
        "info" => outcome_color(Outcome::Info),
        _ => outcome_color(Outcome::Ok),
    }
}

impl Figure for Throughput<'_> {
    fn name(&self) -> &'static str {
        "throughput"
    }

    fn title(&self) -> String {
        format!(
            "Throughput by outcome (completions per {} window)",
            format_seconds(self.window_s)
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        if top <= 0.0 {
            return no_data(
                root,
                &self.title(),
                (TIME_AXIS, RATE_AXIS),
                "no completed client operations",
            );
        }
        let rows = 3 + crate::faults::kinds(self.faults).len();
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(self.span.range(), 0.0..headroom(top * 1.05, rows))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(TIME_AXIS)
            .x_label_formatter(&tick)
            .y_desc(RATE_AXIS)
            .y_label_formatter(&tick)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .draw()
            .map_err(draw_err)?;
        shade_faults(&mut chart, self.faults)?;
        for s in self.series.iter().filter(|s| s.points.iter().any(|p| p.1 > 0.0)) {
            let color = color_of(&s.name);
            let total: f64 = s.points.iter().map(|p| p.1 * self.window_s).sum();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(format!("{} ({total:.0} ops)", s.name))
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

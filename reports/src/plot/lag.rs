//! Replication lag per secondary over time.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{
    AXIS_PX, LABEL_PX, TIME_AXIS, TimeSpan, builder, headroom, legend, legend_line, no_data, shade_faults, tick,
};
use super::style::series_color;
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::faults::FaultInterval;
use crate::series::Series;

const LAG_AXIS: &str = "replication lag behind the primary (ms)";

/// One line per member, over the samples in which it was not primary.
pub struct ReplicationLag<'a> {
    /// One series per member.
    pub series: &'a [Series],
    /// The fault intervals.
    pub faults: &'a [FaultInterval],
    /// The run's time span.
    pub span: TimeSpan,
}

impl Figure for ReplicationLag<'_> {
    fn name(&self) -> &'static str {
        "replication-lag"
    }

    fn title(&self) -> String {
        "Replication lag of each secondary (gaps: primary, down or lag unknown)".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.series.is_empty() {
            return no_data(root, &self.title(), (TIME_AXIS, LAG_AXIS), "no lag samples (lag.jsonl)");
        }
        let finite = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite());
        let top = finite.fold(0.0, f64::max);
        let rows = self.series.len() + crate::faults::kinds(self.faults).len();
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(self.span.range(), 0.0..headroom((top * 1.05).max(1.0), rows))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(TIME_AXIS)
            .x_label_formatter(&tick)
            .y_desc(LAG_AXIS)
            .y_label_formatter(&tick)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .draw()
            .map_err(draw_err)?;
        shade_faults(&mut chart, self.faults)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            let max = s
                .points
                .iter()
                .map(|p| p.1)
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            let runs = s.points.split(|p| !p.1.is_finite()).filter(|run| !run.is_empty());
            let lines = runs.map(|run| PathElement::new(run.to_vec(), color.stroke_width(2)));
            chart
                .draw_series(lines)
                .map_err(draw_err)?
                .label(format!("{} (max {max:.1} ms)", s.name))
                .legend(legend_line(color));
            let dots = s
                .points
                .iter()
                .filter(|p| p.1.is_finite())
                .map(|p| Circle::new(*p, 2, color.filled()));
            chart.draw_series(dots).map_err(draw_err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

//! The chunk distribution of a sharded run: chunks each shard owned over time, one step line per shard.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{
    AXIS_PX, LABEL_PX, TIME_AXIS, TimeSpan, builder, headroom, legend, legend_line, no_data, shade_faults, tick,
};
use super::style::series_color;
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::faults::FaultInterval;
use crate::series::Series;

const CHUNKS_AXIS: &str = "chunks owned (config.chunks)";

/// One step line per shard.
pub struct ChunkDistribution<'a> {
    pub series: &'a [Series],
    pub faults: &'a [FaultInterval],
    pub span: TimeSpan,
}

impl Figure for ChunkDistribution<'_> {
    fn name(&self) -> &'static str {
        "chunk-distribution"
    }

    fn title(&self) -> String {
        "Chunks of the workload's collection on each shard (migrations move them)".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.series.is_empty() {
            return no_data(
                root,
                &self.title(),
                (TIME_AXIS, CHUNKS_AXIS),
                "no chunk samples (chunks.jsonl)",
            );
        }
        let top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let rows = self.series.len() + crate::faults::kinds(self.faults).len();
        let mut chart = builder(root, &self.title())?
            .build_cartesian_2d(self.span.range(), 0.0..headroom(top + 1.0, rows))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(TIME_AXIS)
            .x_label_formatter(&tick)
            .y_desc(CHUNKS_AXIS)
            .y_label_formatter(&tick)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .draw()
            .map_err(draw_err)?;
        shade_faults(&mut chart, self.faults)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            let mut steps = Vec::with_capacity(s.points.len() * 2);
            for pair in s.points.windows(2) {
                steps.push(pair[0]);
                steps.push((pair[1].0, pair[0].1));
            }
            steps.extend(s.points.last());
            chart
                .draw_series(std::iter::once(PathElement::new(steps, color.stroke_width(2))))
                .map_err(draw_err)?
                .label(s.name.clone())
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

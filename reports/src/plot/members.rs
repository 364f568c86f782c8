//! Member states over time: one lane per member, coloured by state, so who was primary when is visible.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{AXIS_PX, LABEL_PX, TIME_AXIS, TimeSpan, builder, legend, no_data, shade_faults, tick};
use super::style::state_color;
use super::{DrawResult, FONT_FAMILY, Figure, draw_err};
use crate::faults::FaultInterval;
use crate::series::members::StateSegment;

const MEMBER_AXIS: &str = "member";

/// Lanes of member states; the primary's lane is green while it leads.
pub struct MemberStates<'a> {
    /// Member names, lane 0 at the top.
    pub members: &'a [String],
    /// State segments.
    pub segments: &'a [StateSegment],
    /// The fault intervals.
    pub faults: &'a [FaultInterval],
    /// The run's time span.
    pub span: TimeSpan,
}

impl MemberStates<'_> {
    fn states(&self) -> Vec<&str> {
        let mut states: Vec<&str> = Vec::new();
        for s in self.segments {
            if !states.contains(&s.state.as_str()) {
                states.push(&s.state);
            }
        }
        let rank = |s: &&str| ["PRIMARY", "SECONDARY"].iter().position(|p| p == s).unwrap_or(2);
        states.sort_by_key(rank);
        states
    }

    /// The y centre of member `i`'s lane: integers, the first member on top.
    fn lane(&self, i: usize) -> f64 {
        (self.members.len() - i) as f64
    }
}

impl Figure for MemberStates<'_> {
    fn name(&self) -> &'static str {
        "member-states"
    }

    fn title(&self) -> String {
        "Member states over time (green: primary)".to_string()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        if self.members.is_empty() {
            return no_data(
                root,
                &self.title(),
                (TIME_AXIS, MEMBER_AXIS),
                "no member samples (lag.jsonl)",
            );
        }
        let n = self.members.len();
        // One extra lane at the top keeps the legend off the data.
        let mut chart = builder(root, &self.title())?
            .y_label_area_size(140)
            .build_cartesian_2d(self.span.range(), 0.5..(n as f64 + 1.5))
            .map_err(draw_err)?;
        let name_of = |y: &f64| {
            let lane = y.round();
            if (y - lane).abs() > 0.01 || lane < 1.0 || lane > n as f64 {
                return String::new();
            }
            self.members.get(n - lane as usize).cloned().unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_desc(TIME_AXIS)
            .x_label_formatter(&tick)
            .y_desc(MEMBER_AXIS)
            .axis_desc_style((FONT_FAMILY, AXIS_PX))
            .label_style((FONT_FAMILY, LABEL_PX))
            .y_labels(n + 1)
            .y_label_formatter(&name_of)
            .disable_y_mesh()
            .draw()
            .map_err(draw_err)?;
        shade_faults(&mut chart, self.faults)?;
        for state in self.states() {
            let color = state_color(state);
            let bars = self.segments.iter().filter(|s| s.state == state).map(|s| {
                let y = self.lane(s.member);
                Rectangle::new([(s.start_s, y - 0.3), (s.end_s, y + 0.3)], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(draw_err)?
                .label(state)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

//! The frame shared by all plots: background, title, chart area, fault shading, legend, "no data".

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::style::{FAULT_ALPHA, Shape, fault_color};
use super::{DrawResult, FONT_FAMILY, draw_err};
use crate::faults::{FaultInterval, kinds};
use crate::series::seconds;

/// Title font size (px).
pub const TITLE_PX: u32 = 22;
/// Axis description font size (px).
pub const AXIS_PX: u32 = 16;
/// Tick label and legend font size (px).
pub const LABEL_PX: u32 = 14;

/// The x axis of every plot over time: seconds since the start of the run.
pub const TIME_AXIS: &str = "time since start of run (s)";

/// A tick label for a linear axis: no trailing `.0` (`2`, `2.5`, `1500`).
pub fn tick(v: &f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The fraction of the plotting area's height that a legend of `rows` entries takes (upper corner).
pub fn legend_fraction(rows: usize) -> f64 {
    ((rows as f64 * 18.0 + 30.0) / 420.0).min(0.6)
}

/// The top of a linear y axis so that data up to `top` stays below a legend of `rows` entries.
pub fn headroom(top: f64, rows: usize) -> f64 {
    top / (1.0 - legend_fraction(rows))
}

/// The common time range of a run's plots over time, so that they line up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSpan {
    /// The end of the run, s since its start (always > 0).
    pub end_s: f64,
}

impl TimeSpan {
    /// A span ending at `end_ns` (at least 1 µs long, so an empty run still has an axis).
    pub fn from_ns(end_ns: u64) -> TimeSpan {
        TimeSpan {
            end_s: seconds(end_ns).max(1e-6),
        }
    }

    /// The x range, with 1% padding at the right.
    pub fn range(&self) -> std::ops::Range<f64> {
        0.0..self.end_s * 1.01
    }
}

/// Clears the canvas and returns the builder of a chart with the title and label areas set up.
pub fn builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> Result<ChartBuilder<'a, 'b, DB>, String> {
    root.fill(&WHITE).map_err(draw_err)?;
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FONT_FAMILY, TITLE_PX))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(80);
    Ok(builder)
}

/// Draws an empty chart with the given axis descriptions and a note in the middle saying why it is empty.
pub fn no_data<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    axes: (&str, &str),
    why: &str,
) -> DrawResult {
    let mut chart = builder(root, title)?
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .axis_desc_style((FONT_FAMILY, AXIS_PX))
        .label_style((FONT_FAMILY, LABEL_PX))
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|_| String::new())
        .draw()
        .map_err(draw_err)?;
    let style = TextStyle::from((FONT_FAMILY, 24).into_font())
        .color(&RGBColor(110, 110, 110))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ));
    chart
        .draw_series(std::iter::once(Text::new(format!("no data: {why}"), (0.5, 0.5), style)))
        .map_err(draw_err)?;
    Ok(())
}

/// Shades each fault interval over the whole height of the chart (one colour per kind, one legend entry per
/// kind); instantaneous faults are vertical lines. Call before drawing the data so it stays on top.
pub fn shade_faults<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[FaultInterval],
) -> DrawResult {
    let y = chart.y_range();
    for (k, kind) in kinds(faults).iter().enumerate() {
        let color = fault_color(k);
        let of_kind = faults.iter().filter(|f| &f.kind == kind);
        let rects = of_kind.clone().filter(|f| !f.is_instant()).map(|f| {
            Rectangle::new(
                [(seconds(f.start_ns), y.start), (seconds(f.end_ns), y.end)],
                color.mix(FAULT_ALPHA).filled(),
            )
        });
        let lines = of_kind.filter(|f| f.is_instant()).map(|f| {
            let t = seconds(f.start_ns);
            PathElement::new(vec![(t, y.start), (t, y.end)], color.mix(0.7).stroke_width(2))
        });
        let all_instant = faults.iter().filter(|f| &f.kind == kind).all(FaultInterval::is_instant);
        let label = format!("fault: {kind}");
        if all_instant {
            chart.draw_series(rects).map_err(draw_err)?;
            let anno = chart.draw_series(lines).map_err(draw_err)?;
            anno.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x + 8, y - 7), (x + 8, y + 7)], color.stroke_width(2)));
        } else {
            chart.draw_series(lines).map_err(draw_err)?;
            chart
                .draw_series(rects)
                .map_err(draw_err)?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.mix(0.35).filled()));
        }
    }
    Ok(())
}

/// Adds a legend-only entry: a marker of `shape` in `color` (no data drawn).
pub fn legend_entry<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    label: &str,
    shape: Shape,
    color: RGBColor,
) -> DrawResult {
    let anno = chart
        .draw_series(std::iter::empty::<Circle<CT::From, i32>>())
        .map_err(draw_err)?;
    anno.label(label);
    let style = color.mix(0.8);
    match shape {
        Shape::Circle => anno.legend(move |(x, y)| Circle::new((x + 8, y), 5, style.filled())),
        Shape::Triangle => anno.legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, style.filled())),
        Shape::Cross => anno.legend(move |(x, y)| Cross::new((x + 8, y), 5, style.stroke_width(2))),
        Shape::Square => {
            anno.legend(move |(x, y)| EmptyElement::at((x + 8, y)) + Rectangle::new([(-5, -5), (5, 5)], style.filled()))
        }
    };
    Ok(())
}

/// A legend entry drawn as a line of `color`.
pub fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
}

/// Draws `points` as markers of one shape and colour (translucent, so dense clouds show their density).
pub fn draw_markers<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: Vec<(f64, f64)>,
    shape: Shape,
    color: RGBColor,
    size: i32,
) -> DrawResult {
    let style = color.mix(0.6);
    let points = points.into_iter();
    match shape {
        Shape::Circle => chart.draw_series(points.map(|p| Circle::new(p, size, style.filled()))),
        Shape::Triangle => chart.draw_series(points.map(|p| TriangleMarker::new(p, size + 1, style.filled()))),
        Shape::Cross => chart.draw_series(points.map(|p| Cross::new(p, size, style.stroke_width(2)))),
        Shape::Square => chart.draw_series(
            points.map(|p| EmptyElement::at(p) + Rectangle::new([(-size, -size), (size, size)], style.filled())),
        ),
    }
    .map_err(draw_err)?;
    Ok(())
}

/// Draws the legend in the upper right corner (or where asked) on a translucent white box.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT_FAMILY, LABEL_PX))
        .margin(10)
        .draw()
        .map_err(draw_err)
}

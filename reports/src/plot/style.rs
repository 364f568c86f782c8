//! Colours and marker shapes shared by all plots, chosen to stay distinguishable in print and for the
//! common forms of colour blindness (Tableau 10).

use faultline_checker::history::Outcome;
use plotters::style::RGBColor;

/// Series colours, in order.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// The `i`-th series colour (cycling).
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Operation outcomes: ok blue, fail red, info orange (as in Jepsen's plots).
pub fn outcome_color(outcome: Outcome) -> RGBColor {
    match outcome {
        Outcome::Ok => RGBColor(31, 119, 180),
        Outcome::Fail => RGBColor(214, 39, 40),
        Outcome::Info => RGBColor(255, 127, 14),
    }
}

/// Fault shading colours, per fault kind (drawn translucent behind the data).
const FAULT_COLORS: [RGBColor; 6] = [
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(227, 119, 194),
    RGBColor(140, 86, 75),
];

/// The shading colour of the `i`-th fault kind.
pub fn fault_color(i: usize) -> RGBColor {
    FAULT_COLORS[i % FAULT_COLORS.len()]
}

/// How opaque fault shading is.
pub const FAULT_ALPHA: f64 = 0.18;

/// Member states: primary green, secondary blue, down grey, anything else (recovering, rollback, startup)
/// orange.
pub fn state_color(state: &str) -> RGBColor {
    match state {
        "PRIMARY" => RGBColor(44, 160, 44),
        "SECONDARY" => RGBColor(31, 119, 180),
        "DOWN" | "UNKNOWN" | "REMOVED" => RGBColor(160, 160, 160),
        "ARBITER" => RGBColor(188, 189, 34),
        _ => RGBColor(255, 127, 14),
    }
}

/// Marker shapes, used to tell functions (`read`, `write`, `cas`, ...) apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A circle.
    Circle,
    /// A triangle.
    Triangle,
    /// A cross.
    Cross,
    /// A square.
    Square,
}

/// The shape of the `i`-th function (cycling).
pub fn shape(i: usize) -> Shape {
    [Shape::Circle, Shape::Triangle, Shape::Cross, Shape::Square][i % 4]
}

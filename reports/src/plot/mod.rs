//! Plots, each written as PNG and SVG from one drawing routine, with the embedded DejaVu Sans font.
//!
//! Every plot has a title, axis labels with units and a legend; plots over time shade the fault intervals
//! (one colour per fault kind) and share one time axis so they line up in the report. A plot whose data is
//! empty still renders: its axes and a "no data" note.
//!
//! - [`frame`]: the shared chart frame, fault shading, legends and the "no data" plot.
//! - [`style`]: colours and marker shapes.
//! - [`latency`], [`throughput`], [`lag`], [`members`], [`staleness`], [`chunks`]: one module per figure family.

pub mod bench;
pub mod chunks;
pub mod frame;
pub mod lag;
pub mod latency;
pub mod members;
pub mod staleness;
pub mod style;
pub mod throughput;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;

/// Width and height of every plot, in pixels.
pub const SIZE: (u32, u32) = (1100, 540);

/// The embedded font (DejaVu Sans, Bitstream Vera licence: see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name every plot uses; the embedded font is registered under it.
pub const FONT_FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters once per process.
fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Plot {
            name: "font".into(),
            message: "the embedded font could not be loaded".into(),
        })
    }
}

/// A drawing failure, as text (plotters' error types are per backend).
pub type DrawResult = Result<(), String>;

/// Converts any displayable plotters error to text.
pub fn draw_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One plot: a file stem, a title, and a routine that draws it on any backend.
pub trait Figure {
    /// The file stem under `plots/` (e.g. `latency-raw`).
    fn name(&self) -> &'static str;
    /// The title drawn at the top and used as the report's caption.
    fn title(&self) -> String;
    /// Draws the whole figure on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// The files one figure was written to.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotFiles {
    /// The file stem.
    pub name: String,
    /// The figure's title.
    pub title: String,
    /// The PNG file.
    pub png: PathBuf,
    /// The SVG file.
    pub svg: PathBuf,
}

/// Writes `figure` as `<dir>/<name>.png` and `<dir>/<name>.svg`.
pub fn write_figure(figure: &impl Figure, dir: &Path) -> Result<PlotFiles, ReportError> {
    ensure_font()?;
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let name = figure.name();
    let fail = |message: String| ReportError::Plot {
        name: name.to_string(),
        message,
    };
    let svg_path = dir.join(format!("{name}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        figure.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    std::fs::write(&svg_path, svg).map_err(|e| ReportError::io(&svg_path, e))?;
    let png_path = dir.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&png_path, SIZE).into_drawing_area();
        figure.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(PlotFiles {
        name: name.to_string(),
        title: figure.title(),
        png: png_path,
        svg: svg_path,
    })
}

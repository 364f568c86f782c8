//! The HTML pages: a run's `report.html` and the store's `index.html`.
//!
//! Pages are self-contained: inline CSS, no JavaScript, no external URL. Plots are linked relatively
//! (`plots/<name>.svg`, with the PNG one click away); counterexamples are drawn as inline SVG timelines. The
//! report links the run's interactive history viewer (`viewer.html`, [`crate::viewer`]), the one page with
//! (inline) JavaScript.
//!
//! - [`report`]: the run report (verdict and summary first, then checkers, faults, plots, files).
//! - [`timeline`]: the SVG timeline of the operations around an anomaly.
//! - [`index`]: the list of runs in a store.
//! - [`text`]: escaping and small formatting helpers.

pub mod index;
pub mod report;
pub mod text;
pub mod timeline;

/// The stylesheet shared by both pages.
pub const CSS: &str = r#"
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 0 auto; max-width: 1180px; padding: 1em 2em 4em;
       color: #222; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.3em; color: #fff; font-weight: bold; }
.valid { background: #2ca02c; } .invalid { background: #d62728; } .unknown { background: #e08a00; }
.none { background: #888; }
.banner { font-size: 1.3em; margin: 0.6em 0 1em; }
.warn { background: #fff6dd; border-left: 4px solid #e08a00; padding: 0.4em 0.8em; }
.checker { border: 1px solid #ddd; border-radius: 0.4em; padding: 0.2em 1em 0.8em; margin: 1em 0; }
.checker.bad { border-color: #d62728; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: bold; margin-bottom: 0.3em; }
pre { background: #f7f7f7; padding: 0.7em; overflow-x: auto; font-size: 0.9em; }
.timeline { overflow-x: auto; }
.muted { color: #777; }
code { background: #f2f2f2; padding: 0 0.2em; }
"#;

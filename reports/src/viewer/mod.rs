//! The interactive counterexample viewer: one self-contained HTML page (inline CSS, inline plain JavaScript,
//! the history embedded as compact JSON; no network access, works from `file://`).
//!
//! Per key it draws the operations as bars per process on a zoomable, pannable time axis (only what is visible
//! is drawn, so 100,000-operation histories stay responsive), numbers the linearization order the checker found,
//! marks the longest linearizable prefix and the first operation that cannot follow it, shows the model state
//! before and after an operation on hover, shades the nemesis' fault intervals and names the member that served
//! each operation. Stale reads get their own list: the read, the write it saw and the newer writes it missed.
//!
//! - [`data`]: the embedded JSON (column arrays, one string table).
//! - `body.html`, `viewer.css`, `viewer.js`: the page template, its style and its script.
//!
//! [`page`] builds the page for any history from the linearizability check's witness (the check's result
//! carries it; [`LinearWitness::search`] makes one for a history not checked yet), so the viewer does not
//! search again; [`write_page`] writes it to a file (used by `faultline check --html` and by `report.html`).

pub mod data;

use std::path::Path;
use std::time::Duration;

use faultline_checker::history::{History, PairedHistory};
use faultline_checker::linear::LinearError;
use faultline_checker::linear::witness::LinearWitness;

use crate::error::ReportError;

const BODY: &str = include_str!("body.html");
const STYLE: &str = include_str!("viewer.css");
const SCRIPT: &str = include_str!("viewer.js");

/// Why a viewer page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The history does not fit the model or breaks the event protocol.
    #[error(transparent)]
    Linear(#[from] LinearError),
    /// Writing the page failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Builds the viewer page for a paired history and its check's witness; keys the check left undecided (it
/// stops at the first failing key) are searched within `budget`.
pub fn page(
    title: &str,
    history: &History,
    paired: &PairedHistory,
    witness: &LinearWitness,
    budget: Option<Duration>,
) -> Result<String, ViewerError> {
    let embedded = data::build(title, history, paired, witness, budget)?;
    let json = serde_json::to_string(&embedded).unwrap_or_else(|_| "{}".to_string());
    let title = crate::html::text::escape(title);
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} — Faultline viewer</title>\
         <style>{STYLE}</style></head><body>\n{}\n<script type=\"application/json\" id=\"viewer-data\">{}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        BODY.replace("{{TITLE}}", &title),
        script_safe(&json)
    ))
}

/// Builds the viewer page for `history` and writes it to `out` (see [`page`]).
pub fn write_page(
    out: &Path,
    title: &str,
    history: &History,
    paired: &PairedHistory,
    witness: &LinearWitness,
    budget: Option<Duration>,
) -> Result<(), ViewerError> {
    let html = page(title, history, paired, witness, budget)?;
    std::fs::write(out, html).map_err(|e| ReportError::io(out, e))?;
    Ok(())
}

/// JSON made safe inside a `<script>` element: every `<` (only ever inside JSON strings) is written as
/// `\u003c`, so no `</script>` or `<!--` can appear.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

#[cfg(test)]
mod tests;

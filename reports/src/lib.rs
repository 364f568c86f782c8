//! Faultline's reports: plots (PNG + SVG, drawn in-process with an embedded font) and the self-contained
//! HTML report of a stored run (ARCHITECTURE §5).
//!
//! The harness calls [`render_checked_run`] after a run, handing it the check's result so that the viewer draws
//! the check's linearization witness instead of searching again (`faultline report DIR` calls [`render_run`]
//! later, which searches); it reads the run directory, writes `plots/*.png|svg` and `report.html` into it and never fails because an input is
//! missing or empty: a missing file gives a "no data" plot and a warning in [`RenderSummary::warnings`].
//! [`render_index`] writes `store/index.html`, listing every run with its verdict.
//!
//! # Inputs: the files of a run directory
//!
//! The layout and the typed records belong to [`run_dir`] (writers and readers both use it).
//!
//! | file | format | used for |
//! |---|---|---|
//! | `history.jsonl` | the checker's JSONL ([`faultline_checker::formats::jsonl`]) | latency, throughput, faults, staleness, timelines |
//! | `lag.jsonl` | one [`LagSample`] per line (below) | replication lag, member states / primary |
//! | `results.json` | one [`faultline_checker::result::CheckResult`] (usually a composition) | verdict, anomalies, counterexamples |
//! | `test.toml` | the resolved test spec | shown verbatim; `name`, `workload`, `nemesis`, `seed` read for the summary |
//! | `nodes/<n>/node.log` | member logs | linked |
//!
//! ## Faults in `history.jsonl`
//!
//! Fault-injection events are ops of process `"nemesis"`. A fault **interval** of kind `K` is recognised by its
//! `f`: a nemesis op with `f = "start-K"` opens it and the next nemesis op with `f = "stop-K"` closes it. Each
//! op may be an `invoke` followed by a completion (`ok` or `info`); the interval runs from the first event of the
//! start op to the last event of the stop op. A start whose completion is `fail` (the fault was skipped) opens
//! nothing. An interval never stopped lasts to the end of the history. The start op's `value` (any JSON; e.g.
//! `"isolate n1"` or `{"targets": ["n1"]}`) describes the fault in the report. Any other nemesis `f` (e.g.
//! `"kill"` without a matching stop) is an instantaneous fault of kind `f`, drawn as a vertical line. Jepsen's
//! bare `start` … `stop` pairs (Knossos histories) are intervals of kind `nemesis`.
//!
//! ```text
//! {"time":5000000000,"type":"invoke","process":"nemesis","f":"start-partition","value":"isolate n1"}
//! {"time":5001000000,"type":"info","process":"nemesis","f":"start-partition","value":"isolate n1"}
//! {"time":15000000000,"type":"invoke","process":"nemesis","f":"stop-partition","value":null}
//! {"time":15000200000,"type":"info","process":"nemesis","f":"stop-partition","value":"healed"}
//! ```
//!
//! ## `lag.jsonl`
//!
//! The harness's samplers write one JSON object per member per sample, through [`LagWriter`]:
//!
//! ```text
//! {"time": 2000000000, "member": "n2", "state": "SECONDARY", "lag_ms": 12.5, "primary": "n1"}
//! {"time": 2000000000, "member": "n3", "state": "DOWN", "lag_ms": null, "primary": "n1"}
//! ```
//!
//! - `time`: ns since the start of the run (the same clock as the history), integer.
//! - `member`: the member's name (`n1`, `n2`, ... in the harness's runs).
//! - `state`: its `stateStr` (`PRIMARY`, `SECONDARY`, `RECOVERING`, `STARTUP2`, `ROLLBACK`, `ARBITER`, ...),
//!   or `"DOWN"` when the sampler could not reach it (nor could the primary, if there was one).
//! - `lag_ms`: how far its applied optime is behind the primary's, in milliseconds (`null` when unknown, e.g.
//!   no primary or the member is down; `0` for the primary itself).
//! - `primary`: the member the set reported as primary at that moment, or `null`.
//!
//! Unknown extra fields are ignored, so the sampler may add more.

pub mod error;
pub mod faults;
pub mod html;
pub mod inputs;
pub mod plot;
pub mod render;
pub mod run_dir;
pub mod series;
pub mod viewer;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

pub use error::ReportError;
pub use faults::{FaultInterval, fault_intervals};
pub use inputs::RunInputs;
pub use render::{RenderSummary, render_checked_run, render_index, render_run};
pub use run_dir::{ChunkSample, ChunkWriter, LagSample, LagWriter, RunDir, RunMeta};

//! Rendering a stored run: read the inputs, derive the series, write the plots and `report.html`; and the
//! store's `index.html` listing every run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_checker::formats::Format;
use faultline_checker::history::{PairedHistory, pair};
use faultline_checker::linear::witness::LinearWitness;
use faultline_checker::linear::{LinearOptions, ModelKind};
use faultline_checker::result::{CheckResult, Validity};

use crate::error::ReportError;
use crate::faults::{FaultInterval, fault_intervals};
use crate::html;
use crate::inputs::{RunInputs, names};
use crate::plot::frame::TimeSpan;
use crate::plot::lag::ReplicationLag;
use crate::plot::latency::{LatencyQuantiles, LatencyRaw};
use crate::plot::members::MemberStates;
use crate::plot::staleness::{Freshness, StalenessCdf};
use crate::plot::throughput::Throughput;
use crate::plot::{PlotFiles, write_figure};
use crate::series::latency::{latency_points, latency_quantiles, throughput, window_s};
use crate::series::members::{lag_series, state_segments};
use crate::series::staleness::{freshness_curve, read_staleness, staleness_cdf};
use crate::viewer;

/// What [`render_run`] wrote and found.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSummary {
    /// The report page.
    pub report: PathBuf,
    /// Every plot written, in report order.
    pub plots: Vec<PlotFiles>,
    /// The overall verdict from `results.json`, if there was one.
    pub verdict: Option<Validity>,
    /// Inputs that were missing or malformed (the report says so too).
    pub warnings: Vec<String>,
}

/// Renders the run in `dir`: `plots/*.png|svg` and `report.html`. Missing inputs are warnings, not errors.
/// The viewer searches the history's linearizations itself; after a run, [`render_checked_run`] draws the
/// check's own witness instead.
pub fn render_run(dir: &Path) -> Result<RenderSummary, ReportError> {
    render_checked_run(dir, None)
}

/// [`render_run`] for a run just checked in this process: the viewer draws `checked`'s linearizability
/// witness (the one behind `results.json`) instead of searching again.
pub fn render_checked_run(dir: &Path, checked: Option<&CheckResult>) -> Result<RenderSummary, ReportError> {
    let mut inputs = RunInputs::load(dir)?;
    let paired = match pair(&inputs.history) {
        Ok(paired) => paired,
        Err(e) => {
            inputs.warnings.push(format!("{}: {e}", names::HISTORY));
            PairedHistory::default()
        }
    };
    let faults = fault_intervals(&inputs.history);
    let plots = write_plots(&inputs, &paired, &faults, &dir.join(names::PLOTS))?;
    let viewer = match write_viewer(&inputs, &paired, checked.and_then(CheckResult::linear_witness)) {
        Ok(viewer) => viewer,
        Err(warning) => {
            inputs.warnings.push(warning);
            None
        }
    };
    let page = html::report::page(&inputs, &paired, &faults, &plots, viewer);
    let report = dir.join(names::REPORT);
    std::fs::write(&report, page).map_err(|e| ReportError::io(&report, e))?;
    Ok(RenderSummary {
        report,
        plots,
        verdict: inputs.results.as_ref().map(|r| r.valid),
        warnings: inputs.warnings,
    })
}

/// How long rendering a run may spend searching linearizations for the viewer.
const VIEWER_SEARCH_BUDGET: Duration = Duration::from_secs(10);

/// Writes `viewer.html` (the interactive history viewer) for a run with client operations; returns its
/// file name (`None` without client operations), or a warning when it could not be made. The keys come from
/// `witness` (the run's check) when given, else from a search within [`VIEWER_SEARCH_BUDGET`].
fn write_viewer(
    inputs: &RunInputs,
    paired: &PairedHistory,
    witness: Option<&LinearWitness>,
) -> Result<Option<&'static str>, String> {
    if paired.operations.is_empty() {
        return Ok(None);
    }
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", names::VIEWER);
    let searched;
    let witness = match witness {
        Some(witness) => witness,
        None => {
            let mut options = LinearOptions::new(viewer_model(inputs.results.as_ref(), paired));
            options.conventions = Format::Jsonl.conventions();
            options.timeout = Some(VIEWER_SEARCH_BUDGET);
            searched = LinearWitness::search(&inputs.history, paired, &options).map_err(|e| failed(&e))?;
            &searched
        }
    };
    let title = inputs.meta.name.clone().unwrap_or_else(|| "Faultline run".to_string());
    let out = inputs.dir.join(names::VIEWER);
    viewer::write_page(
        &out,
        &title,
        &inputs.history,
        paired,
        witness,
        Some(VIEWER_SEARCH_BUDGET),
    )
    .map(|()| Some(names::VIEWER))
    .map_err(|e| failed(&e))
}

/// The model the run was checked against (the linearizability result names it), else one guessed from the
/// operations' functions.
fn viewer_model(results: Option<&CheckResult>, paired: &PairedHistory) -> ModelKind {
    let mut pending: Vec<&CheckResult> = results.into_iter().collect();
    while let Some(r) = pending.pop() {
        if let Some(model) = r
            .details
            .get("model")
            .and_then(|m| m.as_str())
            .and_then(ModelKind::from_name)
        {
            return model;
        }
        pending.extend(&r.children);
    }
    let uses = |f: &str| paired.operations.iter().any(|o| o.f == f);
    if uses("add") {
        ModelKind::Set
    } else if uses("append") || uses("put") || uses("get") {
        ModelKind::KvAppend
    } else if uses("acquire") {
        ModelKind::Mutex
    } else {
        ModelKind::CasRegister
    }
}

/// The run's time span: the last event of the history or the last lag sample.
fn span_of(inputs: &RunInputs) -> TimeSpan {
    let history_end = inputs.history.ops.iter().map(|o| o.time).max().unwrap_or(0);
    let lag_end = inputs.lag.iter().map(|s| s.time).max().unwrap_or(0);
    TimeSpan::from_ns(history_end.max(lag_end))
}

/// Derives every series and writes every plot into `plots_dir`.
pub fn write_plots(
    inputs: &RunInputs,
    paired: &PairedHistory,
    faults: &[FaultInterval],
    plots_dir: &Path,
) -> Result<Vec<PlotFiles>, ReportError> {
    let span = span_of(inputs);
    let points = latency_points(&inputs.history, paired);
    let window = window_s(span.end_s.max(points.iter().map(|p| p.end_s).fold(0.0, f64::max)));
    let quantiles = latency_quantiles(&points, window);
    let rates = throughput(&points, window);
    let lag = lag_series(&inputs.lag);
    let (members, segments) = state_segments(&inputs.lag);
    let reads = read_staleness(paired, &Format::Jsonl.conventions());
    let cdf = staleness_cdf(&reads);
    let fresh = freshness_curve(&reads);
    let mut plots = vec![
        write_figure(
            &LatencyRaw {
                points: &points,
                faults,
                span,
            },
            plots_dir,
        )?,
        write_figure(
            &LatencyQuantiles {
                series: &quantiles,
                window_s: window,
                faults,
                span,
            },
            plots_dir,
        )?,
        write_figure(
            &Throughput {
                series: &rates,
                window_s: window,
                faults,
                span,
            },
            plots_dir,
        )?,
        write_figure(
            &ReplicationLag {
                series: &lag,
                faults,
                span,
            },
            plots_dir,
        )?,
        write_figure(
            &MemberStates {
                members: &members,
                segments: &segments,
                faults,
                span,
            },
            plots_dir,
        )?,
    ];
    // A sharded run's chunk distribution.
    if !inputs.chunks.is_empty() {
        let series = crate::series::chunks::chunk_series(&inputs.chunks);
        plots.push(write_figure(
            &crate::plot::chunks::ChunkDistribution {
                series: &series,
                faults,
                span,
            },
            plots_dir,
        )?);
    }
    // Staleness needs reads the stale-read classification understands (register reads with unique written
    // values); without any, both plots would be drawn empty.
    if !reads.is_empty() {
        plots.push(write_figure(&StalenessCdf { series: &cdf }, plots_dir)?);
        plots.push(write_figure(&Freshness { series: &fresh }, plots_dir)?);
    }
    Ok(plots)
}

/// Writes `<store>/index.html` listing every run below `store` (`<test>/<timestamp>/` directories holding a
/// `results.json`, `history.jsonl` or `report.html`), newest first, with its verdict.
pub fn render_index(store: &Path) -> Result<PathBuf, ReportError> {
    let runs = html::index::find_runs(store);
    let page = html::index::page(&runs);
    let path = store.join("index.html");
    std::fs::write(&path, page).map_err(|e| ReportError::io(&path, e))?;
    Ok(path)
}

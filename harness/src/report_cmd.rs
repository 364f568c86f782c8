//! `faultline report DIR`: re-renders a stored run (its plots and `report.html`), or every run of a store
//! and the store's `index.html`.
//!
//! DIR is a *run* when it holds `history.jsonl`, `results.json` or `test.toml`; otherwise it is a *store*
//! whose runs sit one or two levels below (`<test>/<timestamp>/`). After rendering a single run, the index
//! of its store (two levels up) is refreshed too, but only when that directory already looks like a store
//! (it has an `index.html` or a `latest` entry), so that rendering a run kept elsewhere never writes into an
//! unrelated directory. Exit codes: 0 rendered, 254 DIR is not a directory, 255 rendering failed.

use std::path::{Path, PathBuf};

use faultline_reports::html::index::find_runs;
use faultline_reports::{RenderSummary, RunDir, render_index, render_run};

use faultline::support::errors::UsageError;

/// Flags of `faultline report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A run directory (`store/<test>/<timestamp>`, or `store/latest`) or a whole store directory.
    pub dir: PathBuf,
}

fn looks_like_store(dir: &Path) -> bool {
    dir.join("index.html").is_file() || dir.join("latest").symlink_metadata().is_ok()
}

fn print_summary(summary: &RenderSummary) {
    let verdict = summary.verdict.map_or("not checked".to_string(), |v| v.to_string());
    println!(
        "report: {} ({verdict}, {} plots)",
        summary.report.display(),
        summary.plots.len()
    );
    for warning in &summary.warnings {
        println!("  warning: {warning}");
    }
}

/// Runs `faultline report` and returns the process exit code.
pub fn run(args: &ReportArgs) -> anyhow::Result<i32> {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(UsageError(format!("{} is not a directory", dir.display())).into());
    }
    if RunDir::is_run(dir) {
        print_summary(&render_run(dir)?);
        let store = dir
            .canonicalize()?
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        if let Some(store) = store.filter(|s| looks_like_store(s)) {
            println!("index: {}", render_index(&store)?.display());
        }
        return Ok(0);
    }
    let runs = find_runs(dir);
    if runs.is_empty() {
        return Err(UsageError(format!(
            "{} holds no runs (no history.jsonl, results.json or test.toml)",
            dir.display()
        ))
        .into());
    }
    for run in &runs {
        print_summary(&render_run(&dir.join(&run.relative))?);
    }
    println!("index: {}", render_index(dir)?.display());
    Ok(0)
}

//! `store/index.html`: every run in a store with its verdict, newest first.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use faultline_checker::result::{CheckResult, Validity};

use super::CSS;
use super::text::{escape, href, verdict_badge};
use crate::inputs::{RunMeta, names};

/// One run found in a store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEntry {
    /// The run directory relative to the store (`<test>/<timestamp>`).
    pub relative: PathBuf,
    /// Its verdict, if checked.
    pub verdict: Option<Validity>,
    /// Its anomalies.
    pub anomalies: Vec<String>,
    /// Its workload, from the spec.
    pub workload: Option<String>,
    /// Whether `report.html` exists.
    pub has_report: bool,
}

fn is_run(dir: &Path) -> bool {
    [names::RESULTS, names::HISTORY, names::REPORT]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// Real subdirectories (symbolic links such as `latest` are skipped so no run is listed twice).
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// Runs one or two levels below `store`, newest (by directory name, which is a timestamp) first.
pub fn find_runs(store: &Path) -> Vec<RunEntry> {
    let mut runs = Vec::new();
    for first in subdirs(store) {
        if is_run(&first) {
            runs.push(entry(store, &first));
            continue;
        }
        runs.extend(subdirs(&first).iter().filter(|d| is_run(d)).map(|d| entry(store, d)));
    }
    runs.sort_by(|a, b| {
        b.relative
            .file_name()
            .cmp(&a.relative.file_name())
            .then(a.relative.cmp(&b.relative))
    });
    runs
}

fn entry(store: &Path, dir: &Path) -> RunEntry {
    let results: Option<CheckResult> = std::fs::read_to_string(dir.join(names::RESULTS))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let meta = std::fs::read_to_string(dir.join(names::SPEC))
        .ok()
        .and_then(|text| RunMeta::from_toml(&text).ok())
        .unwrap_or_default();
    RunEntry {
        relative: dir.strip_prefix(store).unwrap_or(dir).to_path_buf(),
        verdict: results.as_ref().map(|r| r.valid),
        anomalies: results.map(|r| r.anomalies).unwrap_or_default(),
        workload: meta.workload,
        has_report: dir.join(names::REPORT).is_file(),
    }
}

/// The index page.
pub fn page(runs: &[RunEntry]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Faultline runs</title>\
         <style>{CSS}</style></head><body>\n<h1>Faultline runs</h1>\n"
    );
    if runs.is_empty() {
        out.push_str("<p class=\"muted\">No runs yet.</p>");
    } else {
        let invalid = runs.iter().filter(|r| r.verdict == Some(Validity::False)).count();
        let _ = write!(out, "<p>{} run(s), {invalid} invalid.</p>", runs.len());
        out.push_str("<table><tr><th>run</th><th>verdict</th><th>workload</th><th>anomalies</th></tr>");
        for run in runs {
            let name = escape(&run.relative.to_string_lossy());
            let link = if run.has_report {
                format!("<a href=\"{}\">{name}</a>", href(&run.relative.join(names::REPORT)))
            } else {
                format!("{name} <span class=\"muted\">(no report)</span>")
            };
            let _ = write!(
                out,
                "<tr><td>{link}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                verdict_badge(run.verdict),
                escape(run.workload.as_deref().unwrap_or("—")),
                escape(&run.anomalies.join(", "))
            );
        }
        out.push_str("</table>");
    }
    out.push_str("\n</body></html>\n");
    out
}

//! `report.html`: one self-contained page per run — verdict and summary first, then each checker's result
//! with its anomalies and counterexamples, the faults, the plots, and links to the run's files.

use std::fmt::Write;
use std::path::Path;

use faultline_checker::history::split_keyed;
use faultline_checker::history::{Outcome, PairedHistory};
use faultline_checker::result::{CheckResult, Example};
use serde_json::Value;

use super::text::{duration, escape, href, truncate, verdict_badge};
use super::{CSS, timeline};
use crate::faults::FaultInterval;
use crate::inputs::{RunInputs, names};
use crate::plot::PlotFiles;
use crate::series::seconds;

/// Timelines drawn per checker (further examples are listed as text).
const TIMELINES_PER_CHECKER: usize = 3;

/// Builds the whole page.
/// `viewer` is the file name of the run's interactive history viewer, when one was written.
pub fn page(
    inputs: &RunInputs,
    paired: &PairedHistory,
    faults: &[FaultInterval],
    plots: &[PlotFiles],
    viewer: Option<&str>,
) -> String {
    let title = inputs.meta.name.clone().unwrap_or_else(|| "Faultline run".to_string());
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} — {}</title><style>{CSS}</style></head><body>\n",
        escape(&title),
        inputs
            .results
            .as_ref()
            .map_or("not checked".to_string(), |r| r.valid.to_string())
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    summary(&mut out, inputs, paired, faults);
    if let Some(viewer) = viewer {
        let _ = writeln!(
            out,
            "<p class=\"viewer-link\"><a href=\"{}\"><b>Open the interactive history viewer</b></a> — every \
             operation per key and process, the linearization order found, the longest linearizable prefix and the \
             operation that cannot follow it, model states on hover, faults and stale reads.</p>",
            href(Path::new(viewer))
        );
    }
    checkers(&mut out, inputs, paired);
    fault_table(&mut out, faults);
    plot_section(&mut out, &inputs.dir, plots);
    files(&mut out, inputs);
    out.push_str("</body></html>\n");
    out
}

fn summary(out: &mut String, inputs: &RunInputs, paired: &PairedHistory, faults: &[FaultInterval]) {
    let verdict = inputs.results.as_ref().map(|r| r.valid);
    let anomalies = inputs.results.as_ref().map_or(Vec::new(), |r| r.anomalies.clone());
    let _ = write!(out, "<p class=\"banner\">Verdict: {}", verdict_badge(verdict));
    if !anomalies.is_empty() {
        let _ = write!(out, " — anomalies: <b>{}</b>", escape(&anomalies.join(", ")));
    }
    out.push_str("</p>\n");
    let count = |outcome| paired.operations.iter().filter(|o| o.outcome == outcome).count();
    let end = inputs.history.ops.iter().map(|o| o.time).max().unwrap_or(0);
    let meta = &inputs.meta;
    let observed = crate::faults::kinds(faults).join(", ");
    let faults_text = match (&meta.nemesis, observed.is_empty()) {
        (Some(asked), true) => format!("{asked} (none recorded)"),
        (Some(asked), false) => format!("{asked} (recorded: {observed})"),
        (None, true) => "none".to_string(),
        (None, false) => observed,
    };
    let rows = [
        ("Workload", meta.workload.clone().unwrap_or_else(|| "—".into())),
        ("Faults", faults_text),
        ("Seed", meta.seed.clone().unwrap_or_else(|| "—".into())),
        ("Duration", duration(seconds(end))),
        ("Client operations", paired.operations.len().to_string()),
        (
            "ok / fail / info",
            format!(
                "{} / {} / {}",
                count(Outcome::Ok),
                count(Outcome::Fail),
                count(Outcome::Info)
            ),
        ),
        ("Fault events", faults.len().to_string()),
    ];
    out.push_str("<table class=\"summary\">");
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>\n");
    if !inputs.warnings.is_empty() {
        out.push_str("<div class=\"warn\"><b>Inputs missing or malformed:</b><ul>");
        for w in &inputs.warnings {
            let _ = write!(out, "<li>{}</li>", escape(w));
        }
        out.push_str("</ul></div>\n");
    }
}

/// The checkers to show: the children of a composition, or the single result itself.
fn leaves(result: &CheckResult) -> Vec<&CheckResult> {
    if result.children.is_empty() {
        vec![result]
    } else {
        result.children.iter().flat_map(leaves).collect()
    }
}

fn checkers(out: &mut String, inputs: &RunInputs, paired: &PairedHistory) {
    out.push_str("<h2 id=\"checkers\">Checkers</h2>\n");
    let Some(results) = &inputs.results else {
        out.push_str("<p class=\"muted\">No results.json: this run was not checked.</p>\n");
        return;
    };
    for result in leaves(results) {
        checker(out, inputs, paired, result);
    }
}

fn checker(out: &mut String, inputs: &RunInputs, paired: &PairedHistory, result: &CheckResult) {
    let bad = if result.anomalies.is_empty() { "" } else { " bad" };
    let _ = write!(
        out,
        "<div class=\"checker{bad}\"><h3>{} {}</h3>",
        escape(&result.checker),
        verdict_badge(Some(result.valid))
    );
    if !result.anomalies.is_empty() {
        let _ = write!(out, "<p>Anomalies: <b>{}</b></p>", escape(&result.anomalies.join(", ")));
    }
    if !result.counts.is_empty() {
        out.push_str("<table><tr><th>count</th><th>value</th></tr>");
        for (name, n) in &result.counts {
            let _ = write!(out, "<tr><td>{}</td><td class=\"num\">{n}</td></tr>", escape(name));
        }
        out.push_str("</table>");
    }
    if let Some(cx) = result.details.get("counterexample") {
        counterexample(out, cx);
    }
    if let Some(reason) = result.details.get("unknown-reason").and_then(Value::as_str) {
        let _ = write!(out, "<p>Could not decide: <b>{}</b>.</p>", escape(reason));
    }
    examples(out, inputs, paired, &result.examples);
    if !result.details.is_null() {
        let details = serde_json::to_string_pretty(&result.details).unwrap_or_default();
        let _ = write!(
            out,
            "<details><summary>details (JSON)</summary><pre>{}</pre></details>",
            escape(&truncate(&details, 20_000))
        );
    }
    out.push_str("</div>\n");
}

/// The linearizability counterexample: the op that cannot be linearized and the end of the longest
/// linearizable prefix, with the model state after each step.
fn counterexample(out: &mut String, cx: &Value) {
    let op = &cx["op"];
    let key = if cx["key"].is_null() {
        String::new()
    } else {
        format!(", key {}", cx["key"])
    };
    let _ = write!(
        out,
        "<p><b>Cannot be linearized:</b> process {} <code>{} {}</code> ({}{}).</p>",
        escape(&op["process"].to_string()),
        escape(op["f"].as_str().unwrap_or("?")),
        escape(&truncate(&show_value(&op["value"]), 200)),
        escape(&position(op)),
        escape(&key)
    );
    let prefix = cx["prefix"].as_array().map_or(&[][..], Vec::as_slice);
    if prefix.is_empty() {
        out.push_str("<p>No operation could be linearized before it.</p>");
        return;
    }
    let shown = prefix.len().min(10);
    let _ = write!(
        out,
        "<p>The longest linearizable prefix has {} operation(s); the last {shown}, with the model state after \
         each:</p><table><tr><th>process</th><th>operation</th><th>event</th><th>state after</th></tr>",
        prefix.len()
    );
    for step in &prefix[prefix.len() - shown..] {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{} {}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&step["process"].to_string()),
            escape(step["f"].as_str().unwrap_or("?")),
            escape(&truncate(&show_value(&step["value"]), 80)),
            escape(&position(step)),
            escape(&truncate(&step["state"].to_string(), 80))
        );
    }
    out.push_str("</table>");
}

/// An operation's value without its key wrapper (`{"key": k, "value": v}` → `v`).
fn show_value(value: &Value) -> String {
    split_keyed(value.clone()).1.to_string()
}

/// Where an op described by the checker sits: its event index, and its source line when known.
fn position(op: &Value) -> String {
    let index = format!("event {}", op["index"]);
    match op["line"].as_u64() {
        Some(line) if line > 0 => format!("{index}, history line {line}"),
        _ => index,
    }
}

fn examples(out: &mut String, inputs: &RunInputs, paired: &PairedHistory, examples: &[Example]) {
    if examples.is_empty() {
        return;
    }
    out.push_str("<h4>Examples</h4><ol>");
    for (i, example) in examples.iter().enumerate() {
        let _ = write!(
            out,
            "<li><b>{}</b>: {}",
            escape(&example.anomaly),
            escape(&truncate(&example.description, 400))
        );
        if i < TIMELINES_PER_CHECKER {
            let focus = timeline::operations_of(&inputs.history, paired, &example.ops);
            let svg = timeline::svg(paired, &focus);
            if !svg.is_empty() {
                let _ = write!(
                    out,
                    "<div class=\"timeline\">{svg}</div><p class=\"muted\">Operations involved are outlined in \
                     red; the others are concurrent operations and neighbours on the same key.</p>"
                );
            }
        }
        out.push_str("</li>");
    }
    out.push_str("</ol>");
}

fn fault_table(out: &mut String, faults: &[FaultInterval]) {
    out.push_str("<h2 id=\"faults\">Faults</h2>\n");
    if faults.is_empty() {
        out.push_str("<p class=\"muted\">No faults were recorded in the history.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>kind</th><th>from (s)</th><th>to (s)</th><th>lasted</th><th>what</th></tr>");
    for f in faults {
        let lasted = if f.is_instant() {
            "instant".to_string()
        } else if f.stopped {
            duration(seconds(f.end_ns - f.start_ns))
        } else {
            format!("{} (never stopped)", duration(seconds(f.end_ns - f.start_ns)))
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.kind),
            seconds(f.start_ns),
            seconds(f.end_ns),
            escape(&lasted),
            escape(&truncate(&f.description, 200))
        );
    }
    out.push_str("</table>\n");
}

fn relative<'a>(dir: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(dir).unwrap_or(path)
}

fn plot_section(out: &mut String, dir: &Path, plots: &[PlotFiles]) {
    out.push_str(
        "<h2 id=\"plots\">Plots</h2>\n<p class=\"muted\">Shaded bands are fault intervals, one colour per \
                  kind. Click a plot for its PNG.</p>\n",
    );
    for plot in plots {
        let svg = href(relative(dir, &plot.svg));
        let png = href(relative(dir, &plot.png));
        let title = escape(&plot.title);
        let _ = writeln!(
            out,
            "<figure id=\"{}\"><figcaption>{title}</figcaption><a href=\"{png}\"><img src=\"{svg}\" alt=\"{title}\" \
             width=\"1100\" height=\"540\"></a><br><a href=\"{svg}\">SVG</a> · <a href=\"{png}\">PNG</a></figure>",
            escape(&plot.name)
        );
    }
}

fn files(out: &mut String, inputs: &RunInputs) {
    out.push_str("<h2 id=\"files\">Files</h2>\n<ul>");
    let described = [
        (names::HISTORY, "history (JSONL, one event per line)"),
        ("history.edn", "history (Jepsen EDN)"),
        (names::SPEC, "the resolved test spec"),
        (names::RESULTS, "checker results (JSON)"),
        (names::LAG, "replication-lag samples (JSONL)"),
    ];
    for (name, what) in described {
        if inputs.dir.join(name).is_file() {
            let _ = write!(
                out,
                "<li><a href=\"{}\">{name}</a> — {what}</li>",
                href(Path::new(name))
            );
        }
    }
    for log in &inputs.node_logs {
        let _ = write!(
            out,
            "<li><a href=\"{}\">{}</a> — member log</li>",
            href(log),
            escape(&log.to_string_lossy())
        );
    }
    out.push_str("</ul>\n");
    if let Some(spec) = &inputs.spec_text {
        let _ = writeln!(out, "<h3>{}</h3><pre>{}</pre>", names::SPEC, escape(spec));
    }
}

//! Crate-level tests: render plots and whole reports from the synthetic fixture and from empty data, and
//! check the files are valid PNG/SVG/HTML with no external references and no dangling links.

use std::path::Path;

use faultline_checker::result::Validity;

use crate::fixture;
use crate::plot::{PlotFiles, SIZE};
use crate::{render_index, render_run};

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let signature = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    if bytes.len() < 24 || bytes[..8] != signature || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((word(16), word(20)))
}

/// All text in an SVG document, after checking it parses as XML with an `<svg>` root of the plot size.
fn svg_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("svg readable");
    let doc = roxmltree::Document::parse(&text).expect("svg is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some(SIZE.0.to_string().as_str()));
    assert_eq!(root.attribute("height"), Some(SIZE.1.to_string().as_str()));
    root.descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_valid_plot(plot: &PlotFiles, expected_text: &[&str]) {
    let png = std::fs::read(&plot.png).expect("png readable");
    assert_eq!(png_size(&png), Some(SIZE), "{}", plot.png.display());
    let text = svg_text(&plot.svg);
    for expected in expected_text {
        assert!(text.contains(expected), "{} lacks {expected:?}:\n{text}", plot.name);
    }
}

/// Values of every `href="…"` and `src="…"` attribute.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].replace("&amp;", "&"));
            }
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// No external URL anywhere in links, and every local link resolves relative to `dir`.
fn assert_self_contained(html: &str, dir: &Path) {
    assert!(!html.contains("<script"), "no JavaScript");
    for link in links(html) {
        assert!(
            !link.contains("://") && !link.starts_with("//"),
            "external reference {link}"
        );
        if link.starts_with('#') {
            continue;
        }
        let target = dir.join(percent_decode(&link));
        assert!(target.exists(), "dangling link {link}");
    }
}

#[test]
fn renders_every_plot_and_a_self_contained_report_for_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write_run(dir.path()).expect("fixture");
    let summary = render_run(dir.path()).expect("rendered");
    assert_eq!(
        summary.verdict,
        Some(Validity::False),
        "the fixture has stale secondary reads"
    );
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    let expected: [(&str, &[&str]); 7] = [
        (
            "latency-raw",
            &[
                "ok",
                "info",
                "fail",
                "f = read",
                "f = write",
                "f = cas",
                "fault: partition",
                "fault: pause",
            ],
        ),
        (
            "latency-quantiles",
            &[
                "p50",
                "p90",
                "p99",
                "max",
                "fault: partition",
                "latency (ms, log scale)",
            ],
        ),
        ("throughput", &["ok (", "info (", "operations/s", "fault: kill"]),
        (
            "replication-lag",
            &[fixture::MEMBERS[0], fixture::MEMBERS[2], "lag behind the primary (ms)"],
        ),
        ("member-states", &["PRIMARY", "SECONDARY", "DOWN", fixture::MEMBERS[1]]),
        ("staleness", &[fixture::MEMBERS[1], "stale)", "staleness"]),
        (
            "freshness",
            &[fixture::MEMBERS[2], "reads)", "latest acknowledged write"],
        ),
    ];
    assert_eq!(summary.plots.len(), expected.len());
    for (plot, (name, texts)) in summary.plots.iter().zip(expected) {
        assert_eq!(plot.name, name);
        assert_valid_plot(plot, texts);
    }
    let html = std::fs::read_to_string(&summary.report).expect("report");
    assert_self_contained(&html, dir.path());
    let verdict_at = html.find("INVALID").expect("verdict shown");
    assert!(
        verdict_at < html.find("id=\"plots\"").expect("plots section"),
        "verdict comes first"
    );
    for expected in [
        "register-partition",
        "1234",
        "Cannot be linearized",
        "<svg",
        "nodes/n2/node.log",
        "[client]",
    ] {
        assert!(html.contains(expected), "report lacks {expected}");
    }
}

#[test]
fn an_empty_run_directory_renders_no_data_plots_and_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = render_run(dir.path()).expect("rendered");
    assert_eq!(summary.verdict, None);
    assert_eq!(summary.warnings.len(), 4, "{:?}", summary.warnings);
    for plot in &summary.plots {
        assert_valid_plot(plot, &["no data"]);
    }
    let html = std::fs::read_to_string(&summary.report).expect("report");
    assert!(html.contains("NOT CHECKED"));
    assert_self_contained(&html, dir.path());
}

#[test]
fn a_malformed_history_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("history.jsonl"),
        "{\"type\":\"ok\",\"process\":1,\"f\":\"read\"}\nnot json\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("results.json"), "{").expect("write");
    let summary = render_run(dir.path()).expect("rendered");
    assert!(
        summary.warnings.iter().any(|w| w.starts_with("history.jsonl: line 2")),
        "{:?}",
        summary.warnings
    );
    assert!(
        summary.warnings.iter().any(|w| w.starts_with("results.json")),
        "{:?}",
        summary.warnings
    );
}

#[test]
fn a_missing_directory_is_an_error() {
    assert!(render_run(Path::new("/nonexistent/faultline/run")).is_err());
}

#[test]
fn the_store_index_lists_every_run_with_its_verdict() {
    let store = tempfile::tempdir().expect("tempdir");
    let bad = store.path().join("register-partition").join("20250101T000000");
    let empty = store.path().join("set-kill").join("20250102T000000");
    for dir in [&bad, &empty] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    fixture::write_run(&bad).expect("fixture");
    render_run(&bad).expect("rendered");
    std::fs::write(empty.join("history.jsonl"), "").expect("write");
    let index = render_index(store.path()).expect("index");
    let html = std::fs::read_to_string(index).expect("index readable");
    assert_self_contained(&html, store.path());
    assert!(html.contains("register-partition/20250101T000000/report.html"));
    assert!(html.contains("INVALID") && html.contains("NOT CHECKED"));
    assert!(html.find("set-kill").expect("newest") < html.find("register-partition").expect("older"));
}

#[test]
fn png_header_parser_rejects_non_png() {
    assert_eq!(png_size(b"GIF89a............................"), None);
}

/// Renders the fixture into `target/report-fixture` for looking at it by eye:
/// `cargo test -p faultline-reports --lib -- --ignored render_fixture_for_inspection`.
#[test]
#[ignore = "writes into target/ for manual inspection"]
fn render_fixture_for_inspection() {
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-fixture");
    let run = store.join("register-partition").join("20250101T000000");
    std::fs::create_dir_all(&run).expect("mkdir");
    fixture::write_run(&run).expect("fixture");
    let summary = render_run(&run).expect("rendered");
    render_index(&store).expect("index");
    rasterise_first_timeline(&summary.report, &run.join("timeline-preview.png"));
    println!("{}", summary.report.display());
}

/// Rasterises the first inline timeline of a report (its rects, lines and texts) to PNG with plotters, so
/// it can be looked at without a browser. Part of [`render_fixture_for_inspection`].
fn rasterise_first_timeline(report: &Path, png: &Path) {
    use plotters::prelude::*;
    let html = std::fs::read_to_string(report).expect("report");
    let (Some(start), Some(end)) = (html.find("<svg"), html.find("</svg>")) else {
        return;
    };
    let doc = roxmltree::Document::parse(&html[start..end + 6]).expect("timeline is XML");
    let svg = doc.root_element();
    let num = |n: roxmltree::Node, a: &str| n.attribute(a).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let size = (num(svg, "width") as u32, num(svg, "height") as u32);
    let root = BitMapBackend::new(png, size).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let color = |text: Option<&str>| {
        let hex = text.and_then(|t| t.strip_prefix('#')).unwrap_or("000000");
        let v = u32::from_str_radix(hex, 16).unwrap_or(0);
        RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
    };
    for node in svg.descendants().filter(|n| n.is_element()) {
        let at = |x: &str, y: &str| (num(node, x) as i32, num(node, y) as i32);
        match node.tag_name().name() {
            "rect" => {
                let (x, y) = at("x", "y");
                let corner = (x + num(node, "width") as i32, y + num(node, "height") as i32);
                let fill = color(node.attribute("fill"));
                root.draw(&Rectangle::new([(x, y), corner], fill.filled()))
                    .expect("rect");
                let stroke = color(node.attribute("stroke")).stroke_width(num(node, "stroke-width").max(1.0) as u32);
                root.draw(&Rectangle::new([(x, y), corner], stroke)).expect("rect");
            }
            "line" => {
                let style = color(node.attribute("stroke"));
                root.draw(&PathElement::new(vec![at("x1", "y1"), at("x2", "y2")], style))
                    .expect("line");
            }
            "text" => {
                let (x, y) = at("x", "y");
                let text = node.text().unwrap_or_default();
                root.draw(&Text::new(text.to_string(), (x, y - 10), ("sans-serif", 13)))
                    .expect("text");
            }
            _ => {}
        }
    }
    root.present().expect("png");
}

mod properties {
    use faultline_checker::formats::{Format, jsonl};
    use faultline_checker::history::{History, Op, OpType, Process};
    use proptest::prelude::*;
    use serde_json::json;

    use crate::inputs::LagSample;
    use crate::render_run;
    use crate::series::staleness::read_staleness;

    fn op_type() -> impl Strategy<Value = OpType> {
        prop_oneof![
            Just(OpType::Invoke),
            Just(OpType::Ok),
            Just(OpType::Fail),
            Just(OpType::Info)
        ]
    }

    /// One client operation or nemesis event: (gap before it, duration, outcome, process, f, value).
    type Planned = (u64, u64, OpType, u8, u8, u8);

    fn planned() -> impl Strategy<Value = Planned> {
        (
            0u64..500_000_000,
            0u64..2_000_000_000,
            op_type(),
            0u8..5,
            0u8..6,
            0u8..4,
        )
    }

    /// Mostly well-formed histories: each process invokes, then completes (with any outcome), in turn;
    /// an `invoke` outcome leaves the operation open, which makes later ones of that process malformed.
    fn history(planned: Vec<Planned>) -> History {
        let fs = ["read", "write", "cas", "start-partition", "stop-partition", "kill"];
        let mut clock = [0u64; 5];
        let mut ops = Vec::new();
        for (gap, duration, outcome, p, f, v) in planned {
            let process = if p == 4 {
                Process::nemesis()
            } else {
                Process::Client(u64::from(p))
            };
            let f = if p == 4 {
                fs[usize::from(f)]
            } else {
                fs[usize::from(f % 3)]
            };
            let value = if f == "cas" {
                json!([v, v + 1])
            } else {
                json!({"key": v % 2, "value": v})
            };
            let start = clock[usize::from(p)] + gap;
            ops.push(Op::new(0, start, OpType::Invoke, process.clone(), f, value.clone()));
            if outcome != OpType::Invoke {
                ops.push(Op::new(0, start + duration, outcome, process, f, value));
            }
            clock[usize::from(p)] = start + duration;
        }
        ops.sort_by_key(|o| o.time);
        History::from_ops(ops)
    }

    fn lag() -> impl Strategy<Value = Vec<LagSample>> {
        let state = prop_oneof![Just("PRIMARY"), Just("SECONDARY"), Just("DOWN"), Just("ROLLBACK")];
        let sample = (
            0u64..5_000_000_000,
            0u8..3,
            state,
            proptest::option::of(0f64..1e7),
            proptest::bool::ANY,
        );
        proptest::collection::vec(sample, 0..30).prop_map(|samples| {
            samples
                .into_iter()
                .map(|(time, m, state, lag_ms, has_primary)| LagSample {
                    time,
                    member: format!("127.0.0.1:{}", 27017 + u32::from(m)),
                    state: state.to_string(),
                    lag_ms,
                    primary: has_primary.then(|| "127.0.0.1:27017".to_string()),
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Whatever the recorded data (unpaired events, zero latencies, lone faults, odd states), rendering a
        /// run succeeds and writes every plot.
        #[test]
        fn any_recorded_data_renders(events in proptest::collection::vec(planned(), 0..60), samples in lag()) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut text = Vec::new();
            let recorded = history(events);
            jsonl::write(&recorded, &mut text).expect("jsonl");
            std::fs::write(dir.path().join("history.jsonl"), text).expect("write");
            let lines: Vec<String> = samples.iter().map(|s| serde_json::to_string(s).expect("json")).collect();
            std::fs::write(dir.path().join("lag.jsonl"), lines.join("\n")).expect("write");
            let summary = render_run(dir.path()).expect("renders");
            let classified = faultline_checker::history::pair(&recorded).is_ok_and(|p| {
                !read_staleness(&p, &Format::Jsonl.conventions()).is_empty()
            });
            prop_assert_eq!(summary.plots.len(), if classified { 7 } else { 5 });
            for plot in &summary.plots {
                prop_assert!(plot.png.is_file() && plot.svg.is_file());
            }
        }
    }
}

#[test]
fn a_run_without_classifiable_reads_has_no_staleness_plots_and_links_its_viewer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [
        r#"{"index":0,"time":1000,"type":"invoke","process":0,"f":"add","value":1}"#,
        r#"{"index":1,"time":2000,"type":"ok","process":0,"f":"add","value":1}"#,
        r#"{"index":2,"time":3000,"type":"invoke","process":1,"f":"read","value":null}"#,
        r#"{"index":3,"time":4000,"type":"ok","process":1,"f":"read","value":[1]}"#,
    ];
    std::fs::write(dir.path().join("history.jsonl"), events.join("\n")).expect("write");
    let summary = render_run(dir.path()).expect("rendered");
    let names: Vec<&str> = summary.plots.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "latency-raw",
            "latency-quantiles",
            "throughput",
            "replication-lag",
            "member-states"
        ],
        "a set workload has no reads to classify"
    );
    assert!(!dir.path().join("plots/staleness.svg").exists());
    let html = std::fs::read_to_string(&summary.report).expect("report");
    assert!(!html.contains("id=\"staleness\""));
    assert!(
        html.contains("href=\"viewer.html\""),
        "report links the interactive viewer"
    );
    assert!(dir.path().join("viewer.html").is_file());
}

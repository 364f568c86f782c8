//! An SVG timeline of the operations around an anomaly: one lane per process, a bar from each operation's
//! invocation to its completion, the operations involved in the anomaly outlined in red.
//!
//! Indeterminate (`info`) operations without a completion run to the right edge with a dashed outline,
//! because they may take effect at any time after their invocation.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use faultline_checker::history::{History, Operation, Outcome, PairedHistory};

use super::text::{escape, truncate};

/// How many operations of the same key to show before and after each focused one.
const NEIGHBOURS: usize = 6;
/// At most this many operations are drawn.
const MAX_OPS: usize = 40;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const LANE: f64 = 34.0;

/// Paired-operation ids involved in an example, from its history `index` values.
pub fn operations_of(history: &History, paired: &PairedHistory, indices: &[u64]) -> Vec<usize> {
    let position: HashMap<u64, usize> = history.ops.iter().enumerate().map(|(i, o)| (o.index, i)).collect();
    let mut op_of_event: HashMap<usize, usize> = HashMap::new();
    for (id, o) in paired.operations.iter().enumerate() {
        op_of_event.insert(o.invoke, id);
        if let Some(c) = o.completion {
            op_of_event.insert(c, id);
        }
    }
    let ids: BTreeSet<usize> = indices
        .iter()
        .filter_map(|i| position.get(i))
        .filter_map(|p| op_of_event.get(p))
        .copied()
        .collect();
    ids.into_iter().collect()
}

fn key_of(o: &Operation) -> Option<String> {
    o.key.map(|k| k.value().to_string())
}

/// The operations to draw: the focused ones, their neighbours on the same key, and every operation that
/// overlaps a focused one in time.
fn context(paired: &PairedHistory, focus: &[usize]) -> Vec<usize> {
    let ops = &paired.operations;
    let keys: BTreeSet<Option<String>> = focus.iter().filter_map(|f| ops.get(*f)).map(key_of).collect();
    let same_key: Vec<usize> = (0..ops.len()).filter(|i| keys.contains(&key_of(&ops[*i]))).collect();
    let mut chosen: BTreeSet<usize> = focus.iter().copied().filter(|f| *f < ops.len()).collect();
    for f in focus {
        if let Ok(at) = same_key.binary_search(f) {
            let lo = at.saturating_sub(NEIGHBOURS);
            let hi = (at + NEIGHBOURS + 1).min(same_key.len());
            chosen.extend(&same_key[lo..hi]);
        }
        if let Some(o) = ops.get(*f) {
            let end = o.return_time.unwrap_or(u64::MAX);
            chosen.extend(same_key.iter().filter(|i| overlaps(&ops[**i], o.call_time, end)));
        }
    }
    let mut chosen: Vec<usize> = chosen.into_iter().collect();
    if chosen.len() > MAX_OPS {
        let centre = focus.first().and_then(|f| ops.get(*f)).map_or(0, |o| o.call_time);
        chosen.sort_by_key(|i| (!focus.contains(i), ops[*i].call_time.abs_diff(centre)));
        chosen.truncate(MAX_OPS);
        chosen.sort_unstable();
    }
    chosen
}

fn overlaps(o: &Operation, start: u64, end: u64) -> bool {
    o.call_time <= end && o.return_time.unwrap_or(u64::MAX) >= start
}

/// What a bar says: `write 3`, `read → 3`, `cas [1,2]`, plus the outcome when it is not `ok`.
fn label(o: &Operation) -> String {
    let value = o.value;
    let shown = if value.is_null() {
        String::new()
    } else {
        value.to_string()
    };
    let mut text = match (o.f, o.outcome) {
        ("read", Outcome::Ok) => format!("read → {}", if shown.is_empty() { "null" } else { &shown }),
        (f, _) => format!("{f} {shown}"),
    };
    match o.outcome {
        Outcome::Fail => text.push_str(" (fail)"),
        Outcome::Info => text.push_str(" (info)"),
        Outcome::Ok => {}
    }
    text
}

fn fill(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "#cfe3f3",
        Outcome::Fail => "#f6caca",
        Outcome::Info => "#ffe2c4",
    }
}

/// Draws the timeline around the operations `focus` (paired-operation ids); empty string when none exist.
pub fn svg(paired: &PairedHistory, focus: &[usize]) -> String {
    let chosen = context(paired, focus);
    let ops: Vec<&Operation> = chosen.iter().filter_map(|i| paired.operations.get(*i)).collect();
    if ops.is_empty() {
        return String::new();
    }
    let start = ops.iter().map(|o| o.call_time).min().unwrap_or(0);
    let last = ops
        .iter()
        .map(|o| o.return_time.unwrap_or(o.call_time))
        .max()
        .unwrap_or(start);
    let span = (last - start).max(1) as f64 * 1.08;
    let x = |t: u64| LEFT + (t.saturating_sub(start)) as f64 / span * (WIDTH - LEFT - RIGHT);
    let processes: Vec<u64> = ops
        .iter()
        .map(|o| o.process)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let lane = |p: u64| processes.iter().position(|q| *q == p).unwrap_or(0);
    let height = TOP + LANE * processes.len() as f64 + 30.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    axis(&mut out, &processes, height, span, start);
    for (o, id) in ops.iter().zip(&chosen) {
        bar(
            &mut out,
            o,
            focus.contains(id),
            x(o.call_time),
            o.return_time.map(x),
            lane(o.process),
        );
    }
    out.push_str("</svg>");
    out
}

fn axis(out: &mut String, processes: &[u64], height: f64, span: f64, start: u64) {
    for (i, p) in processes.iter().enumerate() {
        let y = TOP + LANE * i as f64;
        let _ = write!(
            out,
            "<text x=\"8\" y=\"{:.1}\">process {p}</text><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" \
             stroke=\"#eee\"/>",
            y + LANE / 2.0 + 4.0,
            WIDTH - RIGHT,
            y + LANE,
            y + LANE
        );
    }
    let axis_y = height - 12.0;
    for k in 0..=4 {
        let frac = f64::from(k) / 4.0;
        let xpos = LEFT + frac * (WIDTH - LEFT - RIGHT);
        let ms = (start as f64 + frac * span) / 1e6;
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<text x=\"{xpos:.1}\" y=\"{axis_y:.1}\" text-anchor=\"{anchor}\" fill=\"#666\">{ms:.3} ms</text>"
        );
    }
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"16\" fill=\"#666\">time since start of run → (bars: invocation to completion)</text>"
    );
}

fn bar(out: &mut String, o: &Operation, focused: bool, x0: f64, x1: Option<f64>, lane: usize) {
    let y = TOP + LANE * lane as f64 + 5.0;
    let (x1, dash) = match x1 {
        Some(x1) => (x1, ""),
        None => (WIDTH - RIGHT, " stroke-dasharray=\"4 3\""),
    };
    let w = (x1 - x0).max(2.0);
    let (stroke, stroke_width) = if focused { ("#d62728", 2.5) } else { ("#777", 1.0) };
    let text = escape(&truncate(&label(o), ((w / 6.2) as usize).max(12)));
    let title = escape(&format!(
        "process {} {}; invoked at {:.3} ms, {}",
        o.process,
        label(o),
        o.call_time as f64 / 1e6,
        o.return_time.map_or("never completed".to_string(), |t| format!(
            "completed at {:.3} ms",
            t as f64 / 1e6
        ))
    ));
    let _ = write!(
        out,
        "<g><title>{title}</title><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"3\" \
         fill=\"{}\" stroke=\"{stroke}\" stroke-width=\"{stroke_width}\"{dash}/>\
         <text x=\"{:.1}\" y=\"{:.1}\">{text}</text></g>",
        LANE - 10.0,
        fill(o.outcome),
        x0 + 4.0,
        y + LANE / 2.0
    );
}

#[cfg(test)]
mod tests {
    use faultline_checker::history::{Op, OpType, Process, pair};
    use serde_json::json;

    use super::*;

    fn history() -> History {
        let ops = vec![
            Op::new(10, 0, OpType::Invoke, Process::Client(1), "write", json!(1)),
            Op::new(11, 10, OpType::Ok, Process::Client(1), "write", json!(1)),
            Op::new(
                12,
                20,
                OpType::Invoke,
                Process::Client(2),
                "read",
                serde_json::Value::Null,
            ),
            Op::new(13, 25, OpType::Invoke, Process::Client(3), "write", json!(2)),
            Op::new(14, 30, OpType::Ok, Process::Client(2), "read", json!(7)),
        ];
        History::from_ops(ops)
    }

    #[test]
    fn maps_example_indices_to_operations() {
        let h = history();
        let paired = pair(&h).expect("valid");
        assert_eq!(operations_of(&h, &paired, &[12, 14]), vec![1]);
        assert_eq!(operations_of(&h, &paired, &[99]), Vec::<usize>::new());
    }

    #[test]
    fn draws_one_lane_per_process_and_outlines_the_focus() {
        let h = history();
        let paired = pair(&h).expect("valid");
        let svg = svg(&paired, &[1]);
        assert!(svg.starts_with("<svg"));
        for p in ["process 1", "process 2", "process 3"] {
            assert!(svg.contains(p), "{p}");
        }
        assert_eq!(svg.matches("stroke=\"#d62728\"").count(), 1);
        assert!(svg.contains("read → 7"));
        assert!(svg.contains("stroke-dasharray"), "the open write is dashed");
        assert_eq!(super::super::text::escape("→"), "→");
    }
}

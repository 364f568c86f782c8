//! Stale reads: for register histories whose written values are unique per key, classify every read.
//!
//! A read of `v` is *impossible* if `v` was never written (and is not the initial value) or its write was
//! invoked only after the read completed. It is *stale* if some acknowledged write certainly overwrote `v`
//! before the read began — invoked after `v`'s write completed and completed before the read was invoked; then
//! no linearization exists, so every stale read is also a linearizability violation. Staleness is reported in
//! versions (how many such acknowledged writes) and in milliseconds (from the first such write's
//! acknowledgement to the read's invocation). Otherwise the read is *fresh*. Per member when `node` is known;
//! distributions use hdrhistogram. Reads of values written more than once are left unclassified.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::history::{Conventions, History, Key, Operation, Outcome, PairedHistory};
use crate::result::{CheckResult, Validity};

/// How one read was classified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadClass {
    /// Saw a value that may have been current.
    Fresh,
    /// Saw a value overwritten `versions` acknowledged writes and `behind_ns` before it began.
    Stale {
        versions: u64,
        behind_ns: u64,
        overwriter: usize,
    },
    /// Saw a value never written, or not yet written.
    Impossible,
    /// Saw a value written more than once.
    Unclassified,
}

#[derive(Clone, Copy)]
struct Write {
    id: usize,
    call: i128,
    done: Option<i128>,
    acked: bool,
}

/// A key and a value, as canonical text.
type Slot = (String, String);

fn slot_of<'a>(operation: &Operation<'a>) -> (String, &'a Value) {
    (operation.key.map_or_else(String::new, Key::to_string), operation.value)
}

fn written_value(operation: &Operation) -> Option<(String, Value)> {
    let (key, value) = slot_of(operation);
    match operation.f {
        "write" => Some((key, value.clone())),
        "cas" => value.as_array().and_then(|a| a.get(1)).map(|to| (key, to.clone())),
        _ => None,
    }
}

/// Classifies every `ok` read; returns `(operation id, class)` pairs in history order.
pub fn classify(paired: &PairedHistory, conventions: &Conventions) -> Vec<(usize, ReadClass)> {
    let mut writes: HashMap<Slot, Vec<Write>> = HashMap::new();
    let mut by_key: HashMap<String, Vec<Write>> = HashMap::new();
    for (id, o) in paired.operations.iter().enumerate() {
        if o.outcome == Outcome::Fail {
            continue;
        }
        if let Some((key, value)) = written_value(o) {
            let w = Write {
                id,
                call: i128::from(o.call_time),
                done: o.return_time.map(i128::from),
                acked: o.outcome == Outcome::Ok,
            };
            writes.entry((key.clone(), value.to_string())).or_default().push(w);
            by_key.entry(key).or_default().push(w);
        }
    }
    let initial = &conventions.initial;
    let mut out = Vec::new();
    for (id, o) in paired.operations.iter().enumerate() {
        if o.f != "read" || o.outcome != Outcome::Ok {
            continue;
        }
        let (key, value) = slot_of(o);
        let (call, done) = (i128::from(o.call_time), o.return_time.map_or(i128::MAX, i128::from));
        let source = match writes.get(&(key.clone(), value.to_string())).map(Vec::as_slice) {
            Some([w]) if value != initial => *w,
            None if value == initial => Write {
                id: usize::MAX,
                call: -1,
                done: Some(-1),
                acked: true,
            },
            None => {
                out.push((id, ReadClass::Impossible));
                continue;
            }
            Some(_) => {
                out.push((id, ReadClass::Unclassified));
                continue;
            }
        };
        if source.call > done {
            out.push((id, ReadClass::Impossible));
            continue;
        }
        out.push((
            id,
            staleness(source, by_key.get(&key).map_or(&[][..], Vec::as_slice), call),
        ));
    }
    out
}

fn staleness(source: Write, same_key: &[Write], read_call: i128) -> ReadClass {
    let Some(source_done) = source.done else {
        return ReadClass::Fresh;
    };
    let mut versions = 0;
    let mut first: Option<Write> = None;
    for w in same_key {
        let Some(done) = w.done else { continue };
        if w.acked && w.id != source.id && w.call > source_done && done < read_call {
            versions += 1;
            if first.is_none_or(|f| f.done.is_some_and(|d| done < d)) {
                first = Some(*w);
            }
        }
    }
    match first {
        Some(w) => ReadClass::Stale {
            versions,
            behind_ns: (read_call - w.done.unwrap_or(read_call)).max(0) as u64,
            overwriter: w.id,
        },
        None => ReadClass::Fresh,
    }
}

#[derive(Default)]
struct NodeCounts {
    reads: u64,
    stale: u64,
}

/// Runs the stale-read checker.
pub fn check(history: &History, paired: &PairedHistory, conventions: &Conventions) -> CheckResult {
    let classes = classify(paired, conventions);
    let mut result = CheckResult::new("stale-reads");
    let mut ms = Histogram::<u64>::new(3).ok();
    let mut versions = Histogram::<u64>::new(3).ok();
    let mut nodes: BTreeMap<String, NodeCounts> = BTreeMap::new();
    let mut tally = [0u64; 4];
    let index_of = |op: usize| history.ops.get(paired.operations[op].invoke).map_or(0, |o| o.index);
    for &(id, class) in &classes {
        let o = &paired.operations[id];
        let node = nodes.entry(o.node.unwrap_or("unknown").to_string()).or_default();
        node.reads += 1;
        match class {
            ReadClass::Fresh => tally[0] += 1,
            ReadClass::Stale {
                versions: n,
                behind_ns,
                overwriter,
            } => {
                tally[1] += 1;
                node.stale += 1;
                if let Some(h) = ms.as_mut() {
                    h.saturating_record(behind_ns / 1_000);
                }
                if let Some(h) = versions.as_mut() {
                    h.saturating_record(n);
                }
                let text = format!(
                    "process {} read {} (line {}) {:.3} ms and {n} acknowledged version(s) after it was overwritten",
                    o.process,
                    o.wire_value(),
                    history.line_of(o.invoke),
                    behind_ns as f64 / 1e6
                );
                result.add_anomaly("stale-read", vec![index_of(id), index_of(overwriter)], text);
            }
            ReadClass::Impossible => {
                tally[2] += 1;
                let text = format!(
                    "process {} read {} (line {}), which was never (yet) written",
                    o.process,
                    o.wire_value(),
                    history.line_of(o.invoke)
                );
                result.add_anomaly("impossible-read", vec![index_of(id)], text);
            }
            ReadClass::Unclassified => tally[3] += 1,
        }
    }
    for (name, n) in ["fresh", "stale", "impossible", "unclassified"].iter().zip(tally) {
        result.set_count(name, n);
    }
    result.set_count("reads", classes.len() as u64);
    if tally[3] > 0 && result.valid == Validity::True {
        result.valid = Validity::Unknown;
    }
    let fraction = if classes.is_empty() {
        0.0
    } else {
        tally[1] as f64 / classes.len() as f64
    };
    let per_node: serde_json::Map<String, Value> = nodes
        .into_iter()
        .map(|(n, c)| (n, json!({"reads": c.reads, "stale": c.stale})))
        .collect();
    result.details = json!({
        "stale-fraction": fraction,
        "staleness-ms": ms.map(|h| summary(&h, 1e-3)),
        "versions-behind": versions.map(|h| summary(&h, 1.0)),
        "per-node": per_node,
    });
    result
}

/// Quantiles of a histogram, scaled by `scale`.
pub fn summary(h: &Histogram<u64>, scale: f64) -> Value {
    let q = |p: f64| h.value_at_quantile(p) as f64 * scale;
    json!({
        "count": h.len(),
        "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
        "max": h.max() as f64 * scale,
        "mean": h.mean() * scale,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::{Op, OpType, Process, pair};

    fn run(events: &[(u64, OpType, &str, Value, u64)]) -> CheckResult {
        let ops = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v, time))| Op::new(i as u64, *time, *t, Process::Client(*p), f, v.clone()))
            .collect();
        let h = History::from_ops(ops);
        check(&h, &pair(&h).expect("valid"), &Conventions::default())
    }

    #[test]
    fn classifies_fresh_stale_and_impossible_reads() {
        use OpType::{Invoke, Ok};
        let r = run(&[
            (1, Invoke, "write", json!(1), 0),
            (1, Ok, "write", json!(1), 1_000_000),
            (1, Invoke, "write", json!(2), 2_000_000),
            (1, Ok, "write", json!(2), 3_000_000),
            (2, Invoke, "read", Value::Null, 5_000_000),
            (2, Ok, "read", json!(1), 6_000_000),
            (2, Invoke, "read", Value::Null, 7_000_000),
            (2, Ok, "read", json!(2), 8_000_000),
            (2, Invoke, "read", Value::Null, 9_000_000),
            (2, Ok, "read", json!(9), 9_500_000),
        ]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(
            (r.counts["fresh"], r.counts["stale"], r.counts["impossible"]),
            (1, 1, 1)
        );
        assert_eq!(r.examples[0].ops, vec![4, 2]);
        assert!((r.details["stale-fraction"].as_f64().unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
        let p50 = r.details["staleness-ms"]["p50"].as_f64().unwrap_or(0.0);
        assert!((p50 - 2.0).abs() < 0.01, "{p50}");
    }

    #[test]
    fn concurrent_overwrite_is_not_stale() {
        use OpType::{Invoke, Ok};
        let r = run(&[
            (1, Invoke, "write", json!(1), 0),
            (1, Ok, "write", json!(1), 10),
            (2, Invoke, "read", Value::Null, 20),
            (1, Invoke, "write", json!(2), 21),
            (1, Ok, "write", json!(2), 22),
            (2, Ok, "read", json!(1), 30),
        ]);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.counts["fresh"], 1);
    }
}

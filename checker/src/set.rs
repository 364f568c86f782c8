//! Lost writes for set workloads: `add v` operations and `read` operations returning the whole set.
//!
//! The last `ok` read is the final read. Acknowledged adds missing from it are *lost*; elements in it that
//! were never added are *unexpected*; crashed adds present in it are *recovered*. For every acknowledged
//! element present at the end, the *visibility latency* is the time from its acknowledgement to the invocation
//! of the first read after which every read (invoked after the acknowledgement) contains it.

use std::collections::{HashMap, HashSet};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::history::{History, Outcome, PairedHistory};
use crate::result::{CheckResult, Validity};
use crate::stale::summary;

struct Element {
    add: usize,
    acked_at: Option<u64>,
    /// Invocation time of the read from which it was stably visible.
    stable_from: Option<u64>,
}

/// Runs the set checker.
pub fn check(history: &History, paired: &PairedHistory) -> CheckResult {
    let mut result = CheckResult::new("set");
    let ops = &paired.operations;
    let index_of = |id: usize| history.ops.get(ops[id].invoke).map_or(0, |o| o.index);
    let mut elements: HashMap<String, Element> = HashMap::new();
    for (id, o) in ops.iter().enumerate() {
        if o.f == "add" && o.outcome != Outcome::Fail {
            let acked_at = if o.outcome == Outcome::Ok { o.return_time } else { None };
            elements.entry(o.value.to_string()).or_insert(Element {
                add: id,
                acked_at,
                stable_from: None,
            });
        }
    }
    let mut reads: Vec<(usize, HashSet<String>)> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.f == "read" && o.outcome == Outcome::Ok)
        .map(|(id, o)| {
            (
                id,
                o.value
                    .as_array()
                    .map(|a| a.iter().map(Value::to_string).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    reads.sort_by_key(|(id, _)| ops[*id].call_time);
    let Some(final_id) = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.f == "read" && o.outcome == Outcome::Ok)
        .max_by_key(|(_, o)| o.return_time)
        .map(|(id, _)| id)
    else {
        result.valid = Validity::Unknown;
        result.details = json!({"reason": "no successful read"});
        return result;
    };
    let final_set: HashSet<String> = reads
        .iter()
        .find(|(id, _)| *id == final_id)
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    track_visibility(ops, &reads, &mut elements);
    let mut latencies = Histogram::<u64>::new(3).ok();
    let (mut acked, mut recovered) = (0, 0);
    for (value, e) in &elements {
        let present = final_set.contains(value);
        match (e.acked_at, present) {
            (Some(_), false) => {
                let text = format!("acknowledged add of {value} is missing from the final read");
                result.add_anomaly("lost", vec![index_of(e.add), index_of(final_id)], text);
            }
            (None, true) => recovered += 1,
            _ => {}
        }
        if let (Some(ack), Some(from), true, Some(h)) = (e.acked_at, e.stable_from, present, latencies.as_mut()) {
            h.saturating_record(from.saturating_sub(ack) / 1_000);
        }
        acked += u64::from(e.acked_at.is_some());
    }
    for value in &final_set {
        if !elements.contains_key(value) {
            result.add_anomaly(
                "unexpected",
                vec![index_of(final_id)],
                format!("final read has {value}, never added"),
            );
        }
    }
    result.set_count("attempted", elements.len() as u64);
    result.set_count("acknowledged", acked);
    result.set_count("recovered", recovered);
    result.set_count("final-size", final_set.len() as u64);
    result.details = json!({"visibility-ms": latencies.map(|h| summary(&h, 1e-3))});
    result
}

/// Sets each element's `stable_from`: the first read (invoked after the ack) from which all reads contain it.
fn track_visibility(
    ops: &[crate::history::Operation],
    reads: &[(usize, HashSet<String>)],
    elements: &mut HashMap<String, Element>,
) {
    for (value, e) in elements.iter_mut() {
        let Some(ack) = e.acked_at else { continue };
        for (id, seen) in reads.iter().filter(|(id, _)| ops[*id].call_time >= ack) {
            if seen.contains(value) {
                e.stable_from = e.stable_from.or(Some(ops[*id].call_time));
            } else {
                e.stable_from = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::{Op, OpType, Process, pair};

    #[test]
    fn finds_lost_unexpected_and_visibility() {
        use OpType::{Invoke, Ok};
        let events = [
            (1, Invoke, "add", json!(1), 0),
            (1, Ok, "add", json!(1), 1_000_000),
            (1, Invoke, "add", json!(2), 2_000_000),
            (1, Ok, "add", json!(2), 3_000_000),
            (2, Invoke, "read", Value::Null, 4_000_000),
            (2, Ok, "read", json!([2]), 4_100_000),
            (2, Invoke, "read", Value::Null, 9_000_000),
            (2, Ok, "read", json!([2, 7]), 9_100_000),
        ];
        let ops = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v, time))| Op::new(i as u64, *time, *t, Process::Client(*p), f, v.clone()))
            .collect();
        let h = History::from_ops(ops);
        let r = check(&h, &pair(&h).expect("valid"));
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.anomalies, vec!["lost".to_string(), "unexpected".to_string()]);
        assert_eq!(r.counts["lost"], 1);
        assert_eq!(r.examples[0].ops, vec![0, 6]);
        let max = r.details["visibility-ms"]["max"].as_f64().unwrap_or(0.0);
        assert!((max - 1.0).abs() < 0.01, "{max}");
    }
}

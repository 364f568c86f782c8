//! A change stream watched during a `set` run, checked against the run's history (issue 18).
//!
//! The watcher (`faultline test --change-stream`) records one JSON object per line in `change-stream.jsonl`:
//!
//! ```text
//! {"open":"start","time":…}                               the stream was opened (first line)
//! {"element":17,"clusterTime":[1764700000,3],"time":…}    an insert event: the document's `_id`, its clusterTime
//! {"reopen":"<why>","time":…}                             the stream was reopened from its last resume token
//! {"other":"Delete","time":…}                             an event of another kind (not checked)
//! ```
//!
//! `time` is nanoseconds on the history's clock. The events are compared with the history's `add` operations
//! and its final read (the last `ok` read):
//!
//! - `change-stream-repeat`: an element appears twice.
//! - `change-stream-phantom`: an element appears whose add definitely failed, that was never added, or that
//!   the final read does not contain (e.g. a write later rolled back).
//! - `change-stream-missing`: an element the final read contains, or (when the adds were acknowledged with
//!   `w: "majority"`) whose add was acknowledged, never appears.
//! - `change-stream-order`: an event's clusterTime is not after the previous event's.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::history::{History, Outcome, PairedHistory};
use crate::result::{CheckResult, Validity};

/// One line of `change-stream.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamRecord {
    /// The stream was opened.
    Open,
    /// An insert event: the inserted `_id` and the event's clusterTime (seconds, increment).
    Event { element: Value, cluster_time: (u32, u32) },
    /// The stream was reopened from its last resume token, for `reason`.
    Reopen { reason: String },
}

/// Parses `change-stream.jsonl`; an error names the line.
pub fn parse(text: &str) -> Result<Vec<StreamRecord>, String> {
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("change-stream.jsonl line {}: {why}", n + 1);
        let value: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        if value.get("other").is_some() {
            continue;
        }
        let record = if value.get("open").is_some() {
            StreamRecord::Open
        } else if let Some(reason) = value.get("reopen") {
            StreamRecord::Reopen {
                reason: reason.as_str().unwrap_or_default().to_string(),
            }
        } else if let Some(element) = value.get("element") {
            let time = value
                .get("clusterTime")
                .and_then(Value::as_array)
                .and_then(|a| Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?)))
                .and_then(|(t, i)| Some((u32::try_from(t).ok()?, u32::try_from(i).ok()?)))
                .ok_or_else(|| bad("an event without a clusterTime [seconds, increment]"))?;
            StreamRecord::Event {
                element: element.clone(),
                cluster_time: time,
            }
        } else {
            return Err(bad("neither open, reopen nor an event"));
        };
        records.push(record);
    }
    Ok(records)
}

/// Checks the stream's `records` against a set history. `majority_acked`: the adds were acknowledged with
/// `w: "majority"`, so every acknowledged add must appear (otherwise only those the final read holds).
pub fn check(history: &History, paired: &PairedHistory, records: &[StreamRecord], majority_acked: bool) -> CheckResult {
    let mut result = CheckResult::new("change-stream");
    let ops = &paired.operations;
    let index_of = |id: usize| history.ops.get(ops[id].invoke).map_or(0, |o| o.index);
    let mut adds: HashMap<String, usize> = HashMap::new();
    for (id, o) in ops.iter().enumerate() {
        if o.f == "add" {
            adds.entry(o.value.to_string()).or_insert(id);
        }
    }
    let Some((final_id, final_read)) = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.f == "read" && o.outcome == Outcome::Ok)
        .max_by_key(|(_, o)| o.return_time)
    else {
        result.valid = Validity::Unknown;
        result.details = json!({"reason": "no successful read"});
        return result;
    };
    let final_set: HashSet<String> = final_read
        .value
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();

    let mut seen: HashSet<String> = HashSet::new();
    let mut last_time: Option<(u32, u32)> = None;
    let (mut events, mut reopens) = (0u64, 0u64);
    for record in records {
        let (element, time) = match record {
            StreamRecord::Open => continue,
            StreamRecord::Reopen { .. } => {
                reopens += 1;
                continue;
            }
            StreamRecord::Event { element, cluster_time } => (element.to_string(), *cluster_time),
        };
        events += 1;
        let add = adds.get(&element).copied();
        let involved: Vec<u64> = add.map(index_of).into_iter().collect();
        if !seen.insert(element.clone()) {
            result.add_anomaly(
                "change-stream-repeat",
                involved.clone(),
                format!("the change stream showed the insert of {element} more than once"),
            );
        }
        match add {
            None => result.add_anomaly(
                "change-stream-phantom",
                vec![index_of(final_id)],
                format!("the change stream showed an insert of {element}, never added"),
            ),
            Some(id) if ops[id].outcome == Outcome::Fail => result.add_anomaly(
                "change-stream-phantom",
                involved.clone(),
                format!("the change stream showed the insert of {element}, whose add failed"),
            ),
            Some(id) if !final_set.contains(&element) => result.add_anomaly(
                "change-stream-phantom",
                vec![index_of(id), index_of(final_id)],
                format!("the change stream showed the insert of {element}, which the final read does not hold"),
            ),
            Some(_) => {}
        }
        if let Some(last) = last_time.filter(|last| time <= *last) {
            result.add_anomaly(
                "change-stream-order",
                involved,
                format!("the insert of {element} at clusterTime {time:?} came after an event at {last:?}",),
            );
        }
        last_time = Some(last_time.map_or(time, |last| last.max(time)));
    }

    let mut expected: Vec<(&String, usize)> = adds
        .iter()
        .filter(|(element, id)| final_set.contains(*element) || (majority_acked && ops[**id].outcome == Outcome::Ok))
        .map(|(element, id)| (element, *id))
        .collect();
    expected.sort_by_key(|(_, id)| *id);
    for (element, id) in &expected {
        if !seen.contains(*element) {
            let why = if final_set.contains(*element) {
                "the final read holds it"
            } else {
                "it was acknowledged with w: majority"
            };
            result.add_anomaly(
                "change-stream-missing",
                vec![index_of(*id)],
                format!("the change stream never showed the insert of {element}, but {why}"),
            );
        }
    }
    result.set_count("events", events);
    result.set_count("reopens", reopens);
    result.set_count("expected", expected.len() as u64);
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::{Op, OpType, Process, pair};

    /// adds 1 (ok), 2 (ok), 3 (fail), 4 (info, recovered), 5 (info, lost); final read [1, 2, 4].
    fn history() -> History {
        use OpType::{Fail, Info, Invoke, Ok};
        let events = [
            (1, Invoke, "add", json!(1)),
            (1, Ok, "add", json!(1)),
            (1, Invoke, "add", json!(2)),
            (1, Ok, "add", json!(2)),
            (1, Invoke, "add", json!(3)),
            (1, Fail, "add", json!(3)),
            (2, Invoke, "add", json!(4)),
            (2, Info, "add", json!(4)),
            (3, Invoke, "add", json!(5)),
            (3, Info, "add", json!(5)),
            (1, Invoke, "read", Value::Null),
            (1, Ok, "read", json!([1, 2, 4])),
        ];
        history_of(&events)
    }

    /// A history of `(process, type, f, value)` events, 1 µs apart.
    fn history_of(events: &[(u64, OpType, &str, Value)]) -> History {
        let ops = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v))| Op::new(i as u64, i as u64 * 1_000, *t, Process::Client(*p), f, v.clone()))
            .collect();
        History::from_ops(ops)
    }

    fn event(element: i64, increment: u32) -> StreamRecord {
        StreamRecord::Event {
            element: json!(element),
            cluster_time: (100, increment),
        }
    }

    fn run(records: &[StreamRecord]) -> CheckResult {
        let h = history();
        check(&h, &pair(&h).expect("valid"), records, true)
    }

    #[test]
    fn a_complete_ordered_stream_is_valid() {
        let r = run(&[StreamRecord::Open, event(1, 1), event(2, 2), event(4, 3)]);
        assert_eq!(r.valid, Validity::True, "{r:?}");
        assert_eq!((r.counts["events"], r.counts["expected"]), (3, 3));
    }

    #[test]
    fn repeats_phantoms_missing_and_disorder_are_named() {
        let reopen = StreamRecord::Reopen { reason: "x".into() };
        let r = run(&[event(1, 1), reopen.clone(), event(1, 2), event(4, 4), event(2, 3)]);
        assert_eq!(
            r.anomalies,
            vec!["change-stream-order", "change-stream-repeat"],
            "{r:?}"
        );
        assert_eq!(r.counts["reopens"], 1);

        let r = run(&[
            event(1, 1),
            event(2, 2),
            event(3, 3),
            event(4, 4),
            event(5, 5),
            event(9, 6),
        ]);
        assert_eq!(r.anomalies, vec!["change-stream-phantom"]);
        assert_eq!(r.counts["change-stream-phantom"], 3, "failed, rolled back, never added");

        let r = run(&[event(1, 1)]);
        assert_eq!(r.anomalies, vec!["change-stream-missing"]);
        assert_eq!(
            r.counts["change-stream-missing"], 2,
            "2 (acknowledged) and 4 (in the final read)"
        );
        assert_eq!(r.examples[0].ops, vec![2]);
    }

    #[test]
    fn an_acknowledged_add_missing_from_the_final_read_is_expected_only_with_majority_acks() {
        use OpType::{Invoke, Ok};
        let events = [
            (1, Invoke, "add", json!(1)),
            (1, Ok, "add", json!(1)),
            (1, Invoke, "add", json!(2)),
            (1, Ok, "add", json!(2)),
            (1, Invoke, "read", Value::Null),
            (1, Ok, "read", json!([1])),
        ];
        let h = history_of(&events);
        let paired = pair(&h).expect("valid");
        // With w: 1 an acknowledged add may be rolled back: 2 need not appear.
        let r = check(&h, &paired, &[event(1, 1)], false);
        assert_eq!(r.valid, Validity::True, "{r:?}");
        // With w: majority it had to be committed, so the stream had to show it.
        let r = check(&h, &paired, &[event(1, 1)], true);
        assert_eq!(r.anomalies, vec!["change-stream-missing"], "{r:?}");
        assert_eq!(r.examples[0].ops, vec![2]);
    }

    #[test]
    fn the_file_format_round_trips_and_bad_lines_are_named() {
        let text = "{\"open\":\"start\"}\n{\"element\":7,\"clusterTime\":[5,2],\"time\":1}\n{\"reopen\":\"gone\"}\n";
        assert_eq!(
            parse(text).expect("valid"),
            vec![
                StreamRecord::Open,
                StreamRecord::Event {
                    element: json!(7),
                    cluster_time: (5, 2)
                },
                StreamRecord::Reopen { reason: "gone".into() }
            ]
        );
        let err = parse("{\"open\":1}\n{\"element\":7}\n").expect_err("no clusterTime");
        assert!(err.contains("line 2"), "{err}");
    }
}

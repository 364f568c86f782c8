//! Session guarantees per process, for register histories with unique written values per key.
//!
//! For each process and key, each `ok` read is compared with that process's previous read and last write of
//! the key. Write order is taken from real time (a write definitely precedes another if it completed before the
//! other was invoked; the initial value precedes every write):
//! - *monotonic reads*: a read returns a value whose write definitely precedes the previous read's;
//! - *read your writes*: a read returns a value whose write definitely precedes the process's own last write;
//! - *monotonic writes*: after reading one process's later write, a read returns that process's earlier write;
//! - *writes follow reads*: after reading a write `w`, a read returns the value `w`'s writer had read before
//!   writing `w`.

use std::collections::HashMap;

use crate::history::{History, Key, Operation, Outcome, PairedHistory};
use crate::result::CheckResult;

#[derive(Clone)]
struct WriteInfo {
    id: usize,
    process: u64,
    seq: usize,
    call: u64,
    done: Option<u64>,
    /// The value its writer had last read on this key before writing it.
    after_read: Option<String>,
}

/// Per process and key: the previous read (op id, value) and the last own write's value.
type SessionState = (Option<(usize, String)>, Option<String>);

fn key_value(o: &Operation) -> (String, String) {
    (o.key.map_or_else(String::new, Key::to_string), o.value.to_string())
}

fn definitely_before(a: Option<&WriteInfo>, b: Option<&WriteInfo>) -> bool {
    match (a, b) {
        (None, Some(_)) => true, // the initial value precedes every write
        (Some(a), Some(b)) => a.done.is_some_and(|d| d < b.call),
        _ => false,
    }
}

/// Runs the session-guarantee checker.
pub fn check(history: &History, paired: &PairedHistory) -> CheckResult {
    let ops = &paired.operations;
    let writes = collect_writes(ops);
    let mut result = CheckResult::new("sessions");
    let index_of = |id: usize| history.ops.get(ops[id].invoke).map_or(0, |o| o.index);
    // (process, key) -> (previous read value, last own write value)
    let mut session: HashMap<(u64, String), SessionState> = HashMap::new();
    for (id, o) in ops.iter().enumerate() {
        if o.outcome != Outcome::Ok {
            continue;
        }
        let (key, value) = key_value(o);
        let state = session.entry((o.process, key.clone())).or_default();
        if o.f == "write" {
            state.1 = Some(value);
            continue;
        }
        if o.f != "read" {
            continue;
        }
        let this = writes.get(&(key.clone(), value.clone()));
        if let Some((prev_id, prev)) = &state.0 {
            let prev_write = writes.get(&(key.clone(), prev.clone()));
            let ids = vec![index_of(*prev_id), index_of(id)];
            if definitely_before(this, prev_write) {
                let text = format!("process {} read {value} after reading the newer {prev}", o.process);
                result.add_anomaly("monotonic-reads", ids.clone(), text);
            }
            if let (Some(t), Some(p)) = (this, prev_write)
                && t.process == p.process
                && t.seq < p.seq
                && t.id != p.id
            {
                let text = format!(
                    "process {} saw process {}'s write {prev}, then its earlier {value}",
                    o.process, p.process
                );
                result.add_anomaly("monotonic-writes", ids.clone(), text);
            }
            if prev_write.and_then(|p| p.after_read.as_ref()) == Some(&value) && prev != &value {
                let text = format!(
                    "process {} saw {prev}, written after reading {value}, then {value}",
                    o.process
                );
                result.add_anomaly("writes-follow-reads", ids, text);
            }
        }
        if let Some(own) = &state.1 {
            let own_write = writes.get(&(key.clone(), own.clone()));
            if own != &value && definitely_before(this, own_write) {
                let text = format!("process {} wrote {own}, then read the older {value}", o.process);
                result.add_anomaly("read-your-writes", vec![index_of(id)], text);
            }
        }
        state.0 = Some((id, value));
    }
    result.set_count("operations", ops.len() as u64);
    result
}

fn collect_writes(ops: &[Operation]) -> HashMap<(String, String), WriteInfo> {
    let mut writes = HashMap::new();
    let mut last_read: HashMap<(u64, String), String> = HashMap::new();
    let mut seq: HashMap<u64, usize> = HashMap::new();
    for (id, o) in ops.iter().enumerate() {
        let (key, value) = key_value(o);
        if o.f == "read" && o.outcome == Outcome::Ok {
            last_read.insert((o.process, key), value);
        } else if o.f == "write" && o.outcome != Outcome::Fail {
            let n = seq.entry(o.process).or_insert(0);
            *n += 1;
            let info = WriteInfo {
                id,
                process: o.process,
                seq: *n,
                call: o.call_time,
                done: if o.outcome == Outcome::Ok { o.return_time } else { None },
                after_read: last_read.get(&(o.process, key.clone())).cloned(),
            };
            writes.insert((key, value), info);
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::history::{Op, OpType, Process, pair};
    use crate::result::Validity;

    fn run(events: &[(u64, OpType, &str, Value)]) -> CheckResult {
        let ops = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v))| Op::new(i as u64, i as u64 * 10, *t, Process::Client(*p), f, v.clone()))
            .collect();
        let h = History::from_ops(ops);
        check(&h, &pair(&h).expect("valid"))
    }

    use OpType::{Invoke, Ok};

    #[test]
    fn detects_each_guarantee() {
        let r = run(&[
            (1, Invoke, "write", json!(1)),
            (1, Ok, "write", json!(1)),
            (1, Invoke, "write", json!(2)),
            (1, Ok, "write", json!(2)),
            (1, Invoke, "read", Value::Null),
            (1, Ok, "read", json!(1)),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", json!(2)),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", json!(1)),
        ]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(
            r.anomalies,
            vec!["monotonic-reads", "monotonic-writes", "read-your-writes"]
        );

        let wfr = run(&[
            (1, Invoke, "write", json!(1)),
            (1, Ok, "write", json!(1)),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", json!(1)),
            (2, Invoke, "write", json!(2)),
            (2, Ok, "write", json!(2)),
            (3, Invoke, "read", Value::Null),
            (3, Ok, "read", json!(2)),
            (3, Invoke, "read", Value::Null),
            (3, Ok, "read", json!(1)),
        ]);
        assert!(
            wfr.anomalies.contains(&"writes-follow-reads".to_string()),
            "{:?}",
            wfr.anomalies
        );
    }

    #[test]
    fn a_well_behaved_session_is_valid() {
        let r = run(&[
            (1, Invoke, "write", json!(1)),
            (1, Ok, "write", json!(1)),
            (1, Invoke, "read", Value::Null),
            (1, Ok, "read", json!(1)),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", Value::Null),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", json!(1)),
        ]);
        assert_eq!(r.valid, Validity::True, "{:?}", r.examples);
    }
}

//! Fault intervals from the nemesis ops of a history (the convention is in the crate doc).
//!
//! `start-K` … `stop-K` pairs become intervals of kind `K`, and Jepsen's bare `start` … `stop` intervals of
//! kind `nemesis`; a chunk migration (`move-chunk`, `faultline test --shards`) lasts from its invoke to its
//! completion; any other nemesis `f` is an instantaneous fault.

use std::collections::HashMap;

use faultline_checker::history::{History, Op, OpType};
use serde_json::Value;

/// One fault, as drawn on the plots and listed in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultInterval {
    /// The fault's kind (`partition`, `kill`, `pause`, ...).
    pub kind: String,
    /// When it began, ns since the start.
    pub start_ns: u64,
    /// When it ended, ns since the start; equal to `start_ns` for an instantaneous fault.
    pub end_ns: u64,
    /// Whether a `stop-K` op ended it (false: it was still active at the end of the history).
    pub stopped: bool,
    /// The start op's value, for humans.
    pub description: String,
}

impl FaultInterval {
    /// True for faults without duration (e.g. a bare `kill`).
    pub fn is_instant(&self) -> bool {
        self.start_ns == self.end_ns && self.stopped
    }
}

/// One logical nemesis op: its first and last event (an invoke and its completion, or a lone event).
struct NemesisOp<'h> {
    f: &'h str,
    first_ns: u64,
    last_ns: u64,
    failed: bool,
    value: &'h Value,
}

/// Groups nemesis events into ops: an invoke is joined with the next nemesis completion of the same `f`.
fn nemesis_ops(history: &History) -> Vec<NemesisOp<'_>> {
    let mut ops: Vec<NemesisOp> = Vec::new();
    let mut open: HashMap<&str, usize> = HashMap::new();
    for op in history.ops.iter().filter(|o| o.process.client().is_none()) {
        let f = op.f.as_str();
        if op.op_type != OpType::Invoke
            && let Some(at) = open.remove(f)
        {
            let pending = &mut ops[at];
            pending.last_ns = pending.last_ns.max(op.time);
            pending.failed = op.op_type == OpType::Fail;
            if !op.value.is_null() && pending.value.is_null() {
                pending.value = &op.value;
            }
            continue;
        }
        if op.op_type == OpType::Invoke {
            open.insert(f, ops.len());
        }
        ops.push(lone(op));
    }
    ops
}

fn lone(op: &Op) -> NemesisOp<'_> {
    NemesisOp {
        f: &op.f,
        first_ns: op.time,
        last_ns: op.time,
        failed: op.op_type == OpType::Fail,
        value: &op.value,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The kind of the intervals Jepsen's nemeses open with a bare `start` and close with `stop`.
const BARE_KIND: &str = "nemesis";

/// Nemesis ops that are faults for as long as they run (invoke to completion).
const LASTING: &[&str] = &["move-chunk"];

/// The fault intervals of a history, ordered by start time.
pub fn fault_intervals(history: &History) -> Vec<FaultInterval> {
    let end_of_history = history.ops.iter().map(|o| o.time).max().unwrap_or(0);
    let mut open: HashMap<String, FaultInterval> = HashMap::new();
    let mut out = Vec::new();
    for op in nemesis_ops(history) {
        let (starts, stops) = match op.f {
            "start" => (Some(BARE_KIND), None),
            "stop" => (None, Some(BARE_KIND)),
            f => (f.strip_prefix("start-"), f.strip_prefix("stop-")),
        };
        if let Some(kind) = starts {
            if !op.failed && !open.contains_key(kind) {
                open.insert(kind.to_string(), interval(kind, &op, op.first_ns, false));
            }
        } else if let Some(kind) = stops {
            if let Some(mut fault) = open.remove(kind) {
                fault.end_ns = op.last_ns.max(fault.start_ns);
                fault.stopped = true;
                out.push(fault);
            }
        } else if !op.failed {
            let mut fault = interval(op.f, &op, op.first_ns, true);
            if LASTING.contains(&op.f) {
                fault.end_ns = op.last_ns;
            }
            out.push(fault);
        }
    }
    out.extend(open.into_values().map(|mut fault| {
        fault.end_ns = end_of_history.max(fault.start_ns);
        fault
    }));
    out.sort_by(|a, b| (a.start_ns, &a.kind).cmp(&(b.start_ns, &b.kind)));
    out
}

fn interval(kind: &str, op: &NemesisOp, start_ns: u64, stopped: bool) -> FaultInterval {
    FaultInterval {
        kind: kind.to_string(),
        start_ns,
        end_ns: start_ns,
        stopped,
        description: describe(op.value),
    }
}

/// The distinct fault kinds, in order of first appearance.
pub fn kinds(faults: &[FaultInterval]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for fault in faults {
        if !kinds.contains(&fault.kind) {
            kinds.push(fault.kind.clone());
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use faultline_checker::history::Process;
    use serde_json::json;

    use super::*;

    fn nemesis(time: u64, t: OpType, f: &str, value: Value) -> Op {
        Op::new(0, time, t, Process::nemesis(), f, value)
    }

    #[test]
    fn start_stop_pairs_become_intervals() {
        let h = History::from_ops(vec![
            nemesis(10, OpType::Invoke, "start-partition", json!("isolate n1")),
            nemesis(12, OpType::Info, "start-partition", Value::Null),
            Op::new(0, 15, OpType::Invoke, Process::Client(1), "read", Value::Null),
            nemesis(30, OpType::Invoke, "stop-partition", Value::Null),
            nemesis(31, OpType::Info, "stop-partition", json!("healed")),
            nemesis(40, OpType::Invoke, "kill", json!("n2")),
            nemesis(41, OpType::Info, "kill", json!("n2")),
            nemesis(50, OpType::Invoke, "start-pause", json!("n3")),
            nemesis(60, OpType::Info, "start-pause", json!("n3")),
            Op::new(0, 90, OpType::Ok, Process::Client(1), "read", Value::Null),
        ]);
        let faults = fault_intervals(&h);
        assert_eq!(faults.len(), 3);
        assert_eq!(
            (faults[0].kind.as_str(), faults[0].start_ns, faults[0].end_ns),
            ("partition", 10, 31)
        );
        assert_eq!(faults[0].description, "isolate n1");
        assert!(faults[1].is_instant());
        assert_eq!(faults[1].kind, "kill");
        assert_eq!(
            (faults[2].kind.as_str(), faults[2].end_ns, faults[2].stopped),
            ("pause", 90, false)
        );
        assert_eq!(kinds(&faults), vec!["partition", "kill", "pause"]);
    }

    #[test]
    fn a_chunk_migration_lasts_from_its_invoke_to_its_completion() {
        let h = History::from_ops(vec![
            nemesis(10, OpType::Invoke, "move-chunk", json!({"fault": "move-chunk"})),
            nemesis(25, OpType::Info, "move-chunk", json!({"detail": "shard1 → shard2"})),
            nemesis(30, OpType::Invoke, "kill", json!("n2")),
            nemesis(31, OpType::Info, "kill", json!("n2")),
        ]);
        let faults = fault_intervals(&h);
        assert_eq!(
            (faults[0].kind.as_str(), faults[0].start_ns, faults[0].end_ns),
            ("move-chunk", 10, 25)
        );
        assert!(!faults[0].is_instant());
        assert!(faults[1].is_instant(), "other ops stay instants");
    }

    #[test]
    fn skipped_starts_and_unmatched_stops_draw_nothing() {
        let h = History::from_ops(vec![
            nemesis(10, OpType::Invoke, "start-partition", Value::Null),
            nemesis(11, OpType::Fail, "start-partition", json!("no primary")),
            nemesis(20, OpType::Info, "stop-partition", Value::Null),
        ]);
        assert!(fault_intervals(&h).is_empty());
    }

    #[test]
    fn jepsen_bare_start_and_stop_pair_into_a_nemesis_interval() {
        let h = History::from_ops(vec![
            nemesis(10, OpType::Invoke, "start", Value::Null),
            nemesis(11, OpType::Info, "start", json!("Cut off {:n1 #{:n2}}")),
            nemesis(30, OpType::Invoke, "stop", Value::Null),
            nemesis(32, OpType::Info, "stop", json!("fully connected")),
        ]);
        let faults = fault_intervals(&h);
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(
            (
                faults[0].kind.as_str(),
                faults[0].start_ns,
                faults[0].end_ns,
                faults[0].stopped
            ),
            ("nemesis", 10, 32, true)
        );
        assert_eq!(faults[0].description, "Cut off {:n1 #{:n2}}");
    }
}

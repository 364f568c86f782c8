//! Invoke/completion pairing and history validation.
//!
//! Each client invocation is matched with the next completion of the same process. A process may not invoke
//! twice without completing in between, and a completion needs an open invocation with the same `f`; both
//! are errors that name the source line. Invocations never completed count as `info` (they stay open to the
//! end of the history). Events of named processes (`"nemesis"`) are kept aside and never paired.

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;

use super::{History, Key, OpType, Process};

/// How a paired operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect between invocation and completion.
    Ok,
    /// Did not take effect.
    Fail,
    /// Unknown: may take effect at any time after invocation, or never (also: never completed).
    Info,
}

/// An invocation together with its completion; it borrows values from the [`History`].
#[derive(Debug, Clone, PartialEq)]
pub struct Operation<'h> {
    /// The client process.
    pub process: u64,
    /// The function.
    pub f: &'h str,
    /// The key, for multi-key workloads (from the invocation, else the completion).
    pub key: Option<&'h Key>,
    /// Event index of the invocation in the history.
    pub invoke: usize,
    /// Event index of the completion, if there was one.
    pub completion: Option<usize>,
    /// How it ended.
    pub outcome: Outcome,
    /// The value (without the key): the completion's for `ok` (when not null, and always for reads),
    /// otherwise the invocation's.
    pub value: &'h Value,
    /// Invocation time (ns).
    pub call_time: u64,
    /// Completion time (ns); `None` for `info`, which stays open to the end.
    pub return_time: Option<u64>,
    /// The member that served it, from the completion or the invocation.
    pub node: Option<&'h str>,
}

impl Operation<'_> {
    /// The value in its wire form, `{"key": k, "value": v}` for keyed operations (for diagnostics).
    pub fn wire_value(&self) -> Value {
        match self.key {
            Some(key) => {
                let mut map = serde_json::Map::new();
                map.insert("key".into(), key.value().clone());
                map.insert("value".into(), self.value.clone());
                Value::Object(map)
            }
            None => self.value.clone(),
        }
    }
}

/// A validated history split into client operations and the untouched nemesis events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairedHistory<'h> {
    /// Client operations in invocation order.
    pub operations: Vec<Operation<'h>>,
    /// Event indices of non-client (nemesis) events.
    pub nemesis: Vec<usize>,
}

/// A history that violates the event protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairingError {
    /// A process invoked again while its previous operation was still open.
    #[error("line {line}: process {process} invokes while its operation from line {open_line} is still open")]
    DoubleInvoke {
        line: usize,
        process: u64,
        open_line: usize,
    },
    /// A completion arrived for a process with nothing open.
    #[error("line {line}: completion for process {process} without an invocation")]
    CompletionWithoutInvoke { line: usize, process: u64 },
    /// A completion's `f` differs from its invocation's.
    #[error("line {line}: completion f {got:?} does not match invocation f {expected:?}")]
    FunctionMismatch { line: usize, expected: String, got: String },
}

/// Pairs invocations with completions and validates the history.
pub fn pair(history: &History) -> Result<PairedHistory<'_>, PairingError> {
    let mut paired = PairedHistory {
        operations: Vec::with_capacity(history.ops.len() / 2 + 1),
        ..PairedHistory::default()
    };
    let mut open: HashMap<u64, usize> = HashMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        let process = match op.process {
            Process::Client(p) => p,
            Process::Named(_) => {
                paired.nemesis.push(i);
                continue;
            }
        };
        if op.op_type == OpType::Invoke {
            if let Some(&prev) = open.get(&process) {
                let open_line = history.line_of(paired.operations[prev].invoke);
                return Err(PairingError::DoubleInvoke {
                    line: history.line_of(i),
                    process,
                    open_line,
                });
            }
            open.insert(process, paired.operations.len());
            paired.operations.push(open_operation(history, i, process));
        } else {
            let Some(slot) = open.remove(&process) else {
                return Err(PairingError::CompletionWithoutInvoke {
                    line: history.line_of(i),
                    process,
                });
            };
            complete(history, &mut paired.operations[slot], i)?;
        }
    }
    Ok(paired)
}

fn open_operation(history: &History, i: usize, process: u64) -> Operation<'_> {
    let op = &history.ops[i];
    Operation {
        process,
        f: &op.f,
        key: op.key.as_ref(),
        invoke: i,
        completion: None,
        outcome: Outcome::Info,
        value: &op.value,
        call_time: op.time,
        return_time: None,
        node: op.node.as_deref(),
    }
}

fn complete<'h>(history: &'h History, operation: &mut Operation<'h>, i: usize) -> Result<(), PairingError> {
    let op = &history.ops[i];
    if op.f != operation.f {
        return Err(PairingError::FunctionMismatch {
            line: history.line_of(i),
            expected: operation.f.to_string(),
            got: op.f.to_string(),
        });
    }
    operation.completion = Some(i);
    if op.node.is_some() {
        operation.node = op.node.as_deref();
    }
    if operation.key.is_none() {
        operation.key = op.key.as_ref();
    }
    match op.op_type {
        OpType::Ok => {
            operation.outcome = Outcome::Ok;
            operation.return_time = Some(op.time);
            if !op.value.is_null() || operation.f == "read" || operation.f == "get" {
                operation.value = &op.value;
            }
        }
        OpType::Fail => {
            operation.outcome = Outcome::Fail;
            operation.return_time = Some(op.time);
        }
        OpType::Info | OpType::Invoke => operation.outcome = Outcome::Info,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::Op;

    fn ev(i: u64, t: OpType, p: u64, f: &str, v: Value) -> Op {
        Op::new(i, i, t, Process::Client(p), f, v)
    }

    #[test]
    fn pairs_reads_with_completion_values_and_keeps_nemesis_aside() {
        let mut ops = vec![
            ev(0, OpType::Invoke, 1, "read", Value::Null),
            ev(1, OpType::Ok, 1, "read", json!(3)),
            ev(2, OpType::Invoke, 2, "write", json!(4)),
        ];
        ops.push(Op::new(3, 3, OpType::Info, Process::nemesis(), "start", Value::Null));
        let history = History::from_ops(ops);
        let paired = pair(&history).expect("valid history");
        assert_eq!(paired.operations.len(), 2);
        assert_eq!(paired.operations[0].value, &json!(3));
        assert_eq!(paired.operations[0].return_time, Some(1));
        assert_eq!(paired.operations[1].outcome, Outcome::Info);
        assert_eq!(paired.operations[1].return_time, None);
        assert_eq!(paired.nemesis, vec![3]);
    }

    #[test]
    fn double_invoke_and_orphan_completion_name_the_line() {
        let mut h = History::new();
        h.push(ev(0, OpType::Invoke, 1, "read", Value::Null), 7);
        h.push(ev(1, OpType::Invoke, 1, "read", Value::Null), 8);
        let err = pair(&h).expect_err("double invoke");
        assert_eq!(
            err,
            PairingError::DoubleInvoke {
                line: 8,
                process: 1,
                open_line: 7
            }
        );

        let mut h = History::new();
        h.push(ev(0, OpType::Ok, 4, "read", Value::Null), 3);
        assert!(pair(&h).expect_err("orphan").to_string().starts_with("line 3:"));
    }

    #[test]
    fn info_keeps_invocation_value_and_frees_the_process() {
        let ops = vec![
            ev(0, OpType::Invoke, 1, "cas", json!([1, 2])),
            ev(1, OpType::Info, 1, "cas", json!("timed-out")),
            ev(2, OpType::Invoke, 1, "read", Value::Null),
        ];
        let history = History::from_ops(ops);
        let paired = pair(&history).expect("valid");
        assert_eq!(paired.operations[0].value, &json!([1, 2]));
        assert_eq!(paired.operations[0].outcome, Outcome::Info);
    }
}

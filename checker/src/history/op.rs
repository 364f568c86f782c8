//! One history event: Jepsen's operation record (DESIGN §6).
//!
//! An [`Op`] is either an invocation or a completion. `type` is `invoke`, `ok` (it happened), `fail` (it did
//! not happen) or `info` (it may have happened at any time after its invocation). `process` is a client
//! number, or a name such as `"nemesis"` for fault-injection events, which are kept but never checked.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether an event starts an operation or reports how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client started the operation.
    Invoke,
    /// The operation took effect.
    Ok,
    /// The operation definitely did not take effect.
    Fail,
    /// The outcome is unknown: it may take effect at any point after its invocation, or never.
    Info,
}

impl OpType {
    /// The lowercase name used in every format.
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    /// Parses a lowercase type name.
    pub fn from_name(name: &str) -> Option<OpType> {
        match name {
            "invoke" => Some(OpType::Invoke),
            "ok" => Some(OpType::Ok),
            "fail" => Some(OpType::Fail),
            "info" => Some(OpType::Info),
            _ => None,
        }
    }
}

/// Who performed an event: a client process number, or a named actor such as the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A logical client process. Only these operations are checked.
    Client(u64),
    /// A non-client actor (`"nemesis"`); its events are kept but not checked.
    Named(String),
}

impl Process {
    /// The nemesis process.
    pub fn nemesis() -> Process {
        Process::Named("nemesis".to_string())
    }

    /// The client number, if this is a client.
    pub fn client(&self) -> Option<u64> {
        match self {
            Process::Client(n) => Some(*n),
            Process::Named(_) => None,
        }
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(name) => write!(f, "{name}"),
        }
    }
}

/// One event of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0.
    pub index: u64,
    /// Nanoseconds since the start of the test (monotonic clock).
    pub time: u64,
    /// Invocation or completion kind.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The process that performed it.
    pub process: Process,
    /// The function: `read`, `write`, `cas`, `add`, `append`, `acquire`, ...
    pub f: String,
    /// The argument (invocations) or result (completions).
    #[serde(default)]
    pub value: Value,
    /// The member that served the operation, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The error a failed or indeterminate operation reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl Op {
    /// A new event with no node and no error.
    pub fn new(index: u64, time: u64, op_type: OpType, process: Process, f: &str, value: Value) -> Op {
        Op {
            index,
            time,
            op_type,
            process,
            f: f.to_string(),
            value,
            node: None,
            error: None,
        }
    }
}

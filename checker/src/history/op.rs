//! One history event: Jepsen's operation record (ARCHITECTURE §5).
//!
//! An [`Op`] is either an invocation or a completion. `type` is `invoke`, `ok` (it happened), `fail` (it did
//! not happen) or `info` (it may have happened at any time after its invocation). `process` is a client
//! number, or a name such as `"nemesis"` for fault-injection events, which are kept but never checked.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::name::{Key, Name};

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

/// One history event.
///
/// Multi-key workloads (Jepsen's independent keys) carry the key separately from the value: the wire form
/// `{"key": k, "value": v}` (JSONL), `{:key k, :value v}` or a tuple `[k v]` (EDN) is read into
/// `key: Some(k)`, `value: v`, and written back in the wire form. Names and keys are shared ([`Name`],
/// [`Key`]), so a large history costs little more than this struct per event.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Position in the history, from 0.
    pub index: u64,
    /// Nanoseconds since the start of the test (monotonic clock).
    pub time: u64,
    /// Invocation or completion kind.
    pub op_type: OpType,
    /// The process that performed it.
    pub process: Process,
    /// The function: `read`, `write`, `cas`, `add`, `append`, `acquire`, ...
    pub f: Name,
    /// The key, for multi-key workloads.
    pub key: Option<Key>,
    /// The argument (invocations) or result (completions), without the key.
    pub value: Value,
    /// The member that served the operation, when known.
    pub node: Option<Name>,
    /// The error a failed or indeterminate operation reported.
    pub error: Option<Box<Value>>,
}

impl Op {
    /// A new event with no node and no error. A keyed value `{"key": k, "value": v}` is split into key and
    /// value (see [`split_keyed`]).
    pub fn new(index: u64, time: u64, op_type: OpType, process: Process, f: &str, value: Value) -> Op {
        let (key, value) = split_keyed(value);
        Op {
            index,
            time,
            op_type,
            process,
            f: Name::from(f),
            key: key.map(Key::new),
            value,
            node: None,
            error: None,
        }
    }

    /// The value as written in a history file: `{"key": k, "value": v}` for keyed events.
    pub fn wire_value(&self) -> Value {
        match &self.key {
            Some(key) => {
                let mut map = Map::new();
                map.insert("key".into(), key.value().clone());
                map.insert("value".into(), self.value.clone());
                Value::Object(map)
            }
            None => self.value.clone(),
        }
    }
}

/// Splits a keyed value — an object with a `key` and at most a `value` besides — into `(Some(key), value)`;
/// anything else is returned whole as `(None, value)`.
pub fn split_keyed(value: Value) -> (Option<Value>, Value) {
    match value {
        Value::Object(mut map) if map.contains_key("key") && map.keys().all(|k| k == "key" || k == "value") => {
            let key = map.remove("key");
            (key, map.remove("value").unwrap_or(Value::Null))
        }
        other => (None, other),
    }
}

/// The wire form of an event (ARCHITECTURE §5), for writers.
#[derive(Serialize)]
struct WireOp<'a> {
    index: u64,
    time: u64,
    #[serde(rename = "type")]
    op_type: OpType,
    process: &'a Process,
    f: &'a str,
    value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Value>,
}

impl Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOp {
            index: self.index,
            time: self.time,
            op_type: self.op_type,
            process: &self.process,
            f: &self.f,
            value: self.wire_value(),
            node: self.node.as_deref(),
            error: self.error.as_deref(),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keyed_values_are_split_and_written_back() {
        let op = Op::new(
            0,
            0,
            OpType::Invoke,
            Process::Client(1),
            "write",
            json!({"key": 3, "value": 4}),
        );
        assert_eq!(op.key.as_ref().map(Key::value), Some(&json!(3)));
        assert_eq!(op.value, json!(4));
        assert_eq!(op.wire_value(), json!({"key": 3, "value": 4}));
        let text = serde_json::to_value(&op).expect("serialisable");
        assert_eq!(text["value"], json!({"key": 3, "value": 4}));
    }

    #[test]
    fn maps_with_other_fields_are_not_keyed() {
        let value = json!({"key": 1, "value": 2, "extra": 3});
        assert_eq!(split_keyed(value.clone()), (None, value));
        assert_eq!(split_keyed(json!({"key": "k"})), (Some(json!("k")), Value::Null));
    }

    #[test]
    fn an_event_is_compact() {
        assert!(std::mem::size_of::<Op>() <= 112, "{}", std::mem::size_of::<Op>());
    }
}

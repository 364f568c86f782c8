//! P-compositionality: split a history into independent per-key sub-histories.
//!
//! An operation whose value is `{"key": k, "value": v}` belongs to key `k` and is checked with value `v`;
//! other operations share the key-less partition. Models that span keys (multi-register) are not split.

use std::collections::HashMap;

use serde_json::Value;

use super::models::PartOp;
use crate::history::Operation;

/// One independent sub-history: its key (if any) and its operations in invocation order.
pub struct Partition<'a> {
    /// The key, or `None` for un-keyed operations.
    pub key: Option<Value>,
    /// The operations, with their ids and unwrapped values.
    pub ops: Vec<PartOp<'a>>,
}

static NULL: Value = Value::Null;

/// The key and inner value of a keyed operation value.
pub fn split_key(value: &Value) -> Option<(&Value, &Value)> {
    let map = value.as_object()?;
    let key = map.get("key")?;
    Some((key, map.get("value").unwrap_or(&NULL)))
}

/// Splits operations by key; with `split == false` everything lands in one partition.
pub fn partition<'a>(operations: &'a [Operation<'a>], split: bool) -> Vec<Partition<'a>> {
    let mut parts: Vec<Partition<'_>> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (id, operation) in operations.iter().enumerate() {
        let (key, value) = match split_key(operation.value) {
            Some((key, inner)) if split => (Some(key), inner),
            _ => (None, operation.value),
        };
        let name = key.map_or_else(String::new, |k| format!("k{k}"));
        let slot = *by_key.entry(name).or_insert_with(|| {
            parts.push(Partition {
                key: key.cloned(),
                ops: Vec::new(),
            });
            parts.len() - 1
        });
        parts[slot].ops.push((id, operation, value));
    }
    parts
}

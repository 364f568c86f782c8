//! P-compositionality: split a history into independent per-key sub-histories.
//!
//! An operation with a key (read from `{"key": k, "value": v}` or an independent tuple) belongs to key `k`
//! and is checked with its value `v`; other operations share the key-less partition. Models that span keys
//! (multi-register) are not split.

use std::collections::HashMap;

use serde_json::Value;

use super::models::PartOp;
use crate::history::{Key, Operation};

/// One independent sub-history: its key (if any) and its operations in invocation order.
pub struct Partition<'a> {
    /// The key, or `None` for un-keyed operations.
    pub key: Option<Value>,
    /// The operations, with their ids and values.
    pub ops: Vec<PartOp<'a>>,
}

/// Splits operations by key; with `split == false` everything lands in one partition, keys ignored.
pub fn partition<'a>(operations: &'a [Operation<'a>], split: bool) -> Vec<Partition<'a>> {
    if !split {
        return vec![Partition {
            key: None,
            ops: operations.iter().enumerate().map(|(id, o)| (id, o, o.value)).collect(),
        }];
    }
    let mut parts: Vec<Partition<'_>> = Vec::new();
    let mut by_key: HashMap<Option<&Key>, usize> = HashMap::new();
    for (id, operation) in operations.iter().enumerate() {
        let slot = *by_key.entry(operation.key).or_insert_with(|| {
            parts.push(Partition {
                key: operation.key.map(|k| k.value().clone()),
                ops: Vec::new(),
            });
            parts.len() - 1
        });
        parts[slot].ops.push((id, operation, operation.value));
    }
    parts
}

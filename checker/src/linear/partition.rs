//! P-compositionality: split a history into independent per-key sub-histories.
//!
//! An operation with a key (read from `{"key": k, "value": v}` or an independent tuple) belongs to key `k`
//! and is checked with its value `v`; other operations share the key-less partition. Models that span keys
//! (multi-register) are not split.

use serde_json::Value;

use super::models::PartOp;
use super::search::FastMap;
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
    let mut by_key: FastMap<Option<&Key>, usize> = FastMap::default();
    // Readers share one allocation among equal keys, so a key is first looked up by its address (cheap to
    // hash), and by value only the first time an allocation is seen.
    let mut by_address: FastMap<usize, usize> = FastMap::default();
    for (id, operation) in operations.iter().enumerate() {
        let address = operation.key.map_or(0, |k| std::ptr::from_ref(k.value()) as usize);
        let slot = match by_address.get(&address) {
            Some(&slot) => slot,
            None => {
                let slot = *by_key.entry(operation.key).or_insert_with(|| {
                    parts.push(Partition {
                        key: operation.key.map(|k| k.value().clone()),
                        ops: Vec::new(),
                    });
                    parts.len() - 1
                });
                by_address.insert(address, slot);
                slot
            }
        };
        parts[slot].ops.push((id, operation, operation.value));
    }
    parts
}

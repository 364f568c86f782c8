//! The `register` workload (and `secondary-reads`, which is its read/write subset): one document per key
//! holding a register. `read` → `find`, `write` → `update` with `$set` (upsert), `cas [from, to]` →
//! `findAndModify` matching `from`. Written values are unique (a run-wide counter), keys rotate after a
//! bounded number of operations so each key's sub-history stays small for the linearizability search.

use bson::{Bson, doc};
use serde_json::{Value, json};

use crate::client::classify::timed_out;
use crate::client::{Completion, OpKind, Session, classify};
use crate::generator::{BoxGen, Context, Generator, Invocation, Next};
use crate::rng::Rng;

/// Collection of the register workloads.
pub const COLLECTION: &str = "registers";

/// Shape of a register run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisterShape {
    /// Keys in use at any time.
    pub active_keys: usize,
    /// Operations on a key before it is retired for a fresh one.
    pub ops_per_key: u64,
    /// Fraction of reads.
    pub read_fraction: f64,
    /// Include `cas` among the writes.
    pub cas: bool,
}

struct KeyState {
    key: u64,
    ops: u64,
    /// The most recent values written to the key (for plausible `cas` expectations).
    recent: Vec<i64>,
}

struct RegisterGen {
    shape: RegisterShape,
    keys: Vec<KeyState>,
    next_key: u64,
    next_value: i64,
}

impl RegisterGen {
    fn fresh_key(&mut self) -> KeyState {
        self.next_key += 1;
        KeyState {
            key: self.next_key - 1,
            ops: 0,
            recent: Vec::new(),
        }
    }
}

impl Generator for RegisterGen {
    fn next(&mut self, _: &Context, rng: &mut Rng) -> Next {
        if self.keys.is_empty() {
            for _ in 0..self.shape.active_keys.max(1) {
                let key = self.fresh_key();
                self.keys.push(key);
            }
        }
        let slot = rng.index(self.keys.len());
        if self.keys[slot].ops >= self.shape.ops_per_key.max(1) {
            self.keys[slot] = self.fresh_key();
        }
        let read = rng.chance(self.shape.read_fraction);
        let cas = !read && self.shape.cas && !self.keys[slot].recent.is_empty() && rng.chance(0.5);
        let value = self.next_value;
        let state = &mut self.keys[slot];
        state.ops += 1;
        let key = state.key;
        let op = if read {
            Invocation::new("read", json!({"key": key, "value": null}))
        } else {
            self.next_value += 1;
            let op = if cas {
                let from = *rng.choose(&state.recent).unwrap_or(&0);
                Invocation::new("cas", json!({"key": key, "value": [from, value]}))
            } else {
                Invocation::new("write", json!({"key": key, "value": value}))
            };
            state.recent.push(value);
            if state.recent.len() > 3 {
                state.recent.remove(0);
            }
            op
        };
        Next::Op(op)
    }
}

/// The endless register generator (values start at 1).
pub fn generator(shape: RegisterShape) -> BoxGen {
    Box::new(RegisterGen {
        shape,
        keys: Vec::new(),
        next_key: 0,
        next_value: 1,
    })
}

fn key_of(value: &Value) -> Option<i64> {
    value.get("key").and_then(Value::as_i64)
}

fn bson_int(value: Option<&Bson>) -> Value {
    match value {
        Some(Bson::Int64(v)) => json!(v),
        Some(Bson::Int32(v)) => json!(v),
        Some(Bson::Double(v)) if v.fract() == 0.0 => json!(*v as i64),
        _ => Value::Null,
    }
}

/// Runs one register operation.
pub async fn invoke(session: &Session, op: &Invocation) -> Completion {
    let Some(key) = key_of(&op.value) else {
        return Completion::fail(op.value.clone(), "operation without a key");
    };
    let coll = session.collection(COLLECTION);
    match op.f.as_str() {
        "read" => {
            let (result, node) = session.run(coll.find_one(doc! {"_id": key})).await;
            let completion = match result {
                Some(Ok(found)) => {
                    let value = bson_int(found.as_ref().and_then(|d| d.get("value")));
                    Completion::ok(json!({"key": key, "value": value}))
                }
                other => failure(other.map(|r| r.map(|_| ())), OpKind::Read, &op.value),
            };
            with_node(completion, node)
        }
        "write" => {
            let Some(value) = op.value.get("value").and_then(Value::as_i64) else {
                return Completion::fail(op.value.clone(), "write without an integer value");
            };
            let update = coll
                .update_one(doc! {"_id": key}, doc! {"$set": {"value": value}})
                .upsert(true);
            let (result, node) = session.run(update).await;
            let completion = match result {
                Some(Ok(_)) => Completion::ok(op.value.clone()),
                other => failure(other.map(|r| r.map(|_| ())), OpKind::Write, &op.value),
            };
            with_node(completion, node)
        }
        "cas" => cas(session, key, op).await,
        other => Completion::fail(op.value.clone(), &format!("unknown register operation {other}")),
    }
}

async fn cas(session: &Session, key: i64, op: &Invocation) -> Completion {
    let pair = op.value.get("value").and_then(Value::as_array);
    let (Some(from), Some(to)) = (
        pair.and_then(|p| p.first()).and_then(Value::as_i64),
        pair.and_then(|p| p.get(1)).and_then(Value::as_i64),
    ) else {
        return Completion::fail(op.value.clone(), "cas needs [from, to] integers");
    };
    let coll = session.collection(COLLECTION);
    let update = coll.find_one_and_update(doc! {"_id": key, "value": from}, doc! {"$set": {"value": to}});
    let (result, node) = session.run(update).await;
    let completion = match result {
        Some(Ok(Some(_))) => Completion::ok(op.value.clone()),
        Some(Ok(None)) => Completion::fail(op.value.clone(), "cas: value did not match"),
        other => failure(other.map(|r| r.map(|_| ())), OpKind::Write, &op.value),
    };
    with_node(completion, node)
}

/// The completion of a timed-out (`None`) or failed operation.
pub fn failure(result: Option<mongodb::error::Result<()>>, kind: OpKind, value: &Value) -> Completion {
    match result {
        None => {
            let op_type = timed_out(kind);
            Completion {
                op_type,
                value: value.clone(),
                node: None,
                error: Some(json!("timeout")),
            }
        }
        Some(Err(err)) => {
            let (op_type, description) = classify(&err, kind);
            Completion {
                op_type,
                value: value.clone(),
                node: None,
                error: Some(Value::String(description)),
            }
        }
        Some(Ok(())) => Completion::ok(value.clone()),
    }
}

/// Attaches the serving member.
pub fn with_node(mut completion: Completion, node: Option<String>) -> Completion {
    completion.node = node;
    completion
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;
    use crate::generator::{drain, limit};

    fn shape() -> RegisterShape {
        RegisterShape {
            active_keys: 3,
            ops_per_key: 20,
            read_fraction: 0.4,
            cas: true,
        }
    }

    #[test]
    fn written_values_are_unique_and_keys_rotate() {
        let mut g = limit(600, generator(shape()));
        let ops = drain(g.as_mut(), &mut Rng::seed_from_u64(9), 0, Duration::from_secs(1));
        assert_eq!(ops.len(), 600);
        let mut written = HashSet::new();
        let mut per_key: std::collections::HashMap<i64, u64> = Default::default();
        for (_, op) in &ops {
            let key = op.value["key"].as_i64().expect("key");
            *per_key.entry(key).or_default() += 1;
            let new = match op.f.as_str() {
                "write" => op.value["value"].as_i64(),
                "cas" => op.value["value"][1].as_i64(),
                _ => None,
            };
            if let Some(v) = new {
                assert!(written.insert(v), "value {v} written twice");
            }
        }
        assert!(per_key.values().all(|n| *n <= 20), "a key exceeded its budget");
        assert!(per_key.len() >= 30, "keys did not rotate: {}", per_key.len());
        assert!(ops.iter().any(|(_, o)| o.f == "cas") && ops.iter().any(|(_, o)| o.f == "read"));
    }

    #[test]
    fn same_seed_same_operations() {
        let run = |seed| {
            let mut g = limit(100, generator(shape()));
            drain(g.as_mut(), &mut Rng::seed_from_u64(seed), 0, Duration::from_secs(1))
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}

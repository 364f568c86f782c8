//! Per-key linearization witnesses for viewers: the order found, the model state after every step and,
//! for a key that is not linearizable, the longest linearizable prefix and the operation that cannot follow.
//!
//! [`witnesses`] runs the same per-partition search as [`super::check_paired`] (one partition after another,
//! sharing one time budget) and keeps what a reader needs to draw each key: for a linearizable key the whole
//! order with the state after each operation (replayed through the model); for a non-linearizable key the
//! deepest prefix the search reached and the blocked operation. Operations the model drops (`fail`, crashed
//! reads) are in no order.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde_json::Value;

use super::models::{self, PartOp};
use super::partition;
use super::search::{self, Limits, Model, Outcome, SearchOp};
use super::{LinearError, LinearOptions, ModelKind};
use crate::history::{History, PairedHistory};
use crate::result::Validity;

/// What the search found for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWitness {
    /// The key, or `None` for un-keyed operations (and for models not split by key).
    pub key: Option<Value>,
    /// Ids (in the paired history) of the key's operations, in invocation order.
    pub ops: Vec<usize>,
    /// `True`: `order` is a full linearization; `False`: `order` is the longest prefix and `blocked` the
    /// operation that cannot follow; `Unknown`: the budget ran out (`order` is empty).
    pub verdict: Validity,
    /// The model's initial state, for humans.
    pub initial: Value,
    /// `(op id, state after it)` in linearization order.
    pub order: Vec<(usize, Value)>,
    /// The first operation that cannot be linearized after `order` (non-linearizable keys only).
    pub blocked: Option<usize>,
}

impl KeyWitness {
    /// The state before the `step`-th operation of `order` (or before `blocked` when `step == order.len()`).
    pub fn state_before(&self, step: usize) -> &Value {
        match step.checked_sub(1).and_then(|i| self.order.get(i)) {
            Some((_, state)) => state,
            None => &self.initial,
        }
    }
}

/// The witness of every key, in partition order (first appearance of the key).
pub fn witnesses(
    history: &History,
    paired: &PairedHistory,
    options: &LinearOptions,
) -> Result<Vec<KeyWitness>, LinearError> {
    let split = options.model != ModelKind::MultiRegister;
    let partitions = partition::partition(&paired.operations, split);
    let cancel = AtomicBool::new(false);
    let limits = Limits {
        deadline: options.timeout.map(|t| Instant::now() + t),
        cancel: &cancel,
        memory_bytes: options.memory_bytes,
    };
    let mut out = Vec::with_capacity(partitions.len());
    for part in &partitions {
        let found =
            compile_and_witness(&part.ops, options, limits).map_err(|(id, message)| LinearError::Unsupported {
                line: history.line_of(paired.operations[id].invoke),
                message,
            })?;
        out.push(KeyWitness {
            key: part.key.clone(),
            ops: part.ops.iter().map(|(id, _, _)| *id).collect(),
            ..found
        });
    }
    Ok(out)
}

fn compile_and_witness(
    ops: &[PartOp<'_>],
    options: &LinearOptions,
    limits: Limits<'_>,
) -> Result<KeyWitness, models::CompileError> {
    let conventions = &options.conventions;
    match options.model {
        ModelKind::Register | ModelKind::CasRegister => {
            let allow_cas = options.model == ModelKind::CasRegister;
            models::compile_register(ops, conventions, allow_cas).map(|c| witness(c, limits))
        }
        ModelKind::KvAppend => models::compile_kv(ops, conventions).map(|c| witness(c, limits)),
        ModelKind::Set => models::compile_set(ops).map(|c| witness(c, limits)),
        ModelKind::Mutex => models::compile_mutex(ops).map(|c| witness(c, limits)),
        ModelKind::MultiRegister => models::compile_multi_register(ops, conventions).map(|c| witness(c, limits)),
    }
}

fn witness<M: Model>((model, ops): (M, Vec<SearchOp<M::Op>>), limits: Limits<'_>) -> KeyWitness {
    let initial = model.init();
    let (outcome, _) = search::search(&model, &ops, limits);
    let (verdict, order, blocked) = match outcome {
        Outcome::Linearizable(order) => (Validity::True, replay(&model, &ops, &order), None),
        Outcome::Illegal { blocked, prefix } => (
            Validity::False,
            prefix.into_iter().map(|(id, s)| (id, model.describe(&s))).collect(),
            Some(blocked),
        ),
        Outcome::Unknown(_) => (Validity::Unknown, Vec::new(), None),
    };
    KeyWitness {
        key: None,
        ops: Vec::new(),
        verdict,
        initial: model.describe(&initial),
        order,
        blocked,
    }
}

/// Steps the model through a witness order, describing the state after each operation. The search accepted
/// this order, so every step succeeds; should one not, the replay stops there.
fn replay<M: Model>(model: &M, ops: &[SearchOp<M::Op>], order: &[usize]) -> Vec<(usize, Value)> {
    let by_id: HashMap<usize, &SearchOp<M::Op>> = ops.iter().map(|o| (o.id, o)).collect();
    let mut state = model.init();
    let mut out = Vec::with_capacity(order.len());
    for id in order {
        let Some(next) = by_id.get(id).and_then(|o| model.step(&state, &o.op)) else {
            break;
        };
        state = next;
        out.push((*id, model.describe(&state)));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::{Op, OpType, Process, pair};

    fn history(events: &[(u64, OpType, &str, Value)]) -> History {
        let ops = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v))| Op::new(i as u64, i as u64, *t, Process::Client(*p), f, v.clone()))
            .collect();
        History::from_ops(ops)
    }

    #[test]
    fn a_linearizable_key_has_its_full_order_with_states() {
        use OpType::{Invoke, Ok};
        let h = history(&[
            (1, Invoke, "write", json!({"key": "a", "value": 1})),
            (1, Ok, "write", json!({"key": "a", "value": 1})),
            (2, Invoke, "read", json!({"key": "a", "value": null})),
            (2, Ok, "read", json!({"key": "a", "value": 1})),
        ]);
        let paired = pair(&h).expect("paired");
        let found = witnesses(&h, &paired, &LinearOptions::new(ModelKind::Register)).expect("witnessed");
        assert_eq!(found.len(), 1);
        let w = &found[0];
        assert_eq!(w.key, Some(json!("a")));
        assert_eq!(w.verdict, Validity::True);
        assert_eq!(w.order, vec![(0, json!(1)), (1, json!(1))]);
        assert_eq!(w.state_before(0), &Value::Null);
        assert_eq!(w.state_before(1), &json!(1));
        assert_eq!(w.blocked, None);
    }

    #[test]
    fn a_stale_read_is_blocked_after_the_longest_prefix() {
        use OpType::{Invoke, Ok};
        let h = history(&[
            (1, Invoke, "write", json!(1)),
            (1, Ok, "write", json!(1)),
            (1, Invoke, "write", json!(2)),
            (1, Ok, "write", json!(2)),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", json!(1)),
        ]);
        let paired = pair(&h).expect("paired");
        let found = witnesses(&h, &paired, &LinearOptions::new(ModelKind::Register)).expect("witnessed");
        let w = &found[0];
        assert_eq!(w.verdict, Validity::False);
        assert_eq!(w.blocked, Some(2));
        assert_eq!(w.order, vec![(0, json!(1)), (1, json!(2))]);
        assert_eq!(w.state_before(w.order.len()), &json!(2));
    }
}

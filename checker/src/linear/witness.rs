//! The check's linearization witness, kept as op ids and expanded only when a reader asks: the
//! counterexample's prefix steps for printing and JSON, and every key's order with its states for viewers.
//!
//! [`super::check_paired`] keeps, per partition, what its search concluded ([`Found`]): a full linearization
//! order, or the longest linearizable prefix and the operation that cannot follow it, or nothing (budget
//! spent, or cancelled once another partition failed). No model state and no JSON is built then. Expanding
//! replays the model along an order (the search accepted it, so every step succeeds) and describes each
//! state: [`LinearWitness::counterexample_steps`] for the reported partition, [`LinearWitness::keys`] for
//! all of them, searching now the partitions the check left undecided because it had stopped early.
//! [`witnesses`] is the whole thing for a history that was not checked yet. Operations the model drops
//! (`fail`, crashed reads) are in no order.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::search::{GiveUp, Limits};
use super::{LinearError, LinearOptions, ModelKind, compile, describe_op, partition};
use crate::history::{History, PairedHistory};
use crate::result::Validity;

/// What the check's search concluded for one partition, in op ids of the paired history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Linearizable: a full linearization order.
    Order(Vec<usize>),
    /// Not linearizable: the longest linearizable prefix found, and the operation that cannot follow it.
    Blocked { prefix: Vec<usize>, blocked: usize },
    /// Not decided: the budget ran out, or the search was cancelled because another partition failed.
    Undecided(GiveUp),
}

/// The check's witness: per partition (in partition order) its size and what the search found, with the
/// options the search ran with (the model to replay) and which partition the counterexample is from.
#[derive(Debug, Clone)]
pub struct LinearWitness {
    pub(super) options: LinearOptions,
    /// Operations in the paired history checked.
    pub(super) operations: usize,
    /// Per partition: its number of operations and what its search found.
    pub(super) found: Vec<(usize, Found)>,
    /// The partition of the reported counterexample (the blocked operation invoked first).
    pub(super) failing: Option<usize>,
}

/// What the search found for one key, states included.
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

impl LinearWitness {
    /// The options the check ran with (model, conventions, budget).
    pub fn options(&self) -> &LinearOptions {
        &self.options
    }

    /// What the search found per partition, in partition order (first appearance of the key).
    pub fn found(&self) -> impl Iterator<Item = &Found> {
        self.found.iter().map(|(_, found)| found)
    }

    /// The counterexample's prefix, one JSON object per step (the operation as in the counterexample's
    /// `op`, plus `state`, the model state after it); `None` for a history without one. `history` and
    /// `paired` must be the ones checked.
    pub fn counterexample_steps(&self, history: &History, paired: &PairedHistory) -> Option<Vec<Value>> {
        let failing = self.failing?;
        let Found::Blocked { prefix, .. } = &self.found.get(failing)?.1 else {
            return None;
        };
        let partitions = partition::partition(&paired.operations, self.split());
        let compiled = compile(&partitions.get(failing)?.ops, &self.options).ok()?;
        let states = compiled.states_along(prefix);
        let steps = prefix.iter().zip(states).map(|(&id, state)| {
            let mut step = describe_op(history, &paired.operations[id]);
            if let Value::Object(map) = &mut step {
                map.insert("state".into(), state);
            }
            step
        });
        Some(steps.collect())
    }

    /// Every key's witness, states included, in partition order. Partitions the check left undecided
    /// because it stopped at the first failing key are searched now, within `budget`; a witness that does
    /// not fit `paired` (another history) is not trusted: every partition is searched again.
    pub fn keys(
        &self,
        history: &History,
        paired: &PairedHistory,
        budget: Option<Duration>,
    ) -> Result<Vec<KeyWitness>, LinearError> {
        let partitions = partition::partition(&paired.operations, self.split());
        let fits = self.operations == paired.operations.len()
            && self.found.len() == partitions.len()
            && self
                .found
                .iter()
                .zip(&partitions)
                .all(|((size, _), p)| *size == p.ops.len());
        let cancel = AtomicBool::new(false);
        let limits = Limits {
            deadline: budget.map(|t| Instant::now() + t),
            cancel: &cancel,
            memory_bytes: self.options.memory_bytes,
        };
        let mut out = Vec::with_capacity(partitions.len());
        for (index, part) in partitions.iter().enumerate() {
            let unsupported = |(id, message): (usize, String)| LinearError::Unsupported {
                line: history.line_of(paired.operations[id].invoke),
                message,
            };
            let mut compiled = compile(&part.ops, &self.options).map_err(unsupported)?;
            let searched;
            let found = match self.found.get(index) {
                Some((_, found)) if fits && !matches!(found, Found::Undecided(GiveUp::Cancelled)) => found,
                _ => {
                    searched = compiled.search_now(limits);
                    &searched
                }
            };
            let (verdict, order, blocked) = match found {
                Found::Order(order) => (Validity::True, order.as_slice(), None),
                Found::Blocked { prefix, blocked } => (Validity::False, prefix.as_slice(), Some(*blocked)),
                Found::Undecided(_) => (Validity::Unknown, &[][..], None),
            };
            let states = compiled.states_along(order);
            out.push(KeyWitness {
                key: part.key.clone(),
                ops: part.ops.iter().map(|(id, _, _)| *id).collect(),
                verdict,
                initial: compiled.initial(),
                order: order.iter().copied().zip(states).collect(),
                blocked,
            });
        }
        Ok(out)
    }

    fn split(&self) -> bool {
        self.options.model != ModelKind::MultiRegister
    }
}

impl LinearWitness {
    /// The witness of a history not checked yet: checks it (the per-key searches, in parallel).
    pub fn search(
        history: &History,
        paired: &PairedHistory,
        options: &LinearOptions,
    ) -> Result<LinearWitness, LinearError> {
        let result = super::check_paired(history, paired, options)?;
        Ok(result.witness.get().cloned().unwrap_or_else(|| LinearWitness {
            options: options.clone(),
            operations: 0,
            found: Vec::new(),
            failing: None,
        }))
    }
}

/// Every key's witness of a history not checked yet: [`LinearWitness::search`], expanded with the options'
/// time budget for the keys left undecided after the first failing one.
pub fn witnesses(
    history: &History,
    paired: &PairedHistory,
    options: &LinearOptions,
) -> Result<Vec<KeyWitness>, LinearError> {
    LinearWitness::search(history, paired, options)?.keys(history, paired, options.timeout)
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

    #[test]
    fn keys_take_the_checks_orders_and_search_only_what_it_left_undecided() {
        use OpType::{Invoke, Ok};
        // Key "a" (2 ops) is not linearizable; key "b" (4 ops) is. One thread, cheapest first: "a" fails
        // first and cancels "b", which the expansion then searches.
        let kv = |k: &str, v: Value| json!({"key": k, "value": v});
        let h = history(&[
            (1, Invoke, "write", kv("b", json!(1))),
            (1, Ok, "write", kv("b", json!(1))),
            (1, Invoke, "write", kv("b", json!(2))),
            (1, Ok, "write", kv("b", json!(2))),
            (2, Invoke, "read", kv("b", Value::Null)),
            (2, Ok, "read", kv("b", json!(2))),
            (3, Invoke, "write", kv("b", json!(3))),
            (3, Ok, "write", kv("b", json!(3))),
            (4, Invoke, "read", kv("a", Value::Null)),
            (4, Ok, "read", kv("a", json!(5))),
        ]);
        let paired = pair(&h).expect("paired");
        let mut options = LinearOptions::new(ModelKind::Register);
        options.threads = 1;
        let result = crate::linear::check_paired(&h, &paired, &options).expect("checked");
        let witness = result.witness.get().expect("a witness");
        let found: Vec<&Found> = witness.found().collect();
        assert_eq!(found[0], &Found::Undecided(GiveUp::Cancelled));
        assert_eq!(
            found[1],
            &Found::Blocked {
                prefix: vec![],
                blocked: 4
            }
        );
        let keys = witness.keys(&h, &paired, None).expect("expanded");
        assert_eq!(keys[0].verdict, Validity::True);
        assert_eq!(
            keys[0].order,
            vec![(0, json!(1)), (1, json!(2)), (2, json!(2)), (3, json!(3))]
        );
        assert_eq!(keys[1].verdict, Validity::False);
        assert_eq!(keys[1].blocked, Some(4));
        assert_eq!(keys, witnesses(&h, &paired, &options).expect("witnessed"));
    }

    #[test]
    fn a_witness_of_another_history_is_not_trusted() {
        use OpType::{Invoke, Ok};
        let checked = history(&[(1, Invoke, "write", json!(1)), (1, Ok, "write", json!(1))]);
        let other = history(&[
            (1, Invoke, "write", json!(1)),
            (1, Ok, "write", json!(1)),
            (2, Invoke, "read", Value::Null),
            (2, Ok, "read", json!(7)),
        ]);
        let options = LinearOptions::new(ModelKind::Register);
        let result = crate::linear::check(&checked, &options).expect("checked");
        let paired = pair(&other).expect("paired");
        let keys = result
            .witness
            .get()
            .expect("a witness")
            .keys(&other, &paired, None)
            .expect("expanded");
        assert_eq!(keys[0].verdict, Validity::False);
        assert_eq!(keys[0].blocked, Some(1));
    }
}

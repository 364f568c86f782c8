//! Unit tests of the linearizability checker: the classic small cases, models, budgets and counterexamples.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::history::{Op, OpType, Process};

/// Builds a history from `(process, type, f, value)` tuples; time = position.
fn history(events: &[(u64, OpType, &str, Value)]) -> History {
    let ops = events
        .iter()
        .enumerate()
        .map(|(i, (p, t, f, v))| Op::new(i as u64, i as u64, *t, Process::Client(*p), f, v.clone()))
        .collect();
    History::from_ops(ops)
}

use OpType::{Info, Invoke, Ok as Done};

fn verdict(h: &History, model: ModelKind) -> Validity {
    check(h, &LinearOptions::new(model)).expect("checkable").valid
}

#[test]
fn sequential_read_after_write_is_linearizable_and_stale_read_is_not() {
    let good = history(&[
        (1, Invoke, "write", json!(1)),
        (1, Done, "write", json!(1)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!(1)),
    ]);
    assert_eq!(verdict(&good, ModelKind::Register), Validity::True);
    let stale = history(&[
        (1, Invoke, "write", json!(1)),
        (1, Done, "write", json!(1)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", Value::Null),
    ]);
    assert_eq!(verdict(&stale, ModelKind::Register), Validity::False);
}

#[test]
fn zero_duration_operations_touching_in_time_are_concurrent() {
    // Write [5,5] and read [5,5]: at equal times calls sort before returns, so the read may follow the write.
    let mut h = history(&[
        (1, Invoke, "read", Value::Null),
        (2, Invoke, "write", json!(1)),
        (2, Done, "write", json!(1)),
        (1, Done, "read", json!(1)),
    ]);
    for op in &mut h.ops {
        op.time = 5;
    }
    assert_eq!(verdict(&h, ModelKind::Register), Validity::True);
}

#[test]
fn concurrent_writes_with_a_read_in_between() {
    // Two overlapping writes, then reads: 1 then 2 is fine, 2 then 1 after both finished is not.
    let base = [
        (1, Invoke, "write", json!(1)),
        (2, Invoke, "write", json!(2)),
        (1, Done, "write", json!(1)),
        (2, Done, "write", json!(2)),
    ];
    let mut ok = base.to_vec();
    ok.extend([(3, Invoke, "read", Value::Null), (3, Done, "read", json!(1))]);
    assert_eq!(verdict(&history(&ok), ModelKind::Register), Validity::True);
    let mut bad = ok.clone();
    bad.extend([(3, Invoke, "read", Value::Null), (3, Done, "read", json!(2))]);
    bad.extend([(3, Invoke, "read", Value::Null), (3, Done, "read", json!(1))]);
    assert_eq!(verdict(&history(&bad), ModelKind::Register), Validity::False);
}

#[test]
fn a_crashed_write_may_be_seen_later_or_never() {
    let seen = history(&[
        (1, Invoke, "write", json!(7)),
        (1, Info, "write", json!(7)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", Value::Null),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!(7)),
    ]);
    assert_eq!(verdict(&seen, ModelKind::Register), Validity::True);
    let flicker = history(&[
        (1, Invoke, "write", json!(7)),
        (1, Info, "write", json!(7)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!(7)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", Value::Null),
    ]);
    assert_eq!(verdict(&flicker, ModelKind::Register), Validity::False);
}

#[test]
fn a_read_of_a_never_written_value_is_not_linearizable_and_names_the_op() {
    let h = history(&[
        (1, Invoke, "write", json!(1)),
        (1, Done, "write", json!(1)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!(9)),
    ]);
    let mut r = check(&h, &LinearOptions::new(ModelKind::CasRegister)).expect("checkable");
    assert_eq!(r.valid, Validity::False);
    assert_eq!(r.examples[0].ops, vec![2, 3]);
    let cx = &r.details["counterexample"];
    assert_eq!(cx["op"]["process"], json!(2));
    assert_eq!(cx["prefix-length"], json!(1));
    r.expand(&h, &crate::history::pair(&h).expect("paired"));
    assert_eq!(r.details["counterexample"]["prefix"][0]["state"], json!(1));
}

#[test]
fn the_counterexample_prefix_is_built_only_when_expanded_and_once() {
    let h = history(&[
        (1, Invoke, "write", json!(1)),
        (1, Done, "write", json!(1)),
        (1, Invoke, "write", json!(2)),
        (1, Done, "write", json!(2)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!(1)),
    ]);
    let mut r = check(&h, &LinearOptions::new(ModelKind::Register)).expect("checkable");
    assert_eq!(
        r.details["counterexample"].get("prefix"),
        None,
        "not built by the check"
    );
    assert_eq!(r.details["counterexample"]["prefix-length"], json!(2));
    assert!(
        r.examples[0]
            .description
            .ends_with("2-op linearizable prefix ending in state 2")
    );
    let paired = crate::history::pair(&h).expect("paired");
    r.expand(&h, &paired);
    let prefix = r.details["counterexample"]["prefix"].clone();
    let lines: Vec<Value> = prefix
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| json!([s["index"], s["state"]]))
        .collect();
    assert_eq!(lines, vec![json!([0, 1]), json!([2, 2])]);
    r.expand(&h, &paired);
    assert_eq!(r.details["counterexample"]["prefix"], prefix);
    // A composed result expands its children.
    let mut composed = crate::result::compose(
        "all",
        vec![check(&h, &LinearOptions::new(ModelKind::Register)).expect("checkable")],
    );
    composed.expand(&h, &paired);
    assert_eq!(composed.children[0].details["counterexample"]["prefix"], prefix);
    assert!(composed.linear_witness().is_some());
}

#[test]
fn knossos_minimal_counterexample_blames_the_bad_read() {
    // rethink-fail-minimal: value 0, concurrent write 4 and read 3; a later read of 4.
    let h = history(&[
        (0, Invoke, "write", json!(0)),
        (0, Done, "write", json!(0)),
        (1, Invoke, "read", Value::Null),
        (2, Invoke, "write", json!(4)),
        (1, Done, "read", json!(3)),
        (2, Done, "write", json!(4)),
        (3, Invoke, "read", Value::Null),
        (3, Done, "read", json!(4)),
    ]);
    let r = check(&h, &LinearOptions::new(ModelKind::CasRegister)).expect("checkable");
    assert_eq!(r.valid, Validity::False);
    assert_eq!(r.details["counterexample"]["op"]["index"], json!(2));
}

#[test]
fn cas_semantics_and_failed_cas_observations() {
    let h = history(&[
        (1, Invoke, "cas", json!([0, 1])),
        (1, OpType::Fail, "cas", json!([0, 1])),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!(0)),
    ]);
    let mut options = LinearOptions::new(ModelKind::CasRegister);
    options.conventions.initial = json!(0);
    assert_eq!(
        check(&h, &options).expect("ok").valid,
        Validity::True,
        "fail = did not happen"
    );
    options.conventions.failed_cas_observes = true;
    assert_eq!(
        check(&h, &options).expect("ok").valid,
        Validity::False,
        "register held 0 throughout"
    );
    assert!(
        check(&h, &LinearOptions::new(ModelKind::Register)).is_err(),
        "register has no cas"
    );
}

#[test]
fn independent_keys_are_checked_separately() {
    let kv = |k: u64, v: Value| json!({"key": k, "value": v});
    let mut events = Vec::new();
    for k in 0..50 {
        events.push((k, Invoke, "write", kv(k, json!(k))));
        events.push((k, Done, "write", kv(k, json!(k))));
        events.push((k, Invoke, "read", kv(k, Value::Null)));
        events.push((k, Done, "read", kv(k, json!(k))));
    }
    assert_eq!(verdict(&history(&events), ModelKind::Register), Validity::True);
    events.push((7, Invoke, "read", kv(7, Value::Null)));
    events.push((7, Done, "read", kv(7, json!(8))));
    let r = check(&history(&events), &LinearOptions::new(ModelKind::Register)).expect("ok");
    assert_eq!(r.valid, Validity::False);
    assert_eq!(r.details["counterexample"]["key"], json!(7));
    assert_eq!(r.counts["partitions"], 50);
}

#[test]
fn other_models_accept_good_and_reject_bad_histories() {
    let mutex = [(1, Invoke, "acquire", Value::Null), (1, Done, "acquire", Value::Null)];
    let mut two = mutex.to_vec();
    two.extend([(2, Invoke, "acquire", Value::Null), (2, Done, "acquire", Value::Null)]);
    assert_eq!(verdict(&history(&mutex), ModelKind::Mutex), Validity::True);
    assert_eq!(verdict(&history(&two), ModelKind::Mutex), Validity::False);

    let set = [
        (1, Invoke, "add", json!(1)),
        (1, Done, "add", json!(1)),
        (2, Invoke, "read", Value::Null),
        (2, Done, "read", json!([1])),
    ];
    assert_eq!(verdict(&history(&set), ModelKind::Set), Validity::True);
    let mut lost = set.to_vec();
    lost.extend([(2, Invoke, "read", Value::Null), (2, Done, "read", json!([]))]);
    assert_eq!(verdict(&history(&lost), ModelKind::Set), Validity::False);

    let kv = [
        (1, Invoke, "append", json!({"key": "a", "value": "x"})),
        (1, Done, "append", json!({"key": "a", "value": "x"})),
        (2, Invoke, "append", json!({"key": "a", "value": "y"})),
        (2, Done, "append", json!({"key": "a", "value": "y"})),
        (3, Invoke, "get", json!({"key": "a", "value": null})),
        (3, Done, "get", json!({"key": "a", "value": "xy"})),
    ];
    assert_eq!(verdict(&history(&kv), ModelKind::KvAppend), Validity::True);
    let mut yx = kv.to_vec();
    yx[5].3 = json!({"key": "a", "value": "yx"});
    assert_eq!(verdict(&history(&yx), ModelKind::KvAppend), Validity::False);

    let txn = [
        (1, Invoke, "txn", json!([["write", "x", 1], ["write", "y", 2]])),
        (1, Done, "txn", json!([["write", "x", 1], ["write", "y", 2]])),
        (2, Invoke, "txn", json!([["read", "x", null], ["read", "y", null]])),
        (2, Done, "txn", json!([["read", "x", 1], ["read", "y", 2]])),
    ];
    assert_eq!(verdict(&history(&txn), ModelKind::MultiRegister), Validity::True);
    let mut torn = txn.to_vec();
    torn[3].3 = json!([["read", "x", 1], ["read", "y", null]]);
    assert_eq!(verdict(&history(&torn), ModelKind::MultiRegister), Validity::False);
}

/// Many concurrent crashed writes, each read once in turn, then a read of the initial value: proving this
/// invalid means trying every order of the writes.
fn hard_history(crashed: u64) -> History {
    let mut events = Vec::new();
    for p in 1..=crashed {
        events.push((p, Invoke, "write", json!(p)));
    }
    for p in 1..=crashed {
        events.push((p, Info, "write", json!(p)));
    }
    for v in (1..=crashed).chain([0]) {
        events.push((1000, Invoke, "read", Value::Null));
        events.push((1000, Done, "read", json!(v)));
    }
    history(&events)
}

#[test]
fn a_timeout_returns_unknown_promptly() {
    let h = hard_history(40);
    let mut options = LinearOptions::new(ModelKind::Register);
    options.conventions.initial = json!(0);
    options.timeout = Some(Duration::from_millis(200));
    let started = Instant::now();
    let r = check(&h, &options).expect("checkable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(r.details["unknown-reason"], json!("timeout"));
}

#[test]
fn a_memory_budget_returns_unknown() {
    let h = hard_history(40);
    let mut options = LinearOptions::new(ModelKind::Register);
    options.conventions.initial = json!(0);
    options.memory_bytes = 1 << 20;
    options.threads = 1;
    let r = check(&h, &options).expect("checkable");
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(r.details["unknown-reason"], json!("memory"));
}

#[test]
fn a_hundred_thousand_crashed_writes_on_one_key_stay_bounded() {
    let mut ops = Vec::new();
    let mut push = |p: u64, t: OpType, f: &str, v: Value| {
        let i = ops.len() as u64;
        ops.push(Op::new(i, i, t, Process::Client(p), f, v));
    };
    push(0, Invoke, "write", json!(-1));
    push(0, Done, "write", json!(-1));
    for p in 1..=100_000u64 {
        push(p, Invoke, "write", json!(p));
        push(p, Info, "write", json!(p));
    }
    push(0, Invoke, "read", Value::Null);
    push(0, Done, "read", json!(-1));
    push(0, Invoke, "read", Value::Null);
    push(0, Done, "read", json!(77));
    let mut options = LinearOptions::new(ModelKind::Register);
    options.memory_bytes = 256 << 20;
    options.timeout = Some(Duration::from_secs(20));
    let r = check(&History::from_ops(ops), &options).expect("checkable");
    assert_eq!(r.valid, Validity::True);
    assert_eq!(r.counts["searched-operations"], 4);
}

#[test]
fn an_operation_the_model_cannot_run_is_an_error_naming_the_first_such_line() {
    let mut h = History::new();
    let events = [
        (1, Invoke, "write", json!({"key": 1, "value": 1})),
        (1, Done, "write", json!({"key": 1, "value": 1})),
        (2, Invoke, "add", json!({"key": 2, "value": 5})),
        (2, Done, "add", json!({"key": 2, "value": 5})),
        (3, Invoke, "add", json!({"key": 3, "value": 5})),
    ];
    for (line, (p, t, f, v)) in events.into_iter().enumerate() {
        h.push(
            Op::new(line as u64, line as u64, t, Process::Client(p), f, v),
            line + 10,
        );
    }
    for threads in [1, 2] {
        let mut options = LinearOptions::new(ModelKind::Register);
        options.threads = threads;
        let err = check(&h, &options).expect_err("add is no register op");
        assert_eq!(err.to_string(), "line 12: model register does not support f \"add\"");
    }
}

//! Unit tests of the viewer page: self-contained, data embedded safely, the failing key and its witness.

use faultline_checker::history::{History, Op, OpType, Process, pair};
use faultline_checker::linear::witness::LinearWitness;
use faultline_checker::linear::{LinearOptions, ModelKind};
use serde_json::{Value, json};

use super::{data, page, script_safe};

/// `(process, type, f, value)` events; time = 10 ms × position; process 9 is the nemesis.
fn history(events: &[(u64, OpType, &str, Value)]) -> History {
    let ops = events
        .iter()
        .enumerate()
        .map(|(i, (p, t, f, v))| {
            let process = if *p == 9 {
                Process::nemesis()
            } else {
                Process::Client(*p)
            };
            Op::new(i as u64, i as u64 * 10_000_000, *t, process, f, v.clone())
        })
        .collect();
    History::from_ops(ops)
}

/// The witness of checking `h` against `model`.
fn checked(h: &History, model: ModelKind) -> LinearWitness {
    let paired = pair(h).expect("paired");
    LinearWitness::search(h, &paired, &LinearOptions::new(model)).expect("checked")
}

/// Key `a` has a stale read of 1 after 2 was written, during a partition; key `b` is fine.
fn stale_history() -> History {
    use OpType::{Info, Invoke, Ok};
    let a = |v: Value| json!({"key": "a", "value": v});
    let b = |v: Value| json!({"key": "b", "value": v});
    let mut h = history(&[
        (1, Invoke, "write", b(json!(5))),
        (1, Ok, "write", b(json!(5))),
        (1, Invoke, "write", a(json!(1))),
        (1, Ok, "write", a(json!(1))),
        (9, Invoke, "start-partition", json!("isolate n2")),
        (9, Info, "start-partition", json!("isolate n2")),
        (1, Invoke, "write", a(json!(2))),
        (1, Ok, "write", a(json!(2))),
        (2, Invoke, "read", a(Value::Null)),
        (2, Ok, "read", a(json!(1))),
        (9, Invoke, "stop-partition", Value::Null),
        (9, Info, "stop-partition", Value::Null),
    ]);
    h.ops[9].node = Some("n2".into());
    h
}

#[test]
fn the_failing_key_is_shown_first_with_its_prefix_blocked_op_states_and_fault() {
    let h = stale_history();
    let paired = pair(&h).expect("paired");
    let d = data::build("t", &h, &paired, &checked(&h, ModelKind::CasRegister), None).expect("built");
    assert_eq!(d.verdict, "invalid");
    assert_eq!(d.keys.len(), 2);
    let key = &d.keys[d.start_key];
    assert_eq!(key.key, "\"a\"");
    assert_eq!(key.verdict, "invalid");
    assert_eq!(key.blocked, Some(3), "the read (op 3) cannot follow");
    assert_eq!(key.order, vec![1, 2]);
    let states: Vec<&str> = key.states.iter().map(|&s| d.strings[s as usize].as_str()).collect();
    assert_eq!(states, ["1", "2"]);
    assert_eq!(d.strings[key.initial as usize], "null");
    assert_eq!(d.strings[d.ops.node[3] as usize], "n2");
    assert_eq!(d.faults.len(), 1);
    assert_eq!(d.faults[0].kind, "partition");
    assert_eq!(d.stale.len(), 1);
    let stale = &d.stale[0];
    assert_eq!((stale.read, stale.source, stale.missed.clone()), (3, Some(1), vec![2]));
    assert_eq!(stale.key, d.start_key);
}

#[test]
fn the_page_is_self_contained_and_embeds_the_data_safely() {
    let mut h = stale_history();
    h.ops[2].value = json!({"key": "a", "value": "</script><script>alert(1)</script>"});
    h.ops[3].value = h.ops[2].value.clone();
    let paired = pair(&h).expect("paired");
    let html = page("<run>", &h, &paired, &checked(&h, ModelKind::Register), None).expect("page");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>&lt;run&gt; — Faultline viewer</title>"));
    assert_eq!(html.matches("</script>").count(), 2, "only the two script elements end");
    for external in ["http://", "https://", "src=\"//", "@import"] {
        assert!(!html.contains(external), "{external} in the page");
    }
    let start = html.find("id=\"viewer-data\">").expect("data element") + "id=\"viewer-data\">".len();
    let end = start + html[start..].find("</script>").expect("end of data");
    let embedded: Value = serde_json::from_str(&html[start..end]).expect("the embedded data is JSON");
    assert!(
        embedded["strings"]
            .as_array()
            .expect("strings")
            .iter()
            .any(|s| { s.as_str().is_some_and(|s| s.contains("</script>")) })
    );
}

#[test]
fn script_safe_text_cannot_close_the_element() {
    let safe = script_safe(r#"{"a":"</script><!--"}"#);
    assert_eq!(safe, r#"{"a":"\u003c/script>\u003c!--"}"#);
    assert_eq!(
        serde_json::from_str::<Value>(&safe).expect("still JSON"),
        json!({"a": "</script><!--"})
    );
}

#[test]
fn of_several_failing_keys_the_one_whose_blocked_operation_began_first_is_shown() {
    use OpType::{Invoke, Ok};
    let a = |v: Value| json!({"key": "a", "value": v});
    let b = |v: Value| json!({"key": "b", "value": v});
    let h = history(&[
        (1, Invoke, "write", a(json!(1))),
        (1, Ok, "write", a(json!(1))),
        (1, Invoke, "write", b(json!(1))),
        (1, Ok, "write", b(json!(1))),
        (1, Invoke, "write", b(json!(2))),
        (1, Ok, "write", b(json!(2))),
        (2, Invoke, "read", b(Value::Null)),
        (2, Ok, "read", b(json!(1))),
        (1, Invoke, "write", a(json!(2))),
        (1, Ok, "write", a(json!(2))),
        (2, Invoke, "read", a(Value::Null)),
        (2, Ok, "read", a(json!(1))),
    ]);
    let paired = pair(&h).expect("paired");
    let d = data::build("t", &h, &paired, &checked(&h, ModelKind::Register), None).expect("built");
    let verdicts: Vec<&str> = d.keys.iter().map(|k| k.verdict.as_str()).collect();
    assert_eq!(verdicts, ["invalid", "invalid"]);
    assert_eq!(d.keys[d.start_key].key, "\"b\"", "b's stale read began first");
    let reads: Vec<usize> = d.stale.iter().map(|s| s.read).collect();
    assert_eq!(reads, [3, 5], "stale reads in invocation order");
}

#[test]
fn the_viewer_draws_the_checks_witness_and_searches_only_the_keys_it_left_undecided() {
    use faultline_checker::linear::witness::Found;
    let h = stale_history();
    let paired = pair(&h).expect("paired");
    let mut options = LinearOptions::new(ModelKind::CasRegister);
    options.threads = 1;
    let result = faultline_checker::linear::check_paired(&h, &paired, &options).expect("checked");
    let witness = result.linear_witness().expect("the check keeps its witness");
    // One thread, cheapest key first: `b` (1 op) is decided before `a` fails.
    let found: Vec<&Found> = witness.found().collect();
    assert_eq!(found[0], &Found::Order(vec![0]));
    assert!(matches!(found[1], Found::Blocked { blocked: 3, .. }));
    let d = data::build("t", &h, &paired, witness, None).expect("built");
    let orders: Vec<&[usize]> = d.keys.iter().map(|k| k.order.as_slice()).collect();
    assert_eq!(orders, [&[0][..], &[1, 2][..]]);
    assert_eq!(d.keys[d.start_key].blocked, Some(3));
}

//! The streamed check of JSONL histories against the loaded one: same verdict, same counts, the planted
//! anomaly found on its key, the same errors at the same lines; and the streamed generator's output.

use faultline_checker::formats::{Format, jsonl};
use faultline_checker::generate::{GenSpec, KvSpec, StaleReadPlanter, kv_history, register_events, register_history};
use faultline_checker::history::{History, Key};
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::{CheckResult, Validity};
use faultline_checker::stream::{self, StreamError};
use proptest::prelude::*;
use serde_json::Value;

fn jsonl_of(events: impl IntoIterator<Item = faultline_checker::history::Op>) -> Vec<u8> {
    let mut out = Vec::new();
    for op in events {
        jsonl::write_op(&op, &mut out).expect("written");
    }
    out
}

fn options(model: ModelKind) -> LinearOptions {
    let mut options = LinearOptions::new(model);
    options.threads = 2;
    options
}

fn loaded(text: &[u8], options: &LinearOptions) -> Result<CheckResult, String> {
    let history: History = Format::Jsonl.read(text).map_err(|e| e.to_string())?;
    linear::check(&history, options).map_err(|e| e.to_string())
}

fn streamed(text: &[u8], options: &LinearOptions) -> Result<CheckResult, String> {
    stream::check_jsonl(text, options)
        .map(|s| s.result)
        .map_err(|e| e.to_string())
}

fn counterexample_key(result: &CheckResult) -> Option<Value> {
    result.details.get("counterexample").map(|c| c["key"].clone())
}

/// Same verdict and counts; an invalid verdict's counterexample on the same key with the same source lines.
fn assert_same(text: &[u8], options: &LinearOptions) -> CheckResult {
    let a = loaded(text, options).expect("loaded");
    let b = streamed(text, options).expect("streamed");
    assert_eq!(a.valid, b.valid, "loaded {a:?}\nstreamed {b:?}");
    assert_eq!(a.counts.get("operations"), b.counts.get("operations"));
    assert_eq!(a.counts.get("partitions"), b.counts.get("partitions"));
    if a.valid == Validity::False {
        assert_eq!(counterexample_key(&a), counterexample_key(&b));
        assert_eq!(a.examples, b.examples);
        assert_eq!(a.details["counterexample"]["op"], b.details["counterexample"]["op"]);
    }
    b
}

fn spec() -> impl Strategy<Value = GenSpec> {
    (1u64..12, 1u64..8, 1u64..400, 0.0f64..0.3, any::<u64>()).prop_map(
        |(keys, processes, operations, crash_rate, seed)| GenSpec {
            keys,
            processes,
            operations,
            crash_rate,
            read_fraction: 0.5,
            seed,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn streamed_verdicts_are_the_loaded_ones_and_find_the_planted_key(spec in spec(), threads in 1usize..4) {
        let mut options = options(ModelKind::CasRegister);
        options.threads = threads;
        let valid = jsonl_of(register_events(&spec));
        prop_assert_eq!(assert_same(&valid, &options).valid, Validity::True);
        let events = register_events(&spec);
        let fresh = events.fresh_process();
        let mut planter = StaleReadPlanter::new(events, fresh, spec.seed);
        let text = jsonl_of(planter.by_ref());
        if let Some(key) = planter.planted_key() {
            let result = assert_same(&text, &options);
            prop_assert_eq!(result.valid, Validity::False);
            let expected = key.as_ref().map_or(Value::Null, |k: &Key| k.value().clone());
            prop_assert_eq!(counterexample_key(&result), Some(expected));
        }
    }

    #[test]
    fn streamed_kv_verdicts_are_the_loaded_ones(seed in any::<u64>(), anomaly in any::<bool>(), threads in 1usize..4) {
        let spec = KvSpec { keys: 4, processes: 6, operations: 150, anomaly, seed, ..KvSpec::default() };
        let generated = kv_history(&spec);
        let mut text = Vec::new();
        jsonl::write(&generated.history, &mut text).expect("written");
        let mut options = options(ModelKind::KvAppend);
        options.threads = threads;
        options.conventions.initial = Value::from("");
        let result = assert_same(&text, &options);
        if let Some(key) = generated.anomaly_key {
            prop_assert_eq!(counterexample_key(&result), Some(Value::from(key)));
        }
    }
}

#[test]
fn the_streamed_generator_makes_the_loaded_generators_events() {
    let spec = GenSpec {
        keys: 5,
        processes: 9,
        operations: 2000,
        crash_rate: 0.1,
        ..GenSpec::default()
    };
    assert_eq!(
        History::from_ops(register_events(&spec).collect()),
        register_history(&spec)
    );
}

#[test]
fn protocol_errors_and_edge_cases_match_the_loaded_path() {
    let options = options(ModelKind::CasRegister);
    let cases: [&str; 7] = [
        // A protocol error before a malformed line: the malformed line is named, as a loaded read does.
        "{\"type\":\"ok\",\"process\":2,\"f\":\"read\"}\n{\"type\":\"bogus\",\"process\":1,\"f\":\"read\"}\n",
        // A process invokes twice.
        "{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n\n{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n",
        // A completion without an invocation, after a nemesis event.
        "{\"type\":\"info\",\"process\":\"nemesis\",\"f\":\"kill\"}\n{\"type\":\"ok\",\"process\":2,\"f\":\"read\"}\n",
        // A completion of another function.
        "{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n{\"type\":\"ok\",\"process\":1,\"f\":\"write\",\"value\":1}\n",
        // Not JSON, then empty.
        "{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n[1]\n",
        "\n \n",
        // An operation the model does not know.
        "{\"type\":\"invoke\",\"process\":1,\"f\":\"frob\"}\n{\"type\":\"ok\",\"process\":1,\"f\":\"frob\"}\n",
    ];
    for text in cases {
        let a = loaded(text.as_bytes(), &options).expect_err(text);
        let b = streamed(text.as_bytes(), &options).expect_err(text);
        assert_eq!(a, b, "{text}");
    }
    // The key of an operation comes from its completion when its invocation has none; index and time
    // default to the position; a never-completed key-less invocation stays open to the end.
    let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"write\",\"value\":3}\n\
                {\"type\":\"info\",\"process\":\"nemesis\",\"f\":\"start\"}\n\
                {\"type\":\"ok\",\"process\":1,\"f\":\"write\",\"value\":{\"key\":\"a\",\"value\":3}}\n\
                {\"type\":\"invoke\",\"process\":2,\"f\":\"read\",\"value\":{\"key\":\"a\",\"value\":null}}\n\
                {\"type\":\"invoke\",\"process\":3,\"f\":\"write\",\"value\":4}\n\
                {\"type\":\"ok\",\"process\":2,\"f\":\"read\",\"value\":{\"key\":\"a\",\"value\":2}}\n";
    let result = assert_same(text.as_bytes(), &options);
    assert_eq!(result.valid, Validity::False);
    assert_eq!(result.counts["partitions"], 2);
    assert_eq!(result.details["counterexample"]["op"]["line"], 4);
}

#[test]
fn a_model_across_keys_is_not_streamed() {
    let text = b"{\"type\":\"invoke\",\"process\":1,\"f\":\"txn\",\"value\":[]}\n";
    let err = stream::check_jsonl(&text[..], &options(ModelKind::MultiRegister)).expect_err("refused");
    assert!(matches!(err, StreamError::NotPartitioned(_)), "{err}");
}

#[test]
fn a_timeout_makes_the_verdict_unknown_or_decides_within_it() {
    let spec = GenSpec {
        keys: 1,
        processes: 30,
        operations: 20_000,
        crash_rate: 0.05,
        ..GenSpec::default()
    };
    let text = jsonl_of(register_events(&spec));
    let mut options = options(ModelKind::CasRegister);
    options.timeout = Some(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let result = stream::check_jsonl(&text[..], &options).expect("checked").result;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "a 200 ms budget took {took:?} ({:?})",
        result.valid
    );
    if result.valid == Validity::Unknown {
        assert_eq!(result.details["unknown-reason"], "timeout");
    }
}

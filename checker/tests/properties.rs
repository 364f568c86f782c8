//! Property tests: generated histories are linearizable; injected stale reads are caught by both the
//! linearizability and the stale-read checkers; the two checkers agree on register histories; keyed
//! histories survive JSONL, EDN and independent-tuple round trips; generated key-value histories are
//! linearizable, and one with a planted stale get is not, with the counterexample on the planted key.

use faultline_checker::formats::Format;
use faultline_checker::generate::{GenSpec, KvSpec, inject_stale_read, kv_history, register_history};
use faultline_checker::history::{Conventions, pair};
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::Validity;
use faultline_checker::{session, stale};
use proptest::prelude::*;
use serde_json::Value;

fn spec() -> impl Strategy<Value = GenSpec> {
    (1u64..4, 1u64..7, 1u64..80, 0.0f64..0.3, 0.2f64..0.8, any::<u64>()).prop_map(
        |(keys, processes, operations, crash_rate, read_fraction, seed)| GenSpec {
            keys,
            processes,
            operations,
            crash_rate,
            read_fraction,
            seed,
        },
    )
}

fn linearizable(h: &faultline_checker::history::History) -> Validity {
    let mut options = LinearOptions::new(ModelKind::Register);
    options.threads = 1;
    linear::check(h, &options).expect("checkable").valid
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn keyed_histories_round_trip_through_every_writer(spec in spec()) {
        use faultline_checker::formats::{edn, jsonl};
        let h = register_history(&spec);
        let mut text = Vec::new();
        jsonl::write(&h, &mut text).expect("in memory");
        prop_assert_eq!(&jsonl::read(text.as_slice()).expect("JSONL").ops, &h.ops);
        text.clear();
        edn::write(&h, &mut text).expect("in memory");
        prop_assert_eq!(&edn::read(text.as_slice()).expect("EDN").ops, &h.ops);
        if spec.keys > 1 {
            // Jepsen's independent form: the value is the tuple [k v].
            let tuples: String = h.ops.iter().map(|o| {
                let key = o.key.as_ref().map_or(Value::Null, |k| k.value().clone());
                let mut value = String::new();
                faultline_checker::formats::edn_value::write_value(&mut value, &serde_json::json!([key, o.value]));
                format!("{{:index {}, :time {}, :type :{}, :process {}, :f :{}, :value {value}}}\n",
                    o.index, o.time, o.op_type.name(), o.process, o.f)
            }).collect();
            prop_assert_eq!(&edn::read(tuples.as_bytes()).expect("tuples").ops, &h.ops);
        }
    }

    #[test]
    fn histories_of_a_real_register_are_linearizable_and_fresh(spec in spec()) {
        let h = register_history(&spec);
        prop_assert_eq!(linearizable(&h), Validity::True);
        let paired = pair(&h).expect("valid");
        let stale = stale::check(&h, &paired, &Conventions::default());
        prop_assert_eq!(stale.valid, Validity::True);
        prop_assert_eq!(session::check(&h, &paired).valid, Validity::True);
    }

    #[test]
    fn an_injected_stale_read_is_caught_by_both_checkers(spec in spec()) {
        let h = register_history(&spec);
        if let Some(bad) = inject_stale_read(&h) {
            prop_assert_eq!(linearizable(&bad), Validity::False);
            let stale = stale::check(&bad, &pair(&bad).expect("valid"), &Conventions::default());
            prop_assert_eq!(stale.valid, Validity::False);
            prop_assert_eq!(stale.counts["stale"], 1);
        }
    }

    #[test]
    fn a_stale_or_impossible_read_means_not_linearizable(spec in spec(), pick in any::<usize>(), shift in 1i64..4) {
        // Corrupt one read's value; whenever the stale-read checker flags it, linearizability must fail.
        let mut h = register_history(&spec);
        let reads: Vec<usize> = h.ops.iter().enumerate()
            .filter(|(_, o)| o.f == "read" && o.op_type == faultline_checker::history::OpType::Ok)
            .map(|(i, _)| i).collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick % reads.len()];
        let slot = &mut h.ops[i].value;
        *slot = Value::from(slot.as_i64().unwrap_or(0) - shift);
        let stale = stale::check(&h, &pair(&h).expect("valid"), &Conventions::default());
        let lin = linearizable(&h);
        if stale.valid == Validity::False {
            prop_assert_eq!(lin, Validity::False);
        }
        if lin == Validity::True {
            prop_assert_eq!(stale.valid, Validity::True);
        }
    }
}

fn kv_spec() -> impl Strategy<Value = KvSpec> {
    (1u64..6, 1u64..6, 1u64..100, 0.0f64..0.05, 0.4f64..0.8, any::<u64>()).prop_map(
        |(keys, processes, operations, crash_rate, get_fraction, seed)| KvSpec {
            keys,
            processes,
            operations,
            crash_rate,
            get_fraction,
            anomaly: false,
            seed,
        },
    )
}

fn check_kv(h: &faultline_checker::history::History, threads: usize) -> faultline_checker::result::CheckResult {
    let mut options = LinearOptions::new(ModelKind::KvAppend);
    options.conventions = Format::PorcupineKv.conventions();
    options.threads = threads;
    linear::check(h, &options).expect("checkable")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_kv_histories_are_linearizable(spec in kv_spec()) {
        let generated = kv_history(&spec);
        prop_assert_eq!(generated.anomaly_key, None);
        prop_assert_eq!(check_kv(&generated.history, 2).valid, Validity::True);
    }

    #[test]
    fn a_planted_kv_anomaly_is_always_found_and_only_on_its_key(spec in kv_spec(), threads in 1usize..3) {
        let generated = kv_history(&KvSpec { anomaly: true, ..spec });
        match generated.anomaly_key {
            None => prop_assert_eq!(check_kv(&generated.history, threads).valid, Validity::True),
            Some(key) => {
                let result = check_kv(&generated.history, threads);
                prop_assert_eq!(result.valid, Validity::False);
                prop_assert_eq!(&result.details["counterexample"]["key"], &Value::String(key));
            }
        }
    }
}

//! The counter checker: a single counter incremented by positive deltas (`add d`) and read (`read`).
//!
//! Every `ok` read must lie between the sum of increments acknowledged before the read was invoked (lower
//! bound) and the sum of every increment invoked before the read completed that may have happened — `ok` or
//! `info` (upper bound). Increments are positive, so this is exact for a correct counter.

use crate::history::{History, Outcome, PairedHistory};
use crate::result::{CheckResult, Example, MAX_EXAMPLES, Validity};

/// Checks every `ok` read against the bounds.
pub fn check(history: &History, paired: &PairedHistory) -> CheckResult {
    let mut result = CheckResult::new("counter");
    let ops = &paired.operations;
    let adds: Vec<_> = ops
        .iter()
        .filter(|o| o.f == "add" && o.outcome != Outcome::Fail)
        .collect();
    let mut reads = 0u64;
    let mut bad = 0u64;
    for read in ops.iter().filter(|o| o.f == "read" && o.outcome == Outcome::Ok) {
        let Some(seen) = read.value.as_i64() else { continue };
        reads += 1;
        let lower: i64 = adds
            .iter()
            .filter(|a| a.outcome == Outcome::Ok && a.return_time.is_some_and(|t| t < read.call_time))
            .filter_map(|a| a.value.as_i64())
            .sum();
        let read_done = read.return_time.unwrap_or(u64::MAX);
        let upper: i64 = adds
            .iter()
            .filter(|a| a.call_time < read_done)
            .filter_map(|a| a.value.as_i64())
            .sum();
        if seen < lower || seen > upper {
            bad += 1;
            if result.examples.len() < MAX_EXAMPLES {
                let index = history.ops.get(read.invoke).map_or(0, |o| o.index);
                result.examples.push(Example {
                    anomaly: "counter-out-of-bounds".into(),
                    ops: vec![index],
                    description: format!("read {seen}, expected between {lower} and {upper}"),
                });
            }
        }
    }
    result.counts.insert("reads".into(), reads);
    result.counts.insert("out-of-bounds".into(), bad);
    if bad > 0 {
        result.valid = Validity::False;
        result.anomalies.push("counter-out-of-bounds".into());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::jsonl;
    use crate::history::pair;

    fn verdict(text: &str) -> CheckResult {
        let history = jsonl::read(text.as_bytes()).expect("history");
        let paired = pair(&history).expect("pairs");
        check(&history, &paired)
    }

    #[test]
    fn reads_within_bounds_are_valid_and_outside_are_not() {
        let good = r#"{"time":1,"type":"invoke","process":0,"f":"add","value":2}
{"time":2,"type":"ok","process":0,"f":"add","value":2}
{"time":3,"type":"invoke","process":1,"f":"add","value":3}
{"time":4,"type":"invoke","process":0,"f":"read","value":null}
{"time":5,"type":"ok","process":0,"f":"read","value":5}
{"time":6,"type":"info","process":1,"f":"add","value":3}
"#;
        assert_eq!(verdict(good).valid, Validity::True);
        let lost = good.replace("\"value\":5}", "\"value\":1}");
        let r = verdict(&lost);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.anomalies, vec!["counter-out-of-bounds"]);
        let invented = good.replace("\"value\":5}", "\"value\":9}");
        assert_eq!(verdict(&invented).valid, Validity::False);
    }
}

//! The human summary of a verdict: one line per checker with its counts, then the first example, why it
//! could not decide, and the end of a linearizability counterexample. `faultline check` and `faultline test`
//! both print these lines.

use serde_json::Value;

use crate::result::CheckResult;

/// How many steps of the longest linearizable prefix are shown.
const PREFIX_STEPS_SHOWN: usize = 5;

/// The summary lines of `result` (its children when it is a composition), indented by two spaces.
pub fn lines(result: &CheckResult) -> Vec<String> {
    let checks = if result.children.is_empty() {
        std::slice::from_ref(result)
    } else {
        &result.children[..]
    };
    let mut out = Vec::new();
    for check in checks {
        let counts: Vec<String> = check.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(format!("  {}: {} ({})", check.checker, check.valid, counts.join(", ")));
        if let Some(first) = check.examples.first() {
            out.push(format!(
                "    first bad operation: {} [op indices {:?}]",
                first.description, first.ops
            ));
        }
        if let Some(reason) = check.details.get("unknown-reason") {
            out.push(format!("    undecided: {reason}"));
        }
        if let Some(prefix) = check
            .details
            .pointer("/counterexample/prefix")
            .and_then(Value::as_array)
        {
            if !prefix.is_empty() {
                out.push(format!(
                    "    end of the longest linearizable prefix ({} ops):",
                    prefix.len()
                ));
            }
            for step in &prefix[prefix.len().saturating_sub(PREFIX_STEPS_SHOWN)..] {
                out.push(format!(
                    "      #{} process {} {} {} -> state {}",
                    step["index"],
                    step["process"],
                    step["f"].as_str().unwrap_or("?"),
                    step["value"],
                    step["state"]
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::compose;

    #[test]
    fn one_line_per_checker_with_its_first_example() {
        let ok = CheckResult::new("set");
        let mut bad = CheckResult::new("counter");
        bad.add_anomaly(
            "counter-out-of-bounds",
            vec![7],
            "read 9, expected between 1 and 5".into(),
        );
        let lines = lines(&compose("counter", vec![ok, bad]));
        assert_eq!(
            lines,
            vec![
                "  set: valid ()",
                "  counter: INVALID (counter-out-of-bounds=1)",
                "    first bad operation: read 9, expected between 1 and 5 [op indices [7]]",
            ]
        );
    }
}

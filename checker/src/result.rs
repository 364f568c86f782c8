//! The verdict every checker returns, and composition (the worst verdict wins).
//!
//! A [`CheckResult`] serialises to JSON for `results.json`:
//!
//! ```text
//! {"checker":"linearizable","valid":false,"anomalies":["nonlinearizable"],"counts":{"operations":80},
//!  "examples":[{"anomaly":"nonlinearizable","ops":[41],"description":"..."}],"details":{...}}
//! ```
//!
//! `valid` is `true`, `false` or the string `"unknown"` (the checker could not decide, e.g. it ran out of
//! time), as in Jepsen.
//!
//! The linearizability checker's result also carries its search's [`Witness`] (op ids, not serialised):
//! [`CheckResult::expand`] turns it into the counterexample's prefix steps before a result is printed or
//! written, and viewers draw every key from it instead of searching again.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::history::{History, PairedHistory};
use crate::linear::witness::LinearWitness;

/// A three-valued verdict. Ordered from best to worst: `True < Unknown < False`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Validity {
    /// No anomaly found.
    True,
    /// The checker could not decide.
    Unknown,
    /// At least one anomaly found.
    False,
}

impl Validity {
    /// The worse of two verdicts.
    pub fn worst(self, other: Validity) -> Validity {
        self.max(other)
    }

    /// The process exit code for this verdict (ARCHITECTURE §2): 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::True => 0,
            Validity::False => 1,
            Validity::Unknown => 2,
        }
    }
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Validity::True => "valid",
            Validity::False => "INVALID",
            Validity::Unknown => "unknown",
        })
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::True => s.serialize_bool(true),
            Validity::False => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Validity, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Validity::True),
            Value::Bool(false) => Ok(Validity::False),
            Value::String(s) if s == "unknown" => Ok(Validity::Unknown),
            other => Err(serde::de::Error::custom(format!("bad validity {other}"))),
        }
    }
}

/// One illustrative instance of an anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The anomaly's name.
    pub anomaly: String,
    /// History event indices involved (invocations first).
    pub ops: Vec<u64>,
    /// A sentence for humans.
    pub description: String,
}

/// A checker's verdict with its evidence. Only `valid` is required when reading one back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which checker produced it.
    #[serde(default)]
    pub checker: String,
    /// The verdict.
    pub valid: Validity,
    /// Names of the anomalies found (sorted, unique).
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// Named counts (operations checked, anomalies per kind, ...).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// A few examples, each with op indices.
    #[serde(default)]
    pub examples: Vec<Example>,
    /// Checker-specific evidence (counterexamples, distributions).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
    /// Results composed into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<CheckResult>,
    /// The linearizability search's witness, when this result is from one (never serialised).
    #[serde(skip)]
    pub witness: Witness,
}

/// A linearizability witness kept with a result, shared cheaply. It is evidence held for expansion, not
/// part of the verdict: it is neither serialised nor compared (any two are equal), so a result read back
/// from JSON equals the one written.
#[derive(Debug, Clone, Default)]
pub struct Witness(Option<Arc<LinearWitness>>);

impl Witness {
    /// Holds `witness`.
    pub fn new(witness: LinearWitness) -> Witness {
        Witness(Some(Arc::new(witness)))
    }

    /// The witness, if the result has one.
    pub fn get(&self) -> Option<&LinearWitness> {
        self.0.as_deref()
    }
}

impl PartialEq for Witness {
    fn eq(&self, _: &Witness) -> bool {
        true
    }
}

/// How many examples a checker keeps per anomaly.
pub const MAX_EXAMPLES: usize = 8;

impl CheckResult {
    /// An empty, valid result for `checker`.
    pub fn new(checker: &str) -> CheckResult {
        CheckResult {
            checker: checker.to_string(),
            valid: Validity::True,
            anomalies: Vec::new(),
            counts: BTreeMap::new(),
            examples: Vec::new(),
            details: Value::Null,
            children: Vec::new(),
            witness: Witness::default(),
        }
    }

    /// Fills in the evidence kept unexpanded, here and in the children: the linearizability
    /// counterexample's prefix steps (`details.counterexample.prefix`). Call it before printing or writing a
    /// result; `history` and `paired` must be the ones checked. Expanding twice does nothing more.
    pub fn expand(&mut self, history: &History, paired: &PairedHistory) {
        for child in &mut self.children {
            child.expand(history, paired);
        }
        let Some(witness) = self.witness.get() else { return };
        let Some(Value::Object(counterexample)) = self.details.get_mut("counterexample") else {
            return;
        };
        if counterexample.contains_key("prefix") {
            return;
        }
        if let Some(steps) = witness.counterexample_steps(history, paired) {
            counterexample.insert("prefix".into(), Value::Array(steps));
        }
    }

    /// The linearizability witness of this result or of the first child (depth first) that has one.
    pub fn linear_witness(&self) -> Option<&LinearWitness> {
        self.witness
            .get()
            .or_else(|| self.children.iter().find_map(CheckResult::linear_witness))
    }

    /// Records an anomaly: marks the result invalid, counts it and keeps up to [`MAX_EXAMPLES`] examples.
    pub fn add_anomaly(&mut self, anomaly: &str, ops: Vec<u64>, description: String) {
        self.valid = self.valid.worst(Validity::False);
        if let Err(at) = self.anomalies.binary_search_by(|a| a.as_str().cmp(anomaly)) {
            self.anomalies.insert(at, anomaly.to_string());
        }
        let count = self.counts.entry(anomaly.to_string()).or_insert(0);
        *count += 1;
        let shown = self.examples.iter().filter(|e| e.anomaly == anomaly).count();
        if shown < MAX_EXAMPLES {
            self.examples.push(Example {
                anomaly: anomaly.to_string(),
                ops,
                description,
            });
        }
    }

    /// Sets a named count.
    pub fn set_count(&mut self, name: &str, value: u64) {
        self.counts.insert(name.to_string(), value);
    }
}

/// Composes results: the verdict is the worst child's, anomalies are the union.
pub fn compose(checker: &str, children: Vec<CheckResult>) -> CheckResult {
    let mut out = CheckResult::new(checker);
    for child in &children {
        out.valid = out.valid.worst(child.valid);
        for a in &child.anomalies {
            if let Err(at) = out.anomalies.binary_search(a) {
                out.anomalies.insert(at, a.clone());
            }
        }
    }
    out.children = children;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_serialises_like_jepsen() {
        let v = serde_json::to_string(&[Validity::True, Validity::False, Validity::Unknown]).expect("json");
        assert_eq!(v, "[true,false,\"unknown\"]");
        let back: Vec<Validity> = serde_json::from_str(&v).expect("parse");
        assert_eq!(back, vec![Validity::True, Validity::False, Validity::Unknown]);
    }

    #[test]
    fn composition_reports_the_worst_verdict() {
        let ok = CheckResult::new("a");
        let mut unknown = CheckResult::new("b");
        unknown.valid = Validity::Unknown;
        assert_eq!(
            compose("all", vec![ok.clone(), unknown.clone()]).valid,
            Validity::Unknown
        );
        let mut bad = CheckResult::new("c");
        bad.add_anomaly("stale-read", vec![3, 4], "read 1 after 2".into());
        let all = compose("all", vec![ok, bad, unknown]);
        assert_eq!(all.valid, Validity::False);
        assert_eq!(all.anomalies, vec!["stale-read".to_string()]);
        assert_eq!(all.valid.exit_code(), 1);
    }

    #[test]
    fn examples_are_capped_but_counted() {
        let mut r = CheckResult::new("x");
        for i in 0..20 {
            r.add_anomaly("lost", vec![i], String::new());
        }
        assert_eq!(r.counts["lost"], 20);
        assert_eq!(r.examples.len(), MAX_EXAMPLES);
    }
}

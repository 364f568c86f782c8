//! Verdict parity: every external history in `shared/testdata/expected.tsv` gets its upstream verdict.

use std::path::PathBuf;

use faultline_checker::formats::Format;
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::Validity;
use serde_json::Value;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata")
}

fn initial(text: &str) -> Value {
    match text {
        "nil" => Value::Null,
        "\"\"" => Value::String(String::new()),
        other => serde_json::from_str(other).unwrap_or_else(|_| Value::String(other.to_string())),
    }
}

#[test]
fn every_external_history_gets_its_upstream_verdict() {
    let table = std::fs::read_to_string(testdata().join("expected.tsv")).expect("expected.tsv (needs ../shared)");
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for row in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let [path, format, model, init, expected] = cols[..] else {
            panic!("bad row {row:?}")
        };
        let format = Format::from_name(format).unwrap_or_else(|| panic!("format {format}"));
        let mut options = LinearOptions::new(ModelKind::from_name(model).unwrap_or_else(|| panic!("model {model}")));
        options.conventions = format.conventions();
        options.conventions.initial = initial(init);
        let file = std::fs::File::open(testdata().join(path)).expect("history file");
        let history = format
            .read(std::io::BufReader::new(file))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let result = linear::check(&history, &options).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want = if expected == "true" {
            Validity::True
        } else {
            Validity::False
        };
        if result.valid != want {
            mismatches.push(format!("{path}: got {:?}, upstream {expected}", result.valid));
        }
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} rows");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

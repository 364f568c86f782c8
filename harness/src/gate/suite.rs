//! Gate suites: a TOML file of scenarios, each a `faultline test` spec plus what its verdict must be.
//!
//! ```toml
//! name = "ci"
//! [defaults]                      # test-spec fields shared by every scenario
//! time_limit = 10
//! [[scenario]]
//! name = "w1-loses-writes"
//! expect = "invalid"              # or "valid"
//! anomalies = ["lost"]            # kinds a catching seed must show
//! seeds = [1, 2, 3]               # valid: all must pass; invalid: at least one must catch it
//! failpoints = []                 # engine fail points switched on in every member
//! timeout = 180                   # wall-clock seconds per seed, at most 30 days (default: from the spec)
//! [scenario.test]                 # the rest of the test spec (see `faultline test --config`)
//! workload = "set"
//! ```
//!
//! `ci` and `nightly` are bundled in the binary: `faultline gate ci` works from any directory. The whole suite
//! is validated (every scenario's spec, as `faultline test` would) before any child starts.

use std::path::Path;

use serde::Deserialize;

use crate::input;
use crate::test_cmd::spec::TestSpec;

/// The suites compiled into the binary, by name.
pub const BUNDLED: &[(&str, &str)] = &[
    ("ci", include_str!("../../../gates/ci.toml")),
    ("nightly", include_str!("../../../gates/nightly.toml")),
];

/// What a scenario's verdict must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Every seed is valid.
    Valid,
    /// At least one seed is invalid and shows every expected anomaly kind.
    Invalid,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expect::Valid => "valid",
            Expect::Invalid => "invalid",
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    defaults: toml::Table,
    #[serde(default)]
    scenario: Vec<ScenarioFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    expect: Expect,
    #[serde(default)]
    anomalies: Vec<String>,
    seeds: Vec<u64>,
    #[serde(default)]
    failpoints: Vec<String>,
    timeout: Option<f64>,
    #[serde(default)]
    test: toml::Table,
}

/// A scenario ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub expect: Expect,
    pub anomalies: Vec<String>,
    pub seeds: Vec<u64>,
    pub failpoints: Vec<String>,
    /// Wall-clock limit of one seed's run, in seconds.
    pub timeout: f64,
    /// The test spec (without seed and store; the runner sets them).
    pub spec: TestSpec,
}

/// A parsed suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub description: String,
    pub scenarios: Vec<Scenario>,
}

/// Loads `name_or_path`: a bundled suite name (`ci`, `nightly`) unless a file of that name exists.
pub fn load(name_or_path: &str) -> Result<Suite, String> {
    let path = Path::new(name_or_path);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return parse(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    match BUNDLED.iter().find(|(name, _)| *name == name_or_path) {
        Some((name, text)) => parse(text).map_err(|e| format!("bundled suite {name}: {e}")),
        None => {
            let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "no suite file {name_or_path:?} and no bundled suite of that name (bundled: {})",
                names.join(", ")
            ))
        }
    }
}

/// Parses and validates a suite's TOML text.
pub fn parse(text: &str) -> Result<Suite, String> {
    let file: SuiteFile = toml::from_str(text).map_err(|e| input::toml_error(text, &e))?;
    let mut scenarios = Vec::new();
    for scenario in file.scenario {
        if scenarios.iter().any(|s: &Scenario| s.name == scenario.name) {
            return Err(format!("scenario {:?} appears twice", scenario.name));
        }
        scenarios.push(resolve(&file.defaults, scenario)?);
    }
    if scenarios.is_empty() {
        return Err("a suite needs at least one [[scenario]]".into());
    }
    Ok(Suite {
        name: file.name,
        description: file.description,
        scenarios,
    })
}

fn resolve(defaults: &toml::Table, file: ScenarioFile) -> Result<Scenario, String> {
    let context = |e: String| format!("scenario {:?}: {e}", file.name);
    if file.name.is_empty()
        || !file
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(context("names use letters, digits, '-', '_' and '.'".into()));
    }
    if file.seeds.is_empty() {
        return Err(context("needs at least one seed".into()));
    }
    if file.expect == Expect::Valid && !file.anomalies.is_empty() {
        return Err(context("a valid expectation cannot name anomalies".into()));
    }
    if let Some(bad) = file
        .failpoints
        .iter()
        .find(|f| !faultline_engine::failpoint::KNOWN.iter().any(|(name, _)| name == f))
    {
        return Err(context(format!("unknown fail point {bad:?}")));
    }
    if file
        .failpoints
        .iter()
        .any(|f| f == faultline_engine::failpoint::SKEW_CLOCK)
    {
        return Err(context(
            "skewClock needs an offset: use the `clock` or `primary-divergence` nemesis instead".into(),
        ));
    }
    for key in ["seed", "store", "name"] {
        if file.test.contains_key(key) {
            return Err(context(format!("`{key}` is set by the gate, not in [scenario.test]")));
        }
    }
    let mut table = defaults.clone();
    table.extend(file.test);
    let mut spec: TestSpec = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| context(input::toml_error("", &e)))?;
    spec.name = file.name.clone();
    spec.set_parameters
        .extend(file.failpoints.iter().map(|f| format!("failpoint.{f}=alwaysOn")));
    let (spec, _) = spec.finish().map_err(context)?;
    let timeout = match file.timeout {
        Some(timeout) => input::check_seconds("timeout", timeout).map_err(context)?,
        // Each term is at most 30 days, so the sum is a valid `Duration` too.
        None => spec.time_limit + spec.recovery_timeout + spec.check_timeout + 90.0,
    };
    Ok(Scenario {
        name: file.name,
        description: file.description,
        expect: file.expect,
        anomalies: file.anomalies,
        seeds: file.seeds,
        failpoints: file.failpoints,
        timeout,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
name = "t"
[defaults]
time_limit = 4
nemesis = ["none"]
[[scenario]]
name = "a"
expect = "invalid"
anomalies = ["lost"]
seeds = [1, 2]
failpoints = ["ackMajorityBeforeReplication"]
[scenario.test]
workload = "set"
time_limit = 6
[[scenario]]
name = "b"
expect = "valid"
seeds = [3]
"#;

    #[test]
    fn scenarios_take_defaults_then_their_own_fields() {
        let suite = parse(SUITE).expect("parse");
        let [a, b] = &suite.scenarios[..] else {
            panic!("two scenarios expected")
        };
        assert_eq!((a.spec.workload.as_str(), a.spec.time_limit), ("set", 6.0));
        assert_eq!(b.spec.time_limit, 4.0);
        assert_eq!(a.spec.name, "a");
        assert_eq!(
            a.spec.set_parameters,
            vec!["failpoint.ackMajorityBeforeReplication=alwaysOn".to_string()]
        );
        assert!(b.spec.set_parameters.is_empty());
        assert!(a.timeout > 6.0);
    }

    #[test]
    fn bad_suites_are_refused_with_the_scenario_named() {
        let bad = |from: &str, to: &str| parse(&SUITE.replacen(from, to, 1)).expect_err("must fail");
        assert!(bad("ackMajorityBeforeReplication", "noSuchPoint").contains("\"a\""));
        assert!(bad("seeds = [3]", "seeds = []").contains("seed"));
        assert!(bad("workload = \"set\"", "workload = \"bank\"").contains("workload"));
        assert!(bad("workload = \"set\"", "seed = 4").contains("set by the gate"));
        assert!(bad("expect = \"valid\"", "expect = \"maybe\"").contains("expect"));
        assert!(bad("name = \"b\"", "name = \"a\"").contains("twice"));
        let huge = bad("seeds = [3]", "seeds = [3]\ntimeout = 1e300");
        assert!(
            huge.contains("\"b\"") && huge.contains("1e300") && huge.contains("30 days"),
            "{huge}"
        );
        assert!(bad("seeds = [3]", "seeds = [3]\ntimeout = -1").contains("-1"));
        let typed = bad("seeds = [3]", "seeds = [-3]");
        assert!(
            typed.starts_with("line ") && typed.contains("-3") && !typed.contains('\n'),
            "{typed}"
        );
        let concern = bad("workload = \"set\"", "write_concern = \"banana\"");
        assert!(concern.contains("banana") && concern.contains("majority"), "{concern}");
    }

    #[test]
    fn bundled_suites_parse() {
        for (name, _) in BUNDLED {
            let suite = load(name).expect("bundled suite parses");
            assert_eq!(&suite.name, name);
        }
        assert!(load("no-such-suite").is_err());
    }
}

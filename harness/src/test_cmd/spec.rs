//! The test spec: everything that defines a run, from a TOML file (`--config`) with flags on top. The
//! resolved spec, seed included, is saved as `test.toml`; running it again makes the same plan.

use std::path::{Path, PathBuf};

use faultline_workloads::Workload;
use faultline_workloads::client::ClientMode;
use serde::{Deserialize, Serialize};

use crate::nemesis::{Fault, Target};

/// A resolved test spec (every field has a value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestSpec {
    /// Test name (the store directory); defaults to the workload's name.
    pub name: String,
    pub workload: String,
    /// Nemesis names (`kill`, `pause`, `stop`, `wipe`, `partition`, `partition-…`, `all`, `none`).
    pub nemesis: Vec<String>,
    /// Target of process faults (`primary`, `minority`, `majority`, `all`, `n1`…); empty: per-fault defaults.
    pub nemesis_target: String,
    /// Seconds between nemesis steps.
    pub nemesis_interval: f64,
    /// Seconds of the main phase.
    pub time_limit: f64,
    /// Worker threads (logical processes at a time).
    pub concurrency: usize,
    /// Target ops/s across all workers (0: as fast as possible).
    pub rate: f64,
    pub nodes: usize,
    pub arbiters: usize,
    pub write_concern: String,
    pub read_concern: String,
    /// Empty: the workload's default (`primary`, or `secondary` for `secondary-reads`).
    pub read_preference: String,
    /// `replica-set` or `direct`.
    pub client_mode: String,
    /// Seconds before an operation is abandoned as indeterminate.
    pub op_timeout: f64,
    /// Keys in use at once (register workloads).
    pub keys: usize,
    /// Operations per key before it is retired.
    pub ops_per_key: u64,
    /// `secondaryDelaySecs` for the last data member (0: none).
    pub secondary_delay_secs: u64,
    /// Seconds the linearizability search may take before the verdict is unknown.
    pub check_timeout: f64,
    /// Seconds to wait for recovery after healing.
    pub recovery_timeout: f64,
    /// `--setParameter` values for every member.
    pub set_parameters: Vec<String>,
    pub seed: u64,
    /// Store root (`<store>/<name>/<timestamp>/`).
    pub store: PathBuf,
}

impl Default for TestSpec {
    fn default() -> TestSpec {
        TestSpec {
            name: String::new(),
            workload: "register".into(),
            nemesis: vec!["partition".into(), "kill".into()],
            nemesis_target: String::new(),
            nemesis_interval: 5.0,
            time_limit: 30.0,
            concurrency: 10,
            rate: 500.0,
            nodes: 3,
            arbiters: 0,
            write_concern: "majority".into(),
            read_concern: "linearizable".into(),
            read_preference: String::new(),
            client_mode: "replica-set".into(),
            op_timeout: 5.0,
            keys: 8,
            ops_per_key: 200,
            secondary_delay_secs: 0,
            check_timeout: 60.0,
            recovery_timeout: 60.0,
            set_parameters: Vec::new(),
            seed: 0,
            store: PathBuf::from("store"),
        }
    }
}

/// The spec decoded into the types the runner uses.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workload: Workload,
    pub faults: Vec<Fault>,
    pub target: Option<Target>,
    pub client_mode: ClientMode,
}

impl TestSpec {
    /// Reads a TOML spec.
    pub fn from_file(path: &Path) -> Result<TestSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The spec as TOML (what `test.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Fills in derived defaults (name, read preference) and validates every field.
    pub fn finish(mut self) -> Result<(TestSpec, Plan), String> {
        let workload = Workload::from_name(&self.workload).ok_or_else(|| {
            let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
            format!("unknown workload {:?} (one of {})", self.workload, names.join(", "))
        })?;
        if self.name.is_empty() {
            self.name = workload.name().to_string();
        }
        if self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(format!("bad test name {:?}", self.name));
        }
        if self.read_preference.is_empty() {
            self.read_preference = workload.default_read_preference().to_string();
        }
        let mut faults = Vec::new();
        for name in &self.nemesis {
            let expanded = Fault::expand(name).ok_or_else(|| format!("unknown nemesis {name:?}"))?;
            for fault in expanded {
                if !faults.contains(&fault) {
                    faults.push(fault);
                }
            }
        }
        let target = match self.nemesis_target.as_str() {
            "" => None,
            name => Some(Target::from_name(name).ok_or_else(|| format!("unknown nemesis target {name:?}"))?),
        };
        let client_mode = ClientMode::from_name(&self.client_mode)
            .ok_or_else(|| format!("client_mode must be replica-set or direct, not {:?}", self.client_mode))?;
        self.check_numbers()?;
        Ok((
            self,
            Plan {
                workload,
                faults,
                target,
                client_mode,
            },
        ))
    }

    fn check_numbers(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1e7 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number of seconds, not {v}"))
            }
        };
        positive("time_limit", self.time_limit)?;
        positive("nemesis_interval", self.nemesis_interval)?;
        positive("op_timeout", self.op_timeout)?;
        positive("check_timeout", self.check_timeout)?;
        positive("recovery_timeout", self.recovery_timeout)?;
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err(format!("rate must be 0 (unpaced) or more, not {}", self.rate));
        }
        if !(1..=1000).contains(&self.concurrency) {
            return Err("concurrency must be 1..=1000".into());
        }
        if self.nodes == 0 || self.nodes + self.arbiters > 50 {
            return Err("nodes must be at least 1 and nodes + arbiters at most 50".into());
        }
        if self.keys == 0 || self.ops_per_key == 0 {
            return Err("keys and ops_per_key must be at least 1".into());
        }
        Ok(())
    }
}

/// Parses `30`, `30s`, `500ms`, `2m` into seconds.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let bad = || format!("bad duration {text:?} (use e.g. 30, 30s, 500ms, 2m)");
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if seconds.is_finite() && seconds > 0.0 {
        Ok(seconds)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_round_trips_through_toml() {
        let (spec, plan) = TestSpec::default().finish().expect("valid");
        assert_eq!(spec.name, "register");
        assert_eq!(plan.faults.len(), 6, "five partition shapes and kill");
        let again: TestSpec = toml::from_str(&spec.to_toml()).expect("parse");
        assert_eq!(again, spec);
    }

    #[test]
    fn partial_files_take_defaults_and_bad_values_are_refused() {
        let spec: TestSpec = toml::from_str("workload = \"set\"\ntime_limit = 3\nnemesis = [\"none\"]").expect("toml");
        let (spec, plan) = spec.finish().expect("valid");
        assert_eq!(
            (spec.name.as_str(), spec.time_limit, plan.faults.len()),
            ("set", 3.0, 0)
        );
        assert!(
            toml::from_str::<TestSpec>("bogus = 1").is_err(),
            "unknown keys are errors"
        );
        let bad = |f: fn(&mut TestSpec)| {
            let mut s = TestSpec::default();
            f(&mut s);
            s.finish().is_err()
        };
        assert!(bad(|s| s.workload = "bank".into()));
        assert!(bad(|s| s.nemesis = vec!["flood".into()]));
        assert!(bad(|s| s.time_limit = 0.0));
        assert!(bad(|s| s.concurrency = 0));
        assert!(bad(|s| s.nemesis_target = "n0".into()));
        assert!(bad(|s| s.name = "../x".into()));
    }

    #[test]
    fn secondary_reads_default_to_secondaries() {
        let spec = TestSpec {
            workload: "secondary-reads".into(),
            ..TestSpec::default()
        };
        assert_eq!(spec.finish().expect("valid").0.read_preference, "secondary");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_seconds("30"), Ok(30.0));
        assert_eq!(parse_seconds("500ms"), Ok(0.5));
        assert_eq!(parse_seconds("2m"), Ok(120.0));
        assert!(parse_seconds("soon").is_err() && parse_seconds("0").is_err());
    }
}

//! The test spec: everything that defines a run, from a TOML file (`--config`) with flags on top. The
//! resolved spec, seed included, is saved as `test.toml`; running it again makes the same plan.

use std::path::{Path, PathBuf};

use faultline_workloads::Workload;
use faultline_workloads::client::ClientMode;
use serde::{Deserialize, Serialize};

use crate::input::{self, ARBITERS, NODES, Rate, Whole};
use crate::nemesis::sharded::{ChunkOp, ShardTarget};
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
    /// Watch a change stream on the `set` workload's collection and check it against the history.
    pub change_stream: bool,
    pub seed: u64,
    /// Store root (`<store>/<name>/<timestamp>/`).
    pub store: PathBuf,
    /// Shards (replica sets of `nodes` members each); 0 tests one replica set.
    pub shards: usize,
    /// Routers the clients go through (with `shards`).
    pub mongos: usize,
    /// Config servers (1 or 3, with `shards`).
    pub config_servers: usize,
    /// The workload collection's shard key on `_id`: `hashed` or `range`.
    pub shard_key: String,
    /// Chunks the collection is split into before the run (with `shards`).
    pub chunks: usize,
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
            change_stream: false,
            seed: 0,
            store: PathBuf::from("store"),
            shards: 0,
            mongos: 2,
            config_servers: 1,
            shard_key: "hashed".into(),
            chunks: 4,
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
    /// A sharded cluster's settings (`shards > 0`).
    pub sharding: Option<ShardPlan>,
}

/// What a sharded run adds to the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPlan {
    /// Chunk operations of the nemesis (`move-chunk`, `split`).
    pub chunk_ops: Vec<ChunkOp>,
    /// Which part of the cluster process faults hit; `None`: a random part each time.
    pub target: Option<ShardTarget>,
    pub hashed: bool,
}

impl TestSpec {
    /// Reads a TOML spec (an error is one line: the file, the place and what is wrong).
    pub fn from_file(path: &Path) -> Result<TestSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), input::toml_error(&text, &e)))
    }

    /// The spec as TOML (what `test.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Fills in derived defaults (name, read preference) and validates every field; an error is one line
    /// naming the bad value and the accepted ones.
    pub fn finish(mut self) -> Result<(TestSpec, Plan), String> {
        let workload = Workload::from_name(&self.workload).ok_or_else(|| {
            let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
            format!(
                "{:?} is not a valid workload: one of {}",
                self.workload,
                names.join(", ")
            )
        })?;
        if self.name.is_empty() {
            self.name = workload.name().to_string();
        }
        if self.name.contains(['/', '\\', '\0']) || self.name.starts_with('.') {
            return Err(format!(
                "{:?} is not a valid test name: a directory name without '/', '\\' or a leading '.'",
                self.name
            ));
        }
        if self.read_preference.is_empty() {
            self.read_preference = workload.default_read_preference().to_string();
        }
        self.check_numbers()?;
        let mut faults = Vec::new();
        let mut chunk_ops = Vec::new();
        for name in &self.nemesis {
            if let Some(op) = ChunkOp::from_name(name) {
                if self.shards == 0 {
                    return Err(format!(
                        "the {name:?} nemesis needs a sharded cluster (shards = 1 or more)"
                    ));
                }
                if !chunk_ops.contains(&op) {
                    chunk_ops.push(op);
                }
                continue;
            }
            let expanded = Fault::expand(name).ok_or_else(|| {
                format!(
                    "{name:?} is not a valid nemesis: one of {}, {}",
                    Fault::NAMES.join(", "),
                    ChunkOp::NAMES.join(", ")
                )
            })?;
            for fault in expanded {
                if !faults.contains(&fault) {
                    faults.push(fault);
                }
            }
        }
        let members = self.nodes + self.arbiters;
        let sharding = self.shard_plan(chunk_ops)?;
        let target = match self.nemesis_target.as_str() {
            "" => None,
            _ if sharding.is_some() => None,
            name => Some(
                Target::from_name(name)
                    .filter(|t| !matches!(t, Target::Named(i) if *i >= members))
                    .ok_or_else(|| {
                        format!(
                            "{name:?} is not a valid nemesis target with {members} member(s): one of {}",
                            Target::names(members).join(", ")
                        )
                    })?,
            ),
        };
        let client_mode = ClientMode::from_name(&self.client_mode).ok_or_else(|| {
            format!(
                "{:?} is not a valid client_mode: one of replica-set, direct",
                self.client_mode
            )
        })?;
        let client_mode = match (&sharding, client_mode) {
            (Some(_), ClientMode::ReplicaSet) => ClientMode::Mongos,
            (None, ClientMode::ReplicaSet | ClientMode::Direct) => client_mode,
            (Some(_), _) => {
                return Err(format!(
                    "client_mode {:?} does not apply to a sharded cluster: clients go through the routers",
                    self.client_mode
                ));
            }
            (None, _) => {
                return Err(format!(
                    "{:?} is not a valid client_mode: one of replica-set, direct",
                    self.client_mode
                ));
            }
        };
        input::check_write_concern(&self.write_concern, 1, self.nodes as u64)?;
        input::check_read_concern(&self.read_concern)?;
        input::check_read_preference(&self.read_preference)?;
        if let Some(bad) = self
            .set_parameters
            .iter()
            .find(|p| p.split_once('=').is_none_or(|(name, _)| name.trim().is_empty()))
        {
            return Err(format!("{bad:?} is not a valid set_parameters entry: use NAME=VALUE"));
        }
        if self.change_stream && workload != Workload::Set {
            return Err(format!(
                "change_stream needs the set workload, not {:?} (its events are checked against the set's adds)",
                self.workload
            ));
        }
        Ok((
            self,
            Plan {
                workload,
                faults,
                target,
                client_mode,
                sharding,
            },
        ))
    }

    /// The sharded part of the plan (`None` for a replica set), with its fields checked.
    fn shard_plan(&self, chunk_ops: Vec<ChunkOp>) -> Result<Option<ShardPlan>, String> {
        SHARDS.check(self.shards as u64)?;
        if self.shards == 0 {
            return Ok(None);
        }
        MONGOS.check(self.mongos as u64)?;
        if !matches!(self.config_servers, 1 | 3) {
            return Err(format!(
                "{} is not a valid number of config_servers: 1 or 3",
                self.config_servers
            ));
        }
        CHUNKS.check(self.chunks as u64)?;
        let hashed = match self.shard_key.as_str() {
            "hashed" => true,
            "range" => false,
            other => return Err(format!("{other:?} is not a valid shard_key: hashed or range")),
        };
        if self.arbiters > 0 {
            return Err("arbiters are not supported in a sharded test (shards = N): use arbiters = 0".into());
        }
        if self.secondary_delay_secs > 0 {
            return Err("secondary_delay_secs is not supported in a sharded test (shards = N)".into());
        }
        let target = match self.nemesis_target.as_str() {
            "" => None,
            name => Some(ShardTarget::from_name(name).ok_or_else(|| {
                format!(
                    "{name:?} is not a valid nemesis target of a sharded cluster: one of {}",
                    ShardTarget::NAMES.join(", ")
                )
            })?),
        };
        Ok(Some(ShardPlan {
            chunk_ops,
            target,
            hashed,
        }))
    }

    fn check_numbers(&self) -> Result<(), String> {
        input::check_seconds("time_limit", self.time_limit)?;
        input::check_seconds("nemesis_interval", self.nemesis_interval)?;
        input::check_seconds("op_timeout", self.op_timeout)?;
        input::check_seconds("check_timeout", self.check_timeout)?;
        input::check_seconds("recovery_timeout", self.recovery_timeout)?;
        RATE.check(self.rate)?;
        CONCURRENCY.check(self.concurrency as u64)?;
        NODES.check(self.nodes as u64)?;
        ARBITERS.check(self.arbiters as u64)?;
        let members = self.nodes as u64 + self.arbiters as u64;
        if members > input::MAX_MEMBERS {
            return Err(format!(
                "{} nodes and {} arbiters are not a valid replica set: at most {} members in all \
                 (MongoDB's limit of voting members; every member votes)",
                self.nodes,
                self.arbiters,
                input::MAX_MEMBERS
            ));
        }
        KEYS.check(self.keys as u64)?;
        OPS_PER_KEY.check(self.ops_per_key)?;
        SEED.check(self.seed)?;
        SECONDARY_DELAY.check(self.secondary_delay_secs)?;
        if self.secondary_delay_secs > 0 && self.nodes < 2 {
            return Err(format!(
                "secondary_delay_secs {} needs at least 2 data-bearing nodes (the last one is delayed), not {}",
                self.secondary_delay_secs, self.nodes
            ));
        }
        Ok(())
    }
}

/// Shards of a sharded test (0: a replica set).
pub const SHARDS: Whole = Whole {
    what: "number of shards",
    min: 0,
    max: 8,
    why: " (0 tests one replica set; every shard's members run on this machine)",
};
/// Routers of a sharded test.
pub const MONGOS: Whole = Whole {
    what: "number of mongos routers",
    min: 1,
    max: 8,
    why: "",
};
/// Chunks made before a sharded test.
pub const CHUNKS: Whole = Whole {
    what: "number of chunks",
    min: 1,
    max: 1024,
    why: "",
};
/// Client workers.
pub const CONCURRENCY: Whole = Whole {
    what: "concurrency",
    min: 1,
    max: 1000,
    why: "",
};
/// Keys in use at once.
pub const KEYS: Whole = Whole {
    what: "number of keys",
    min: 1,
    max: 10_000,
    why: "",
};
/// Operations per key.
pub const OPS_PER_KEY: Whole = Whole {
    what: "ops_per_key",
    min: 1,
    max: u64::MAX,
    why: "",
};
/// The seed: `test.toml` must be able to hold it, and TOML integers are signed 64-bit.
pub const SEED: Whole = Whole {
    what: "seed",
    min: 0,
    max: i64::MAX as u64,
    why: " (test.toml holds it, and TOML integers are signed 64-bit)",
};
/// `secondaryDelaySecs` of the last data member.
pub const SECONDARY_DELAY: Whole = Whole {
    what: "secondary_delay_secs",
    min: 0,
    max: input::MAX_SECONDARY_DELAY_SECS,
    why: " (366 days, MongoDB's limit)",
};
/// Target operations per second; 0 is unpaced.
pub const RATE: Rate = Rate { unpaced: true };

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
        assert!(
            bad(|s| s.change_stream = true),
            "change streams are checked for the set workload only"
        );
    }

    #[test]
    fn secondary_reads_default_to_secondaries() {
        let spec = TestSpec {
            workload: "secondary-reads".into(),
            ..TestSpec::default()
        };
        assert_eq!(spec.finish().expect("valid").0.read_preference, "secondary");
    }

    /// One change to the default spec.
    type Change = fn(&mut TestSpec);

    #[test]
    fn every_refusal_names_the_bad_value_and_what_is_accepted() {
        let refusal = |f: fn(&mut TestSpec)| {
            let mut s = TestSpec::default();
            f(&mut s);
            s.finish().expect_err("refused")
        };
        let cases: [(Change, &[&str]); 16] = [
            (
                |s| s.write_concern = "banana".into(),
                &["\"banana\"", "majority", "1 to 3"],
            ),
            (|s| s.write_concern = "0".into(), &["\"0\"", "unacknowledged"]),
            (|s| s.write_concern = "tagged".into(), &["\"tagged\""]),
            (|s| s.read_concern = "x".into(), &["\"x\"", "linearizable", "snapshot"]),
            (
                |s| s.read_preference = "secondary-preferred".into(),
                &["secondaryPreferred"],
            ),
            (|s| s.nemesis_target = "n9".into(), &["\"n9\"", "n1 to n3"]),
            (
                |s| s.nemesis = vec!["flood".into()],
                &["\"flood\"", "partition-one-way"],
            ),
            (|s| s.rate = -5.0, &["-5.0", "0 (unpaced)"]),
            (|s| s.rate = 1e-30, &["1e-30", "0.001"]),
            (|s| s.time_limit = 1e300, &["1e300", "30 days"]),
            (|s| s.nodes = 8, &["8", "1 to 7"]),
            (|s| s.arbiters = 5, &["3 nodes and 5 arbiters", "at most 7"]),
            (|s| s.seed = u64::MAX, &["18446744073709551615", "9223372036854775807"]),
            (|s| s.secondary_delay_secs = 40_000_000, &["40000000", "31622400"]),
            (|s| s.keys = 0, &["0 is not a valid number of keys", "1 to 10000"]),
            (|s| s.set_parameters = vec!["=1".into()], &["\"=1\"", "NAME=VALUE"]),
        ];
        for (f, shows) in cases {
            let message = refusal(f);
            assert!(!message.contains('\n'), "{message}");
            for shown in shows {
                assert!(message.contains(shown), "{message:?} does not show {shown:?}");
            }
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let spec = TestSpec {
            nodes: 4,
            arbiters: 3,
            write_concern: "4".into(),
            read_concern: "snapshot".into(),
            nemesis_target: "n7".into(),
            rate: 0.0,
            seed: i64::MAX as u64,
            secondary_delay_secs: 366 * 24 * 3600,
            time_limit: 30.0 * 24.0 * 3600.0,
            ..TestSpec::default()
        };
        let (spec, plan) = spec.finish().expect("every value is at its limit, not past it");
        assert_eq!(plan.target, Some(Target::Named(6)));
        let again: TestSpec = toml::from_str(&spec.to_toml()).expect("test.toml holds the largest seed");
        assert_eq!(again.seed, i64::MAX as u64);
    }

    #[test]
    fn spec_files_with_bad_types_are_refused_on_one_line_with_the_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spec.toml");
        std::fs::write(&path, "workload = \"set\"\nnodes = -5\n").expect("write");
        let message = TestSpec::from_file(&path).expect_err("negative nodes");
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.contains("spec.toml: line 2, column 9") && message.contains("-5"),
            "{message}"
        );
    }
}

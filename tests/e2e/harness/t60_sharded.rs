//! `faultline test --shards 2` (issue 16): a sharded cluster under partitions, kills and chunk migrations
//! through two routers, with its per-shard convergence and placement checks.

use faultline_tests::cluster::run_faultline_test;
use serde_json::Value;

use crate::{bin, events};

#[test]
fn a_set_through_two_routers_under_faults_and_migrations_is_valid_and_checked_per_shard() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--shards",
            "2",
            "--mongos",
            "2",
            "--workload",
            "set",
            "--nemesis",
            "partition,kill,move-chunk,split",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--concurrency",
            "6",
            "--rate",
            "200",
            "--seed",
            "1",
        ],
    )?;
    assert_eq!(run.code, Some(0), "a valid sharded run: {}", run.transcript());
    let results: Value = serde_json::from_str(&run.file("results.json")?)?;
    let checkers: Vec<&str> = results["children"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["checker"].as_str()).collect())
        .unwrap_or_default();
    for expected in ["set", "convergence shard1", "convergence shard2", "placement"] {
        assert!(checkers.contains(&expected), "no {expected} check in {checkers:?}");
    }
    let history = run.file("history.jsonl")?;
    let done = |f: &str| {
        events(&history).iter().any(|e| {
            e["process"] == "nemesis" && e["type"] == "info" && e["f"] == f && e["value"]["outcome"] == "installed"
        })
    };
    assert!(done("move-chunk"), "no chunk migration completed: {}", run.transcript());
    let members: Vec<String> = events(&history)
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["type"] == "info")
        .flat_map(|e| e["value"]["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(String::from))
        .collect();
    assert!(
        members
            .iter()
            .all(|m| m.starts_with("shard") || m.starts_with("cfg") || m.starts_with("mongos")),
        "members are named after their set: {members:?}"
    );
    Ok(())
}

//! The three-member scenarios of issue 5.

use faultline_tests::cluster::run_faultline_test;
use serde_json::Value;

use crate::bin;

const NEEDS_REPLICATION: &str = "a three-member run";

fn results(run: &faultline_tests::cluster::TestRun) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&run.file("results.json")?)?)
}

#[test]
fn register_majority_linearizable_under_partitions_and_kills_is_valid() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--workload",
            "register",
            "--nodes",
            "3",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "12s",
            "--write-concern",
            "majority",
            "--read-concern",
            "linearizable",
            "--seed",
            "1",
        ],
    )?;
    assert_eq!(run.code, Some(0), "{NEEDS_REPLICATION}: {}", run.transcript());
    assert_eq!(results(&run)?["valid"], Value::Bool(true));
    Ok(())
}

#[test]
fn register_w1_local_with_the_primary_isolated_is_caught() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let mut caught = Vec::new();
    for seed in ["1", "2", "3", "4", "5"] {
        let run = run_faultline_test(
            bin(),
            store.path(),
            &[
                "--workload",
                "register",
                "--nodes",
                "3",
                "--nemesis",
                "partition-isolate-primary",
                "--nemesis-interval",
                "3s",
                "--time-limit",
                "12s",
                "--write-concern",
                "1",
                "--read-concern",
                "local",
                "--client-mode",
                "direct",
                "--seed",
                seed,
            ],
        )?;
        let r = results(&run)?;
        if r["valid"] == Value::Bool(false) {
            let anomalies = r["anomalies"].as_array().cloned().unwrap_or_default();
            assert!(!anomalies.is_empty(), "an invalid verdict names its anomaly: {r:#}");
            assert_eq!(run.code, Some(1));
            caught.push(seed);
        }
    }
    assert!(
        !caught.is_empty(),
        "w:1 + local reads under primary isolation were never caught"
    );
    Ok(())
}

#[test]
fn secondary_reads_on_a_delayed_member_are_stale() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--workload",
            "secondary-reads",
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--secondary-delay-secs",
            "2",
            "--time-limit",
            "8s",
            "--read-preference",
            "secondary",
            "--read-concern",
            "local",
            "--seed",
            "3",
        ],
    )?;
    let r = results(&run)?;
    let stale = r["children"][0]["counts"]["stale"].as_u64().unwrap_or(0);
    assert!(stale > 0, "no stale reads measured: {r:#}");
    Ok(())
}

#[test]
fn set_with_majority_writes_loses_nothing_under_kills() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--workload",
            "set",
            "--nodes",
            "3",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--write-concern",
            "majority",
            "--read-concern",
            "majority",
            "--seed",
            "5",
        ],
    )?;
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let r = results(&run)?;
    assert_eq!(r["valid"], Value::Bool(true), "{r:#}");
    Ok(())
}

/// Membership changes: a secondary is removed from the config and added back while `set` writes go on with
/// `w: "majority"`; nothing acknowledged is lost and both reconfigs are recorded as installed.
#[test]
fn set_survives_removing_and_re_adding_a_member() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--workload",
            "set",
            "--nodes",
            "3",
            "--nemesis",
            "membership",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "9s",
            "--write-concern",
            "majority",
            "--read-concern",
            "majority",
            "--seed",
            "3",
        ],
    )?;
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let history = run.file("history.jsonl")?;
    let installed = |f: &str| {
        history
            .lines()
            .filter(|l| l.contains(&format!("\"f\":\"{f}\"")) && l.contains("\"outcome\":\"installed\""))
            .count()
    };
    assert!(
        installed("start-membership") >= 1,
        "no member was removed: {}",
        run.transcript()
    );
    assert!(
        installed("stop-membership") >= 1,
        "no member was added back: {}",
        run.transcript()
    );
    Ok(())
}

//! Issue 18: a change stream opened through the replica-set URI survives failovers caused by Faultline's own
//! nemesis without missing or repeating an event, checked against the run's history (`--change-stream`).

use faultline_tests::cluster::run_faultline_test;
use serde_json::Value;

use crate::{bin, events};

#[test]
fn a_change_stream_survives_primary_kills_without_missing_or_repeating_an_event() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    // A 1 s operation timeout is also the driver's server selection timeout: while no primary is elected the
    // driver often gives up resuming, and the watcher reopens the stream from its token (both paths run).
    let config = store.path().join("spec.toml");
    std::fs::write(&config, "op_timeout = 1\n")?;
    let config = config.to_string_lossy().into_owned();
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--config",
            &config,
            "--workload",
            "set",
            "--nodes",
            "3",
            "--nemesis",
            "kill",
            "--nemesis-target",
            "primary",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--write-concern",
            "majority",
            "--read-concern",
            "majority",
            "--change-stream",
            "--seed",
            "5",
        ],
    )?;
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let results: Value = serde_json::from_str(&run.file("results.json")?)?;
    assert_eq!(results["valid"], Value::Bool(true), "{results:#}");
    let children = results["children"].as_array().cloned().unwrap_or_default();
    let stream = children
        .iter()
        .find(|c| c["checker"] == "change-stream")
        .unwrap_or_else(|| panic!("the change-stream check did not run: {results:#}"));
    assert_eq!(stream["valid"], Value::Bool(true), "{stream:#}");
    let seen = stream["counts"]["events"].as_u64().unwrap_or(0);
    assert!(seen > 0, "the stream showed no event: {stream:#}");
    assert_eq!(
        Some(seen),
        stream["counts"]["expected"].as_u64(),
        "every element of the final read, once: {stream:#}"
    );
    // The stream had a failover to survive: the nemesis killed a primary while it was open.
    let history = run.file("history.jsonl")?;
    let kills = events(&history)
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == "kill" && e["type"] == "info")
        .filter(|e| e["value"]["members"].as_array().is_some_and(|m| !m.is_empty()))
        .count();
    assert!(kills > 0, "no primary was killed: {}", run.transcript());
    let lines = run.file("change-stream.jsonl")?;
    assert_eq!(lines.lines().filter(|l| l.contains("\"element\"")).count() as u64, seen);
    Ok(())
}

//! End-to-end tests of `faultline bench replication-lag` (the real binary against a real three-member set,
//! a few seconds of load through the driver and over raw connections, `--json`; the table, the summary's
//! fields, the plots and the numbers' plausibility),
//! of `faultline bench throughput` through the driver and over raw connections, and of `faultline bench
//! migration` (one small chunk moved between two shards).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

/// Runs `faultline bench ARGS --json --store STORE`; fails with its output unless it exits 0, else returns the
/// summary (stdout) and the table (stderr).
fn bench_json(args: &[&str], store: &Path) -> anyhow::Result<(Value, String)> {
    let output = Command::new(bin())
        .arg("bench")
        .args(args)
        .args(["--json", "--store"])
        .arg(store)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "faultline bench {args:?}: stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    Ok((serde_json::from_slice(&output.stdout)?, stderr))
}

/// `count`, then p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max, all finite and non-negative (and > 0 when `positive`).
fn assert_plausible(p: &Value, what: &str, positive: bool) {
    let number = |k: &str| p[k].as_f64().unwrap_or(f64::NAN);
    let values: Vec<f64> = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]
        .iter()
        .map(|k| number(k))
        .collect();
    assert!(p["count"].as_u64().unwrap_or(0) > 0, "{what}: no values: {p}");
    assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0), "{what}: {p}");
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "{what}: percentiles out of order: {p}"
    );
    if positive {
        assert!(values[0] > 0.0, "{what}: p50 is not positive: {p}");
    }
    assert!(
        values[4] < 10_000.0,
        "{what}: max over 10 s on an idle loopback set: {p}"
    );
}

#[test]
fn replication_lag_prints_a_table_and_stores_summary_and_plots() -> anyhow::Result<()> {
    for client in ["driver", "wire"] {
        replication_lag_run(client)?;
    }
    Ok(())
}

/// One `bench replication-lag` run with the inserts sent by `client`, and what its outputs must show.
fn replication_lag_run(client: &str) -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let (summary, stderr) = bench_json(
        &[
            "replication-lag",
            "--duration",
            "3s",
            "--rate",
            "400",
            "--client",
            client,
        ],
        store.path(),
    )?;
    assert!(
        stderr.contains(&format!("client={client}")),
        "the header names the client:\n{stderr}"
    );
    assert_eq!(summary["client"], client, "{summary}");

    // The table (on stderr with --json): one row per member under the percentile header.
    for text in [
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "(primary)",
        "(secondary, from n",
    ] {
        assert!(stderr.contains(text), "table lacks {text:?}:\n{stderr}");
    }

    assert_eq!(summary["benchmark"], "replication-lag");
    let issued = summary["writes_issued"].as_u64().unwrap_or(0);
    assert!(issued >= 1000, "3 s at 400/s issued only {issued}: {summary}");
    assert_eq!(summary["writes_acked"].as_u64(), Some(issued), "{summary}");
    let members = summary["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 3, "{summary}");
    let secondaries: Vec<&Value> = members.iter().filter(|m| m["initial_state"] == "SECONDARY").collect();
    assert_eq!(secondaries.len(), 2, "{summary}");
    for m in &secondaries {
        assert_eq!(
            m["writes_seen"].as_u64(),
            Some(issued),
            "every write reaches every secondary: {m}"
        );
        // Where it fetched from, as rs.status() said: another member of the set.
        let sources = m["sync_sources"].as_array().cloned().unwrap_or_default();
        assert!(
            !sources.is_empty() && sources.iter().all(|s| s.as_str().is_some_and(|s| s.starts_with('n'))),
            "{m}"
        );
        assert_plausible(&m["visible_after_issue"], "visible_after_issue", true);
        assert_plausible(&m["behind_first_member"], "behind_first_member", false);
        assert_plausible(&m["status_wall_time_lag"], "status_wall_time_lag", false);
        // A write cannot reach a secondary before the client issued it, nor before the primary had it.
        let after_issue = m["visible_after_issue"]["p50_ms"].as_f64().unwrap_or(0.0);
        let behind = m["behind_first_member"]["p50_ms"].as_f64().unwrap_or(f64::MAX);
        assert!(behind <= after_issue + 0.01, "{m}");
    }
    assert_plausible(&summary["ack_latency"], "ack_latency", true);

    // The store: summary files, the report, and the plots.
    let dir = PathBuf::from(summary["store"].as_str().unwrap_or_default());
    assert!(dir.starts_with(std::fs::canonicalize(store.path())?) || dir.starts_with(store.path()));
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
    assert_eq!(stored["writes_issued"], summary["writes_issued"]);
    for file in [
        "summary.txt",
        "lag.jsonl",
        "history.jsonl",
        "report.html",
        "plots/replication-lag.png",
        "plots/replication-lag.svg",
        "plots/replication-lag-sources.png",
        "plots/replication-lag-sources.svg",
    ] {
        let path = dir.join(file);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "{} missing or empty", path.display());
    }
    let png = std::fs::read(dir.join("plots/replication-lag.png"))?;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(dir.join("plots/replication-lag-sources.svg"))?;
    assert!(svg.contains("rs.status()"), "the comparison plot names its series");
    Ok(())
}

/// Failover always finishes: the primary is killed again and again (`FAULTLINE_FAILOVER_KILLS`, 12 by
/// default; the closing figures used a few hundred) and every trial must reach a new primary and a majority
/// write within the trial timeout. A new primary once stayed in catch-up for 60 s, waiting for an optime
/// that only the dead member had reported before the election.
#[test]
fn repeated_primary_kills_always_reach_a_majority_write() -> anyhow::Result<()> {
    let kills: usize = std::env::var("FAULTLINE_FAILOVER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let store = tempfile::tempdir()?;
    let trials = kills.to_string();
    let (summary, _) = bench_json(
        &["failover", "--trials", &trials, "--trial-timeout", "30s"],
        store.path(),
    )?;
    let trials = summary["trials"].as_array().cloned().unwrap_or_default();
    assert_eq!(trials.len(), kills, "every kill is a completed trial: {summary}");
    let mut writes: Vec<f64> = trials.iter().filter_map(|t| t["to_first_write_ms"].as_f64()).collect();
    assert_eq!(writes.len(), kills, "{summary}");
    writes.sort_by(f64::total_cmp);
    println!(
        "{kills} primary kills: first majority write after p50 {:.0} ms, max {:.0} ms",
        writes[writes.len() / 2],
        writes[writes.len() - 1]
    );
    Ok(())
}

/// `faultline bench migration` (issue 16): one 1 MB chunk moved under a write load; the table, and a summary
/// whose migration took time, moved data and saw the writer both before and during it.
#[test]
fn migration_moves_a_chunk_and_reports_the_writer_latency_around_it() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let (summary, stderr) = bench_json(&["migration", "--size-mb", "1", "--baseline", "1s"], store.path())?;
    assert!(
        stderr.contains("moveChunk ms") && stderr.contains("p50 during"),
        "{stderr}"
    );
    let result = &summary["results"][0];
    assert_eq!(result["size_mb"], 1);
    assert!(result["documents"].as_u64().unwrap_or(0) > 0, "{result}");
    assert!(result["migration_ms"].as_f64().unwrap_or(0.0) > 0.0, "{result}");
    assert_plausible(&result["baseline"], "latency before the migration", true);
    let steps = result["steps_ms"].as_array().map_or(0, Vec::len);
    assert!(steps >= 5, "the donor's steps come from config.changelog: {result}");
    Ok(())
}

/// `bench throughput` with each client: every combination's inserts are acknowledged (none fail: a raw
/// insert counts only when its reply is `ok` with neither write errors nor a write-concern error), and the
/// summary says which client sent them.
#[test]
fn throughput_through_the_driver_and_over_raw_connections() -> anyhow::Result<()> {
    for client in ["driver", "wire"] {
        let store = tempfile::tempdir()?;
        let (summary, stderr) = bench_json(
            &[
                "throughput",
                "--nodes",
                "3",
                "--clients",
                "1,4",
                "--write-concern",
                "1,majority",
                "--j",
                "--duration",
                "1s",
                "--client",
                client,
            ],
            store.path(),
        )?;
        assert_eq!(summary["client"], client, "{summary}");
        let results = summary["results"].as_array().expect("results");
        assert_eq!(results.len(), 4, "two write concerns × two client counts: {summary}");
        for r in results {
            assert!(
                r["ops"].as_u64().unwrap_or(0) > 0,
                "{client}: nothing acknowledged: {r}"
            );
            assert_eq!(r["errors"].as_u64(), Some(0), "{client}: failed inserts: {r}");
            assert!(r["latency"]["p50_ms"].as_f64().unwrap_or(0.0) > 0.0, "{client}: {r}");
        }
        let header = if client == "wire" {
            "raw wire"
        } else {
            "official driver"
        };
        assert!(
            stderr.contains(header),
            "{client}: the table's header names the client:\n{stderr}"
        );
    }
    Ok(())
}

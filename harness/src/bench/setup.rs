//! What every benchmark needs: a fresh initiated set, a run directory in the store, the machine's load
//! average, and the summary files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::cluster::{Cluster, ClusterSpec};
use crate::input::{self, Whole};
use faultline::support::errors::UsageError;

/// `--election-timeout-ms`: the set's `settings.electionTimeoutMillis`.
pub const ELECTION_TIMEOUT_MS: Whole = Whole {
    what: "electionTimeoutMillis",
    min: 1,
    max: 600_000,
    why: " (10 minutes)",
};
/// `--heartbeat-ms`: the set's `settings.heartbeatIntervalMillis`.
pub const HEARTBEAT_MS: Whole = Whole {
    what: "heartbeatIntervalMillis",
    min: 1,
    max: 600_000,
    why: " (10 minutes)",
};
/// A seed (any 64-bit value).
pub const SEED: Whole = Whole {
    what: "seed",
    min: 0,
    max: u64::MAX,
    why: "",
};

/// `--nodes` of a set that needs `min` data-bearing members.
pub const fn nodes(min: u64, why: &'static str) -> Whole {
    Whole {
        what: "number of nodes",
        min,
        max: input::MAX_MEMBERS,
        why,
    }
}

/// How long a fresh set may take to elect its first primary.
pub const FIRST_PRIMARY_TIMEOUT: Duration = Duration::from_secs(60);

/// The store's default root.
pub const DEFAULT_STORE: &str = "store";

/// Settings of the set a benchmark starts.
#[derive(Debug, Clone)]
pub struct SetOptions {
    pub nodes: usize,
    /// `settings.electionTimeoutMillis`.
    pub election_timeout_ms: u64,
    /// `settings.heartbeatIntervalMillis`.
    pub heartbeat_ms: u64,
    /// Route member links through the fault proxies (needed for partitions).
    pub proxies: bool,
}

impl SetOptions {
    /// `nodes` members with the harness's fast failure detection, through proxies.
    pub fn new(nodes: usize) -> SetOptions {
        SetOptions {
            nodes,
            election_timeout_ms: 1000,
            heartbeat_ms: 200,
            proxies: true,
        }
    }
}

/// Starts and initiates a set under `dir` and waits for its first primary; returns it and the primary.
pub async fn start_set(dir: &Path, options: &SetOptions) -> anyhow::Result<(Cluster, usize)> {
    let bin = std::env::current_exe().context("cannot find the faultline binary")?;
    let mut spec = ClusterSpec::new(bin, dir.to_path_buf(), options.nodes);
    spec.election_timeout_ms = options.election_timeout_ms;
    spec.heartbeat_ms = options.heartbeat_ms;
    spec.proxies = options.proxies;
    let mut cluster = Cluster::start(spec).await?;
    cluster.initiate().await?;
    let primary = cluster.wait_healthy(FIRST_PRIMARY_TIMEOUT).await?;
    wait_replicating(&cluster, primary).await?;
    Ok((cluster, primary))
}

/// Waits until every secondary has a sync source, so that a benchmark measures replication rather than a
/// new set's start: a secondary picks its source once heartbeats have shown it the primary, which can be
/// a heartbeat interval after it reports SECONDARY (the writes of that first interval then reach it late).
async fn wait_replicating(cluster: &Cluster, primary: usize) -> anyhow::Result<()> {
    let secondaries: Vec<(String, u16)> = cluster
        .members
        .iter()
        .enumerate()
        .filter(|(i, m)| *i != primary && !m.arbiter)
        .map(|(_, m)| (m.name.clone(), m.port))
        .collect();
    let deadline = tokio::time::Instant::now() + FIRST_PRIMARY_TIMEOUT;
    for (name, port) in secondaries {
        loop {
            let status =
                crate::cluster::wire::command_ok(port, bson::doc! {"replSetGetStatus": 1}, Duration::from_millis(500))
                    .await;
            let syncing = status.as_ref().is_ok_and(|s| {
                s.get_array("members").is_ok_and(|members| {
                    members.iter().filter_map(|m| m.as_document()).any(|m| {
                        m.get_bool("self").unwrap_or(false) && !m.get_str("syncSourceHost").unwrap_or("").is_empty()
                    })
                })
            });
            if syncing {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "secondary {name} chose no sync source within {FIRST_PRIMARY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// Creates `<store>/bench-<name>/<timestamp>/` (and points `<store>/latest` at it).
pub fn run_dir(store: &Path, name: &str) -> anyhow::Result<PathBuf> {
    faultline::support::store::create_run_dir(store, &format!("bench-{name}"))
}

/// A duration flag (`20s`, `500ms`, `2m`, `20`) as a [`Duration`], or a usage error naming the flag.
pub fn parse_duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let seconds = faultline::support::durations::parse_seconds(text).map_err(|e| UsageError(format!("{flag}: {e}")))?;
    Duration::try_from_secs_f64(seconds).map_err(|e| UsageError(format!("{flag}: {text:?}: {e}")).into())
}

/// Checks a `--write-concern` of a benchmark: `majority` or 0 (unacknowledged) to the smallest set's size.
pub fn check_write_concern(w: &str, data_members: u64) -> anyhow::Result<()> {
    input::check_write_concern(w, 0, data_members).map_err(|e| UsageError(format!("--write-concern: {e}")).into())
}

/// Expands `--nemesis` names, or a usage error naming the bad one and the accepted ones.
pub fn faults(names: &[String]) -> anyhow::Result<Vec<crate::nemesis::Fault>> {
    let mut faults = Vec::new();
    for name in names {
        let expanded = crate::nemesis::Fault::expand(name).ok_or_else(|| {
            UsageError(format!(
                "--nemesis: {name:?} is not a valid nemesis: one of {}",
                crate::nemesis::Fault::NAMES.join(", ")
            ))
        })?;
        for fault in expanded {
            if !faults.contains(&fault) {
                faults.push(fault);
            }
        }
    }
    Ok(faults)
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg` (None where unavailable).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_load_average(&text)
}

fn parse_load_average(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?])
}

/// `load 1.23 0.98 0.77`, or `load unknown`.
pub fn describe_load(load: Option<[f64; 3]>) -> String {
    match load {
        Some([a, b, c]) => format!("load average {a:.2} {b:.2} {c:.2}"),
        None => "load average unknown".to_string(),
    }
}

/// Writes `summary.json` (pretty) and `summary.txt` into `dir`.
pub fn write_summary(dir: &Path, summary: &impl Serialize, text: &str) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(summary).context("cannot encode the summary")?;
    std::fs::write(dir.join("summary.json"), json + "\n").context("cannot write summary.json")?;
    std::fs::write(dir.join("summary.txt"), text).context("cannot write summary.txt")?;
    Ok(())
}

/// Prints the summary: the JSON on stdout with `--json` (the table then goes to stderr), else the table.
pub fn print_summary(json: bool, summary: &impl Serialize, text: &str) -> anyhow::Result<()> {
    if json {
        eprint!("{text}");
        println!(
            "{}",
            serde_json::to_string_pretty(summary).context("cannot encode the summary")?
        );
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Stops every member gracefully (so ports are free when the benchmark returns).
pub async fn shutdown(cluster: &mut Cluster) {
    cluster.shutdown(Duration::from_secs(3)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_average_is_parsed_from_proc_format() {
        assert_eq!(
            parse_load_average("1.50 0.75 0.25 2/345 6789\n"),
            Some([1.5, 0.75, 0.25])
        );
        assert_eq!(parse_load_average("garbage"), None);
        assert_eq!(describe_load(None), "load average unknown");
    }

    #[test]
    fn durations_accept_units_and_reject_nonsense() {
        assert_eq!(parse_duration("--d", "500ms").expect("ms"), Duration::from_millis(500));
        assert_eq!(parse_duration("--d", "2m").expect("m"), Duration::from_secs(120));
        let refused = parse_duration("--duration", "soon").expect_err("soon");
        assert!(refused.is::<UsageError>() && refused.to_string().starts_with("--duration: \"soon\""));
        assert!(
            parse_duration("--d", &"9".repeat(30)).is_err(),
            "no panic on absurd durations"
        );
    }
}

//! `faultline bench failover`: fail the primary repeatedly and time the recovery.
//!
//! Per trial, on a healthy set with a client writing continuously (one driver client, replica-set URI,
//! `w: majority`, each insert bounded by 1 s, driver heartbeat 500 ms): the primary is killed (SIGKILL),
//! paused (SIGSTOP) or isolated (every link to and from it dropped by the fault proxies) at `t0`. Measured
//! from `t0`:
//!
//! - `to_new_primary`: until another member answers `hello` with `isWritablePrimary: true` (polled every
//!   10 ms on every other member);
//! - `to_first_write`: until the first insert issued after `t0` is acknowledged by a majority (this includes
//!   the driver noticing the failure and finding the new primary).
//!
//! Then the fault is healed (restart, SIGCONT, proxies healed) and the set must be healthy again before the
//! next trial. Results go to `summary.json`, `summary.txt` and `plots/failover.png|svg`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bson::{Document, doc};
use faultline_reports::plot::bench::{LineChart, XScale};
use faultline_reports::plot::write_figure;
use faultline_reports::series::Series;
use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::watch;

use super::setup::{self, SetOptions};
use super::stats::{Latencies, Percentiles, table};
use crate::cluster::{Cluster, wire};
use crate::input::Whole;
use crate::proxy::{Action, Grudge};
use faultline::support::errors::UsageError;

/// How often the other members are asked whether they are primary.
const POLL: Duration = Duration::from_millis(10);
/// The longest one client insert may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How the primary is failed.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailKind {
    /// SIGKILL, then restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Drop every link to and from it, then heal.
    Partition,
}

impl FailKind {
    /// What is done to the primary, for titles.
    pub fn verb(self) -> &'static str {
        match self {
            FailKind::Kill => "kill",
            FailKind::Pause => "pause",
            FailKind::Partition => "isolate",
        }
    }
}

/// Flags of `faultline bench failover`.
#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Trials (primary failures), 1 to 10000.
    #[arg(long, default_value_t = 5, allow_hyphen_values = true, value_parser = TRIALS.parser::<usize>())]
    pub trials: usize,
    /// How the primary is failed.
    #[arg(long, value_enum, default_value = "kill")]
    pub fault: FailKind,
    /// The set's electionTimeoutMillis, 1 to 600000 (MongoDB's default is 10000).
    #[arg(long, default_value_t = 1000, allow_hyphen_values = true, value_parser = setup::ELECTION_TIMEOUT_MS.parser::<u64>())]
    pub election_timeout_ms: u64,
    /// The set's heartbeatIntervalMillis, 1 to 600000 (MongoDB's default is 2000).
    #[arg(long, default_value_t = 200, allow_hyphen_values = true, value_parser = setup::HEARTBEAT_MS.parser::<u64>())]
    pub heartbeat_ms: u64,
    /// Data-bearing members, 3 to 7.
    #[arg(long, default_value_t = 3, allow_hyphen_values = true, value_parser = NODES.parser::<usize>())]
    pub nodes: usize,
    /// Give up on a trial after this long, e.g. 60s.
    #[arg(long, default_value = "60s", allow_hyphen_values = true)]
    pub trial_timeout: String,
    /// Store root.
    #[arg(long, default_value = setup::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Print the summary as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// `--trials`.
const TRIALS: Whole = Whole {
    what: "number of trials",
    min: 1,
    max: 10_000,
    why: "",
};
/// `--nodes`: a primary can fail and a majority remain.
const NODES: Whole = setup::nodes(
    3,
    " (a majority must survive the primary; MongoDB's limit of voting members)",
);

/// One trial.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub trial: usize,
    pub old_primary: String,
    pub new_primary: String,
    pub to_new_primary_ms: f64,
    pub to_first_write_ms: f64,
    /// From the heal to a healthy set again.
    pub recovery_ms: f64,
    pub load_1m: Option<f64>,
}

/// `summary.json`.
#[derive(Debug, Serialize)]
pub struct FailoverSummary {
    pub benchmark: &'static str,
    pub fault: FailKind,
    pub nodes: usize,
    pub election_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub trials: Vec<Trial>,
    pub to_new_primary: Percentiles,
    pub to_first_write: Percentiles,
    pub load_average: Option<[f64; 3]>,
    pub store: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// The continuous writer's acknowledged inserts: (issued, acknowledged), ns since its start.
struct WriteTrace {
    started: Instant,
    acked: Mutex<Vec<(u64, u64)>>,
}

impl WriteTrace {
    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// The first acknowledgement of a write issued at or after `t0`.
    fn first_ack_after(&self, t0: u64) -> Option<u64> {
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        acked
            .iter()
            .filter(|(issued, _)| *issued >= t0)
            .map(|(_, ack)| *ack)
            .min()
    }
}

async fn write_continuously(
    collection: mongodb::Collection<Document>,
    trace: Arc<WriteTrace>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let issued = trace.now();
        let insert = collection.insert_one(doc! {"t": issued as i64});
        let ok = tokio::select! {
            result = tokio::time::timeout(WRITE_TIMEOUT, insert) => matches!(result, Ok(Ok(_))),
            _ = stop.wait_for(|s| *s) => return,
        };
        if ok {
            let ack = trace.now();
            trace
                .acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((issued, ack));
        } else {
            // Server selection failed fast or the write timed out: try again shortly.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Runs the benchmark; returns the exit code.
pub async fn run(args: &FailoverArgs) -> anyhow::Result<i32> {
    let trial_timeout = setup::parse_duration("--trial-timeout", &args.trial_timeout)?;
    // Clap's parsers checked these already; the struct can also be built in code.
    NODES
        .check(args.nodes as u64)
        .map_err(|e| UsageError(format!("--nodes: {e}")))?;
    TRIALS
        .check(args.trials as u64)
        .map_err(|e| UsageError(format!("--trials: {e}")))?;
    let dir = setup::run_dir(&args.store, "failover")?;
    eprintln!(
        "faultline bench failover: {} trials of {:?} on {} nodes, electionTimeoutMillis {}, heartbeat {} ms",
        args.trials, args.fault, args.nodes, args.election_timeout_ms, args.heartbeat_ms
    );
    eprintln!("  store: {}", dir.display());
    let mut options = SetOptions::new(args.nodes);
    options.election_timeout_ms = args.election_timeout_ms;
    options.heartbeat_ms = args.heartbeat_ms;
    let (mut cluster, _) = setup::start_set(&dir, &options).await?;
    let uri = format!(
        "{}&w=majority&retryWrites=false&serverSelectionTimeoutMS=1000&heartbeatFrequencyMS=500&connectTimeoutMS=1000",
        cluster.uri()
    );
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .context("cannot create the driver client")?;
    let trace = Arc::new(WriteTrace {
        started: Instant::now(),
        acked: Mutex::new(Vec::new()),
    });
    let (stop_writer, writer_stop) = watch::channel(false);
    let writer = tokio::spawn(write_continuously(
        client.database("faultline_bench").collection("failover"),
        trace.clone(),
        writer_stop,
    ));
    let mut trials = Vec::new();
    for number in 1..=args.trials {
        let trial = one_trial(&mut cluster, args.fault, &trace, number, trial_timeout).await;
        match trial {
            Ok(trial) => {
                eprintln!(
                    "  trial {number}: {} → {}: new primary after {:.0} ms, first majority write after {:.0} ms",
                    trial.old_primary, trial.new_primary, trial.to_new_primary_ms, trial.to_first_write_ms
                );
                trials.push(trial);
            }
            Err(e) => {
                let _ = stop_writer.send(true);
                return Err(e.context(format!("trial {number} failed")));
            }
        }
    }
    let _ = stop_writer.send(true);
    let _ = writer.await;
    client.shutdown().await;
    setup::shutdown(&mut cluster).await;
    let summary = summarise(args, trials, &dir)?;
    let text = summary_text(&summary);
    setup::write_summary(&dir, &summary, &text)?;
    setup::print_summary(args.json, &summary, &text)?;
    Ok(0)
}

async fn one_trial(
    cluster: &mut Cluster,
    fault: FailKind,
    trace: &WriteTrace,
    number: usize,
    timeout: Duration,
) -> anyhow::Result<Trial> {
    let old = cluster.wait_healthy(timeout).await?;
    wait_for_write(trace, trace.now(), timeout)
        .await
        .context("the client cannot write before the fault")?;
    let t0 = trace.now();
    inject(cluster, fault, old)?;
    let (new, new_at) = wait_new_primary(cluster, old, trace, timeout).await?;
    let write_at = wait_for_write(trace, t0, timeout).await?;
    let healed_at = Instant::now();
    heal(cluster, fault, old).await?;
    cluster.wait_healthy(timeout).await?;
    let ms = |t: u64| t.saturating_sub(t0) as f64 / 1e6;
    Ok(Trial {
        trial: number,
        old_primary: cluster.members[old].name.clone(),
        new_primary: cluster.members[new].name.clone(),
        to_new_primary_ms: ms(new_at),
        to_first_write_ms: ms(write_at),
        recovery_ms: healed_at.elapsed().as_secs_f64() * 1e3,
        load_1m: setup::load_average().map(|l| l[0]),
    })
}

fn inject(cluster: &mut Cluster, fault: FailKind, primary: usize) -> anyhow::Result<()> {
    match fault {
        FailKind::Kill => {
            cluster.member_mut(primary)?.kill();
        }
        FailKind::Pause => {
            if !cluster.member_mut(primary)?.pause() {
                bail!("cannot pause the primary");
            }
        }
        FailKind::Partition => {
            let net = cluster.net().context("partitions need the fault proxies")?;
            let others: Vec<usize> = (0..cluster.members.len()).filter(|m| *m != primary).collect();
            let mut grudge = Grudge::new();
            grudge.cut(&[primary], &others);
            net.set_partition(&grudge, Action::Drop);
        }
    }
    Ok(())
}

async fn heal(cluster: &mut Cluster, fault: FailKind, old: usize) -> anyhow::Result<()> {
    match fault {
        FailKind::Kill => cluster.restart(old).await,
        FailKind::Pause => {
            cluster.member_mut(old)?.resume();
            Ok(())
        }
        FailKind::Partition => {
            if let Some(net) = cluster.net() {
                net.heal();
            }
            Ok(())
        }
    }
}

/// Polls every member but `old` until one is the writable primary; returns it and when (trace clock).
async fn wait_new_primary(
    cluster: &Cluster,
    old: usize,
    trace: &WriteTrace,
    timeout: Duration,
) -> anyhow::Result<(usize, u64)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let others: Vec<(usize, u16)> = cluster
        .members
        .iter()
        .filter(|m| m.index != old && !m.arbiter)
        .map(|m| (m.index, m.port))
        .collect();
    loop {
        let probes = others
            .iter()
            .map(|(_, port)| wire::hello(*port, Duration::from_millis(200)));
        let replies = join_all(probes).await;
        let now = trace.now();
        let primary = replies.iter().zip(&others).find(|(reply, _)| {
            reply
                .as_ref()
                .is_ok_and(|h| h.get_bool("isWritablePrimary").unwrap_or(false))
        });
        if let Some((_, (index, _))) = primary {
            return Ok((*index, now));
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no new primary within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a write issued at or after `t0` is acknowledged; returns when it was (trace clock).
async fn wait_for_write(trace: &WriteTrace, t0: u64, timeout: Duration) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(at) = trace.first_ack_after(t0) {
            return Ok(at);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no majority write succeeded within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn summarise(args: &FailoverArgs, trials: Vec<Trial>, dir: &std::path::Path) -> anyhow::Result<FailoverSummary> {
    let (mut primary, mut write) = (Latencies::new(), Latencies::new());
    let mut primary_series = Series::new("time to a new primary (hello)");
    let mut write_series = Series::new("time to the first majority write (driver)");
    for t in &trials {
        primary.record_ms(t.to_new_primary_ms);
        write.record_ms(t.to_first_write_ms);
        primary_series.points.push((t.trial as f64, t.to_new_primary_ms / 1e3));
        write_series.points.push((t.trial as f64, t.to_first_write_ms / 1e3));
    }
    let series = [primary_series, write_series];
    let chart = LineChart {
        name: "failover",
        title: format!(
            "Failover: {} the primary (electionTimeoutMillis {}, heartbeat {} ms)",
            args.fault.verb(),
            args.election_timeout_ms,
            args.heartbeat_ms
        ),
        x_axis: "trial".into(),
        y_axis: "time since the fault (s)".into(),
        x_scale: XScale::Linear,
        lines: false,
        series: &series,
    };
    let plot = write_figure(&chart, &dir.join("plots")).context("cannot draw the failover plot")?;
    Ok(FailoverSummary {
        benchmark: "failover",
        fault: args.fault,
        nodes: args.nodes,
        election_timeout_ms: args.election_timeout_ms,
        heartbeat_ms: args.heartbeat_ms,
        trials,
        to_new_primary: primary.summary(),
        to_first_write: write.summary(),
        load_average: setup::load_average(),
        store: dir.to_path_buf(),
        plots: vec![plot.png, plot.svg],
    })
}

/// The tables printed and saved as `summary.txt`.
pub fn summary_text(s: &FailoverSummary) -> String {
    let header: Vec<String> = [
        "trial",
        "old",
        "new",
        "new primary ms",
        "first write ms",
        "recovery ms",
        "load",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let rows: Vec<Vec<String>> = s
        .trials
        .iter()
        .map(|t| {
            vec![
                t.trial.to_string(),
                t.old_primary.clone(),
                t.new_primary.clone(),
                format!("{:.0}", t.to_new_primary_ms),
                format!("{:.0}", t.to_first_write_ms),
                format!("{:.0}", t.recovery_ms),
                t.load_1m.map_or("-".into(), |l| format!("{l:.2}")),
            ]
        })
        .collect();
    let dist_header: Vec<String> = ["measure", "median ms", "p90 ms", "max ms"]
        .iter()
        .map(|h| h.to_string())
        .collect();
    let dist = |name: &str, p: &Percentiles| {
        vec![
            name.to_string(),
            format!("{:.0}", p.p50_ms),
            format!("{:.0}", p.p90_ms),
            format!("{:.0}", p.max_ms),
        ]
    };
    format!(
        "failover: {} the primary, {} nodes, electionTimeoutMillis {}, heartbeat {} ms; {}\n{}\n{}store: {}\n",
        s.fault.verb(),
        s.nodes,
        s.election_timeout_ms,
        s.heartbeat_ms,
        setup::describe_load(s.load_average),
        table(&header, &rows),
        table(
            &dist_header,
            &[
                dist("to new primary", &s.to_new_primary),
                dist("to first majority write", &s.to_first_write)
            ]
        ),
        s.store.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_write_after_the_fault_ignores_writes_issued_before_it() {
        let trace = WriteTrace {
            started: Instant::now(),
            acked: Mutex::new(vec![(10, 900), (50, 70), (60, 400), (80, 300)]),
        };
        // Issued at 10 but acknowledged late: it was in flight at the fault, so it does not count.
        assert_eq!(trace.first_ack_after(50), Some(70));
        assert_eq!(trace.first_ack_after(55), Some(300));
        assert_eq!(trace.first_ack_after(100), None);
    }
}

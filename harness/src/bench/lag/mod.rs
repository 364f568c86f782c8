//! `faultline bench replication-lag`: how long each write takes to become visible on each member.
//!
//! # What is measured
//!
//! A fresh set gets a paced, open-loop insert load ([`load`]) from the official driver through the
//! replica-set URI, or with `--client wire` over raw connections to the primary (`bench::client`: the
//! driver's own time taken out). Every data member's oplog is tailed ([`crate::bench::oplog`]) over a
//! loopback connection with a tailable awaitData cursor, and the harness notes the moment (its monotonic
//! clock, the same clock the writes are timed with, so there is no clock skew) each write's entry arrives.
//! Per member:
//!
//! - `visible_after_issue`: entry arrived − write issued by the client. The headline figure: how long until a
//!   reader of that member could see the write. On the primary it is the write's own commit latency.
//! - `behind_first_member`: entry arrived − the same entry's earliest arrival on any member (normally the
//!   primary): replication alone, without the client's round trip.
//! - `visible_after_ack`: entry arrived − write acknowledged (negative: visible before the client got the
//!   acknowledgement, as always under `w: majority`).
//! - `status_optime_date_lag` / `status_wall_time_lag`: what `rs.status()` reports ([`status`]).
//!
//! Every arrival includes one loopback reply (tens of µs); the tailer wakes the moment the member's oplog
//! grows. The run directory gets `summary.json`, `summary.txt`, `lag.jsonl` (the worst issue → visible lag per
//! member per 100 ms, behind the member that had it first), `history.jsonl` (one `write` per insert, plus nemesis events), `report.html` and
//! `plots/` (the report's plots and `replication-lag-sources`, oplog against `rs.status()`).

pub mod load;
pub mod status;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use bson::Document;
use faultline_reports::plot::bench::{LineChart, XScale};
use faultline_reports::plot::write_figure;
use faultline_reports::series::Series;
use serde::Serialize;
use tokio::sync::watch;

use super::client::{ClientKind, WirePool};
use super::oplog::{self, ArrivalLog};
use super::setup::{self, SetOptions};
use super::stats::{Latencies, PERCENTILE_HEADERS, Percentiles, table};
use crate::cluster::Cluster;
use crate::input::{Rate, Whole};
use crate::nemesis::{Nemesis, schedule};
use crate::recorder::Recorder;
use faultline::support::errors::UsageError;
use load::{Sink, WriteLog};
use status::StatusSample;
use summary::{MemberLag, Watched};

/// The benchmark's database and collection.
const DATABASE: &str = "faultline_bench";
const COLLECTION: &str = "lag";
/// How long to wait after the load for members to catch up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of the load: the driver's `maxPoolSize`, or the raw connections `--client wire` opens before
/// the load. At most this many writes are in flight at once.
const POOL_SIZE: usize = 64;
/// The most writes one run may schedule (memory: about 8 bytes × members per write).
const MAX_WRITES: f64 = 50_000_000.0;

/// Flags of `faultline bench replication-lag`.
#[derive(clap::Args, Debug, Clone)]
pub struct LagArgs {
    /// Data-bearing members, 2 to 7.
    #[arg(long, default_value_t = 3, allow_hyphen_values = true, value_parser = NODES.parser::<usize>())]
    pub nodes: usize,
    /// Writes per second (paced, open loop), 0.001 to 1000000.
    #[arg(long, default_value_t = 1000.0, allow_hyphen_values = true, value_parser = RATE.parser())]
    pub rate: f64,
    /// Length of the load, e.g. 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", allow_hyphen_values = true)]
    pub duration: String,
    /// Write concern of the load: majority or a number of members from 0 to --nodes.
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub write_concern: String,
    /// Faults during the load, comma-separated (as for `faultline test`): kill, pause, partition, ...
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub nemesis: Vec<String>,
    /// Time between nemesis steps.
    #[arg(long, default_value = "3s", allow_hyphen_values = true)]
    pub nemesis_interval: String,
    /// The set's electionTimeoutMillis, 1 to 600000.
    #[arg(long, default_value_t = 1000, allow_hyphen_values = true, value_parser = setup::ELECTION_TIMEOUT_MS.parser::<u64>())]
    pub election_timeout_ms: u64,
    /// Seed of the nemesis schedule.
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = setup::SEED.parser::<u64>())]
    pub seed: u64,
    /// Store root.
    #[arg(long, default_value = setup::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Route the members' links through the harness's fault proxies even without a nemesis (a nemesis
    /// always does; without one, members talk to each other directly).
    #[arg(long)]
    pub proxies: bool,
    /// Print the summary as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Who sends the inserts: the official driver, or raw wire connections to the primary (no driver
    /// between the clock and the socket; not with --nemesis, which moves the primary).
    #[arg(long, value_enum, default_value_t = ClientKind::Driver)]
    pub client: ClientKind,
}

/// `summary.json`.
#[derive(Debug, Serialize)]
pub struct LagSummary {
    pub benchmark: &'static str,
    pub nodes: usize,
    pub client: ClientKind,
    pub rate: f64,
    pub duration_s: f64,
    pub write_concern: String,
    pub nemesis: Vec<String>,
    pub election_timeout_ms: u64,
    pub writes_scheduled: usize,
    pub writes_issued: u64,
    pub writes_acked: u64,
    pub writes_failed: u64,
    /// Issued writes per second of load.
    pub achieved_rate: f64,
    /// Issue → acknowledgement, ms.
    pub ack_latency: Percentiles,
    pub members: Vec<MemberLag>,
    /// 1, 5 and 15 minute load averages when the load ended.
    pub load_average: Option<[f64; 3]>,
    pub measured: &'static str,
    pub store: PathBuf,
    pub plots: Vec<PathBuf>,
}

const MEASURED: &str = "visible_after_issue: time from the client issuing the insert to its entry arriving on a \
tailable awaitData cursor on that member's local.oplog.rs (one harness clock); behind_first_member: arrival on \
the member minus the earliest arrival on any member; visible_after_ack: arrival minus the client's \
acknowledgement (negative = before the ack); status_*: replSetGetStatus on the primary every 100 ms, primary \
minus member, for optimeDate (whole seconds) and lastAppliedWallTime (ms), while the member is SECONDARY, \
from when the first benchmark write had reached every member";

/// `--nodes`: a set with secondaries.
const NODES: Whole = setup::nodes(2, " (a set with secondaries; MongoDB's limit of voting members)");
/// `--rate`: paced.
const RATE: Rate = Rate { unpaced: false };

struct Plan {
    duration: Duration,
    total: usize,
    faults: Vec<crate::nemesis::Fault>,
    nemesis_interval: f64,
}

fn plan(args: &LagArgs) -> anyhow::Result<Plan> {
    let duration = setup::parse_duration("--duration", &args.duration)?;
    let nemesis_interval = setup::parse_duration("--nemesis-interval", &args.nemesis_interval)?.as_secs_f64();
    // Clap's parsers checked these already; the struct can also be built in code.
    RATE.check(args.rate).map_err(|e| UsageError(format!("--rate: {e}")))?;
    NODES
        .check(args.nodes as u64)
        .map_err(|e| UsageError(format!("--nodes: {e}")))?;
    setup::check_write_concern(&args.write_concern, args.nodes as u64)?;
    let total = (args.rate * duration.as_secs_f64()).ceil();
    if total > MAX_WRITES {
        return Err(UsageError(format!(
            "--rate {} for --duration {} is {total} writes: at most {MAX_WRITES}",
            args.rate, args.duration
        ))
        .into());
    }
    let faults = setup::faults(&args.nemesis)?;
    if args.client == ClientKind::Wire && !faults.is_empty() {
        return Err(UsageError(
            "--client wire writes to the member that was primary at the start; a nemesis moves the primary: \
             use --client driver with --nemesis"
                .into(),
        )
        .into());
    }
    Ok(Plan {
        duration,
        total: total as usize,
        faults,
        nemesis_interval,
    })
}

/// Runs the benchmark; returns the exit code.
pub async fn run(args: &LagArgs) -> anyhow::Result<i32> {
    let plan = plan(args)?;
    let dir = setup::run_dir(&args.store, "replication-lag")?;
    eprintln!(
        "faultline bench replication-lag: {} nodes, {} writes/s for {:.1}s, w={}, client={}, nemesis={}",
        args.nodes,
        args.rate,
        plan.duration.as_secs_f64(),
        args.write_concern,
        args.client.name(),
        if args.nemesis.is_empty() {
            "none".to_string()
        } else {
            args.nemesis.join(",")
        }
    );
    eprintln!("  store: {}", dir.display());
    let mut options = SetOptions::new(args.nodes);
    options.election_timeout_ms = args.election_timeout_ms;
    options.proxies = args.proxies || !args.nemesis.is_empty();
    let (cluster, primary) = setup::start_set(&dir, &options).await?;
    let measured = measure(args, &plan, &dir, cluster, primary).await?;
    let summary = finish(args, &plan, &dir, measured)?;
    let text = summary_text(&summary);
    setup::write_summary(&dir, &summary, &text)?;
    setup::print_summary(args.json, &summary, &text)?;
    Ok(0)
}

/// What one run measured.
struct Measured {
    writes: Arc<WriteLog>,
    watched: Vec<Watched>,
    status: Vec<StatusSample>,
    nemesis: faultline_checker::history::History,
}

async fn measure(
    args: &LagArgs,
    plan: &Plan,
    dir: &Path,
    cluster: Cluster,
    primary: usize,
) -> anyhow::Result<Measured> {
    let members: Vec<(String, u16)> = cluster
        .members
        .iter()
        .filter(|m| !m.arbiter)
        .map(|m| (m.name.clone(), m.port))
        .collect();
    // The driver client exists only when it sends the load (its monitoring would be load of its own).
    let (client, sink) = match args.client {
        ClientKind::Driver => {
            let uri = format!(
                "{}&w={}&retryWrites=false&maxPoolSize={POOL_SIZE}",
                cluster.uri(),
                args.write_concern
            );
            let client = mongodb::Client::with_uri_str(&uri)
                .await
                .context("cannot create the driver client")?;
            let collection = client.database(DATABASE).collection::<Document>(COLLECTION);
            (Some(client), Sink::Driver(collection))
        }
        ClientKind::Wire => {
            let addr = format!("127.0.0.1:{}", cluster.members[primary].port);
            let concern = bson::doc! {"w": crate::input::write_concern_w(&args.write_concern)};
            (
                None,
                Sink::Wire(Arc::new(WirePool::open(addr, concern, POOL_SIZE).await?)),
            )
        }
    };
    // Create the collection before the clock starts, so the first writes do not pay for it.
    let _ = sink.insert(bson::doc! {"_id": "warm-up"}).await;

    let recorder = Arc::new(Recorder::create(&dir.join("nemesis.jsonl"))?);
    let started = recorder.started();
    let writes = Arc::new(WriteLog::new(started, plan.total));
    let (stop_tails, tails_stop) = watch::channel(false);
    let ns = format!("{DATABASE}.{COLLECTION}");
    let mut watched = Vec::new();
    let mut tails = Vec::new();
    for (index, (name, port)) in members.iter().enumerate() {
        let arrivals = ArrivalLog::new(started, plan.total);
        tails.push(tokio::spawn(oplog::tail(
            *port,
            ns.clone(),
            arrivals.clone(),
            tails_stop.clone(),
        )));
        let initial_state = if index == primary { "PRIMARY" } else { "SECONDARY" };
        watched.push(Watched {
            name: name.clone(),
            initial_state: initial_state.into(),
            arrivals,
        });
    }
    let sampler = tokio::spawn(status::sample(members.clone(), started, tails_stop.clone()));
    let progress = tokio::spawn(super::progress::show(
        progress_line(writes.clone(), &watched, plan.total),
        tails_stop.clone(),
    ));

    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));
    let mut nemesis = Nemesis::new(cluster.clone(), recorder.clone(), args.seed);
    let steps = schedule::plan(
        args.seed,
        &plan.faults,
        None,
        plan.nemesis_interval,
        plan.duration.as_secs_f64(),
    );
    let (stop_load, load_stop) = watch::channel(false);
    let nemesis_stop = load_stop.clone();
    let ((), ()) = tokio::join!(
        async {
            load::run(sink, args.rate, writes.clone(), load_stop).await;
            let _ = stop_load.send(true);
        },
        nemesis.run_plan(&steps, nemesis_stop),
    );
    if !plan.faults.is_empty() {
        nemesis.heal_everything().await.context("cannot heal the cluster")?;
        let _ = cluster.lock().await.wait_healthy(Duration::from_secs(60)).await;
    }
    drain(&writes, &watched).await;
    let _ = stop_tails.send(true);
    for tail in tails {
        let _ = tail.await;
    }
    let status = sampler.await.unwrap_or_default();
    let _ = progress.await;
    if let Some(client) = client {
        client.shutdown().await;
    }
    setup::shutdown(&mut *cluster.lock().await).await;
    let (nemesis, write_error) = recorder.snapshot();
    if let Some(e) = write_error {
        tracing::warn!("nemesis.jsonl: {e}");
    }
    Ok(Measured {
        writes,
        watched,
        status,
        nemesis,
    })
}

/// Waits until every member has seen every acknowledged write, or [`DRAIN_TIMEOUT`].
async fn drain(writes: &WriteLog, watched: &[Watched]) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let acked = writes.acked_count.load(Ordering::Relaxed);
        if watched.iter().all(|w| w.arrivals.seen.load(Ordering::Relaxed) >= acked) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn progress_line(writes: Arc<WriteLog>, watched: &[Watched], total: usize) -> impl FnMut() -> String + use<> {
    let seen: Vec<(String, Arc<std::sync::atomic::AtomicU64>)> = watched
        .iter()
        .map(|w| (w.name.clone(), w.arrivals.seen.clone()))
        .collect();
    move || {
        let issued = writes.issued_count.load(Ordering::Relaxed);
        let acked = writes.acked_count.load(Ordering::Relaxed);
        let members: Vec<String> = seen
            .iter()
            .map(|(name, n)| format!("{name} {}", n.load(Ordering::Relaxed)))
            .collect();
        format!(
            "{} {issued}/{total} writes issued, {acked} acked; seen in oplogs: {}",
            super::progress::bar(issued as f64 / total.max(1) as f64, 24),
            members.join(", ")
        )
    }
}

fn finish(args: &LagArgs, plan: &Plan, dir: &Path, measured: Measured) -> anyhow::Result<LagSummary> {
    let Measured {
        writes,
        watched,
        status,
        nemesis,
    } = measured;
    let run = faultline_reports::RunDir::new(dir);
    faultline_reports::LagWriter::create(&run.lag())?.write(&summary::lag_rows(&writes, &watched, &status))?;
    let history = summary::history(&writes, &nemesis);
    let file =
        std::fs::File::create(run.history()).with_context(|| format!("cannot create {}", run.history().display()))?;
    faultline_checker::formats::jsonl::write(&history, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", run.history().display()))?;
    let _ = std::fs::remove_file(dir.join("nemesis.jsonl"));
    let mut plots = Vec::new();
    match faultline_reports::render_run(dir) {
        Ok(rendered) => {
            plots.push(rendered.report.clone());
            plots.extend(rendered.plots.iter().map(|p| p.png.clone()));
        }
        Err(e) => eprintln!("warning: cannot render the report: {e}"),
    }
    let sources = source_series(&writes, &watched, &status);
    let chart = LineChart {
        name: "replication-lag-sources",
        title: "Replication lag: measured in the oplogs vs reported by rs.status()".into(),
        x_axis: "time since start of run (s)".into(),
        y_axis: "lag (ms)".into(),
        x_scale: XScale::Linear,
        lines: true,
        series: &sources,
    };
    let figure = write_figure(&chart, &run.plots()).context("cannot draw the lag plot")?;
    plots.push(figure.png);

    let mut ack = Latencies::new();
    for id in 0..writes.capacity() {
        if let (Some(issued), Some(load::Completion::Acked(acked))) = (writes.issued(id), writes.completion(id)) {
            ack.record_ns(acked.saturating_sub(issued));
        }
    }
    let issued = writes.issued_count.load(Ordering::Relaxed);
    Ok(LagSummary {
        benchmark: "replication-lag",
        nodes: args.nodes,
        client: args.client,
        rate: args.rate,
        duration_s: plan.duration.as_secs_f64(),
        write_concern: args.write_concern.clone(),
        nemesis: args.nemesis.clone(),
        election_timeout_ms: args.election_timeout_ms,
        writes_scheduled: plan.total,
        writes_issued: issued,
        writes_acked: writes.acked_count.load(Ordering::Relaxed),
        writes_failed: writes.failed_count.load(Ordering::Relaxed),
        achieved_rate: issued as f64 / plan.duration.as_secs_f64(),
        ack_latency: ack.summary(),
        members: summary::member_lags(&writes, &watched, &status),
        load_average: setup::load_average(),
        measured: MEASURED,
        store: dir.to_path_buf(),
        plots,
    })
}

/// Per secondary: the oplog-measured lag (worst per 100 ms) and `rs.status()`'s lastAppliedWallTime lag
/// (its optimeDate lag moves in whole seconds and would flatten the plot; it is in the summary).
fn source_series(writes: &WriteLog, watched: &[Watched], status: &[StatusSample]) -> Vec<Series> {
    let mut out = Vec::new();
    for ((member, points), w) in summary::bucketed_lag(writes, watched).into_iter().zip(watched) {
        if w.initial_state == "PRIMARY" {
            continue;
        }
        let mut oplog = Series::new(format!("{member}: oplogs, behind the first member (worst per 100 ms)"));
        oplog.points = points.iter().map(|(t, ms)| (*t as f64 / 1e9, *ms)).collect();
        out.push(oplog);
        let mine: Vec<&StatusSample> = status.iter().filter(|s| s.member == member).collect();
        let mut series = Series::new(format!("{member}: rs.status(), lastAppliedWallTime"));
        series.points = mine
            .iter()
            .map(|s| {
                (
                    s.time as f64 / 1e9,
                    s.wall_time_lag_ms
                        .filter(|_| s.state == "SECONDARY")
                        .unwrap_or(f64::NAN),
                )
            })
            .collect();
        out.push(series);
    }
    out
}

/// The tables printed and saved as `summary.txt`.
pub fn summary_text(s: &LagSummary) -> String {
    let mut header = vec!["member".to_string(), "seen".to_string()];
    header.extend(PERCENTILE_HEADERS.iter().map(|h| h.to_string()));
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            let source = if m.sync_sources.is_empty() {
                String::new()
            } else {
                format!(", from {}", m.sync_sources.join(" then "))
            };
            let mut row = vec![
                format!("{} ({}{source})", m.member, m.initial_state.to_lowercase()),
                m.writes_seen.to_string(),
            ];
            row.extend(m.visible_after_issue.cells());
            row
        })
        .collect();
    let compare_header: Vec<String> = [
        "member",
        "behind 1st p50",
        "p99",
        "max",
        "after ack p50",
        "rs.status wall p50",
        "p99",
        "max",
        "optimeDate max",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let compare: Vec<Vec<String>> = s
        .members
        .iter()
        .filter(|m| m.initial_state != "PRIMARY")
        .map(|m| {
            let f = |v: f64| format!("{v:.2}");
            vec![
                m.member.clone(),
                f(m.behind_first_member.p50_ms),
                f(m.behind_first_member.p99_ms),
                f(m.behind_first_member.max_ms),
                f(m.visible_after_ack.p50_ms),
                f(m.status_wall_time_lag.p50_ms),
                f(m.status_wall_time_lag.p99_ms),
                f(m.status_wall_time_lag.max_ms),
                f(m.status_optime_date_lag.max_ms),
            ]
        })
        .collect();
    format!(
        "replication lag: {} nodes, {:.0} writes/s (achieved {:.0}) for {:.1}s, w={}, client={}, nemesis={}\n\
         writes: {} issued, {} acked, {} failed; ack latency p50 {:.2} ms, p99 {:.2} ms; {}\n\n\
         write issued → visible in the member's oplog (ms):\n{}\n\
         replication only and rs.status() (ms):\n{}\nstore: {}\n",
        s.nodes,
        s.rate,
        s.achieved_rate,
        s.duration_s,
        s.write_concern,
        s.client.name(),
        if s.nemesis.is_empty() {
            "none".to_string()
        } else {
            s.nemesis.join(",")
        },
        s.writes_issued,
        s.writes_acked,
        s.writes_failed,
        s.ack_latency.p50_ms,
        s.ack_latency.p99_ms,
        setup::describe_load(s.load_average),
        table(&header, &rows),
        table(&compare_header, &compare),
        s.store.display()
    )
}

//! `faultline bench throughput`: closed-loop inserts with the official driver; ops/s and latency per
//! (members, clients, `w`, `j`).
//!
//! For each member count a fresh set is started; for each combination a new driver client (replica-set URI
//! with `w`, `journal` and `maxPoolSize` = clients) runs `clients` tasks, each inserting one small document
//! after another for a warm-up and then for `--duration`. Only the measured window counts: ops/s is the
//! inserts acknowledged in it divided by its length, and the latency is issue → acknowledgement
//! (hdrhistogram, µs resolution). The clients' runtime has a thread per client, up to the host's cores.
//!
//! `--client wire` takes the driver out (`bench::client`): each client is one raw connection to the primary
//! (or the router) sending the `insert` command the driver would send, the document's `_id` made here as a
//! driver makes it.
//!
//! `--shards 1,2` runs the same through a sharded cluster of that many shards (each a set of `--nodes`
//! members, one config server, one router; the collection sharded on a hashed `_id`); 0, the default, is
//! the plain replica set.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bson::{Document, doc};
use faultline_reports::plot::bench::{LineChart, XScale};
use faultline_reports::plot::write_figure;
use faultline_reports::series::Series;
use serde::Serialize;

use super::client::{ClientKind, WireWriter};
use super::setup::{self, SetOptions};
use super::stats::{Latencies, Percentiles, table};
use crate::input::Whole;
use faultline::support::errors::UsageError;

/// Unmeasured time at the start of each combination (connections, caches).
const WARM_UP: Duration = Duration::from_millis(500);
/// The longest one insert may take before it counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// The benchmark's database and collection.
const DATABASE: &str = "faultline_bench";
const COLLECTION: &str = "throughput";

/// Flags of `faultline bench throughput`.
#[derive(clap::Args, Debug, Clone)]
pub struct ThroughputArgs {
    /// Set sizes (data members, 1 to 7), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,3", allow_hyphen_values = true, value_parser = NODES.parser::<usize>())]
    pub nodes: Vec<usize>,
    /// Concurrent clients (1 to 4096), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128", allow_hyphen_values = true, value_parser = CLIENTS.parser::<usize>())]
    pub clients: Vec<usize>,
    /// Write concerns, comma-separated: majority or member counts from 0 to the smallest --nodes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,majority",
        allow_hyphen_values = true
    )]
    pub write_concern: Vec<String>,
    /// Journaled writes (`j: true`); `--j` alone is true, `--j false,true` runs both.
    #[arg(long, value_delimiter = ',', num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub j: Vec<bool>,
    /// Shard counts, comma-separated: 0 is the plain replica set; N > 0 inserts through a router into a
    /// collection sharded on a hashed _id over N shards of --nodes members.
    #[arg(long, value_delimiter = ',', default_value = "0", allow_hyphen_values = true, value_parser = SHARDS.parser::<usize>())]
    pub shards: Vec<usize>,
    /// Measured time per combination, e.g. 3s.
    #[arg(long, default_value = "3s", allow_hyphen_values = true)]
    pub duration: String,
    /// Store root.
    #[arg(long, default_value = setup::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Route the members' links through the harness's fault proxies, as `faultline test` does (off: members
    /// talk to each other directly, as a deployment's do).
    #[arg(long)]
    pub proxies: bool,
    /// Print the summary as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Who sends the inserts: `driver`, the official Rust driver through the set's URI (what applications
    /// see), or `wire`, one raw connection per client to the primary or router (the database's own time).
    #[arg(long, value_enum, default_value_t = ClientKind::Driver)]
    pub client: ClientKind,
}

/// One combination's result.
#[derive(Debug, Clone, Serialize)]
pub struct Combination {
    /// 0: a replica set; otherwise the shards of a sharded cluster (each of `nodes` members).
    pub shards: usize,
    pub nodes: usize,
    pub clients: usize,
    pub write_concern: String,
    pub j: bool,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub latency: Percentiles,
    /// 1-minute load average when the combination ended.
    pub load_1m: Option<f64>,
}

/// `summary.json`.
#[derive(Debug, Serialize)]
pub struct ThroughputSummary {
    pub benchmark: &'static str,
    pub client: ClientKind,
    pub duration_s: f64,
    pub results: Vec<Combination>,
    pub load_average: Option<[f64; 3]>,
    pub store: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// `--nodes`: set sizes.
const NODES: Whole = setup::nodes(1, " (MongoDB's limit of voting members)");
/// `--shards`.
const SHARDS: Whole = Whole {
    what: "number of shards",
    min: 0,
    max: 16,
    why: "",
};
/// `--clients`.
const CLIENTS: Whole = Whole {
    what: "number of clients",
    min: 1,
    max: 4096,
    why: "",
};

fn validate(args: &ThroughputArgs) -> anyhow::Result<Duration> {
    let duration = setup::parse_duration("--duration", &args.duration)?;
    // Clap's parsers checked each value already; the struct can also be built in code.
    for (flag, values, rule) in [("--nodes", &args.nodes, NODES), ("--clients", &args.clients, CLIENTS)] {
        if values.is_empty() {
            return Err(UsageError(format!("{flag} needs at least one value")).into());
        }
        for value in values {
            rule.check(*value as u64)
                .map_err(|e| UsageError(format!("{flag}: {e}")))?;
        }
    }
    // Every write concern runs on every set size, so each must suit the smallest set.
    let smallest = args.nodes.iter().min().copied().unwrap_or(1) as u64;
    for w in &args.write_concern {
        setup::check_write_concern(w, smallest)?;
    }
    Ok(duration)
}

/// Runs the benchmark; returns the exit code.
pub async fn run(args: &ThroughputArgs) -> anyhow::Result<i32> {
    let duration = validate(args)?;
    let dir = setup::run_dir(&args.store, "throughput")?;
    eprintln!("faultline bench throughput: store {}", dir.display());
    let mut results = Vec::new();
    for &shards in &args.shards {
        for &nodes in &args.nodes {
            let mut target = Target::start(&dir, shards, nodes, args.proxies).await?;
            let base_uri = target.uri();
            for w in &args.write_concern {
                for &j in &args.j {
                    for &clients in &args.clients {
                        eprint!("  {}, w={w}, j={j}, {clients:>4} clients ... ", describe(shards, nodes));
                        let (ops, errors, latency) = match args.client {
                            ClientKind::Driver => {
                                let uri =
                                    format!("{base_uri}&w={w}&journal={j}&retryWrites=false&maxPoolSize={clients}");
                                on_client_runtime(clients, move || measure_driver(uri, clients, duration)).await?
                            }
                            ClientKind::Wire => {
                                let addr = format!("127.0.0.1:{}", target.write_port().await?);
                                let concern = doc! {"w": crate::input::write_concern_w(w), "j": j};
                                on_client_runtime(clients, move || measure_wire(addr, concern, clients, duration))
                                    .await?
                            }
                        };
                        let result = Combination {
                            shards,
                            nodes,
                            clients,
                            write_concern: w.clone(),
                            j,
                            ops,
                            errors,
                            ops_per_sec: ops as f64 / duration.as_secs_f64(),
                            latency: latency.summary(),
                            load_1m: setup::load_average().map(|l| l[0]),
                        };
                        eprintln!("{:.0} ops/s, p50 {:.2} ms", result.ops_per_sec, result.latency.p50_ms);
                        results.push(result);
                    }
                }
            }
            target.shutdown().await;
        }
    }
    let plot = write_figure(&chart(&curves(&results)), &dir.join("plots")).context("cannot draw the plot")?;
    let summary = ThroughputSummary {
        benchmark: "throughput",
        client: args.client,
        duration_s: duration.as_secs_f64(),
        results,
        load_average: setup::load_average(),
        store: dir.clone(),
        plots: vec![plot.png, plot.svg],
    };
    let text = summary_text(&summary);
    setup::write_summary(&dir, &summary, &text)?;
    setup::print_summary(args.json, &summary, &text)?;
    Ok(0)
}

/// What the clients write to: a replica set, or a sharded cluster through its router.
enum Target {
    Set(Box<crate::cluster::Cluster>),
    Sharded(Box<crate::sharded::ShardedCluster>),
}

impl Target {
    async fn start(dir: &std::path::Path, shards: usize, nodes: usize, proxies: bool) -> anyhow::Result<Target> {
        if shards == 0 {
            let mut options = SetOptions::new(nodes);
            options.proxies = proxies;
            let (cluster, _) = setup::start_set(&dir.join(format!("set-{nodes}")), &options).await?;
            return Ok(Target::Set(Box::new(cluster)));
        }
        let cluster = crate::sharded::ShardedCluster::start_on_free_ports(
            &dir.join(format!("sharded-{shards}x{nodes}")),
            shards,
            nodes,
            setup::FIRST_PRIMARY_TIMEOUT,
        )
        .await?;
        let router = cluster.routers.first().context("no router")?.port;
        crate::cluster::wire::command_ok(
            router,
            doc! {"shardCollection": "faultline_bench.throughput", "key": {"_id": "hashed"}},
            Duration::from_secs(30),
        )
        .await
        .context("cannot shard the benchmark's collection")?;
        Ok(Target::Sharded(Box::new(cluster)))
    }

    /// The port that takes writes: the set's primary, or the router.
    async fn write_port(&self) -> anyhow::Result<u16> {
        match self {
            Target::Set(cluster) => {
                let primary = cluster.primary().await.context("no member answers as the primary")?;
                Ok(cluster.members[primary].port)
            }
            Target::Sharded(cluster) => Ok(cluster.routers.first().context("no router")?.port),
        }
    }

    /// A URI ending in options, so that more can be appended with `&`.
    fn uri(&self) -> String {
        match self {
            Target::Set(cluster) => cluster.uri(),
            Target::Sharded(cluster) => format!("{}?appname=faultline-bench", cluster.uri()),
        }
    }

    async fn shutdown(&mut self) {
        match self {
            Target::Set(cluster) => setup::shutdown(cluster).await,
            Target::Sharded(cluster) => cluster.shutdown(Duration::from_secs(10)).await,
        }
    }
}

/// `1 node(s)` or `2 shard(s) of 1 node(s)`.
fn describe(shards: usize, nodes: usize) -> String {
    if shards == 0 {
        format!("{nodes} node(s)")
    } else {
        format!("{shards} shard(s) of {nodes} node(s)")
    }
}

/// Runs `work` (a measurement) on a runtime of its own with one thread per client, up to the host's cores, as
/// pgbench runs with `-j` threads: a lone client then costs no wake-ups of idle threads, which on a small host
/// are a tenth of a write's time.
async fn on_client_runtime<F, Fut>(clients: usize, work: F) -> anyhow::Result<(u64, u64, Latencies)>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<(u64, u64, Latencies)>>,
{
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(clients.clamp(1, cores))
            .enable_all()
            .build()
            .context("cannot start the clients' runtime")?;
        runtime.block_on(work())
    })
    .await
    .context("the clients' runtime stopped")?
}

/// Runs `clients` closed loops through one driver client for warm-up + `duration`; returns the inserts
/// acknowledged in the measured window, the errors in it, and their latencies.
async fn measure_driver(uri: String, clients: usize, duration: Duration) -> anyhow::Result<(u64, u64, Latencies)> {
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .context("cannot create the driver client")?;
    let collection = client.database(DATABASE).collection::<Document>(COLLECTION);
    let _ = collection.insert_one(doc! {"warm": true}).await;
    let measured = run_closed_loops(
        (0..clients).map(|_| DriverInserter(collection.clone())).collect(),
        duration,
    )
    .await;
    client.shutdown().await;
    Ok(measured)
}

/// Runs `clients` closed loops, each on a raw connection of its own to `addr`, for warm-up + `duration`.
async fn measure_wire(
    addr: String,
    concern: Document,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(u64, u64, Latencies)> {
    let mut inserters = Vec::with_capacity(clients);
    for _ in 0..clients {
        inserters.push(WireInserter(WireWriter::connect(&addr, concern.clone()).await?));
    }
    Ok(run_closed_loops(inserters, duration).await)
}

/// Runs one closed loop per inserter from now for warm-up + `duration`; adds up their results.
async fn run_closed_loops<I: Inserter>(inserters: Vec<I>, duration: Duration) -> (u64, u64, Latencies) {
    let origin = Instant::now();
    let window = (origin + WARM_UP, origin + WARM_UP + duration);
    let tasks: Vec<_> = inserters
        .into_iter()
        .map(|inserter| tokio::spawn(closed_loop(inserter, window)))
        .collect();
    let (mut ops, mut errors, mut latency) = (0, 0, Latencies::new());
    for task in tasks {
        if let Ok((o, e, l)) = task.await {
            ops += o;
            errors += e;
            latency.merge(&l);
        }
    }
    (ops, errors, latency)
}

/// One client of the benchmark: inserts one small document and says whether it was acknowledged.
trait Inserter: Send + 'static {
    fn insert(&mut self, payload: &str) -> impl Future<Output = bool> + Send;
}

/// Through the official driver.
struct DriverInserter(mongodb::Collection<Document>);

impl Inserter for DriverInserter {
    async fn insert(&mut self, payload: &str) -> bool {
        let insert = self.0.insert_one(doc! {"p": payload});
        matches!(tokio::time::timeout(OP_TIMEOUT, insert).await, Ok(Ok(_)))
    }
}

/// Over a raw connection.
struct WireInserter(WireWriter);

impl Inserter for WireInserter {
    async fn insert(&mut self, payload: &str) -> bool {
        let document = doc! {"_id": bson::oid::ObjectId::new(), "p": payload};
        self.0.insert(DATABASE, COLLECTION, document, OP_TIMEOUT).await
    }
}

async fn closed_loop<I: Inserter>(mut inserter: I, window: (Instant, Instant)) -> (u64, u64, Latencies) {
    let (mut ops, mut errors, mut latency) = (0, 0, Latencies::new());
    let payload = "x".repeat(64);
    loop {
        let issued = Instant::now();
        if issued >= window.1 {
            break;
        }
        let ok = inserter.insert(&payload).await;
        let done = Instant::now();
        if issued < window.0 || done > window.1 {
            continue;
        }
        if ok {
            ops += 1;
            latency.record_ns(done.duration_since(issued).as_nanos() as u64);
        } else {
            errors += 1;
        }
    }
    (ops, errors, latency)
}

/// One series per (nodes, w, j): ops/s against clients.
fn curves(results: &[Combination]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in results {
        let name = format!("{}, w={}, j={}", describe(r.shards, r.nodes), r.write_concern, r.j);
        match out.iter_mut().find(|s| s.name == name) {
            Some(series) => series.points.push((r.clients as f64, r.ops_per_sec)),
            None => {
                let mut series = Series::new(name);
                series.points.push((r.clients as f64, r.ops_per_sec));
                out.push(series);
            }
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn chart(series: &[Series]) -> LineChart<'_> {
    LineChart {
        name: "throughput-vs-clients",
        title: "Insert throughput against concurrent clients (closed loop)".into(),
        x_axis: "concurrent clients (log scale)".into(),
        y_axis: "acknowledged inserts per second".into(),
        x_scale: XScale::Log,
        lines: true,
        series,
    }
}

/// The table printed and saved as `summary.txt`.
pub fn summary_text(s: &ThroughputSummary) -> String {
    let header: Vec<String> = [
        "nodes", "w", "j", "clients", "ops/s", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "load",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let rows: Vec<Vec<String>> = s
        .results
        .iter()
        .map(|r| {
            vec![
                if r.shards == 0 {
                    r.nodes.to_string()
                } else {
                    format!("{}x{}", r.shards, r.nodes)
                },
                r.write_concern.clone(),
                r.j.to_string(),
                r.clients.to_string(),
                format!("{:.0}", r.ops_per_sec),
                r.errors.to_string(),
                format!("{:.2}", r.latency.p50_ms),
                format!("{:.2}", r.latency.p90_ms),
                format!("{:.2}", r.latency.p99_ms),
                format!("{:.2}", r.latency.max_ms),
                r.load_1m.map_or("-".to_string(), |l| format!("{l:.2}")),
            ]
        })
        .collect();
    format!(
        "throughput: closed-loop inserts {}, {:.1}s per combination; {}\n{}store: {}\n",
        match s.client {
            ClientKind::Driver => "through the official driver",
            ClientKind::Wire => "over raw wire connections (--client wire: no driver)",
        },
        s.duration_s,
        setup::describe_load(s.load_average),
        table(&header, &rows),
        s.store.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(nodes: usize, w: &str, clients: usize, ops_per_sec: f64) -> Combination {
        Combination {
            shards: 0,
            nodes,
            clients,
            write_concern: w.into(),
            j: false,
            ops: 0,
            errors: 0,
            ops_per_sec,
            latency: Percentiles::default(),
            load_1m: None,
        }
    }

    #[test]
    fn curves_group_by_configuration_and_sort_by_clients() {
        let results = [
            result(3, "1", 8, 80.0),
            result(3, "1", 1, 10.0),
            result(3, "majority", 1, 5.0),
        ];
        let series = curves(&results);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].name, "3 node(s), w=1, j=false");
        assert_eq!(series[0].points, vec![(1.0, 10.0), (8.0, 80.0)]);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let args = |w: &str, clients: usize| ThroughputArgs {
            nodes: vec![1],
            clients: vec![clients],
            write_concern: vec![w.into()],
            j: vec![false],
            shards: vec![0],
            duration: "1s".into(),
            store: PathBuf::from("store"),
            proxies: false,
            json: false,
            client: ClientKind::Driver,
        };
        assert!(validate(&args("majority", 8)).is_ok());
        assert!(validate(&args("most", 8)).is_err_and(|e| e.is::<UsageError>()));
        assert!(validate(&args("1", 0)).is_err());
    }
}

//! `faultline bench migration`: how long moving a chunk of N MB takes under a write load, its throughput, and
//! the latency spike the writing client sees while it runs (the critical section blocks writes to the range).
//!
//! For each size: a fresh cluster of two one-member shards and a router; a range-sharded collection whose one
//! chunk holds N MB of ~1 KB documents on the first shard; one client inserting into that chunk through the
//! router throughout (closed loop, one connection); `moveChunk` of the whole chunk to the second shard. The
//! table compares the client's latency before the migration with its latency while it ran, and shows the
//! donor's per-step times from `config.changelog` (`moveChunk.from`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bson::{Bson, Document, doc};
use faultline_engine::wire::client::Connection;
use serde::Serialize;

use super::setup;
use super::stats::{Latencies, Percentiles, table};
use crate::cluster::wire;
use crate::input::Whole;

/// Flags of `faultline bench migration`.
#[derive(clap::Args, Debug)]
pub struct MigrationArgs {
    /// Chunk sizes to move, in MB, comma-separated, 1 to 512.
    #[arg(long, value_delimiter = ',', default_value = "1,10", allow_hyphen_values = true, value_parser = SIZE_MB.parser::<u64>())]
    pub size_mb: Vec<u64>,
    /// How long the client writes before the migration starts (its baseline latency), e.g. 2s.
    #[arg(long, default_value = "2s", allow_hyphen_values = true)]
    pub baseline: String,
    /// Store root.
    #[arg(long, default_value = setup::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Print the summary as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

const SIZE_MB: Whole = Whole {
    what: "chunk size in MB",
    min: 1,
    max: 512,
    why: "",
};

/// One document's padding: with its `_id` and field names, about 1 KB.
const PAD_BYTES: usize = 1000;
/// Documents per insert while loading.
const LOAD_BATCH: u64 = 1000;
const NS: &str = "faultline_bench.migration";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// One size's result.
#[derive(Debug, Clone, Serialize)]
pub struct MoveResult {
    pub size_mb: u64,
    pub documents: u64,
    pub migration_ms: f64,
    pub mb_per_sec: f64,
    /// The writer's latency before the migration.
    pub baseline: Percentiles,
    /// The writer's latency while `moveChunk` ran.
    pub during: Percentiles,
    /// The donor's per-step milliseconds (`config.changelog` `moveChunk.from`).
    pub steps_ms: Vec<(String, f64)>,
    pub load_1m: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MigrationSummary {
    benchmark: &'static str,
    results: Vec<MoveResult>,
    load_average: Option<[f64; 3]>,
    store: PathBuf,
}

/// Runs the benchmark; returns the exit code.
pub async fn run(args: &MigrationArgs) -> anyhow::Result<i32> {
    let baseline = setup::parse_duration("--baseline", &args.baseline)?;
    let dir = setup::run_dir(&args.store, "migration")?;
    eprintln!("faultline bench migration: store {}", dir.display());
    let mut results = Vec::new();
    for &size_mb in &args.size_mb {
        eprint!("  {size_mb} MB ... ");
        let result = measure(&dir.join(format!("move-{size_mb}mb")), size_mb, baseline).await?;
        eprintln!("{:.0} ms", result.migration_ms);
        results.push(result);
    }
    let summary = MigrationSummary {
        benchmark: "migration",
        results,
        load_average: setup::load_average(),
        store: dir.clone(),
    };
    let text = summary_text(&summary);
    setup::write_summary(&dir, &summary, &text)?;
    setup::print_summary(args.json, &summary, &text)?;
    Ok(0)
}

async fn measure(dir: &std::path::Path, size_mb: u64, baseline: Duration) -> anyhow::Result<MoveResult> {
    let mut cluster =
        crate::sharded::ShardedCluster::start_on_free_ports(dir, 2, 1, setup::FIRST_PRIMARY_TIMEOUT).await?;
    let router = cluster.routers.first().context("no router")?.port;
    let admin = |body: Document| async move { wire::command_ok(router, body, COMMAND_TIMEOUT).await };
    admin(doc! {"shardCollection": NS, "key": {"_id": 1}, "$db": "admin"})
        .await
        .context("cannot shard the benchmark's collection")?;
    let documents = size_mb * 1024 * 1024 / (PAD_BYTES as u64 + 24);
    let (db, coll) = NS.split_once('.').context("namespace")?;
    let pad = "x".repeat(PAD_BYTES);
    let mut conn = Connection::connect(&format!("127.0.0.1:{router}"), Duration::from_secs(5)).await?;
    for start in (0..documents).step_by(LOAD_BATCH as usize) {
        let batch: Vec<Bson> = (start..(start + LOAD_BATCH).min(documents))
            .map(|i| Bson::Document(doc! {"_id": i as i64, "pad": &pad}))
            .collect();
        conn.command(&doc! {"insert": coll, "documents": batch, "$db": db}, COMMAND_TIMEOUT)
            .await
            .context("cannot load the chunk")?;
    }
    let (donor, recipient) = owner_and_other(router).await?;

    // The writer: closed-loop single inserts into the moving chunk, each timed, until `stop`.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writer = tokio::spawn({
        let stop = stop.clone();
        let pad = pad.clone();
        async move {
            let mut samples: Vec<(Duration, Duration)> = Vec::new();
            let Ok(mut conn) = Connection::connect(&format!("127.0.0.1:{router}"), Duration::from_secs(5)).await else {
                return samples;
            };
            let mut id = 1_000_000_000_i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let at = started.elapsed();
                let body =
                    doc! {"insert": "migration", "documents": [{"_id": id, "pad": &pad}], "$db": "faultline_bench"};
                if conn.command(&body, Duration::from_secs(60)).await.is_ok() {
                    samples.push((at, started.elapsed() - at));
                }
            }
            samples
        }
    });
    tokio::time::sleep(baseline).await;
    let move_start = started.elapsed();
    admin(
        doc! {"moveChunk": NS, "bounds": [{"_id": Bson::MinKey}, {"_id": Bson::MaxKey}], "to": &recipient,
        "$db": "admin"},
    )
    .await
    .with_context(|| format!("moveChunk {donor} → {recipient} failed"))?;
    let move_end = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let samples = writer.await.unwrap_or_default();
    let (mut before, mut during) = (Latencies::new(), Latencies::new());
    for (at, took) in samples {
        let bucket = if at < move_start {
            &mut before
        } else if at < move_end {
            &mut during
        } else {
            continue;
        };
        bucket.record_ns(took.as_nanos() as u64);
    }
    let steps_ms = donor_steps(router).await.unwrap_or_default();
    cluster.shutdown(Duration::from_secs(10)).await;
    let secs = (move_end - move_start).as_secs_f64();
    Ok(MoveResult {
        size_mb,
        documents,
        migration_ms: secs * 1000.0,
        mb_per_sec: size_mb as f64 / secs.max(1e-9),
        baseline: before.summary(),
        during: during.summary(),
        steps_ms,
        load_1m: setup::load_average().map(|l| l[0]),
    })
}

/// The shard that owns the collection's one chunk, and another shard.
async fn owner_and_other(router: u16) -> anyhow::Result<(String, String)> {
    let chunks = crate::nemesis::sharded::read_chunks(router, NS).await?;
    let owner = chunks
        .first()
        .and_then(|c| c.get_str("shard").ok())
        .context("no chunk")?
        .to_string();
    let other = if owner == "shard1" { "shard2" } else { "shard1" };
    Ok((owner, other.to_string()))
}

/// The per-step times of the last `moveChunk.from` changelog entry (`step N of M` keys, in ms).
async fn donor_steps(router: u16) -> anyhow::Result<Vec<(String, f64)>> {
    let reply = wire::command_ok(
        router,
        doc! {"find": "changelog", "filter": {"what": "moveChunk.from"}, "sort": {"time": -1}, "limit": 1,
        "$db": "config"},
        Duration::from_secs(10),
    )
    .await?;
    let entry = crate::nemesis::sharded::first_batch(&reply)
        .into_iter()
        .next()
        .context("no moveChunk.from in config.changelog")?;
    let details = entry.get_document("details")?;
    Ok(details
        .iter()
        .filter(|(k, _)| k.starts_with("step"))
        .filter_map(|(k, v)| faultline_engine::bsonx::as_i64(v).map(|ms| (k.clone(), ms as f64)))
        .collect())
}

fn summary_text(summary: &MigrationSummary) -> String {
    let header: Vec<String> = [
        "chunk MB",
        "docs",
        "moveChunk ms",
        "MB/s",
        "writer p50 before",
        "p50 during",
        "p99 during",
        "max during",
        "donor steps (ms)",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = summary
        .results
        .iter()
        .map(|r| {
            let steps: Vec<String> = r.steps_ms.iter().map(|(k, v)| format!("{k}: {v:.0}")).collect();
            vec![
                r.size_mb.to_string(),
                r.documents.to_string(),
                format!("{:.0}", r.migration_ms),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.2}", r.baseline.p50_ms),
                format!("{:.2}", r.during.p50_ms),
                format!("{:.2}", r.during.p99_ms),
                format!("{:.2}", r.during.max_ms),
                steps.join(", "),
            ]
        })
        .collect();
    format!(
        "faultline bench migration: one client inserting into the moving chunk (latency in ms); {}\n{}",
        setup::describe_load(summary.load_average),
        table(&header, &rows)
    )
}

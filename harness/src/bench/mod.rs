//! `faultline bench`: measurements against a fresh local replica set (ARCHITECTURE §5).
//!
//! - `replication-lag` ([`lag`]): a paced write load; when each write becomes visible in each member's oplog,
//!   and what `replSetGetStatus` says the lag is.
//! - `failover` ([`failover`]): kill, pause or isolate the primary repeatedly; time to a new primary and to
//!   the first successful majority write.
//! - `throughput` ([`throughput`]): closed-loop inserts; ops/s and latency against nodes, clients, `w`, `j`.
//! - `migration` ([`migration`]): moving a chunk of N MB under a write load; duration, MB/s, the writer's
//!   latency spike.
//!
//! Every benchmark writes into `store/bench-<name>/<timestamp>/`: `summary.json`, `summary.txt` (the table)
//! and `plots/`. Shared pieces: [`setup`] (cluster, store, load average), [`stats`] (hdrhistogram
//! percentiles and tables), [`oplog`] (a tailable oplog cursor on one member), [`progress`].

pub mod client;
pub mod failover;
pub mod lag;
pub mod migration;
pub mod oplog;
pub mod progress;
pub mod setup;
pub mod stats;
pub mod throughput;

use anyhow::Context as _;

use crate::cluster::registry;

/// `faultline bench <kind>`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// Which benchmark to run.
#[derive(clap::Subcommand, Debug)]
pub enum BenchKind {
    /// How long writes take to become visible on each secondary (oplog) and what rs.status() reports.
    ReplicationLag(lag::LagArgs),
    /// Time to a new primary and to the first majority write after the primary fails.
    Failover(failover::FailoverArgs),
    /// Insert throughput and latency against nodes, clients, write concern and journaling.
    Throughput(throughput::ThroughputArgs),
    /// Moving a chunk of N MB between shards under a write load: duration, MB/s, the client's latency spike.
    Migration(migration::MigrationArgs),
}

/// Runs a benchmark; returns the exit code (0, or 255 through an error).
pub fn run(args: &BenchArgs) -> anyhow::Result<i32> {
    registry::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        tokio::spawn(async {
            faultline::support::signals::interrupted().await;
            eprintln!("\ninterrupted: stopping the benchmark");
            registry::kill_all();
            std::process::exit(130);
        });
        match &args.kind {
            BenchKind::ReplicationLag(a) => lag::run(a).await,
            BenchKind::Failover(a) => failover::run(a).await,
            BenchKind::Throughput(a) => throughput::run(a).await,
            BenchKind::Migration(a) => migration::run(a).await,
        }
    });
    registry::kill_all();
    outcome
}

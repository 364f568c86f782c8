//! `faultline cluster`: a local replica set in one command — start, initiate, wait for a primary, print the
//! URI and a status line per member, run until Ctrl-C (or SIGTERM), then shut every member down.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::cluster::{Cluster, ClusterSpec, registry};

/// Flags of `faultline cluster`.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Data-bearing members.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Arbiters (vote, hold no data).
    #[arg(long, default_value_t = 0)]
    pub arbiters: usize,
    /// Port of the first member; the others use the next ports.
    #[arg(long, default_value_t = 27017)]
    pub base_port: u16,
    /// Directory for the members' data and logs (`<dir>/nodes/<n>/`).
    #[arg(long, default_value = "faultline-cluster")]
    pub dir: PathBuf,
    /// Replica-set name.
    #[arg(long = "replSet", default_value = "rs0")]
    pub repl_set: String,
    /// How long to wait for a primary.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
}

/// Runs the cluster until interrupted; returns the exit code.
pub fn run(args: &ClusterArgs) -> anyhow::Result<i32> {
    if args.nodes == 0 || args.nodes + args.arbiters > 50 {
        return Err(crate::UsageError("--nodes must be 1..=50 (with the arbiters)".into()).into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(args));
    registry::kill_all();
    result
}

async fn serve(args: &ClusterArgs) -> anyhow::Result<i32> {
    let bin = std::env::current_exe().context("cannot find the faultline binary")?;
    let dir = std::path::absolute(&args.dir).context("bad --dir")?;
    let mut spec = ClusterSpec::new(bin, dir, args.nodes);
    spec.arbiters = args.arbiters;
    spec.base_port = Some(args.base_port);
    spec.repl_set = args.repl_set.clone();
    // A tutorial cluster needs no fault proxies: members talk to each other directly.
    spec.proxies = false;
    let mut cluster = tokio::select! {
        cluster = start(spec, Duration::from_secs(args.wait_secs)) => cluster?,
        _ = interrupted() => return Ok(130),
    };
    println!("replica set {} is up", cluster.spec.repl_set);
    println!("  uri: {}", cluster.uri());
    for line in cluster.status_lines().await {
        println!("  {line}");
    }
    println!("  data and logs: {}", cluster.spec.dir.join("nodes").display());
    println!("press Ctrl-C to stop");
    interrupted().await;
    println!("stopping {} members...", cluster.members.len());
    cluster.shutdown(Duration::from_secs(10)).await;
    Ok(0)
}

async fn start(spec: ClusterSpec, wait: Duration) -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(spec).await?;
    if !cluster.is_initiated().await {
        cluster.initiate().await?;
    }
    cluster.wait_primary(wait).await?;
    Ok(cluster)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

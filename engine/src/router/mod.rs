//! `faultline mongos`: a stateless query router. Clients connect to it as to MongoDB's mongos; it loads the
//! cluster's metadata from the config servers and sends each request to the shards that own its data, so the
//! cluster looks like one database.
//!
//! ```text
//! options      mongos' flags and YAML keys (--configdb, sharding.configDB, net.*, systemLog.*)
//! rs_client    a client of one replica set: find and follow its primary, pooled connections; config reads
//!              with majority read concern, writes with w: "majority"
//! catalog      the metadata cache: shards, databases (primary shard), routing tables; dropped on StaleConfig
//! conn         one client connection: frames in, replies out (OP_MSG, and OP_QUERY for old handshakes)
//! commands     dispatch on the command name; the handshake (hello as mongos: msg "isdbgrid", no setName),
//!              buildInfo, ping, getCmdLineOpts, ...
//! cluster      cluster commands: addShard, listShards, enableSharding, shardCollection, getShardMap,
//!              flushRouterConfig, balancerStatus/Start/Stop (`migrate`: moveChunk, moveRange; `move_primary`:
//!              movePrimary); metadata documents in MongoDB's shapes
//! route/       CRUD through the router: insert by shard key, find/count targeted or scatter-gather, other
//!              commands of unsharded collections to the database's primary shard; every request to a shard
//!              carries `shardVersion`, and a StaleConfig answer refreshes the table and retries
//! cursors      cursors on the router: one shard's cursor passed through, or a merged result served in batches
//! ```
//!
//! Boundaries: the router holds no data and nothing it cannot reload; what it knows of the cluster comes
//! from the config servers (`catalog`), what it decides comes from the pure core in `shard/`. Shard members
//! check versions themselves (`shardsvr/`), so a router with an old table is told so and never writes to a
//! shard that no longer owns the chunk.

mod catalog;
mod cluster;
mod commands;
mod conn;
mod cursors;
mod distribution;
mod migrate;
mod move_primary;
pub mod options;
mod route;
pub mod rs_client;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, Instant};

use bson::{doc, oid::ObjectId};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use catalog::{Catalog, collection_routing};
pub(crate) use cluster::now_timestamp;
pub use cluster::{changelog_on, commit_split};
pub use options::RouterOptions;

use crate::command::ClusterClock;
use crate::error::{Error, Result};
use rs_client::{ReplicaSetClient, write_majority};

/// How often a router records itself in `config.mongos`.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// One router's state.
pub struct Router {
    pub options: RouterOptions,
    /// The greatest cluster time seen from clients, shards and config servers: passed on with every request
    /// to them and returned with every reply (as mongos gossips it).
    pub cluster_time: Arc<ClusterClock>,
    pub catalog: Catalog,
    pub cursors: cursors::Cursors,
    pub started: Instant,
    pub connections: AtomicI64,
    /// Requests routed again after a shard answered StaleConfig (`serverStatus.shardingStatistics`).
    pub stale_retries: AtomicU64,
    /// The router's fail point (`routerIgnoresStaleConfig`), set with `configureFailPoint`.
    pub failpoints: crate::failpoint::FailPoints,
}

/// Runs a router until `shutdown` completes.
pub async fn run(options: RouterOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    options.validate()?;
    let config_db = options
        .config_db
        .clone()
        .ok_or_else(|| Error::bad_value("no --configdb"))?;
    let mut listeners = Vec::new();
    for addr in options.bind_addrs()? {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::new((18, "SocketException"), format!("cannot listen on {addr}: {e}")))?;
        tracing::info!(%addr, "mongos waiting for connections");
        listeners.push(listener);
    }
    let cluster_time = Arc::new(ClusterClock::default());
    let router = Arc::new(Router {
        catalog: Catalog::new(Arc::new(ReplicaSetClient::new(config_db, cluster_time.clone()))),
        cluster_time,
        cursors: cursors::Cursors::default(),
        started: Instant::now(),
        connections: AtomicI64::new(0),
        stale_retries: AtomicU64::new(0),
        failpoints: crate::failpoint::FailPoints::new(crate::clock::Clock::new()),
        options,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let pinger = tokio::spawn(ping_loop(router.clone()));
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        accept_tasks.push(tokio::spawn(conn::accept_loop(
            listener,
            router.clone(),
            stop_rx.clone(),
        )));
    }
    shutdown.await;
    tracing::info!("mongos shutting down");
    let _ = stop_tx.send(true);
    pinger.abort();
    for task in accept_tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Makes sure `config.version` exists (the first router to start writes the cluster id) and records this
/// router in `config.mongos` every [`PING_INTERVAL`], as `sh.status()` lists active routers from there.
async fn ping_loop(router: Arc<Router>) {
    let config = router.catalog.config();
    let mut version_written = false;
    loop {
        if !version_written {
            let insert = doc! {"insert": "version", "documents": [{"_id": 1, "clusterId": ObjectId::new()}],
            "$db": "config"};
            match write_majority(config, insert).await {
                Ok(_) => version_written = true,
                Err(err) if err.code == 11000 => version_written = true,
                Err(err) => tracing::debug!(error = %err, "cannot write config.version yet"),
            }
        }
        let host = router.options.self_host();
        let ping = doc! {
            "update": "mongos",
            "updates": [{"q": {"_id": &host}, "u": {"$set": {
                "ping": bson::DateTime::now(),
                "up": router.started.elapsed().as_secs() as i64,
                "waiting": true,
                "mongoVersion": crate::command::VERSION,
                "advisoryHostFQDNs": [],
            }}, "upsert": true}],
            "$db": "config",
        };
        if let Err(err) = write_majority(config, ping).await {
            tracing::debug!(error = %err, "cannot record this router in config.mongos");
        }
        tokio::time::sleep(if version_written {
            PING_INTERVAL
        } else {
            Duration::from_millis(500)
        })
        .await;
    }
}

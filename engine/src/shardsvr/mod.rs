//! A shard member's side of versioned routing: it knows which shard it is and where the config servers
//! are (its shard identity, written by `addShard`), keeps the version of each collection it has been asked
//! about (what it owns, read from the config servers), and refuses a request whose `shardVersion` disagrees
//! with StaleConfig (13388), so a router with old metadata can never read or write through it by mistake.
//!
//! ```text
//! request with shardVersion V for ns ─▶ cached version W of ns on this shard (read from config if absent)
//!      V and W name the same incarnation and the same major version ─▶ run the command
//!      otherwise: refresh W from the config servers; still different ─▶ StaleConfig {ns, vReceived: V,
//!      vWanted: W, shardId}; the router refreshes and retries
//! ```
//!
//! Commands: `_addShard {shardIdentity}` (from a router's `addShard`: stores the identity with w: majority,
//! in `admin.faultline.shardIdentity`, since `admin.system.version` is a read-only view in this engine) and
//! `_flushRoutingTableCacheUpdates: "db.c"` (re-read a collection's metadata now; migrations' donor and
//! recipient call it when ownership changes). Only members started with `--shardsvr` check versions; the
//! minor version is not compared (a split does not move data), as in MongoDB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{Bson, Document, doc};

use crate::command::Context;
use crate::error::{Error, Result};
use crate::member::write_concern::{WriteConcern, WriteMode};
use crate::options::ClusterRole;
use crate::router::collection_routing;
use crate::router::rs_client::{ReplicaSetClient, SeedList};
use crate::shard::{ChunkVersion, code};
use crate::storage::Namespace;

/// Where the shard identity document is kept.
const IDENTITY_DB: &str = "admin";
const IDENTITY_COLLECTION: &str = "faultline.shardIdentity";

/// Who this shard is, from its identity document.
#[derive(Clone)]
struct ShardIdentity {
    shard_name: String,
    config: Arc<ReplicaSetClient>,
}

/// A shard member's sharding state.
#[derive(Default)]
pub struct ShardingState {
    identity: Mutex<Option<ShardIdentity>>,
    /// This shard's version of each collection it was asked about (unsharded: all zeros).
    versions: Mutex<HashMap<String, ChunkVersion>>,
    /// Metadata refreshes from the config servers, and StaleConfig answers given.
    refreshes: AtomicU64,
    stale_answers: AtomicU64,
}

impl ShardingState {
    /// `{refreshes, staleConfigAnswers}` for `serverStatus`-like reporting and tests.
    pub fn statistics(&self) -> Document {
        doc! {
            "countRefreshes": self.refreshes.load(Ordering::Relaxed) as i64,
            "countStaleConfigErrors": self.stale_answers.load(Ordering::Relaxed) as i64,
        }
    }
}

/// Checks a request's `shardVersion` (if any) on a shard member before the command runs.
pub async fn check_shard_version(ctx: &Context<'_>) -> Result<()> {
    let Some(received) = ctx.body.get("shardVersion") else {
        return Ok(());
    };
    if ctx.node.options().cluster_role != ClusterRole::ShardServer {
        return Ok(());
    }
    let received = ChunkVersion::from_bson(received)
        .ok_or_else(|| Error::type_mismatch("shardVersion must be {e: ObjectId, t: Timestamp, v: Timestamp}"))?;
    let coll = ctx.body.get_str(&ctx.name).unwrap_or_default();
    let ns = format!("{}.{coll}", ctx.db);
    let state = &ctx.node.sharding;
    let wanted = version_of(ctx, &ns, false).await?;
    if compatible(&received, &wanted) {
        return Ok(());
    }
    let wanted = version_of(ctx, &ns, true).await?;
    if compatible(&received, &wanted) {
        return Ok(());
    }
    state.stale_answers.fetch_add(1, Ordering::Relaxed);
    let shard = identity(ctx)?.shard_name;
    Err(Error::new(
        code::STALE_CONFIG,
        format!("version mismatch detected for {ns}: the router sent {received}, this shard ({shard}) has {wanted}"),
    )
    .with_extra(doc! {
        "ns": &ns, "vReceived": received.to_document(), "vWanted": wanted.to_document(), "shardId": shard,
    }))
}

/// Same incarnation and same major version (or both unsharded).
fn compatible(received: &ChunkVersion, wanted: &ChunkVersion) -> bool {
    received.same_collection(wanted) && received.major == wanted.major
}

/// This shard's version of `ns`: cached, or read from the config servers (`refresh`: always read).
async fn version_of(ctx: &Context<'_>, ns: &str, refresh: bool) -> Result<ChunkVersion> {
    let state = &ctx.node.sharding;
    if !refresh && let Some(version) = lock(&state.versions).get(ns) {
        return Ok(*version);
    }
    let identity = identity(ctx)?;
    state.refreshes.fetch_add(1, Ordering::Relaxed);
    let version = match collection_routing(&identity.config, ns).await? {
        Some(table) => table.shard_version(&identity.shard_name),
        None => ChunkVersion::unsharded(),
    };
    lock(&state.versions).insert(ns.to_string(), version);
    Ok(version)
}

/// The shard identity, read from storage the first time.
fn identity(ctx: &Context<'_>) -> Result<ShardIdentity> {
    let state = &ctx.node.sharding;
    if let Some(identity) = lock(&state.identity).clone() {
        return Ok(identity);
    }
    let snapshot = ctx.node.storage.snapshot()?;
    let ns = Namespace::new(IDENTITY_DB, IDENTITY_COLLECTION);
    let stored = match snapshot.collection(&ns)? {
        Some(meta) => snapshot.get_by_id(&meta, &Bson::String("shardIdentity".into()))?,
        None => None,
    };
    let stored = stored.ok_or_else(|| {
        Error::new(
            code::SHARDING_STATE_NOT_INITIALIZED,
            "Cannot accept sharding commands if sharding state has not been initialized with a shardIdentity \
             document (add this replica set to a cluster with addShard first)",
        )
    })?;
    let identity = identity_of(&stored)?;
    *lock(&state.identity) = Some(identity.clone());
    Ok(identity)
}

fn identity_of(stored: &Document) -> Result<ShardIdentity> {
    let shard_name = stored
        .get_str("shardName")
        .map_err(|_| Error::bad_value("shardIdentity.shardName must be a string"))?;
    let config = stored
        .get_str("configsvrConnectionString")
        .map_err(|_| Error::bad_value("shardIdentity.configsvrConnectionString must be a string"))?;
    Ok(ShardIdentity {
        shard_name: shard_name.to_string(),
        config: Arc::new(ReplicaSetClient::new(SeedList::parse(config)?)),
    })
}

/// The shard members' internal sharding commands; `None` when `name` is not one of them.
pub async fn command(ctx: &Context<'_>) -> Option<Result<Document>> {
    match ctx.name.as_str() {
        "_addShard" => Some(add_shard(ctx).await),
        "_flushRoutingTableCacheUpdates" | "_flushRoutingTableCacheUpdatesWithWriteConcern" => Some(flush(ctx).await),
        _ => None,
    }
}

fn require_shard(ctx: &Context<'_>) -> Result<()> {
    if ctx.node.options().cluster_role != ClusterRole::ShardServer {
        return Err(Error::new(
            code::SHARDING_STATE_NOT_INITIALIZED,
            format!("{} can only be run on a member started with --shardsvr", ctx.name),
        ));
    }
    Ok(())
}

/// `_addShard {shardIdentity: {shardName, clusterId, configsvrConnectionString}}`.
async fn add_shard(ctx: &Context<'_>) -> Result<Document> {
    require_shard(ctx)?;
    ctx.require_admin()?;
    let given = ctx
        .body
        .get_document("shardIdentity")
        .map_err(|_| Error::failed_to_parse("_addShard needs a shardIdentity document"))?;
    let identity = identity_of(given)?;
    if let Ok(existing) = self::identity(ctx)
        && existing.shard_name != identity.shard_name
    {
        return Err(Error::new(
            code::OPERATION_FAILED,
            format!(
                "this replica set is already shard {} of a cluster; it cannot become shard {}",
                existing.shard_name, identity.shard_name
            ),
        ));
    }
    ctx.node.member.check_writable(IDENTITY_DB)?;
    let mut document = doc! {"_id": "shardIdentity"};
    for (key, value) in given {
        if key != "_id" {
            document.insert(key.clone(), value.clone());
        }
    }
    let ns = Namespace::new(IDENTITY_DB, IDENTITY_COLLECTION);
    ctx.node
        .storage
        .write(true, move |w| {
            let meta = w.ensure_collection(&ns)?;
            match w.get_by_id(&meta, &Bson::String("shardIdentity".into()))? {
                Some(before) => w.replace(&meta, &before, document, None),
                None => w.insert(&meta, document, None),
            }
        })
        .await??;
    let optime = ctx.node.storage.positions().last_written;
    let majority = WriteConcern {
        w: WriteMode::Majority,
        j: false,
        wtimeout: Some(Duration::from_secs(30)),
    };
    if let Some(error) = ctx.node.member.wait_for_write_concern(optime, &majority).await {
        return Ok(doc! {"writeConcernError": error});
    }
    *lock(&ctx.node.sharding.identity) = Some(identity);
    lock(&ctx.node.sharding.versions).clear();
    Ok(Document::new())
}

/// `_flushRoutingTableCacheUpdates: "db.c"`: re-read the collection's metadata now.
async fn flush(ctx: &Context<'_>) -> Result<Document> {
    require_shard(ctx)?;
    let ns = ctx
        .body
        .get_str(&ctx.name)
        .map_err(|_| Error::type_mismatch(format!("{} takes a namespace", ctx.name)))?
        .to_string();
    let version = version_of(ctx, &ns, true).await?;
    Ok(doc! {"version": version.to_document()})
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

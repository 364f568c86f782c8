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
//! Ownership changes (a migration's commit, `migration/`; or the tests' handover) happen under a *critical section*
//! on the donor: `_enterCriticalSection: "db.c"` makes new versioned requests for the collection wait and
//! waits for those already running to finish, so nothing the donor accepted under the old version can land
//! after the config servers name the new owner; `_flushRoutingTableCacheUpdates` then re-reads the metadata
//! and ends the critical section, and the waiting requests are checked against the new version.
//!
//! Commands: `_addShard {shardIdentity}` (from a router's `addShard`: stores the identity with w: majority,
//! in `admin.faultline.shardIdentity`, since `admin.system.version` is a read-only view in this engine) and
//! `_flushRoutingTableCacheUpdates: "db.c"` (re-read a collection's metadata now; migrations' donor and
//! recipient call it when ownership changes). Only members started with `--shardsvr` check versions; the
//! minor version is not compared (a split does not move data), as in MongoDB.
//!
//! A versioned `find` (and the `getMore`s of its cursor) returns only documents of chunks this shard owns
//! (`orphans.rs`), so a scatter read through a router never sees orphans (documents left behind, or planted).

mod database;
mod orphans;
mod split_vector;

pub use orphans::filter_orphans;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{Bson, Document, doc};
use tokio::sync::watch;

use crate::command::Context;
use crate::error::{Error, Result};
use crate::member::write_concern::{WriteConcern, WriteMode};
use crate::node::Node;
use crate::options::ClusterRole;
use crate::router::collection_routing;
use crate::router::rs_client::{ReplicaSetClient, SeedList};
use crate::shard::{ChunkVersion, RoutingTable, code};
use crate::storage::Namespace;

/// Where the shard identity document is kept.
const IDENTITY_DB: &str = "admin";
const IDENTITY_COLLECTION: &str = "faultline.shardIdentity";

/// Who this shard is, from its identity document.
#[derive(Clone)]
pub(crate) struct ShardIdentity {
    pub(crate) shard_name: String,
    pub(crate) config: Arc<ReplicaSetClient>,
}

/// A shard member's sharding state.
pub struct ShardingState {
    identity: Mutex<Option<ShardIdentity>>,
    /// This shard's version of each collection it was asked about (unsharded: all zeros).
    versions: Mutex<HashMap<String, ChunkVersion>>,
    /// The routing table of each sharded collection among those, read with its version (what it owns).
    tables: Mutex<HashMap<String, Arc<RoutingTable>>>,
    /// Cursors of versioned finds whose batches are filtered, and their collections.
    filtered_cursors: Mutex<HashMap<i64, orphans::FilteredCursor>>,
    /// Metadata refreshes from the config servers, and StaleConfig answers given.
    refreshes: AtomicU64,
    stale_answers: AtomicU64,
    /// Collections in a critical section: versioned requests wait.
    critical: Mutex<HashSet<String>>,
    /// Versioned requests running, per collection.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Bumped whenever a critical section ends or a versioned request finishes.
    changes: watch::Sender<u64>,
    /// The migrations this member takes part in (donor or recipient), `migration/`.
    pub(crate) migrations: crate::migration::Migrations,
    /// The databases' primary shards and versions, and `movePrimary` critical sections (`database.rs`).
    databases: database::DatabasePlacement,
}

impl Default for ShardingState {
    fn default() -> ShardingState {
        ShardingState {
            identity: Mutex::default(),
            versions: Mutex::default(),
            tables: Mutex::default(),
            filtered_cursors: Mutex::default(),
            refreshes: AtomicU64::default(),
            stale_answers: AtomicU64::default(),
            critical: Mutex::default(),
            in_flight: Mutex::default(),
            changes: watch::channel(0).0,
            migrations: Default::default(),
            databases: Default::default(),
        }
    }
}

/// A versioned request that passed the check and is running; the collection's critical section waits for
/// it to end.
pub struct VersionedRequest<'a> {
    state: &'a ShardingState,
    /// The collection (`db.c`) and, for an unsharded one, its database (`db`): each one's critical section
    /// waits for this request.
    keys: Vec<String>,
}

impl Drop for VersionedRequest<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.state.in_flight);
        for key in &self.keys {
            if let Some(count) = in_flight.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    in_flight.remove(key);
                }
            }
        }
        drop(in_flight);
        self.state.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How long a request waits for a critical section to end before it is refused.
const CRITICAL_SECTION_WAIT: Duration = Duration::from_secs(30);

impl ShardingState {
    /// `{refreshes, staleConfigAnswers}` for `serverStatus`-like reporting and tests.
    pub fn statistics(&self) -> Document {
        doc! {
            "countRefreshes": self.refreshes.load(Ordering::Relaxed) as i64,
            "countStaleConfigErrors": self.stale_answers.load(Ordering::Relaxed) as i64,
        }
    }
}

/// Checks a request's `shardVersion` (if any) on a shard member before the command runs; hold the returned
/// guard while the command runs.
pub async fn check_shard_version<'a>(ctx: &Context<'a>) -> Result<Option<VersionedRequest<'a>>> {
    let Some(received) = ctx.body.get("shardVersion") else {
        return Ok(None);
    };
    if ctx.node.options().cluster_role != ClusterRole::ShardServer {
        return Ok(None);
    }
    let received = ChunkVersion::from_bson(received)
        .ok_or_else(|| Error::type_mismatch("shardVersion must be {e: ObjectId, t: Timestamp, v: Timestamp}"))?;
    let coll = ctx.body.get_str(&ctx.name).unwrap_or_default();
    let ns = format!("{}.{coll}", ctx.db);
    let state = &ctx.node.sharding;
    // An unsharded collection's request also names the database's version: checked first (movePrimary).
    let database = match ctx.body.get_document("databaseVersion") {
        Ok(version) if received.is_unsharded() => {
            Some(database::check_database_version(ctx.node, &ctx.db, version).await?)
        }
        _ => None,
    };
    let wanted = loop {
        wait_out_critical_section(state, &ns).await?;
        let mut wanted = version_of(ctx.node, &ns, false).await?;
        if !compatible(&received, &wanted) {
            wanted = version_of(ctx.node, &ns, true).await?;
        }
        if !compatible(&received, &wanted) {
            break wanted;
        }
        // Registered first, then the critical section looked at: a handover that began meanwhile either sees
        // this request running (and waits for it) or is seen here (and this request waits for it).
        let mut running = state.begin(&ns);
        if !state.in_critical_section(&ns) {
            if let Some(mut database) = database {
                running.keys.append(&mut database.keys);
            }
            return Ok(Some(running));
        }
    };
    state.stale_answers.fetch_add(1, Ordering::Relaxed);
    let shard = identity(ctx.node)?.shard_name;
    Err(Error::new(
        code::STALE_CONFIG,
        format!("version mismatch detected for {ns}: the router sent {received}, this shard ({shard}) has {wanted}"),
    )
    .with_extra(doc! {
        "ns": &ns, "vReceived": received.to_document(), "vWanted": wanted.to_document(), "shardId": shard,
    }))
}

impl ShardingState {
    /// Registers a running versioned request (the caller then checks that no critical section began).
    fn begin(&self, ns: &str) -> VersionedRequest<'_> {
        *lock(&self.in_flight).entry(ns.to_string()).or_default() += 1;
        VersionedRequest {
            state: self,
            keys: vec![ns.to_string()],
        }
    }

    fn in_critical_section(&self, ns: &str) -> bool {
        lock(&self.critical).contains(ns)
    }
}

/// Waits while `ns` is in a critical section (at most [`CRITICAL_SECTION_WAIT`]).
async fn wait_out_critical_section(state: &ShardingState, ns: &str) -> Result<()> {
    let mut changes = state.changes.subscribe();
    let deadline = tokio::time::Instant::now() + CRITICAL_SECTION_WAIT;
    while state.in_critical_section(ns) {
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return Err(Error::new(
                code::STALE_CONFIG,
                format!("{ns} stayed in a migration critical section for {CRITICAL_SECTION_WAIT:?}"),
            ));
        }
    }
    Ok(())
}

/// Same incarnation and same major version (or both unsharded).
fn compatible(received: &ChunkVersion, wanted: &ChunkVersion) -> bool {
    received.same_collection(wanted) && received.major == wanted.major
}

/// This shard's version of `ns`: cached, or read from the config servers (`refresh`: always read). It is
/// the *collection* version (see the module header): every migration's commit bumps it, so a router that
/// has not seen a commit is refused by both shards of the migration.
pub(crate) async fn version_of(node: &Node, ns: &str, refresh: bool) -> Result<ChunkVersion> {
    let state = &node.sharding;
    if !refresh && let Some(version) = lock(&state.versions).get(ns) {
        return Ok(*version);
    }
    let identity = identity(node)?;
    state.refreshes.fetch_add(1, Ordering::Relaxed);
    let table = collection_routing(&identity.config, ns).await?;
    let version = match &table {
        Some(table) => table.collection_version(),
        None => ChunkVersion::unsharded(),
    };
    match table {
        Some(table) => lock(&state.tables).insert(ns.to_string(), Arc::new(table)),
        None => lock(&state.tables).remove(ns),
    };
    lock(&state.versions).insert(ns.to_string(), version);
    Ok(version)
}

/// The shard identity, read from storage the first time.
pub(crate) fn identity(node: &Node) -> Result<ShardIdentity> {
    let state = &node.sharding;
    if let Some(identity) = lock(&state.identity).clone() {
        return Ok(identity);
    }
    let snapshot = node.storage.snapshot()?;
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
        config: Arc::new(ReplicaSetClient::new(SeedList::parse(config)?, Arc::default())),
    })
}

/// The shard members' internal sharding commands; `None` when `name` is not one of them.
pub async fn command(ctx: &Context<'_>) -> Option<Result<Document>> {
    match ctx.name.as_str() {
        "_addShard" => Some(add_shard(ctx).await),
        "_flushRoutingTableCacheUpdates" | "_flushRoutingTableCacheUpdatesWithWriteConcern" => Some(flush(ctx).await),
        name if crate::migration::is_command(name) => Some(crate::migration::command(ctx).await),
        "dataSize" | "datasize" => Some(split_vector::data_size(ctx)),
        "splitVector" => Some(split_vector::split_vector(ctx)),
        name if name.starts_with("_shardsvrMovePrimary") || name.starts_with("_flushDatabaseCacheUpdates") => {
            database::command(ctx).await
        }
        "_enterCriticalSection" if ctx.node.options().enable_test_commands() => Some(enter_critical_section(ctx).await),
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
    if let Ok(existing) = self::identity(ctx.node)
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
    let refreshed = version_of(ctx.node, &ns, true).await;
    // The critical section ends even when the refresh failed: the waiting requests then refresh themselves.
    ctx.node.sharding.leave_critical_section(&ns);
    Ok(doc! {"version": refreshed?.to_document()})
}

/// `_enterCriticalSection: "db.c"` (a test command, the first step of a handover on the donor): new
/// versioned requests for the collection wait, and this returns once the running ones have finished.
async fn enter_critical_section(ctx: &Context<'_>) -> Result<Document> {
    require_shard(ctx)?;
    let ns = ctx
        .body
        .get_str(&ctx.name)
        .map_err(|_| Error::type_mismatch(format!("{} takes a namespace", ctx.name)))?
        .to_string();
    ctx.node.sharding.enter_critical_section(&ns).await?;
    Ok(Document::new())
}

impl ShardingState {
    /// Puts `ns` in a critical section: new versioned requests wait; returns once the running ones have
    /// finished (ConflictingOperationInProgress, and no critical section, if they do not in time).
    pub(crate) async fn enter_critical_section(&self, ns: &str) -> Result<()> {
        lock(&self.critical).insert(ns.to_string());
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + CRITICAL_SECTION_WAIT;
        while lock(&self.in_flight).get(ns).copied().unwrap_or(0) > 0 {
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                self.leave_critical_section(ns);
                return Err(Error::new(
                    code::CONFLICTING_OPERATION_IN_PROGRESS,
                    format!("requests on {ns} did not finish within {CRITICAL_SECTION_WAIT:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Ends `ns`'s critical section (if any): the waiting requests are checked again.
    pub(crate) fn leave_critical_section(&self, ns: &str) {
        if lock(&self.critical).remove(ns) {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

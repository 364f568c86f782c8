//! The router's cache of the cluster's metadata, loaded from the config servers on demand: the shards
//! (`config.shards`, each with a [`ReplicaSetClient`]), the databases and their primary shards
//! (`config.databases`), and each collection's routing table (`config.collections` + `config.chunks`).
//!
//! Nothing here is authoritative: an entry is dropped when a shard answers StaleConfig (or on
//! `flushRouterConfig`) and read again. [`collection_routing`] is also used by shard members, which read the
//! same documents to learn what they own.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bson::{Bson, Document, doc};

use super::rs_client::{ReplicaSetClient, SeedList, find_all};
use crate::error::{Error, Result};
use crate::shard::{Chunk, RoutingTable, ShardKeyPattern, code};

/// A shard as the router knows it.
pub struct ShardEntry {
    pub id: String,
    /// `config.shards.host`: `set/h1:p1,...`.
    pub host: String,
    /// `config.shards.draining`: being removed (`removeShard`); gets no new databases or chunks.
    pub draining: bool,
    pub client: Arc<ReplicaSetClient>,
}

/// A database's placement.
#[derive(Debug, Clone)]
pub struct DatabaseEntry {
    pub name: String,
    pub primary: String,
    /// `config.databases.version` (`{uuid, timestamp, lastMod}`).
    pub version: Document,
}

/// The cache.
pub struct Catalog {
    config: Arc<ReplicaSetClient>,
    shards: Mutex<BTreeMap<String, Arc<ShardEntry>>>,
    databases: Mutex<HashMap<String, DatabaseEntry>>,
    collections: Mutex<HashMap<String, Option<Arc<RoutingTable>>>>,
}

impl Catalog {
    pub fn new(config: Arc<ReplicaSetClient>) -> Catalog {
        Catalog {
            config,
            shards: Mutex::new(BTreeMap::new()),
            databases: Mutex::new(HashMap::new()),
            collections: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ReplicaSetClient {
        &self.config
    }

    /// Forgets everything (`flushRouterConfig`).
    pub fn flush(&self) {
        lock(&self.shards).clear();
        lock(&self.databases).clear();
        lock(&self.collections).clear();
    }

    /// Forgets one collection's routing (after a StaleConfig).
    pub fn invalidate_collection(&self, ns: &str) {
        lock(&self.collections).remove(ns);
    }

    /// Forgets one database's placement.
    pub fn invalidate_database(&self, db: &str) {
        lock(&self.databases).remove(db);
    }

    /// Every shard, read again from `config.shards`.
    pub async fn reload_shards(&self) -> Result<Vec<Arc<ShardEntry>>> {
        let docs = find_all(&self.config, "config", "shards", doc! {}, Some(doc! {"_id": 1})).await?;
        let mut fresh = BTreeMap::new();
        {
            let known = lock(&self.shards);
            for shard in docs {
                let (Ok(id), Ok(host)) = (shard.get_str("_id"), shard.get_str("host")) else {
                    continue;
                };
                let client = match known.get(id) {
                    Some(entry) if entry.host == host => entry.client.clone(),
                    _ => Arc::new(ReplicaSetClient::new(
                        SeedList::parse(host)?,
                        self.config.clock().clone(),
                    )),
                };
                let entry = Arc::new(ShardEntry {
                    id: id.to_string(),
                    host: host.to_string(),
                    draining: shard.get_bool("draining").unwrap_or(false),
                    client,
                });
                fresh.insert(id.to_string(), entry);
            }
        }
        let list = fresh.values().cloned().collect();
        *lock(&self.shards) = fresh;
        Ok(list)
    }

    /// One shard by id, reading `config.shards` when it is not cached.
    pub async fn shard(&self, id: &str) -> Result<Arc<ShardEntry>> {
        if let Some(entry) = lock(&self.shards).get(id) {
            return Ok(entry.clone());
        }
        self.reload_shards()
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::new(code::SHARD_NOT_FOUND, format!("Shard {id} not found")))
    }

    /// A database's placement, or `None` if the cluster has no such database.
    pub async fn database(&self, name: &str) -> Result<Option<DatabaseEntry>> {
        if let Some(entry) = lock(&self.databases).get(name) {
            return Ok(Some(entry.clone()));
        }
        let docs = find_all(&self.config, "config", "databases", doc! {"_id": name}, None).await?;
        let Some(found) = docs.first() else {
            return Ok(None);
        };
        let entry = DatabaseEntry {
            name: name.to_string(),
            primary: found.get_str("primary").unwrap_or_default().to_string(),
            version: found.get_document("version").cloned().unwrap_or_default(),
        };
        lock(&self.databases).insert(name.to_string(), entry.clone());
        Ok(Some(entry))
    }

    /// A collection's routing table, or `None` when it is not sharded.
    pub async fn collection(&self, ns: &str) -> Result<Option<Arc<RoutingTable>>> {
        if let Some(entry) = lock(&self.collections).get(ns) {
            return Ok(entry.clone());
        }
        let table = collection_routing(&self.config, ns).await?.map(Arc::new);
        lock(&self.collections).insert(ns.to_string(), table.clone());
        Ok(table)
    }
}

/// Reads a collection's routing table from the config servers (`None`: not sharded). A metadata change
/// written in several steps (chunks replaced one document at a time) may be read half-way, when the chunks do
/// not tile the key space: that read is retried a few times before it is an error.
pub async fn collection_routing(config: &ReplicaSetClient, ns: &str) -> Result<Option<RoutingTable>> {
    let mut attempt = 0;
    loop {
        match read_routing(config, ns).await {
            Err(err) if err.code == crate::error::code::INTERNAL_ERROR.0 && attempt < INCONSISTENT_READ_RETRIES => {
                attempt += 1;
                tracing::debug!(%ns, error = %err, "chunks read mid-change; reading again");
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            other => return other,
        }
    }
}

/// How many times a read of chunks that do not tile the key space is retried.
const INCONSISTENT_READ_RETRIES: usize = 10;

async fn read_routing(config: &ReplicaSetClient, ns: &str) -> Result<Option<RoutingTable>> {
    let collections = find_all(config, "config", "collections", doc! {"_id": ns}, None).await?;
    let Some(collection) = collections.into_iter().next() else {
        return Ok(None);
    };
    if collection.get_bool("dropped").unwrap_or(false) {
        return Ok(None);
    }
    let broken = |what: &str| Error::internal(format!("config.collections entry of {ns} has no valid {what}"));
    let pattern = ShardKeyPattern::parse(collection.get_document("key").map_err(|_| broken("key"))?)?;
    let uuid = match collection.get("uuid") {
        Some(Bson::Binary(uuid)) => uuid.clone(),
        _ => return Err(broken("uuid")),
    };
    let epoch = collection
        .get_object_id("lastmodEpoch")
        .map_err(|_| broken("lastmodEpoch"))?;
    let timestamp = collection.get_timestamp("timestamp").map_err(|_| broken("timestamp"))?;
    let names = pattern.names();
    let docs = find_all(
        config,
        "config",
        "chunks",
        doc! {"uuid": Bson::Binary(uuid.clone())},
        None,
    )
    .await?;
    let mut chunks = Vec::with_capacity(docs.len());
    for chunk in &docs {
        chunks.push(
            Chunk::from_document(chunk, &names)
                .ok_or_else(|| Error::internal(format!("a config.chunks entry of {ns} is malformed: {chunk}")))?,
        );
    }
    RoutingTable::new(ns.to_string(), pattern, uuid, epoch, timestamp, chunks).map(Some)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

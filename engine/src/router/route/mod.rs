//! CRUD through the router.
//!
//! - `insert`: each document goes to the shard owning its shard key's chunk (a document without `_id` gets
//!   one here, as mongos does); ordered inserts are sent as consecutive runs per shard and stop at the first
//!   error, unordered ones as one batch per shard. Statement ids (`stmtIds`) follow the documents, so a
//!   retryable write split over shards, or re-sent after StaleConfig, runs each statement at most once.
//! - `find` and `count`: a filter that targets one shard is passed through (its cursor stays on the shard);
//!   otherwise every owning shard is asked and the results merged here (sort, skip, limit, projection after
//!   the sort), and the rest served from a router cursor.
//! - `aggregate` on a sharded collection: the leading per-document stages (`$match`, `$project`, ...) run on
//!   the owning shards, the rest of the pipeline on the router over their results; `distinct` merges each
//!   shard's values.
//! - `update` and `delete` on a sharded collection, statement by statement, as MongoDB 7.0 targets them: by
//!   the shard key (an upsert needs equality on the whole key: 61 otherwise), a single-document write without
//!   the key by `_id` on every shard (neither: 72), multi-document writes on every owning shard; an update
//!   that would change a document's shard key is refused (66). `findAndModify` needs equality on the key.
//! - Any other command of an unsharded collection, or of a database, goes to the database's primary shard.
//!   Other commands on a sharded collection are refused for now.
//!
//! Every request to a shard carries `shardVersion` (the routing table's version for that shard, or the
//! unsharded version) and, for unsharded collections, `databaseVersion`. A StaleConfig answer drops the cached
//! metadata; the request is routed again from fresh metadata, at most [`MAX_STALE_RETRIES`] times.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};

use super::Router;
use super::catalog::{DatabaseEntry, ShardEntry};
use super::cluster::ensure_database;
use super::cursors::RouterCursor;
use super::distribution::owned_documents;
use super::rs_client::error_of_reply;
use crate::error::{Error, Result, code};
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::shard::{self, ChunkVersion, RoutingTable, target_filter};
use crate::wire::client::reply_ok;

mod forward;
mod insert;
mod reads;
mod writes;

use forward::*;
use insert::*;
use reads::*;
use writes::*;

/// How many times one request is routed again after StaleConfig answers.
pub const MAX_STALE_RETRIES: usize = 10;

/// Where a collection's documents are.
enum Placement {
    /// The cluster has no such database.
    Missing,
    Unsharded(DatabaseEntry, Arc<ShardEntry>),
    Sharded(Arc<RoutingTable>),
}

pub async fn run(router: &Router, name: &str, db: &str, body: &Document) -> Result<Document> {
    match name {
        "insert" => insert(router, db, body).await,
        "find" => find(router, db, body).await,
        "count" => count(router, db, body).await,
        "getMore" => get_more(router, body).await,
        "killCursors" => kill_cursors(router, body).await,
        "update" | "delete" | "findAndModify" | "findandmodify" => {
            let coll = body.get_str(name).unwrap_or_default();
            match router.catalog.collection(&format!("{db}.{coll}")).await? {
                Some(_) if name == "update" || name == "delete" => write_statements(router, db, coll, name, body).await,
                Some(_) => find_and_modify(router, db, coll, name, body).await,
                None => forward(router, name, db, body).await,
            }
        }
        "aggregate" | "distinct" => {
            let coll = body.get_str(name).unwrap_or_default();
            match router.catalog.collection(&format!("{db}.{coll}")).await? {
                Some(_) if name == "aggregate" => aggregate(router, db, coll, body).await,
                Some(_) => distinct(router, db, coll, body).await,
                None => forward(router, name, db, body).await,
            }
        }
        _ => forward(router, name, db, body).await,
    }
}

/// Commands on the `config` database run on the config servers' primary.
pub async fn to_config_servers(router: &Router, body: &Document) -> Result<Document> {
    router.catalog.config().run(body).await
}

async fn placement(router: &Router, db: &str, coll: &str, create: bool) -> Result<Placement> {
    let database = if create {
        Some(ensure_database(router, db, None).await?)
    } else {
        router.catalog.database(db).await?
    };
    let Some(database) = database else {
        return Ok(Placement::Missing);
    };
    if let Some(table) = router.catalog.collection(&format!("{db}.{coll}")).await? {
        return Ok(Placement::Sharded(table));
    }
    let shard = router.catalog.shard(&database.primary).await?;
    Ok(Placement::Unsharded(database, shard))
}

/// `body` with the version the router believes the shard has.
fn versioned(body: &Document, version: &ChunkVersion, database: Option<&DatabaseEntry>) -> Document {
    let mut body = body.clone();
    body.insert("shardVersion", version.to_document());
    if let Some(database) = database {
        body.insert("databaseVersion", database.version.clone());
    }
    body
}

/// Whether a shard said the router's metadata is stale (StaleConfig, StaleDbVersion).
fn is_stale(reply: &Document) -> bool {
    let code = reply.get("code").and_then(crate::bsonx::as_i64).unwrap_or(0) as i32;
    code == shard::code::STALE_CONFIG.0 || code == shard::code::STALE_DB_VERSION.0
}

/// Drops what the router believed about `db`/`ns` and counts the retry.
fn note_stale(router: &Router, db: &str, ns: &str, reply: &Document) {
    router.stale_retries.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%ns, reply = %reply, "stale routing metadata; refreshing");
    router.catalog.invalidate_collection(ns);
    router.catalog.invalidate_database(db);
}

fn still_stale(ns: &str) -> Error {
    Error::new(
        shard::code::STALE_CONFIG,
        format!("the routing metadata of {ns} was still stale after {MAX_STALE_RETRIES} refreshes"),
    )
}

fn collection<'a>(body: &'a Document, name: &str) -> Result<&'a str> {
    body.get_str(name)
        .map_err(|_| Error::new(code::INVALID_NAMESPACE, format!("{name} needs a collection name")))
}

/// The shards whose chunks a target touches, in key order, each once.
fn shards_for(table: &RoutingTable, filter: &Document) -> Vec<String> {
    let mut shards: Vec<String> = Vec::new();
    for chunk in table.chunks_for(&target_filter(&table.pattern, filter)) {
        if !shards.contains(&chunk.shard) {
            shards.push(chunk.shard.clone());
        }
    }
    shards
}

/// A merged write count as mongod and mongos send it: a 32-bit integer (saturating; no batch comes near).
fn write_count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

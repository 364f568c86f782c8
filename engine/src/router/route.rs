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
use super::rs_client::error_of_reply;
use crate::error::{Error, Result, code};
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::shard::{self, ChunkVersion, RoutingTable, target_filter};
use crate::wire::client::reply_ok;

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

// ---------------------------------------------------------------------------------------------- insert

/// What an insert has done so far.
#[derive(Default)]
struct InsertOutcome {
    n: i64,
    write_errors: Vec<Document>,
    write_concern_error: Option<Document>,
    /// An ordered insert met an error: nothing after it runs.
    stopped: bool,
}

impl InsertOutcome {
    /// Takes in a shard's reply to the documents `indices` (positions in the client's batch).
    fn merge(&mut self, reply: &Document, indices: &[usize], ordered: bool) {
        self.n += reply.get("n").and_then(crate::bsonx::as_i64).unwrap_or(0);
        if let Ok(errors) = reply.get_array("writeErrors") {
            for error in errors.iter().filter_map(Bson::as_document) {
                let local = error.get("index").and_then(crate::bsonx::as_i64).unwrap_or(0) as usize;
                let mut error = error.clone();
                error.insert("index", indices.get(local).copied().unwrap_or(local) as i32);
                self.write_errors.push(error);
            }
            if ordered && !errors.is_empty() {
                self.stopped = true;
            }
        }
        if self.write_concern_error.is_none()
            && let Ok(error) = reply.get_document("writeConcernError")
        {
            self.write_concern_error = Some(error.clone());
        }
    }

    fn reply(mut self) -> Document {
        let mut reply = doc! {"n": self.n};
        if !self.write_errors.is_empty() {
            self.write_errors
                .sort_by_key(|e| e.get("index").and_then(crate::bsonx::as_i64).unwrap_or(0));
            reply.insert("writeErrors", self.write_errors);
        }
        if let Some(error) = self.write_concern_error {
            reply.insert("writeConcernError", error);
        }
        reply
    }
}

async fn insert(router: &Router, db: &str, body: &Document) -> Result<Document> {
    let coll = collection(body, "insert")?;
    let ns = format!("{db}.{coll}");
    let documents = insert_documents(body)?;
    let job = InsertJob {
        body,
        ordered: body.get_bool("ordered").unwrap_or(true),
        statements: statement_ids(body, documents.len()),
        documents,
    };
    let ordered = job.ordered;
    let mut outcome = InsertOutcome::default();
    let mut pending: Vec<usize> = (0..job.documents.len()).collect();
    for _ in 0..=MAX_STALE_RETRIES {
        if pending.is_empty() || outcome.stopped {
            return Ok(outcome.reply());
        }
        match placement(router, db, coll, true).await? {
            Placement::Missing => return Err(Error::internal(format!("database {db} was not created"))),
            Placement::Unsharded(database, shard) => {
                let part = job.part(&pending);
                let reply = shard
                    .client
                    .run(&versioned(&part, &ChunkVersion::unsharded(), Some(&database)))
                    .await?;
                if is_stale(&reply) {
                    note_stale(router, db, &ns, &reply);
                    continue;
                }
                if !reply_ok(&reply) {
                    return Ok(reply);
                }
                outcome.merge(&reply, &pending, ordered);
                pending.clear();
            }
            Placement::Sharded(table) => {
                let batches = job.batches(&table, &pending, &mut outcome);
                pending = job.send(router, &table, batches, &mut outcome).await?;
                if !pending.is_empty() {
                    note_stale(router, db, &ns, &doc! {"insert": &ns});
                }
            }
        }
    }
    if pending.is_empty() || outcome.stopped {
        Ok(outcome.reply())
    } else {
        Err(still_stale(&ns))
    }
}

/// The client's documents, each with an `_id` (generated first in the document when missing).
fn insert_documents(body: &Document) -> Result<Vec<Document>> {
    let documents = body
        .get_array("documents")
        .map_err(|_| Error::failed_to_parse("BSON field 'insert.documents' is missing but a required field"))?;
    documents
        .iter()
        .map(|d| match d {
            Bson::Document(d) if d.contains_key("_id") => Ok(d.clone()),
            Bson::Document(d) => {
                let mut with_id = doc! {"_id": ObjectId::new()};
                with_id.extend(d.clone());
                Ok(with_id)
            }
            _ => Err(Error::type_mismatch("insert.documents must be an array of documents")),
        })
        .collect()
}

/// Each document's statement id: the client's `stmtIds`, or `stmtId + i`, or `i`.
fn statement_ids(body: &Document, count: usize) -> Vec<i32> {
    if let Ok(ids) = body.get_array("stmtIds") {
        return ids
            .iter()
            .map(|v| crate::bsonx::as_i64(v).unwrap_or(0) as i32)
            .collect();
    }
    let first = body.get("stmtId").and_then(crate::bsonx::as_i64).unwrap_or(0) as i32;
    (0..count as i32).map(|i| first + i).collect()
}

/// One client insert command being routed: its documents (each with an `_id`) and their statement ids.
struct InsertJob<'a> {
    body: &'a Document,
    documents: Vec<Document>,
    statements: Vec<i32>,
    ordered: bool,
}

impl InsertJob<'_> {
    /// The insert command for the documents `indices`, with their statement ids when it is a retryable write.
    fn part(&self, indices: &[usize]) -> Document {
        let (body, documents, statements) = (self.body, &self.documents, &self.statements);
        let mut part = Document::new();
        for (key, value) in body {
            if !matches!(key.as_str(), "documents" | "stmtIds" | "stmtId") {
                part.insert(key.clone(), value.clone());
            }
        }
        part.insert(
            "documents",
            indices
                .iter()
                .map(|&i| Bson::Document(documents[i].clone()))
                .collect::<Vec<_>>(),
        );
        if body.contains_key("txnNumber") {
            part.insert(
                "stmtIds",
                indices
                    .iter()
                    .map(|&i| Bson::Int32(statements.get(i).copied().unwrap_or(i as i32)))
                    .collect::<Vec<_>>(),
            );
        }
        part
    }

    /// Groups the pending documents by owning shard: consecutive runs when ordered, one batch per shard
    /// otherwise. A document whose key cannot be extracted is a write error (and stops an ordered insert there).
    fn batches(
        &self,
        table: &RoutingTable,
        pending: &[usize],
        outcome: &mut InsertOutcome,
    ) -> Vec<(String, Vec<usize>)> {
        let (documents, ordered) = (&self.documents, self.ordered);
        let mut batches: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in pending {
            let shard = match table.pattern.extract(&documents[i]) {
                Ok(key) => table.chunk_for(&key).shard.clone(),
                Err(err) => {
                    outcome.write_errors.push(err.to_write_error(i));
                    if ordered {
                        outcome.stopped = true;
                        break;
                    }
                    continue;
                }
            };
            let existing = if ordered {
                batches.last_mut().filter(|(s, _)| *s == shard)
            } else {
                batches.iter_mut().find(|(s, _)| *s == shard)
            };
            match existing {
                Some((_, indices)) => indices.push(i),
                None => batches.push((shard, vec![i])),
            }
        }
        batches
    }

    /// Sends the batches; returns the documents to route again (their shard answered StaleConfig).
    async fn send(
        &self,
        router: &Router,
        table: &RoutingTable,
        batches: Vec<(String, Vec<usize>)>,
        outcome: &mut InsertOutcome,
    ) -> Result<Vec<usize>> {
        let ordered = self.ordered;
        // An ordered insert that met a bad key still sends the documents before it, then stops.
        let stop_after = outcome.stopped;
        outcome.stopped = false;
        let mut again = Vec::new();
        for (k, (shard_id, indices)) in batches.iter().enumerate() {
            let shard = router.catalog.shard(shard_id).await?;
            let part = self.part(indices);
            let reply = shard
                .client
                .run(&versioned(&part, &table.shard_version(shard_id), None))
                .await?;
            if is_stale(&reply) {
                if ordered {
                    again.extend(batches[k..].iter().flat_map(|(_, i)| i.iter().copied()));
                    break;
                }
                again.extend(indices.iter().copied());
                continue;
            }
            if !reply_ok(&reply) {
                let error = error_of_reply(&reply);
                outcome
                    .write_errors
                    .extend(indices.iter().map(|&i| error.to_write_error(i)));
                if ordered {
                    outcome.stopped = true;
                    return Ok(Vec::new());
                }
                continue;
            }
            outcome.merge(&reply, indices, ordered);
            if outcome.stopped {
                return Ok(Vec::new());
            }
        }
        outcome.stopped = stop_after && again.is_empty();
        again.sort_unstable();
        Ok(again)
    }
}

// ---------------------------------------------------------------------------------------------- reads

fn empty_cursor(ns: &str) -> Document {
    doc! {"cursor": {"firstBatch": [], "id": 0_i64, "ns": ns}}
}

/// A shard's cursor reply with the shard's cursor id swapped for a router cursor id.
fn adopt_remote(router: &Router, mut reply: Document, shard: &Arc<ShardEntry>, db: &str, coll: &str) -> Document {
    if !reply_ok(&reply) {
        return reply;
    }
    if let Ok(cursor) = reply.get_document_mut("cursor") {
        let remote = cursor.get_i64("id").unwrap_or(0);
        if remote != 0 {
            let id = router.cursors.open(RouterCursor::Remote {
                shard: shard.clone(),
                db: db.to_string(),
                collection: coll.to_string(),
                id: remote,
            });
            cursor.insert("id", id);
        }
    }
    reply
}

async fn find(router: &Router, db: &str, body: &Document) -> Result<Document> {
    let coll = collection(body, "find")?;
    let ns = format!("{db}.{coll}");
    for _ in 0..=MAX_STALE_RETRIES {
        let (shard, request) = match placement(router, db, coll, false).await? {
            Placement::Missing => return Ok(empty_cursor(&ns)),
            Placement::Unsharded(database, shard) => {
                let request = versioned(body, &ChunkVersion::unsharded(), Some(&database));
                (shard, request)
            }
            Placement::Sharded(table) => {
                let filter = body.get_document("filter").cloned().unwrap_or_default();
                let shards = shards_for(&table, &filter);
                if shards.len() != 1 {
                    match merged_find(router, &table, &shards, db, body).await? {
                        Some(reply) => return Ok(reply),
                        None => {
                            note_stale(router, db, &ns, body);
                            continue;
                        }
                    }
                }
                let shard = router.catalog.shard(&shards[0]).await?;
                let request = versioned(body, &table.shard_version(&shards[0]), None);
                (shard, request)
            }
        };
        let reply = shard.client.run(&request).await?;
        if is_stale(&reply) {
            note_stale(router, db, &ns, &reply);
            continue;
        }
        return Ok(adopt_remote(router, reply, &shard, db, coll));
    }
    Err(still_stale(&ns))
}

/// Every document a shard returns for `request`, following its cursor to the end. `None`: StaleConfig.
async fn drain(shard: &ShardEntry, db: &str, coll: &str, request: &Document) -> Result<Option<Vec<Document>>> {
    let mut reply = shard.client.run(request).await?;
    if is_stale(&reply) {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        if !reply_ok(&reply) {
            return Err(error_of_reply(&reply));
        }
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| Error::internal(format!("shard {} answered find without a cursor", shard.id)))?;
        let batch = cursor
            .get_array("firstBatch")
            .or_else(|_| cursor.get_array("nextBatch"))
            .map_err(|_| Error::internal(format!("shard {} answered find without a batch", shard.id)))?;
        out.extend(batch.iter().filter_map(|d| d.as_document().cloned()));
        let id = cursor.get_i64("id").unwrap_or(0);
        if id == 0 {
            return Ok(Some(out));
        }
        reply = shard
            .client
            .run(&doc! {"getMore": id, "collection": coll, "$db": db})
            .await?;
    }
}

/// A find over several shards, merged here. `None`: a shard answered StaleConfig.
async fn merged_find(
    router: &Router,
    table: &RoutingTable,
    shards: &[String],
    db: &str,
    body: &Document,
) -> Result<Option<Document>> {
    let coll = collection(body, "find")?;
    let ns = format!("{db}.{coll}");
    let sort = body.get_document("sort").ok().filter(|s| !s.is_empty()).cloned();
    let projection = body.get_document("projection").ok().filter(|p| !p.is_empty()).cloned();
    let skip = body.get("skip").and_then(crate::bsonx::as_i64).unwrap_or(0).max(0) as usize;
    let limit_arg = body.get("limit").and_then(crate::bsonx::as_i64).unwrap_or(0);
    let limit = limit_arg.unsigned_abs() as usize;
    let single_batch = body.get_bool("singleBatch").unwrap_or(false) || limit_arg < 0;
    let batch_size = body
        .get("batchSize")
        .and_then(crate::bsonx::as_i64)
        .map(|b| b.max(0) as usize);
    let mut request = body.clone();
    for key in ["skip", "limit", "batchSize", "singleBatch"] {
        request.remove(key);
    }
    if limit > 0 {
        request.insert("limit", (skip + limit) as i64);
    }
    if sort.is_some() && projection.is_some() {
        // Sort on the full documents; project after.
        request.remove("projection");
    }
    let mut docs = Vec::new();
    for shard_id in shards {
        let shard = router.catalog.shard(shard_id).await?;
        match drain(
            &shard,
            db,
            coll,
            &versioned(&request, &table.shard_version(shard_id), None),
        )
        .await?
        {
            Some(part) => docs.extend(part),
            None => return Ok(None),
        }
    }
    if let Some(sort) = &sort {
        SortSpec::parse(sort)?.sort(&mut docs);
        if let Some(projection) = &projection {
            let projection = Projection::parse(projection)?;
            docs = docs
                .iter()
                .map(|d| projection.apply(d))
                .collect::<std::result::Result<_, _>>()?;
        }
    }
    let mut rest: VecDeque<Document> = docs.into_iter().skip(skip).collect();
    if limit > 0 {
        rest.truncate(limit);
    }
    let first: Vec<Document> = rest.drain(..batch_size.unwrap_or(101).min(rest.len())).collect();
    let id = if rest.is_empty() || single_batch {
        0
    } else {
        router.cursors.open(RouterCursor::Merged { ns: ns.clone(), rest })
    };
    Ok(Some(doc! {"cursor": {"firstBatch": first, "id": id, "ns": ns}}))
}

async fn count(router: &Router, db: &str, body: &Document) -> Result<Document> {
    let coll = collection(body, "count")?;
    let ns = format!("{db}.{coll}");
    'attempt: for _ in 0..=MAX_STALE_RETRIES {
        let table = match placement(router, db, coll, false).await? {
            Placement::Missing => return Ok(doc! {"n": 0_i64}),
            Placement::Unsharded(database, shard) => {
                let reply = shard
                    .client
                    .run(&versioned(body, &ChunkVersion::unsharded(), Some(&database)))
                    .await?;
                if is_stale(&reply) {
                    note_stale(router, db, &ns, &reply);
                    continue;
                }
                return Ok(reply);
            }
            Placement::Sharded(table) => table,
        };
        let query = body.get_document("query").cloned().unwrap_or_default();
        let skip = body.get("skip").and_then(crate::bsonx::as_i64).unwrap_or(0).max(0);
        let limit = body.get("limit").and_then(crate::bsonx::as_i64).unwrap_or(0).abs();
        let mut request = body.clone();
        request.remove("skip");
        request.remove("limit");
        let mut total = 0;
        for shard_id in shards_for(&table, &query) {
            let shard = router.catalog.shard(&shard_id).await?;
            let reply = shard
                .client
                .run(&versioned(&request, &table.shard_version(&shard_id), None))
                .await?;
            if is_stale(&reply) {
                note_stale(router, db, &ns, &reply);
                continue 'attempt;
            }
            if !reply_ok(&reply) {
                return Ok(reply);
            }
            total += reply.get("n").and_then(crate::bsonx::as_i64).unwrap_or(0);
        }
        let mut n = (total - skip).max(0);
        if limit > 0 {
            n = n.min(limit);
        }
        return Ok(doc! {"n": n});
    }
    Err(still_stale(&ns))
}

async fn get_more(router: &Router, body: &Document) -> Result<Document> {
    let id = body
        .get("getMore")
        .and_then(crate::bsonx::as_i64)
        .ok_or_else(|| Error::type_mismatch("getMore takes a cursor id"))?;
    let not_found = || Error::new(code::CURSOR_NOT_FOUND, format!("cursor id {id} not found"));
    let cursor = router.cursors.take(id).ok_or_else(not_found)?;
    match cursor {
        RouterCursor::Remote {
            shard,
            db,
            collection,
            id: remote,
        } => {
            let mut request = body.clone();
            request.insert("getMore", remote);
            request.insert("$db", db.clone());
            let mut reply = shard.client.run(&request).await?;
            if !reply_ok(&reply) {
                return Ok(reply);
            }
            if let Ok(cursor) = reply.get_document_mut("cursor") {
                let next = cursor.get_i64("id").unwrap_or(0);
                if next != 0 {
                    router.cursors.put_back(
                        id,
                        RouterCursor::Remote {
                            shard: shard.clone(),
                            db,
                            collection,
                            id: next,
                        },
                    );
                    cursor.insert("id", id);
                }
            }
            Ok(reply)
        }
        RouterCursor::Merged { ns, mut rest } => {
            let size = body
                .get("batchSize")
                .and_then(crate::bsonx::as_i64)
                .filter(|b| *b > 0)
                .map(|b| b as usize)
                .unwrap_or(rest.len());
            let batch: Vec<Document> = rest.drain(..size.min(rest.len())).collect();
            let next = if rest.is_empty() {
                0
            } else {
                router
                    .cursors
                    .put_back(id, RouterCursor::Merged { ns: ns.clone(), rest });
                id
            };
            Ok(doc! {"cursor": {"nextBatch": batch, "id": next, "ns": ns}})
        }
    }
}

async fn kill_cursors(router: &Router, body: &Document) -> Result<Document> {
    let ids = body
        .get_array("cursors")
        .map_err(|_| Error::failed_to_parse("BSON field 'killCursors.cursors' is missing but a required field"))?;
    let mut killed = Vec::new();
    let mut not_found = Vec::new();
    for id in ids.iter().filter_map(crate::bsonx::as_i64) {
        match router.cursors.take(id) {
            Some(RouterCursor::Remote {
                shard,
                db,
                collection,
                id: remote,
            }) => {
                let kill = doc! {"killCursors": collection, "cursors": [remote], "$db": db};
                if let Err(err) = shard.client.run(&kill).await {
                    tracing::debug!(error = %err, "cannot kill a shard's cursor");
                }
                killed.push(id);
            }
            Some(RouterCursor::Merged { .. }) => killed.push(id),
            None => not_found.push(id),
        }
    }
    Ok(doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []})
}

/// The stages a shard can run on its own documents before the merge: per-document stages only.
fn per_document(stage: &Document) -> bool {
    stage.keys().next().is_some_and(|name| {
        matches!(
            name.as_str(),
            "$match" | "$project" | "$addFields" | "$set" | "$unset" | "$unwind" | "$replaceRoot" | "$replaceWith"
        )
    })
}

/// `aggregate` on a sharded collection: the leading per-document stages run on every owning shard (targeted
/// by a leading `$match`), the rest of the pipeline on the router over what they return.
async fn aggregate(router: &Router, db: &str, coll: &str, body: &Document) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let stages: Vec<Document> = body
        .get_array("pipeline")
        .map_err(|_| Error::type_mismatch("aggregate.pipeline must be an array"))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch("each stage must be an object"))
        })
        .collect::<Result<_>>()?;
    let split = stages.iter().take_while(|s| per_document(s)).count();
    let (on_shards, on_router) = stages.split_at(split);
    let filter = on_shards
        .first()
        .and_then(|s| s.get_document("$match").ok())
        .cloned()
        .unwrap_or_default();
    let batch_size = body
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get("batchSize").and_then(crate::bsonx::as_i64))
        .map(|b| b.max(0) as usize)
        .unwrap_or(101);
    'attempt: for _ in 0..=MAX_STALE_RETRIES {
        let Some(table) = router.catalog.collection(&ns).await? else {
            return forward(router, "aggregate", db, body).await;
        };
        let mut request = body.clone();
        request.insert(
            "pipeline",
            on_shards.iter().cloned().map(Bson::Document).collect::<Vec<_>>(),
        );
        request.insert("cursor", doc! {});
        let mut docs = Vec::new();
        for shard_id in shards_for(&table, &filter) {
            let shard = router.catalog.shard(&shard_id).await?;
            match drain(
                &shard,
                db,
                coll,
                &versioned(&request, &table.shard_version(&shard_id), None),
            )
            .await?
            {
                Some(part) => docs.extend(part),
                None => {
                    note_stale(router, db, &ns, &request);
                    continue 'attempt;
                }
            }
        }
        let mut rest: VecDeque<Document> = crate::query::pipeline::run(on_router, docs, bson::DateTime::now())?.into();
        let first: Vec<Document> = rest.drain(..batch_size.min(rest.len())).collect();
        let id = if rest.is_empty() {
            0
        } else {
            router.cursors.open(RouterCursor::Merged { ns: ns.clone(), rest })
        };
        return Ok(doc! {"cursor": {"firstBatch": first, "id": id, "ns": ns}});
    }
    Err(still_stale(&ns))
}

/// `distinct` on a sharded collection: each owning shard's values, merged without duplicates.
async fn distinct(router: &Router, db: &str, coll: &str, body: &Document) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let query = body.get_document("query").cloned().unwrap_or_default();
    'attempt: for _ in 0..=MAX_STALE_RETRIES {
        let Some(table) = router.catalog.collection(&ns).await? else {
            return forward(router, "distinct", db, body).await;
        };
        let mut values: Vec<Bson> = Vec::new();
        for shard_id in shards_for(&table, &query) {
            let shard = router.catalog.shard(&shard_id).await?;
            let reply = shard
                .client
                .run(&versioned(body, &table.shard_version(&shard_id), None))
                .await?;
            if is_stale(&reply) {
                note_stale(router, db, &ns, &reply);
                continue 'attempt;
            }
            if !reply_ok(&reply) {
                return Ok(reply);
            }
            for value in reply.get_array("values").map(|v| v.to_vec()).unwrap_or_default() {
                if !values.iter().any(|v| crate::query::compare::bson_equal(v, &value)) {
                    values.push(value);
                }
            }
        }
        values.sort_by(crate::query::compare::compare_bson);
        return Ok(doc! {"values": values});
    }
    Err(still_stale(&ns))
}

// ---------------------------------------------------------------------------------------------- writes

/// Whether `filter` pins `_id` to one value.
fn has_id_equality(filter: &Document) -> bool {
    match filter.get("_id") {
        Some(Bson::Document(ops)) => ops.len() == 1 && ops.contains_key("$eq"),
        Some(Bson::Array(_) | Bson::RegularExpression(_)) | None => false,
        Some(_) => true,
    }
}

/// Refuses an update that could change a document's shard key (66 ImmutableField): an operator on a key
/// field (or on its parent or child), or a replacement whose key differs from the one the query pins.
fn check_key_unchanged(table: &RoutingTable, target: &shard::Target, update: &Bson) -> Result<()> {
    let immutable = |path: &str| {
        Error::new(
            (66, "ImmutableField"),
            format!(
                "Performing an update on the path '{path}' would modify the shard key {} of {}; changing a \
                 document's shard key is not supported by the Faultline router yet",
                table.pattern.to_document(),
                table.namespace
            ),
        )
    };
    let names = table.pattern.names();
    match update {
        Bson::Document(u) if u.keys().next().is_some_and(|k| k.starts_with('$')) => {
            for fields in u.values().filter_map(Bson::as_document) {
                for field in fields.keys() {
                    let touched = names.iter().find(|key| {
                        **key == field || key.starts_with(&format!("{field}.")) || field.starts_with(&format!("{key}."))
                    });
                    if let Some(key) = touched {
                        return Err(immutable(key));
                    }
                }
            }
            Ok(())
        }
        Bson::Document(replacement) => match target {
            shard::Target::Key(key) if table.pattern.extract(replacement)? == *key => Ok(()),
            _ => Err(immutable(names.first().copied().unwrap_or("?"))),
        },
        _ => Err(Error::new(
            code::ILLEGAL_OPERATION,
            "pipeline updates on a sharded collection are not supported by the Faultline router yet",
        )),
    }
}

/// The shards one update or delete statement goes to, by MongoDB 7.0's rules.
fn statement_shards(table: &RoutingTable, name: &str, statement: &Document) -> Result<Vec<String>> {
    let filter = statement.get_document("q").cloned().unwrap_or_default();
    let target = target_filter(&table.pattern, &filter);
    let single = if name == "update" {
        let update = statement.get("u").cloned().unwrap_or(Bson::Null);
        check_key_unchanged(table, &target, &update)?;
        if statement.get_bool("upsert").unwrap_or(false) && !matches!(target, shard::Target::Key(_)) {
            return Err(Error::new(
                shard::code::SHARD_KEY_NOT_FOUND,
                format!(
                    "Failed to target upsert by query :: could not extract exact shard key {} from {filter}",
                    table.pattern.to_document()
                ),
            ));
        }
        !statement.get_bool("multi").unwrap_or(false)
    } else {
        statement.get("limit").and_then(crate::bsonx::as_i64).unwrap_or(0) == 1
    };
    if single && !matches!(target, shard::Target::Key(_)) {
        if !has_id_equality(&filter) {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                format!(
                    "A single {name} on a sharded collection must contain an exact match on _id or the full shard key \
                     {}: {filter}",
                    table.pattern.to_document()
                ),
            ));
        }
        return Ok(table.shards().into_iter().collect());
    }
    Ok(shards_for(table, &filter))
}

/// `update` / `delete` on a sharded collection, one statement at a time (ordered: stop at the first error).
async fn write_statements(router: &Router, db: &str, coll: &str, name: &str, body: &Document) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let field = if name == "update" { "updates" } else { "deletes" };
    let statements: Vec<Document> = body
        .get_array(field)
        .map_err(|_| Error::failed_to_parse(format!("BSON field '{name}.{field}' is missing but a required field")))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch(format!("{field} must be documents")))
        })
        .collect::<Result<_>>()?;
    let ordered = body.get_bool("ordered").unwrap_or(true);
    let statement_ids = statement_ids(body, statements.len());
    let (mut n, mut modified) = (0_i64, 0_i64);
    let mut upserted = Vec::new();
    let mut write_errors = Vec::new();
    let mut write_concern_error = None;
    for (i, statement) in statements.iter().enumerate() {
        let mut part = Document::new();
        for (key, value) in body {
            if !matches!(key.as_str(), "updates" | "deletes" | "stmtIds" | "stmtId") {
                part.insert(key.clone(), value.clone());
            }
        }
        part.insert(field, vec![Bson::Document(statement.clone())]);
        if body.contains_key("txnNumber") {
            part.insert("stmtIds", vec![Bson::Int32(statement_ids[i])]);
        }
        let mut done: Vec<String> = Vec::new();
        let mut failure = None;
        'attempt: for attempt in 0..=MAX_STALE_RETRIES {
            let table =
                router.catalog.collection(&ns).await?.ok_or_else(|| {
                    Error::new(shard::code::NAMESPACE_NOT_SHARDED, format!("{ns} is no longer sharded"))
                })?;
            let shards = match statement_shards(&table, name, statement) {
                Ok(shards) => shards,
                Err(err) => {
                    failure = Some(err.to_write_error(i));
                    break;
                }
            };
            let pending: Vec<&String> = shards.iter().filter(|s| !done.contains(s)).collect();
            for shard_id in pending {
                let shard = router.catalog.shard(shard_id).await?;
                let reply = shard
                    .client
                    .run(&versioned(&part, &table.shard_version(shard_id), None))
                    .await?;
                if is_stale(&reply) {
                    note_stale(router, db, &ns, &reply);
                    if attempt == MAX_STALE_RETRIES {
                        failure = Some(still_stale(&ns).to_write_error(i));
                    }
                    continue 'attempt;
                }
                if !reply_ok(&reply) {
                    failure = Some(error_of_reply(&reply).to_write_error(i));
                    break 'attempt;
                }
                done.push(shard_id.clone());
                n += reply.get("n").and_then(crate::bsonx::as_i64).unwrap_or(0);
                modified += reply.get("nModified").and_then(crate::bsonx::as_i64).unwrap_or(0);
                for up in reply.get_array("upserted").map(|u| u.to_vec()).unwrap_or_default() {
                    if let Bson::Document(mut up) = up {
                        up.insert("index", i as i32);
                        upserted.push(up);
                    }
                }
                if let Some(Bson::Document(error)) = reply.get_array("writeErrors").ok().and_then(|e| e.first()) {
                    let mut error = error.clone();
                    error.insert("index", i as i32);
                    failure = Some(error);
                }
                if write_concern_error.is_none()
                    && let Ok(error) = reply.get_document("writeConcernError")
                {
                    write_concern_error = Some(error.clone());
                }
            }
            break;
        }
        if let Some(error) = failure {
            write_errors.push(error);
            if ordered {
                break;
            }
        }
    }
    let mut reply = doc! {"n": n};
    if name == "update" {
        reply.insert("nModified", modified);
        if !upserted.is_empty() {
            reply.insert("upserted", upserted);
        }
    }
    if !write_errors.is_empty() {
        reply.insert("writeErrors", write_errors);
    }
    if let Some(error) = write_concern_error {
        reply.insert("writeConcernError", error);
    }
    Ok(reply)
}

/// `findAndModify` on a sharded collection: the query must pin the whole shard key.
async fn find_and_modify(router: &Router, db: &str, coll: &str, name: &str, body: &Document) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let filter = body.get_document("query").cloned().unwrap_or_default();
    for _ in 0..=MAX_STALE_RETRIES {
        let Some(table) = router.catalog.collection(&ns).await? else {
            return forward(router, name, db, body).await;
        };
        let target = target_filter(&table.pattern, &filter);
        let shard::Target::Key(key) = &target else {
            return Err(Error::new(
                shard::code::SHARD_KEY_NOT_FOUND,
                format!(
                    "Query for sharded findAndModify must contain the shard key {}: {filter}",
                    table.pattern.to_document()
                ),
            ));
        };
        if let Some(update) = body.get("update") {
            check_key_unchanged(&table, &target, update)?;
        }
        let shard_id = table.chunk_for(key).shard.clone();
        let shard = router.catalog.shard(&shard_id).await?;
        let reply = shard
            .client
            .run(&versioned(body, &table.shard_version(&shard_id), None))
            .await?;
        if is_stale(&reply) {
            note_stale(router, db, &ns, &reply);
            continue;
        }
        return Ok(reply);
    }
    Err(still_stale(&ns))
}

// ---------------------------------------------------------------------------------------------- the rest

/// Other commands on a sharded collection: index changes and `drop` on every shard, index and statistics
/// reads on the shard owning the first chunk; anything else is refused for now.
async fn sharded_collection_command(
    router: &Router,
    name: &str,
    db: &str,
    table: &RoutingTable,
    body: &Document,
) -> Result<Document> {
    match name {
        "drop" => drop_sharded(router, table, body).await,
        "createIndexes" | "dropIndexes" | "deleteIndexes" => {
            if name == "createIndexes" {
                check_unique_indexes(table, body)?;
            }
            let mut first = None;
            for shard in router.catalog.reload_shards().await? {
                let reply = shard.client.run(body).await?;
                let missing =
                    reply.get("code").and_then(crate::bsonx::as_i64) == Some(i64::from(code::NAMESPACE_NOT_FOUND.0));
                if !reply_ok(&reply) && !missing {
                    return Ok(reply);
                }
                if first.is_none() && reply_ok(&reply) {
                    first = Some(reply);
                }
            }
            Ok(first.unwrap_or_default())
        }
        "listIndexes" | "collStats" | "validate" => {
            let owner = table.chunks().first().map(|c| c.shard.clone()).unwrap_or_default();
            let shard = router.catalog.shard(&owner).await?;
            let reply = shard.client.run(body).await?;
            Ok(match name {
                "listIndexes" => adopt_remote(router, reply, &shard, db, body.get_str(name).unwrap_or_default()),
                _ => reply,
            })
        }
        _ => Err(Error::new(
            code::ILLEGAL_OPERATION,
            format!(
                "{name} on the sharded collection {} is not supported by the Faultline router yet",
                table.namespace
            ),
        )),
    }
}

/// A unique index on a sharded collection must be prefixed by the shard key's fields (each shard can only
/// enforce uniqueness within its own chunks), as MongoDB requires (67 CannotCreateIndex otherwise).
fn check_unique_indexes(table: &RoutingTable, body: &Document) -> Result<()> {
    let names = table.pattern.names();
    for spec in body.get_array("indexes").map(|i| i.to_vec()).unwrap_or_default() {
        let Bson::Document(spec) = spec else { continue };
        if !spec.get("unique").is_some_and(crate::bsonx::truthy) {
            continue;
        }
        let key = spec.get_document("key").cloned().unwrap_or_default();
        let fields: Vec<&str> = key.keys().map(String::as_str).collect();
        let prefixed = fields.len() >= names.len() && fields[..names.len()] == names[..];
        if !prefixed && fields != ["_id"] {
            return Err(Error::new(
                (67, "CannotCreateIndex"),
                format!(
                    "cannot create unique index over {key} with shard key pattern {}",
                    table.pattern.to_document()
                ),
            ));
        }
    }
    Ok(())
}

/// `drop` of a sharded collection: its metadata first (routers stop routing to it), then its data on every
/// shard.
async fn drop_sharded(router: &Router, table: &RoutingTable, body: &Document) -> Result<Document> {
    let config = router.catalog.config();
    let ns = &table.namespace;
    super::rs_client::write_majority(
        config,
        doc! {"delete": "collections", "deletes": [{"q": {"_id": ns}, "limit": 1}], "$db": "config"},
    )
    .await?;
    super::rs_client::write_majority(
        config,
        doc! {"delete": "chunks", "deletes": [{"q": {"uuid": Bson::Binary(table.uuid.clone())}, "limit": 0}],
        "$db": "config"},
    )
    .await?;
    router.catalog.invalidate_collection(ns);
    super::cluster::changelog(router, "dropCollection", ns, Document::new()).await;
    for shard in router.catalog.reload_shards().await? {
        let reply = shard.client.run(body).await?;
        let missing = reply.get("code").and_then(crate::bsonx::as_i64) == Some(i64::from(code::NAMESPACE_NOT_FOUND.0));
        if !reply_ok(&reply) && !missing {
            return Ok(reply);
        }
    }
    Ok(doc! {"ns": ns})
}

/// `dropDatabase` through the router: its sharded collections, then the database on every shard, then its
/// entry in `config.databases`.
async fn drop_database(router: &Router, db: &str, body: &Document) -> Result<Document> {
    if router.catalog.database(db).await?.is_none() {
        return Ok(Document::new());
    }
    let config = router.catalog.config();
    let prefix = format!("^{}\\.", db.replace('.', "\\."));
    let sharded =
        super::rs_client::find_all(config, "config", "collections", doc! {"_id": {"$regex": prefix}}, None).await?;
    for collection in sharded {
        let Ok(ns) = collection.get_str("_id") else { continue };
        if let Some(table) = router.catalog.collection(ns).await? {
            let coll = ns.split_once('.').map(|(_, c)| c).unwrap_or_default();
            drop_sharded(router, &table, &doc! {"drop": coll, "$db": db}).await?;
        }
    }
    for shard in router.catalog.reload_shards().await? {
        let reply = shard.client.run(body).await?;
        if !reply_ok(&reply) {
            return Ok(reply);
        }
    }
    super::rs_client::write_majority(
        config,
        doc! {"delete": "databases", "deletes": [{"q": {"_id": db}, "limit": 1}], "$db": "config"},
    )
    .await?;
    router.catalog.invalidate_database(db);
    super::cluster::changelog(router, "dropDatabase", db, Document::new()).await;
    Ok(doc! {"dropped": db})
}

/// Commands that create a database when it does not exist yet.
fn creates_database(name: &str) -> bool {
    matches!(
        name,
        "create" | "createIndexes" | "update" | "findAndModify" | "findandmodify" | "delete"
    )
}

/// Any other command: to the database's primary shard (versioned when it names an unsharded collection).
async fn forward(router: &Router, name: &str, db: &str, body: &Document) -> Result<Document> {
    if name == "dropDatabase" {
        return drop_database(router, db, body).await;
    }
    let coll = body.get_str(name).ok().map(String::from);
    for _ in 0..=MAX_STALE_RETRIES {
        let database = if creates_database(name) {
            Some(ensure_database(router, db, None).await?)
        } else {
            router.catalog.database(db).await?
        };
        let Some(database) = database else {
            // No such database in the cluster: any shard answers as for an empty database.
            let shards = router.catalog.reload_shards().await?;
            let shard = shards
                .first()
                .ok_or_else(|| Error::new(shard::code::SHARD_NOT_FOUND, "the cluster has no shards yet"))?;
            return shard.client.run(body).await;
        };
        let ns = coll.as_ref().map(|c| format!("{db}.{c}"));
        if let Some(ns) = &ns
            && let Some(table) = router.catalog.collection(ns).await?
        {
            return sharded_collection_command(router, name, db, &table, body).await;
        }
        let shard = router.catalog.shard(&database.primary).await?;
        let request = match &ns {
            Some(_) => versioned(body, &ChunkVersion::unsharded(), Some(&database)),
            None => body.clone(),
        };
        let reply = shard.client.run(&request).await?;
        if is_stale(&reply) {
            note_stale(router, db, ns.as_deref().unwrap_or(db), &reply);
            continue;
        }
        return Ok(reply);
    }
    Err(still_stale(db))
}

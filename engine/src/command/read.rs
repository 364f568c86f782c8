//! Read commands: find, getMore, killCursors, count, distinct, aggregate.
//!
//! Besides user collections, two `local` collections are readable as MongoDB exposes them:
//! `local.oplog.rs` (the oplog, in timestamp order; tailable) and `local.system.replset` (the config).

use std::collections::{HashSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use super::read_concern::{self, ReadConcern};
use crate::cursor::{Cursor, CursorSource};
use crate::error::{Error, Result, code};
use crate::node::{Counters, Node};
use crate::query::filter::Filter;
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::storage::{CollectionMeta, Namespace, Snapshot, keystring, ts_to_u64};

const DEFAULT_BATCH: usize = 101;
/// The oplog's advertised size (listCollections, $collStats). The engine does not truncate the oplog yet.
pub(super) const OPLOG_NOMINAL_MAX_BYTES: i64 = 1 << 30;
const GET_MORE_DEFAULT_BATCH: usize = 10_000;
/// Keep reply batches under the 16 MiB document limit, with room for the envelope.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;

/// What a namespace resolves to.
pub(super) enum Target {
    Collection(CollectionMeta),
    Oplog,
    ReplsetConfig,
    Missing,
}

pub(super) fn resolve(snapshot: &Snapshot, ns: &Namespace) -> Result<Target> {
    if ns.db == "local" && ns.coll == "oplog.rs" {
        return Ok(Target::Oplog);
    }
    if ns.db == "local" && ns.coll == "system.replset" {
        return Ok(Target::ReplsetConfig);
    }
    Ok(snapshot
        .collection(ns)?
        .map(Target::Collection)
        .unwrap_or(Target::Missing))
}

/// Every document of a target that matches `filter`, in natural order.
pub(super) fn matching(node: &Node, snapshot: &Snapshot, target: &Target, filter: &Filter) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    match target {
        Target::Collection(meta) => {
            if let Some(id) = filter.id_equality() {
                if let Some(doc) = snapshot.get_by_id(meta, id)?
                    && filter.matches(&doc)
                {
                    out.push(doc);
                }
                return Ok(out);
            }
            snapshot.scan(meta, None, |doc| {
                if filter.matches(&doc) {
                    out.push(doc);
                }
                ControlFlow::Continue(())
            })?;
        }
        Target::Oplog => snapshot.scan_oplog(None, false, |_, doc| {
            if filter.matches(&doc) {
                out.push(doc);
            }
            ControlFlow::Continue(())
        })?,
        Target::ReplsetConfig => {
            if let Ok(config) = node.member.config_document()
                && filter.matches(&config)
            {
                out.push(config);
            }
        }
        Target::Missing => {}
    }
    Ok(out)
}

fn batch_size(body: &Document, key_present_default: usize) -> Result<usize> {
    match args::opt_i64(body, "batchSize")? {
        None => Ok(key_present_default),
        Some(n) if n < 0 => Err(Error::bad_value("batchSize value must be non-negative")),
        Some(n) => Ok(n as usize),
    }
}

fn parse_projection(body: &Document) -> Result<Option<Arc<Projection>>> {
    match args::opt_doc(body, "projection")? {
        Some(p) if !p.is_empty() => Ok(Some(Arc::new(Projection::parse(p)?))),
        _ => Ok(None),
    }
}

fn project(projection: &Option<Arc<Projection>>, doc: Document) -> Result<Document> {
    match projection {
        Some(p) => Ok(p.apply(&doc)?),
        None => Ok(doc),
    }
}

/// The first oplog key a filter on `ts` can match (`{ts: {$gte: T}}` or `$gt`), to start scans there.
fn oplog_start(filter_doc: &Document) -> Option<u64> {
    let cond = filter_doc.get_document("ts").ok()?;
    if let Ok(ts) = cond.get_timestamp("$gte") {
        return Some(ts_to_u64(ts).saturating_sub(1));
    }
    cond.get_timestamp("$gt").ok().map(ts_to_u64)
}

pub async fn find(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let ns = args::namespace(body, &ctx.db)?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    Counters::bump(&ctx.node.counters.queries, 1);
    let filter_doc = args::opt_doc(body, "filter")?.cloned().unwrap_or_default();
    let filter = Arc::new(Filter::parse(&filter_doc)?);
    let sort = match args::opt_doc(body, "sort")? {
        Some(s) if !s.is_empty() => Some(SortSpec::parse(s)?),
        _ => None,
    };
    let projection = parse_projection(body)?;
    let skip = match args::opt_i64(body, "skip")? {
        Some(n) if n < 0 => return Err(Error::bad_value("skip value must be non-negative")),
        n => n.unwrap_or(0) as usize,
    };
    let limit = match args::opt_i64(body, "limit")? {
        Some(n) if n < 0 => return Err(Error::bad_value("limit value must be non-negative")),
        Some(0) | None => None,
        Some(n) => Some(n as usize),
    };
    let batch = batch_size(body, DEFAULT_BATCH)?;
    let single_batch = args::opt_bool(body, "singleBatch")?.unwrap_or(false);
    let tailable = args::opt_bool(body, "tailable")?.unwrap_or(false);
    let await_data = args::opt_bool(body, "awaitData")?.unwrap_or(false);

    let snapshot = ctx.node.storage.snapshot()?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    if tailable && !matches!(target, Target::Oplog) && !matches!(target, Target::Missing) {
        return Err(Error::bad_value(format!(
            "error processing query: ns={ns}: tailable cursor requested on non capped collection"
        )));
    }
    let natural = sort.as_ref().and_then(SortSpec::natural);
    let source = match (&target, &sort) {
        (Target::Oplog, None) => CursorSource::Oplog {
            filter: filter.clone(),
            projection: projection.clone(),
            after: oplog_start(&filter_doc),
            tailable,
            await_data,
        },
        (Target::Oplog, Some(_)) if natural == Some(1) => CursorSource::Oplog {
            filter: filter.clone(),
            projection: projection.clone(),
            after: oplog_start(&filter_doc),
            tailable,
            await_data,
        },
        (Target::Collection(meta), None) if filter.id_equality().is_none() => CursorSource::Collection {
            meta: meta.clone(),
            filter: filter.clone(),
            projection: projection.clone(),
            after: None,
        },
        (Target::Collection(meta), Some(_)) if natural == Some(1) && filter.id_equality().is_none() => {
            CursorSource::Collection {
                meta: meta.clone(),
                filter: filter.clone(),
                projection: projection.clone(),
                after: None,
            }
        }
        _ => {
            let mut docs = matching(ctx.node, &snapshot, &target, &filter)?;
            match (&sort, natural) {
                (_, Some(-1)) => docs.reverse(),
                (Some(spec), None) => docs.sort_by(|a, b| spec.compare(a, b)),
                _ => {}
            }
            let end = limit
                .map(|l| skip.saturating_add(l))
                .unwrap_or(usize::MAX)
                .min(docs.len());
            let start = skip.min(end);
            let kept: VecDeque<Document> = docs
                .drain(start..end)
                .map(|d| project(&projection, d))
                .collect::<Result<_>>()?;
            CursorSource::Buffered(kept)
        }
    };
    drop(snapshot);
    let skip = if matches!(source, CursorSource::Buffered(_)) {
        0
    } else {
        skip
    };
    let mut cursor = Cursor {
        ns: ns.clone(),
        source,
        remaining: limit,
        skip,
        last_used: Instant::now(),
    };
    let (docs, exhausted) = next_batch(ctx.node, &mut cursor, batch)?;
    let id = if exhausted || single_batch || matches!(target, Target::Missing) {
        0
    } else {
        ctx.node.cursors.register(cursor)
    };
    read_concern::after_read(ctx, &rc, read_at).await?;
    let mut reply = doc! {"cursor": {"firstBatch": docs, "id": id, "ns": ns.full()}};
    if body.contains_key("$replData") {
        reply.insert("$replData", ctx.node.member.repl_data());
    }
    Ok(reply)
}

/// Collects one reply batch: at most `cap` documents and about 16 MiB.
struct Batch {
    docs: Vec<Document>,
    bytes: usize,
    cap: usize,
}

impl Batch {
    fn full(&self) -> bool {
        self.docs.len() >= self.cap || self.bytes >= MAX_BATCH_BYTES
    }

    fn push(&mut self, doc: Document) -> ControlFlow<()> {
        self.bytes += doc.to_vec().map(|v| v.len()).unwrap_or(0);
        self.docs.push(doc);
        if self.full() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// Produces the next batch of a cursor; `true` when nothing more can come.
fn next_batch(node: &Node, cursor: &mut Cursor, batch_size: usize) -> Result<(Vec<Document>, bool)> {
    let cap = cursor.remaining.map(|r| r.min(batch_size)).unwrap_or(batch_size);
    let mut batch = Batch {
        docs: Vec::new(),
        bytes: 0,
        cap,
    };
    let skip = &mut cursor.skip;
    // The first projection failure (a result nested too deep) ends the batch and fails the command.
    let mut failure: Option<Error> = None;
    let mut keep = |doc: Document, filter: &Filter, projection: &Option<Arc<Projection>>, batch: &mut Batch| {
        if !filter.matches(&doc) {
            return ControlFlow::Continue(());
        }
        if *skip > 0 {
            *skip -= 1;
            return ControlFlow::Continue(());
        }
        match project(projection, doc) {
            Ok(projected) => batch.push(projected),
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        }
    };
    let exhausted = match &mut cursor.source {
        CursorSource::Buffered(buffer) => {
            while !batch.full() {
                match buffer.pop_front() {
                    Some(doc) => {
                        let _ = batch.push(doc);
                    }
                    None => break,
                }
            }
            buffer.is_empty()
        }
        CursorSource::Collection {
            meta,
            filter,
            projection,
            after,
        } => {
            if !batch.full() {
                let snapshot = node.storage.snapshot()?;
                let last = snapshot.scan(meta, after.as_deref(), |doc| keep(doc, filter, projection, &mut batch))?;
                if last.is_some() {
                    *after = last;
                }
            }
            !batch.full()
        }
        CursorSource::Oplog {
            filter,
            projection,
            after,
            tailable,
            ..
        } => {
            if !batch.full() {
                let snapshot = node.storage.snapshot()?;
                let mut last_key = *after;
                snapshot.scan_oplog(*after, false, |key, doc| {
                    last_key = Some(key);
                    keep(doc, filter, projection, &mut batch)
                })?;
                *after = last_key;
            }
            !batch.full() && !*tailable
        }
    };
    if let Some(err) = failure {
        return Err(err);
    }
    if let Some(remaining) = cursor.remaining.as_mut() {
        *remaining = remaining.saturating_sub(batch.docs.len());
    }
    let limit_reached = cursor.remaining == Some(0);
    Ok((batch.docs, exhausted || limit_reached))
}

pub async fn get_more(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let id = match body.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        Some(Bson::Int32(id)) => i64::from(*id),
        _ => return Err(Error::type_mismatch("getMore: cursor id must be a long")),
    };
    let coll = body
        .get_str("collection")
        .map_err(|_| Error::type_mismatch("getMore: 'collection' must be a string"))?;
    let ns = Namespace::new(&ctx.db, coll);
    let batch = batch_size(body, GET_MORE_DEFAULT_BATCH)?;
    let max_await = args::opt_i64(body, "maxTimeMS")?.unwrap_or(1000).max(0) as u64;
    Counters::bump(&ctx.node.counters.getmores, 1);
    let Some(mut cursor) = ctx.node.cursors.take(id) else {
        return Err(Error::new(code::CURSOR_NOT_FOUND, format!("cursor id {id} not found")));
    };
    if cursor.ns != ns {
        ctx.node.cursors.put_back(id, cursor);
        return Err(Error::new(
            (13, "Unauthorized"),
            format!("Requested getMore on namespace '{ns}', but cursor belongs to a different namespace"),
        ));
    }
    let await_data = matches!(
        cursor.source,
        CursorSource::Oplog {
            tailable: true,
            await_data: true,
            ..
        }
    );
    let deadline = tokio::time::Instant::now() + Duration::from_millis(max_await);
    let mut positions = ctx.node.storage.watch_positions();
    positions.borrow_and_update();
    let (docs, exhausted) = loop {
        let (docs, exhausted) = match next_batch(ctx.node, &mut cursor, batch) {
            Ok(result) => result,
            Err(err) => return Err(err),
        };
        if !docs.is_empty() || exhausted || !await_data {
            break (docs, exhausted);
        }
        // awaitData: wait for new oplog entries (or the deadline), then look again.
        match tokio::time::timeout_at(deadline, positions.changed()).await {
            Ok(Ok(())) => continue,
            _ => break (docs, exhausted),
        }
    };
    let reply_id = if exhausted {
        0
    } else {
        ctx.node.cursors.put_back(id, cursor);
        id
    };
    let mut reply = doc! {"cursor": {"nextBatch": docs, "id": reply_id, "ns": ns.full()}};
    if body.contains_key("$replData") {
        reply.insert("$replData", ctx.node.member.repl_data());
    }
    Ok(reply)
}

pub fn kill_cursors(ctx: &Context<'_>) -> Result<Document> {
    let ids = args::opt_array(ctx.body, "cursors")?
        .ok_or_else(|| Error::failed_to_parse("killCursors: 'cursors' is required"))?;
    let (mut killed, mut not_found) = (Vec::new(), Vec::new());
    for id in ids {
        let Some(id) = args::as_i64(id) else { continue };
        if ctx.node.cursors.kill(id) {
            killed.push(Bson::Int64(id))
        } else {
            not_found.push(Bson::Int64(id))
        }
    }
    Ok(doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []})
}

pub async fn count(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let ns = args::namespace(body, &ctx.db)?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    let query = args::opt_doc(body, "query")?.cloned().unwrap_or_default();
    let filter = Filter::parse(&query)?;
    let skip = args::opt_i64(body, "skip")?.unwrap_or(0).max(0) as usize;
    let limit = args::opt_i64(body, "limit")?.unwrap_or(0).unsigned_abs() as usize;
    let snapshot = ctx.node.storage.snapshot()?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    let n = if query.is_empty()
        && let Target::Collection(meta) = &target
    {
        snapshot.collection_stats(meta)?.0 as usize
    } else {
        matching(ctx.node, &snapshot, &target, &filter)?.len()
    };
    drop(snapshot);
    let mut n = n.saturating_sub(skip);
    if limit > 0 {
        n = n.min(limit);
    }
    read_concern::after_read(ctx, &rc, read_at).await?;
    Ok(doc! {"n": n as i64})
}

pub async fn distinct(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let ns = args::namespace(body, &ctx.db)?;
    let key = body
        .get_str("key")
        .map_err(|_| Error::type_mismatch("distinct: 'key' must be a string"))?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    let filter = Filter::parse(args::opt_doc(body, "query")?.unwrap_or(&Document::new()))?;
    let snapshot = ctx.node.storage.snapshot()?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    let docs = matching(ctx.node, &snapshot, &target, &filter)?;
    drop(snapshot);
    let mut seen = HashSet::new();
    let mut values = Vec::new();
    for doc in &docs {
        let Some(value) = crate::query::path::lookup(doc, key) else {
            continue;
        };
        let items: Vec<&Bson> = match value {
            Bson::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if seen.insert(keystring::encode(item)) {
                values.push(item.clone());
            }
        }
    }
    values.sort_by(crate::query::compare::compare_bson);
    read_concern::after_read(ctx, &rc, read_at).await?;
    Ok(doc! {"values": values})
}

pub async fn aggregate(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    if !matches!(body.get("aggregate"), Some(Bson::String(_))) {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            "database-level aggregation ({aggregate: 1}) is not supported",
        ));
    }
    let ns = args::namespace(body, &ctx.db)?;
    let stages: Vec<Document> = args::opt_array(body, "pipeline")?
        .ok_or_else(|| Error::failed_to_parse("aggregate: 'pipeline' is required"))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch("each pipeline stage must be an object"))
        })
        .collect::<Result<_>>()?;
    let cursor_opts = args::opt_doc(body, "cursor")?;
    if cursor_opts.is_none() && !body.contains_key("explain") {
        return Err(Error::failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let batch = cursor_opts
        .map(|c| batch_size(c, DEFAULT_BATCH))
        .transpose()?
        .unwrap_or(DEFAULT_BATCH);
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    Counters::bump(&ctx.node.counters.queries, 1);
    let snapshot = ctx.node.storage.snapshot()?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    let (input, rest) = match stages.first() {
        Some(first) if first.contains_key("$collStats") => {
            (vec![coll_stats_doc(&snapshot, &target, &ns)?], &stages[1..])
        }
        Some(first) if first.contains_key("$match") => {
            let filter = Filter::parse(
                first
                    .get_document("$match")
                    .map_err(|_| Error::type_mismatch("$match must be an object"))?,
            )?;
            (matching(ctx.node, &snapshot, &target, &filter)?, &stages[1..])
        }
        _ => (
            matching(ctx.node, &snapshot, &target, &Filter::parse(&Document::new())?)?,
            &stages[..],
        ),
    };
    drop(snapshot);
    let output = crate::query::pipeline::run(rest, input, crate::clock::now())?;
    let mut cursor = Cursor {
        ns: ns.clone(),
        source: CursorSource::Buffered(output.into()),
        remaining: None,
        skip: 0,
        last_used: Instant::now(),
    };
    let (docs, exhausted) = next_batch(ctx.node, &mut cursor, batch)?;
    let id = if exhausted {
        0
    } else {
        ctx.node.cursors.register(cursor)
    };
    read_concern::after_read(ctx, &rc, read_at).await?;
    Ok(doc! {"cursor": {"firstBatch": docs, "id": id, "ns": ns.full()}})
}

/// The `$collStats` document (mongosh's `db.coll.stats()`).
fn coll_stats_doc(snapshot: &Snapshot, target: &Target, ns: &Namespace) -> Result<Document> {
    let (count, size, nindexes) = match target {
        Target::Collection(meta) => {
            let (count, size) = snapshot.collection_stats(meta)?;
            (count, size, meta.indexes.len())
        }
        Target::Oplog => {
            let (count, size) = snapshot.oplog_stats()?;
            (count, size, 0)
        }
        _ => {
            return Err(Error::new(
                code::NAMESPACE_NOT_FOUND,
                format!(
                    "Unable to retrieve storageStats in $collStats stage :: caused by :: Collection [{ns}] not found."
                ),
            ));
        }
    };
    let avg = size.checked_div(count).unwrap_or(0);
    let mut storage = doc! {"size": size as i64, "count": count as i64, "avgObjSize": avg as i64, "storageSize": size as i64,
    "nindexes": nindexes as i32, "totalIndexSize": 0i64, "capped": matches!(target, Target::Oplog)};
    if matches!(target, Target::Oplog) {
        storage.insert("maxSize", OPLOG_NOMINAL_MAX_BYTES);
    }
    Ok(doc! {"ns": ns.full(), "host": "", "localTime": crate::clock::now(), "storageStats": storage})
}

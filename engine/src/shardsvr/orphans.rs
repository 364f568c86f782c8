//! Orphan filtering on a shard: a versioned `find` on a sharded collection (one carrying `shardVersion`, as
//! a router's requests do) returns only the documents whose shard key falls in a chunk this shard owns, in
//! its first batch and in the `getMore`s of its cursor. Documents of chunks owned elsewhere (left behind by
//! an interrupted move, or written straight to the shard) are orphans and stay invisible to routed reads;
//! unversioned requests (a direct connection) still see everything, as in MongoDB.
//!
//! The ownership used is the routing table read with the version the request was checked against. A
//! document whose shard key cannot be read (a projection left a key field out) is kept: which chunk it
//! belongs to cannot be told from what is returned.

use bson::{Bson, Document};

use super::{identity, lock};
use crate::command::Context;
use crate::options::ClusterRole;

/// A versioned find's cursor whose later batches are filtered too.
#[derive(Clone)]
pub(super) struct FilteredCursor {
    ns: String,
    projected: bool,
}

/// Drops orphans from the reply of a versioned `find` (or a `getMore` of one) on a shard member; any other
/// reply is returned as it is.
pub fn filter_orphans(ctx: &Context<'_>, mut reply: Document) -> Document {
    if ctx.node.options().cluster_role != ClusterRole::ShardServer {
        return reply;
    }
    let state = &ctx.node.sharding;
    let (cursor, batch) = match ctx.name.as_str() {
        "find" if ctx.body.contains_key("shardVersion") => {
            let coll = ctx.body.get_str("find").unwrap_or_default();
            let projected = ctx.body.get_document("projection").is_ok_and(|p| !p.is_empty());
            let cursor = FilteredCursor {
                ns: format!("{}.{coll}", ctx.db),
                projected,
            };
            (cursor, "firstBatch")
        }
        "getMore" => {
            let id = ctx.body.get_i64("getMore").unwrap_or(0);
            let Some(cursor) = lock(&state.filtered_cursors).get(&id).cloned() else {
                return reply;
            };
            (cursor, "nextBatch")
        }
        "killCursors" => {
            if let Ok(ids) = ctx.body.get_array("cursors") {
                let mut filtered = lock(&state.filtered_cursors);
                for id in ids.iter().filter_map(Bson::as_i64) {
                    filtered.remove(&id);
                }
            }
            return reply;
        }
        _ => return reply,
    };
    let Some(table) = lock(&state.tables).get(&cursor.ns).cloned() else {
        return reply;
    };
    let Ok(me) = identity(ctx.node).map(|identity| identity.shard_name) else {
        return reply;
    };
    let Ok(reply_cursor) = reply.get_document_mut("cursor") else {
        return reply;
    };
    let id = reply_cursor.get_i64("id").unwrap_or(0);
    if let Ok(documents) = reply_cursor.get_array_mut(batch) {
        documents.retain(|document| match document {
            Bson::Document(document) => owned(&table, &me, document, cursor.projected),
            _ => true,
        });
    }
    let mut filtered = lock(&state.filtered_cursors);
    if id == 0 {
        if ctx.name == "getMore" {
            filtered.remove(&ctx.body.get_i64("getMore").unwrap_or(0));
        }
    } else {
        filtered.insert(id, cursor);
    }
    reply
}

/// Whether `document` belongs to a chunk `shard` owns (or its key cannot be told).
fn owned(table: &crate::shard::RoutingTable, shard: &str, document: &Document, projected: bool) -> bool {
    if projected
        && !table
            .pattern
            .fields()
            .iter()
            .all(|field| has_path(document, &field.path))
    {
        return true;
    }
    match table.pattern.extract(document) {
        Ok(key) => table.chunk_for(&key).shard == shard,
        Err(_) => true,
    }
}

/// Whether the dotted `path` names a value in `document`.
fn has_path(document: &Document, path: &str) -> bool {
    let mut current = document;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        match current.get(part) {
            None => return false,
            Some(_) if parts.peek().is_none() => return true,
            Some(Bson::Document(inner)) => current = inner,
            Some(_) => return false,
        }
    }
    false
}

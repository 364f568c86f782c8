//! Catalog commands: databases, collections and indexes; plus dbStats, collStats and dbHash.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use crate::cursor::{Cursor, CursorSource};
use crate::error::{Error, Result, code};
use crate::query::filter::Filter;
use crate::storage::{CollectionMeta, Namespace};

pub fn list_databases(ctx: &Context<'_>) -> Result<Document> {
    ctx.node.member.check_readable(true)?;
    let name_only = args::opt_bool(ctx.body, "nameOnly")?.unwrap_or(false);
    let filter = Filter::parse(args::opt_doc(ctx.body, "filter")?.unwrap_or(&Document::new()))?;
    let snapshot = ctx.node.storage.snapshot()?;
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    // `local` always exists: it holds the oplog.
    sizes.insert("local".into(), snapshot.oplog_len()? * 128);
    for meta in snapshot.collections(None)? {
        let (_, bytes) = snapshot.collection_stats(&meta)?;
        *sizes.entry(meta.ns.db.clone()).or_default() += bytes.max(4096);
    }
    let mut databases = Vec::new();
    let mut total = 0u64;
    for (name, size) in sizes {
        let entry = if name_only {
            doc! {"name": &name}
        } else {
            doc! {"name": &name, "sizeOnDisk": size as i64, "empty": size == 0}
        };
        if filter.matches(&entry) {
            total += size;
            databases.push(entry);
        }
    }
    if name_only {
        return Ok(doc! {"databases": databases});
    }
    Ok(doc! {"databases": databases, "totalSize": total as i64, "totalSizeMb": (total / (1024 * 1024)) as i64})
}

fn collection_entry(meta: &CollectionMeta) -> Document {
    doc! {
        "name": &meta.ns.coll, "type": "collection", "options": meta.options.clone(),
        "info": {"readOnly": false, "uuid": meta.uuid_bson()},
        "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    }
}

pub fn list_collections(ctx: &Context<'_>) -> Result<Document> {
    ctx.node.member.check_readable(true)?;
    let name_only = args::opt_bool(ctx.body, "nameOnly")?.unwrap_or(false);
    let filter = Filter::parse(args::opt_doc(ctx.body, "filter")?.unwrap_or(&Document::new()))?;
    let snapshot = ctx.node.storage.snapshot()?;
    let mut entries: Vec<Document> = snapshot
        .collections(Some(&ctx.db))?
        .iter()
        .map(collection_entry)
        .collect();
    if ctx.db == "local" {
        entries.push(doc! {"name": "oplog.rs", "type": "collection", "options": {"capped": true, "size": super::read::OPLOG_NOMINAL_MAX_BYTES},
                           "info": {"readOnly": false}});
        if ctx.node.member.config_document().is_ok() {
            entries.push(
                doc! {"name": "system.replset", "type": "collection", "options": {}, "info": {"readOnly": false},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}},
            );
        }
    }
    let kept: Vec<Document> = entries
        .into_iter()
        .filter(|e| filter.matches(e))
        .map(|e| {
            if name_only {
                doc! {"name": e.get("name").cloned().unwrap_or(Bson::Null), "type": "collection"}
            } else {
                e
            }
        })
        .collect();
    let ns = Namespace::new(&ctx.db, "$cmd.listCollections");
    Ok(cursor_reply(ctx, ns, kept))
}

/// A reply whose results all fit in the first batch or continue in a buffered cursor.
fn cursor_reply(ctx: &Context<'_>, ns: Namespace, docs: Vec<Document>) -> Document {
    let batch = ctx
        .body
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get("batchSize"))
        .and_then(args::as_i64)
        .map(|n| n.max(0) as usize)
        .unwrap_or(usize::MAX);
    let mut docs: std::collections::VecDeque<Document> = docs.into();
    let first: Vec<Document> = (0..batch).map_while(|_| docs.pop_front()).collect();
    let id = if docs.is_empty() {
        0
    } else {
        let cursor = Cursor::new(ns.clone(), CursorSource::Buffered(docs));
        ctx.node.cursors.register(cursor)
    };
    doc! {"cursor": {"id": id, "ns": ns.full(), "firstBatch": first}}
}

pub async fn create(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let mut options = Document::new();
    for (k, v) in ctx.body.iter().skip(1) {
        if !k.starts_with('$')
            && !matches!(
                k.as_str(),
                "lsid" | "txnNumber" | "writeConcern" | "comment" | "apiVersion" | "apiStrict" | "apiDeprecationErrors"
            )
        {
            options.insert(k.clone(), v.clone());
        }
    }
    if options.contains_key("viewOn") || options.contains_key("pipeline") {
        return Err(Error::new(
            (115, "CommandNotSupported"),
            "views are not supported by the Faultline engine yet",
        ));
    }
    ctx.node
        .storage
        .write(false, move |w| match w.collection(&ns)? {
            // MongoDB 7.0 accepts a repeated create with identical options.
            Some(existing) if existing.options == options => Ok(()),
            Some(_) => Err(Error::new(
                code::NAMESPACE_EXISTS,
                format!("Collection {ns} already exists."),
            )),
            None => w.create_collection(&ns, options).map(|_| ()),
        })
        .await??;
    Ok(Document::new())
}

pub async fn drop_collection(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let full = ns.full();
    let n_indexes = ctx
        .node
        .storage
        .snapshot()?
        .collection(&ns)?
        .map(|m| m.indexes.len() as i32);
    ctx.node.storage.write(false, move |w| w.drop_collection(&ns)).await??;
    Ok(match n_indexes {
        Some(n) => doc! {"nIndexesWas": n, "ns": full},
        None => Document::new(),
    })
}

pub async fn drop_database(ctx: &Context<'_>) -> Result<Document> {
    ctx.node.member.check_writable(&ctx.db)?;
    if ctx.db == "local" || ctx.db == "admin" {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            format!("Cannot drop '{}' database", ctx.db),
        ));
    }
    let db = ctx.db.clone();
    ctx.node.storage.write(false, move |w| w.drop_database(&db)).await??;
    Ok(doc! {"dropped": &ctx.db})
}

pub async fn create_indexes(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let specs: Vec<Document> = args::opt_array(ctx.body, "indexes")?
        .ok_or_else(|| Error::failed_to_parse("BSON field 'indexes' is missing but a required field"))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch("each index specification must be an object"))
        })
        .collect::<Result<_>>()?;
    if specs.is_empty() {
        return Err(Error::bad_value("Must specify at least one index to create"));
    }
    let (before, after, created_collection) = ctx
        .node
        .storage
        .write(false, move |w| -> Result<(usize, usize, bool)> {
            let existing = w.collection(&ns)?;
            let before = existing.as_ref().map(|m| m.indexes.len()).unwrap_or(0);
            for spec in &specs {
                w.create_index(&ns, spec)?;
            }
            let after = w.collection(&ns)?.map(|m| m.indexes.len()).unwrap_or(0);
            Ok((before.max(1), after, existing.is_none()))
        })
        .await??;
    let mut reply = doc! {"numIndexesBefore": before as i32, "numIndexesAfter": after as i32,
    "createdCollectionAutomatically": created_collection};
    if before == after {
        reply.insert("note", "all indexes already exist");
    }
    Ok(reply)
}

pub fn list_indexes(ctx: &Context<'_>) -> Result<Document> {
    ctx.node.member.check_readable(ctx.secondary_ok)?;
    let ns = args::namespace(ctx.body, &ctx.db)?;
    let snapshot = ctx.node.storage.snapshot()?;
    let Some(meta) = snapshot.collection(&ns)? else {
        return Err(Error::new(
            code::NAMESPACE_NOT_FOUND,
            format!("ns does not exist: {ns}"),
        ));
    };
    let specs: Vec<Document> = meta.indexes.iter().map(|i| i.spec.clone()).collect();
    Ok(cursor_reply(
        ctx,
        Namespace::new(&ctx.db, &format!("$cmd.listIndexes.{}", ns.coll)),
        specs,
    ))
}

pub async fn drop_indexes(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let snapshot = ctx.node.storage.snapshot()?;
    let meta = snapshot
        .collection(&ns)?
        .ok_or_else(|| Error::new(code::NAMESPACE_NOT_FOUND, format!("ns not found {ns}")))?;
    drop(snapshot);
    let names: Vec<String> = match ctx.body.get("index") {
        Some(Bson::String(name)) => vec![name.clone()],
        Some(Bson::Array(names)) => names.iter().filter_map(|n| n.as_str().map(String::from)).collect(),
        Some(Bson::Document(key)) => vec![
            meta.indexes
                .iter()
                .find(|i| &i.key == key)
                .map(|i| i.name.clone())
                .ok_or_else(|| Error::new(code::INDEX_NOT_FOUND, format!("can't find index with key: {key}")))?,
        ],
        _ => {
            return Err(Error::type_mismatch(
                "dropIndexes: 'index' must be a string, an array of strings or a key pattern",
            ));
        }
    };
    let was = meta.indexes.len() as i32;
    ctx.node
        .storage
        .write(false, move |w| -> Result<()> {
            for name in &names {
                w.drop_index(&ns, name)?;
            }
            Ok(())
        })
        .await??;
    Ok(doc! {"nIndexesWas": was})
}

pub fn db_stats(ctx: &Context<'_>) -> Result<Document> {
    let snapshot = ctx.node.storage.snapshot()?;
    let (mut objects, mut size, mut indexes) = (0u64, 0u64, 0usize);
    let collections = snapshot.collections(Some(&ctx.db))?;
    for meta in &collections {
        let (count, bytes) = snapshot.collection_stats(meta)?;
        objects += count;
        size += bytes;
        indexes += meta.indexes.len();
    }
    Ok(doc! {
        "db": &ctx.db, "collections": collections.len() as i64, "views": 0i64, "objects": objects as i64,
        "avgObjSize": if objects > 0 { size as f64 / objects as f64 } else { 0.0 }, "dataSize": size as f64,
        "storageSize": size as f64, "indexes": indexes as i64, "indexSize": 0.0, "totalSize": size as f64, "scaleFactor": 1,
    })
}

pub fn coll_stats(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    let snapshot = ctx.node.storage.snapshot()?;
    let meta = snapshot
        .collection(&ns)?
        .ok_or_else(|| Error::new(code::NAMESPACE_NOT_FOUND, format!("Collection [{ns}] not found.")))?;
    let (count, size) = snapshot.collection_stats(&meta)?;
    Ok(
        doc! {"ns": ns.full(), "count": count as i64, "size": size as i64, "storageSize": size as i64,
        "nindexes": meta.indexes.len() as i32, "capped": false},
    )
}

/// `dbHash`: a digest per collection (documents in `_id` order) and one over them all, so members can be
/// compared. The digest is a 128-bit pair of CRC-32C-based checksums, not MongoDB's MD5; equal data gives
/// equal digests on every member.
pub fn db_hash(ctx: &Context<'_>) -> Result<Document> {
    let only: Option<Vec<String>> = args::opt_array(ctx.body, "collections")?
        .map(|names| names.iter().filter_map(|n| n.as_str().map(String::from)).collect());
    let snapshot = ctx.node.storage.snapshot()?;
    let mut collections = Document::new();
    let mut uuids = Document::new();
    let mut all = Digest::default();
    for meta in snapshot.collections(Some(&ctx.db))? {
        if only.as_ref().is_some_and(|names| !names.contains(&meta.ns.coll)) {
            continue;
        }
        let mut digest = Digest::default();
        snapshot.scan(&meta, None, |doc| {
            digest.feed(&doc.to_vec().unwrap_or_default());
            ControlFlow::Continue(())
        })?;
        let hex = digest.hex();
        all.feed(meta.ns.coll.as_bytes());
        all.feed(hex.as_bytes());
        collections.insert(meta.ns.coll.clone(), hex);
        uuids.insert(meta.ns.coll.clone(), meta.uuid_bson());
    }
    let positions = ctx.node.storage.positions();
    Ok(
        doc! {"host": ctx.node.options().self_host(), "collections": collections, "capped": [], "uuids": uuids,
        "md5": all.hex(), "timeMillis": 0, "fromCache": [], "lastOpTime": positions.last_written.to_document()},
    )
}

/// Four CRC-32C chains over the same bytes with different seeds: 128 bits of digest text.
#[derive(Default)]
struct Digest {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
    len: u64,
}

impl Digest {
    fn feed(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.a = crc32c::crc32c_append(self.a, bytes);
        self.b = crc32c::crc32c_append(self.b ^ 0x9e37_79b9, bytes);
        self.c = crc32c::crc32c_append(self.c, &self.len.to_le_bytes());
        self.d = crc32c::crc32c_append(self.d ^ self.a, bytes);
    }

    fn hex(&self) -> String {
        format!("{:08x}{:08x}{:08x}{:08x}", self.a, self.b, self.c, self.d)
    }
}

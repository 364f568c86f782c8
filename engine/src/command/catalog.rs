//! Catalog commands: databases, collections (create, drop, renameCollection) and indexes; plus dbStats,
//! collStats and dbHash.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use crate::bsonx;
use crate::cursor::{Cursor, CursorSource};
use crate::error::{Error, Result, code};
use crate::member::WriteConcern;
use crate::query::filter::Filter;
use crate::storage::{CollectionMeta, Namespace};

/// `listDatabases`: every database holding a collection, plus `admin` (the feature compatibility version),
/// `config` (the retryable-write sessions) and `local` (the oplog and replica-set config), as mongod lists
/// them on a replica-set member. `sizeOnDisk` is the stored size of the database's tables, at least 4 KiB a
/// collection (a table's smallest footprint). `filter` sees the entries as returned; `nameOnly` returns
/// names alone.
pub fn list_databases(ctx: &Context<'_>) -> Result<Document> {
    ctx.node.member.check_readable(true)?;
    let name_only = args::opt_bool(ctx.body, "nameOnly")?.unwrap_or(false);
    let filter = Filter::parse(args::opt_doc(ctx.body, "filter")?.unwrap_or(&Document::new()))?;
    let snapshot = ctx.node.storage.snapshot()?;
    const TABLE_MIN: u64 = 4096;
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let (_, oplog_bytes) = snapshot.oplog_stats()?;
    let replset = if ctx.node.member.config_document().is_ok() {
        TABLE_MIN
    } else {
        0
    };
    sizes.insert("local".into(), oplog_bytes.max(TABLE_MIN) + replset);
    sizes.insert("admin".into(), TABLE_MIN);
    let (_, session_bytes) = snapshot.sessions()?;
    sizes.insert("config".into(), session_bytes.max(TABLE_MIN));
    for meta in snapshot.collections(None)? {
        let (_, bytes) = snapshot.collection_stats(&meta)?;
        *sizes.entry(meta.ns.db.clone()).or_default() += bytes.max(TABLE_MIN);
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
    let engine_table = |name: &str| {
        doc! {"name": name, "type": "collection", "options": {}, "info": {"readOnly": false},
        "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}
    };
    match ctx.db.as_str() {
        "admin" => entries.push(engine_table("system.version")),
        "config" => entries.push(engine_table("transactions")),
        _ => {}
    }
    entries.sort_by(|a, b| a.get_str("name").unwrap_or("").cmp(b.get_str("name").unwrap_or("")));
    if ctx.db == "local" {
        entries.push(doc! {"name": "oplog.rs", "type": "collection", "options": {"capped": true, "size": ctx.node.storage.oplog_usage().max_bytes as i64},
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
        .and_then(bsonx::as_i64)
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

/// A DDL command's write concern, read before it changes anything so a malformed one fails the command
/// first: the one the command gives (its missing fields from the defaults), else the cluster-wide default
/// an administrator set. Without either it acknowledges at once, as it always has here, rather than waiting
/// for the implicit majority default (which would block set-up steps while a member is down).
pub(super) fn ddl_write_concern(ctx: &Context<'_>) -> Result<WriteConcern> {
    let given = args::opt_doc(ctx.body, "writeConcern")?;
    if given.is_some() || super::rw_defaults::has_global_write_concern(ctx)? {
        return super::rw_defaults::resolve_write_concern(ctx, given);
    }
    WriteConcern::parse(None)
}

/// Waits for the write concern on what the command just wrote (this member's newest optime, as mongod waits
/// on the client's last op) and attaches the `writeConcernError`, if any, to the reply.
pub(super) async fn wait_ddl_write_concern(ctx: &Context<'_>, wc: &WriteConcern, mut reply: Document) -> Document {
    let optime = ctx.node.storage.positions().last_written;
    ctx.operation_time.note(optime.ts);
    if let Some(err) = ctx.node.member.wait_for_write_concern(optime, wc).await {
        reply.insert("writeConcernError", err);
    }
    reply
}

pub async fn create(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let wc = ddl_write_concern(ctx)?;
    super::options::check_collation(ctx.body)?;
    if let Some(validator) = args::opt_doc(ctx.body, "validator")? {
        Filter::parse(validator)?;
    }
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
        .write(wc.j, move |w| match w.collection(&ns)? {
            // MongoDB 7.0 accepts a repeated create with identical options.
            Some(existing) if existing.options == options => Ok(()),
            Some(_) => Err(Error::new(
                code::NAMESPACE_EXISTS,
                format!("Collection {ns} already exists."),
            )),
            None => w.create_collection(&ns, options).map(|_| ()),
        })
        .await??;
    Ok(wait_ddl_write_concern(ctx, &wc, Document::new()).await)
}

pub async fn drop_collection(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let wc = ddl_write_concern(ctx)?;
    let full = ns.full();
    let n_indexes = ctx
        .node
        .storage
        .snapshot()?
        .collection(&ns)?
        .map(|m| m.indexes.len() as i32);
    ctx.node.storage.write(wc.j, move |w| w.drop_collection(&ns)).await??;
    let reply = match n_indexes {
        Some(n) => doc! {"nIndexesWas": n, "ns": full},
        None => Document::new(),
    };
    Ok(wait_ddl_write_concern(ctx, &wc, reply).await)
}

/// `renameCollection` (admin): renames within or across databases, MongoDB's checks and errors first. The
/// rename is one storage step and one oplog entry that secondaries apply (storage/apply.rs); indexes move
/// with the collection. Across databases mongod copies the documents into the target database and logs
/// several entries; here the collection keeps its UUID and the move is a single entry.
pub async fn rename_collection(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let name_of = |key: &str| -> Result<Namespace> {
        let text = match ctx.body.get(key) {
            Some(Bson::String(text)) => text,
            None => {
                return Err(Error::new(
                    (40414, "Location40414"),
                    format!("BSON field 'renameCollection.{key}' is missing but a required field"),
                ));
            }
            Some(_) => {
                return Err(Error::type_mismatch(format!(
                    "BSON field 'renameCollection.{key}' is the wrong type, expected type 'string'"
                )));
            }
        };
        let which = if key == "to" { "target" } else { "source" };
        Namespace::parse(text)
            .filter(|ns| !ns.coll.starts_with('.') && !ns.coll.ends_with('.') && !ns.coll.contains('$'))
            .ok_or_else(|| Error::new(code::INVALID_NAMESPACE, format!("Invalid {which} namespace: {text}")))
    };
    let from = name_of("renameCollection")?;
    let to = name_of("to")?;
    let drop_target = ctx.body.get("dropTarget").is_some_and(bsonx::truthy);
    let stay_temp = args::opt_bool(ctx.body, "stayTemp")?.unwrap_or(false);
    let wc = ddl_write_concern(ctx)?;
    if from == to {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "Can't rename a collection to itself",
        ));
    }
    let oplog = |ns: &Namespace| ns.db == "local" && ns.coll == "oplog.rs";
    if oplog(&from) {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "can't rename live oplog while replicating",
        ));
    }
    if oplog(&to) {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "can't rename to live oplog while replicating",
        ));
    }
    if from.db == "admin" && from.coll == "system.version" {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "renaming the server configuration collection (admin.system.version) is not allowed",
        ));
    }
    for (ns, which) in [(&from, "source"), (&to, "target")] {
        if ns.is_engine_view() || (ns.coll.starts_with("system.") && ns.db != "local") {
            return Err(Error::new(
                code::ILLEGAL_OPERATION,
                format!("error with {which} namespace: cannot write to '{ns}'"),
            ));
        }
    }
    if (from.db == "local") != (to.db == "local") {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "Cannot rename collections between a replicated and an unreplicated database",
        ));
    }
    let member = &ctx.node.member;
    if member.check_writable(&from.db).is_err() || member.check_writable(&to.db).is_err() {
        return Err(Error::new(
            code::NOT_WRITABLE_PRIMARY,
            format!("Not primary while renaming collection {from} to {to}"),
        ));
    }
    if ctx.node.storage.snapshot()?.collections(Some(&from.db))?.is_empty() {
        return Err(Error::new(
            code::NAMESPACE_NOT_FOUND,
            format!("Database {} does not exist or is drop pending", from.db),
        ));
    }
    ctx.node
        .storage
        .write(wc.j, move |w| w.rename_collection(&from, &to, drop_target, stay_temp))
        .await??;
    Ok(wait_ddl_write_concern(ctx, &wc, Document::new()).await)
}

pub async fn drop_database(ctx: &Context<'_>) -> Result<Document> {
    ctx.node.member.check_writable(&ctx.db)?;
    if ctx.db == "local" || ctx.db == "admin" {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            format!("Cannot drop '{}' database", ctx.db),
        ));
    }
    let wc = ddl_write_concern(ctx)?;
    let db = ctx.db.clone();
    ctx.node.storage.write(wc.j, move |w| w.drop_database(&db)).await??;
    Ok(wait_ddl_write_concern(ctx, &wc, doc! {"dropped": &ctx.db}).await)
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
    for spec in &specs {
        super::options::check_collation(spec)?;
    }
    let wc = ddl_write_concern(ctx)?;
    let (before, after, created_collection) = ctx
        .node
        .storage
        .write(wc.j, move |w| -> Result<(usize, usize, bool)> {
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
    Ok(wait_ddl_write_concern(ctx, &wc, reply).await)
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
    let wc = ddl_write_concern(ctx)?;
    ctx.node
        .storage
        .write(wc.j, move |w| -> Result<()> {
            for name in &names {
                w.drop_index(&ns, name)?;
            }
            Ok(())
        })
        .await??;
    Ok(wait_ddl_write_concern(ctx, &wc, doc! {"nIndexesWas": was}).await)
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
    if ns.db == "local" && ns.coll == "oplog.rs" {
        // The capped oplog, with the figures the storage writer keeps in memory.
        let (count, size) = snapshot.oplog_stats()?;
        return Ok(doc! {"ns": ns.full(), "count": count as i64, "size": size as i64,
        "avgObjSize": size.checked_div(count).unwrap_or(0) as i64, "storageSize": size as i64, "nindexes": 0,
        "capped": true, "maxSize": snapshot.oplog_max_bytes() as i64});
    }
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

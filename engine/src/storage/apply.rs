//! Applying oplog entries from another member (secondaries, initial sync) and truncating the oplog
//! (rollback).
//!
//! Application is idempotent, as MongoDB's is: an insert of an existing `_id` replaces it, an update or
//! delete of a missing document does nothing, a repeated create, drop or rename does nothing. Applied
//! entries are appended to the local oplog verbatim (same `ts` and `t`), in the same transaction as their
//! effects.

use bson::{Bson, Document};
use redb::ReadableTable;

use super::catalog::Namespace;
use super::oplog::{OpTime, OplogEntry, ts_to_u64};
use super::write_ctx::{SessionStatement, WriteCtx};
use super::{OPLOG, docs_table_name};
use crate::error::{Error, Result};

impl WriteCtx<'_> {
    /// Appends another member's oplog entry as it is.
    pub fn append_entry(&mut self, entry: &Document) -> Result<OpTime> {
        let optime = OplogEntry::optime_of(entry).ok_or_else(|| Error::bad_value("oplog entry without ts"))?;
        // Entries arrive through the wire decoder, which refuses anything nested past MAX_BSON_DEPTH, so this
        // cannot fail; if it did, the entry's effect may already be applied, so the group must roll back.
        let bytes = super::encode(entry, crate::depth::MAX_BSON_DEPTH, || {
            format!("oplog entry exceeds {} levels of nesting", crate::depth::MAX_BSON_DEPTH)
        })
        .map_err(|e| self.fatal("encode oplog entry", e.message))?;
        let txn = self.txn;
        let mut oplog = txn.open_table(OPLOG).map_err(|e| self.fatal("oplog", e))?;
        let replaced = oplog
            .insert(ts_to_u64(optime.ts), bytes.as_slice())
            .map_err(|e| self.fatal("oplog insert", e))?
            .map(|old| old.value().len());
        drop(oplog);
        self.count_oplog_insert(bytes.len(), replaced);
        self.clock.observe(optime.ts);
        self.last_optime = Some(optime);
        Ok(optime)
    }

    /// Applies one entry's effect on the data (not the oplog) and returns whether it changed anything.
    /// Errors that an idempotent replay can produce are tolerated and reported as `Ok(false)`.
    pub fn apply_entry(&mut self, entry: &Document) -> Result<bool> {
        match self.unlogged(|w| w.apply_entry_inner(entry)) {
            Ok(changed) => Ok(changed),
            Err(err) if self.fatal_pending() => Err(err),
            Err(err) => {
                tracing::warn!(error = %err, entry = %entry, "oplog entry could not be applied; skipped");
                Ok(false)
            }
        }
    }

    fn fatal_pending(&mut self) -> bool {
        let fatal = self.take_fatal();
        let pending = fatal.is_some();
        if let Some(err) = fatal {
            // Put it back: the writer rolls the group back.
            let _ = self.fatal("apply", err);
        }
        pending
    }

    fn apply_entry_inner(&mut self, entry: &Document) -> Result<bool> {
        let op = entry
            .get_str("op")
            .map_err(|_| Error::bad_value("oplog entry without op"))?;
        let ns_text = entry.get_str("ns").unwrap_or("");
        let o = entry.get_document("o").cloned().unwrap_or_default();
        let session = session_of(entry);
        match op {
            "n" => Ok(false),
            "i" => {
                let ns = namespace(ns_text)?;
                let meta = match self.collection(&ns)? {
                    Some(meta) => meta,
                    None => self.create_collection_with_uuid(&ns, Document::new(), uuid_of(entry))?,
                };
                let id = o.get("_id").cloned().unwrap_or(Bson::Null);
                match self.get_by_id(&meta, &id)? {
                    Some(existing) => self.replace(&meta, &existing, o, None)?,
                    None => self.insert(&meta, o, None)?,
                }
                self.record_applied(session, 1)?;
                Ok(true)
            }
            "u" => {
                let ns = namespace(ns_text)?;
                let Some(meta) = self.collection(&ns)? else {
                    return Ok(false);
                };
                let id = entry
                    .get_document("o2")
                    .ok()
                    .and_then(|o2| o2.get("_id"))
                    .cloned()
                    .unwrap_or(Bson::Null);
                let Some(before) = self.get_by_id(&meta, &id)? else {
                    return Ok(false);
                };
                let mut after = before.clone();
                if o.get("$v").is_some() {
                    OplogEntry::apply_diff(&mut after, &o);
                } else {
                    after = o;
                    after.insert("_id", id);
                }
                self.replace(&meta, &before, after, None)?;
                self.record_applied(session, 1)?;
                Ok(true)
            }
            "d" => {
                let ns = namespace(ns_text)?;
                let Some(meta) = self.collection(&ns)? else {
                    return Ok(false);
                };
                let id = o.get("_id").cloned().unwrap_or(Bson::Null);
                let Some(doc) = self.get_by_id(&meta, &id)? else {
                    return Ok(false);
                };
                self.delete(&meta, &doc, None)?;
                self.record_applied(session, 1)?;
                Ok(true)
            }
            "c" => self.apply_command(ns_text, &o, uuid_of(entry)),
            other => Err(Error::bad_value(format!("unknown oplog op type '{other}'"))),
        }
    }

    fn apply_command(&mut self, ns_text: &str, o: &Document, uuid: Option<bson::Uuid>) -> Result<bool> {
        let db = ns_text.split('.').next().unwrap_or("");
        let (name, value) = o.iter().next().ok_or_else(|| Error::bad_value("empty command entry"))?;
        let coll = value.as_str().unwrap_or("");
        match name.as_str() {
            "create" => {
                let ns = Namespace::new(db, coll);
                if self.collection(&ns)?.is_some() {
                    return Ok(false);
                }
                let options: Document = o.iter().skip(1).map(|(k, v)| (k.clone(), v.clone())).collect();
                self.create_collection_with_uuid(&ns, options, uuid)?;
                Ok(true)
            }
            "drop" => self.drop_collection(&Namespace::new(db, coll)),
            "dropDatabase" => Ok(self.drop_database(db)? > 0),
            "createIndexes" => {
                let spec: Document = o.iter().skip(1).map(|(k, v)| (k.clone(), v.clone())).collect();
                self.create_index(&Namespace::new(db, coll), &spec)
            }
            "renameCollection" => self.apply_rename(o, uuid),
            "dropIndexes" => {
                let index = o.get_str("index").unwrap_or("*");
                Ok(self.drop_index(&Namespace::new(db, coll), index)? > 0)
            }
            other => Err(Error::bad_value(format!("unsupported command in oplog: {other}"))),
        }
    }

    /// A replicated rename. The source is found by the entry's UUID when a collection has it (a replay
    /// after the rename already happened finds it under the new name and does nothing), else by name; a
    /// missing source does nothing. A collection in the target's place is dropped: the primary checked
    /// `dropTarget` before logging, so one found here is the one it dropped (or a stale copy).
    fn apply_rename(&mut self, o: &Document, uuid: Option<bson::Uuid>) -> Result<bool> {
        let from = o
            .get_str("renameCollection")
            .ok()
            .and_then(Namespace::parse)
            .ok_or_else(|| Error::bad_value("renameCollection entry without a source namespace"))?;
        let to = o
            .get_str("to")
            .ok()
            .and_then(Namespace::parse)
            .ok_or_else(|| Error::bad_value("renameCollection entry without a target namespace"))?;
        let stay_temp = o.get_bool("stayTemp").unwrap_or(false);
        let by_uuid = match uuid {
            Some(uuid) => self.collections(None)?.into_iter().find(|m| m.uuid == uuid),
            None => None,
        };
        let source = match by_uuid {
            Some(meta) => meta.ns,
            None if self.collection(&from)?.is_some() => from,
            None => return Ok(false),
        };
        if source == to {
            return Ok(false);
        }
        self.rename_collection(&source, &to, true, stay_temp)?;
        Ok(true)
    }

    /// Keeps the session table in step on secondaries, so a retry after failover is not applied twice.
    fn record_applied(&mut self, session: Option<SessionStatement>, n: i32) -> Result<()> {
        if let Some(stmt) = session {
            self.record_statement(&stmt, bson::doc! {"n": n, "nModified": n})?;
        }
        Ok(())
    }

    /// Removes every oplog entry after `common_point` and makes it the newest position (rollback).
    pub fn truncate_oplog_after(&mut self, common_point: OpTime) -> Result<Vec<Document>> {
        let txn = self.txn;
        let mut oplog = txn.open_table(OPLOG).map_err(|e| self.fatal("oplog", e))?;
        let from = ts_to_u64(common_point.ts).saturating_add(1);
        let mut removed = Vec::new();
        let mut sizes = Vec::new();
        {
            let range = oplog.range(from..).map_err(|e| self.fatal("oplog scan", e))?;
            for item in range {
                let (_, value) = item.map_err(|e| self.fatal("oplog scan", e))?;
                sizes.push(value.value().len());
                removed.push(super::decode(value.value()).map_err(|e| self.fatal("decode oplog", e))?);
            }
        }
        oplog
            .retain_in(from.., |_, _| false)
            .map_err(|e| self.fatal("oplog truncate", e))?;
        drop(oplog);
        for len in sizes {
            self.count_oplog_removal(len);
        }
        self.position_reset = Some(common_point);
        self.last_optime = None;
        Ok(removed)
    }

    /// Replaces (or with `None` deletes) a document by `_id` without logging: rollback's refetch.
    pub fn restore_document(&mut self, ns: &Namespace, id: &Bson, doc: Option<Document>) -> Result<()> {
        self.unlogged(|w| {
            let meta = match w.collection(ns)? {
                Some(meta) => meta,
                None if doc.is_some() => w.create_collection(ns, Document::new())?,
                None => return Ok(()),
            };
            match (w.get_by_id(&meta, id)?, doc) {
                (Some(existing), Some(doc)) => w.replace(&meta, &existing, doc, None),
                (None, Some(doc)) => w.insert(&meta, doc, None),
                (Some(existing), None) => w.delete(&meta, &existing, None),
                (None, None) => Ok(()),
            }
        })
    }

    /// Removes every document of every collection but `local` (initial sync starts from nothing).
    pub fn wipe_user_data(&mut self) -> Result<()> {
        self.unlogged(|w| {
            for meta in w.collections(None)? {
                if meta.ns.db != "local" {
                    w.drop_collection(&meta.ns)?;
                }
            }
            Ok(())
        })
    }

    /// Creates a collection with its UUID and indexes as a sync source has them, without logging (initial
    /// sync's clone: the entries are the source's, not ours).
    pub fn clone_collection(
        &mut self,
        ns: &Namespace,
        options: Document,
        uuid: Option<bson::Uuid>,
        indexes: &[Document],
    ) -> Result<()> {
        self.unlogged(|w| {
            w.create_collection_with_uuid(ns, options, uuid)?;
            for spec in indexes {
                w.create_index(ns, spec)?;
            }
            Ok(())
        })
    }

    /// Runs `change` without writing oplog entries: replication applying entries, rollback, initial sync.
    pub fn unlogged<T>(&mut self, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let was_replaying = self.replaying;
        self.replaying = true;
        let result = change(self);
        self.replaying = was_replaying;
        result
    }

    /// Number of documents in a collection table (initial-sync bookkeeping).
    pub fn count_documents(&mut self, ns: &Namespace) -> Result<u64> {
        let Some(meta) = self.collection(ns)? else { return Ok(0) };
        let table = self.table(&docs_table_name(&meta))?;
        use redb::ReadableTableMetadata;
        table.len().map_err(|e| self.fatal("count", e))
    }
}

/// The final state of one document after its CRUD oplog entries (in oplog order) are applied to `pre`:
/// `None` when it ends deleted. Pure, so documents of a batch can be folded in parallel.
pub fn fold_document(pre: Option<Document>, entries: &[&Document]) -> Option<Document> {
    let mut doc = pre;
    for entry in entries {
        let o = entry.get_document("o").cloned().unwrap_or_default();
        match entry.get_str("op").unwrap_or("") {
            "i" => doc = Some(o),
            "d" => doc = None,
            "u" => {
                if let Some(current) = doc.as_mut() {
                    if o.get("$v").is_some() {
                        OplogEntry::apply_diff(current, &o);
                    } else {
                        let id = current.get("_id").cloned().unwrap_or(Bson::Null);
                        *current = o;
                        current.insert("_id", id);
                    }
                }
            }
            _ => {}
        }
    }
    doc
}

/// The `(namespace, _id)` a CRUD entry touches; `None` for commands and no-ops.
pub fn crud_target(entry: &Document) -> Option<(Namespace, Bson)> {
    let ns = Namespace::parse(entry.get_str("ns").ok()?)?;
    let id = match entry.get_str("op").ok()? {
        "i" | "d" => entry.get_document("o").ok()?.get("_id")?.clone(),
        "u" => entry.get_document("o2").ok()?.get("_id")?.clone(),
        _ => return None,
    };
    Some((ns, id))
}

impl WriteCtx<'_> {
    /// Installs the folded final state of a document (parallel batch apply) and records the sessions of its
    /// entries. Creates the collection with the entries' UUID when it is missing.
    pub fn install_folded(
        &mut self,
        ns: &Namespace,
        id: &Bson,
        doc: Option<Document>,
        entries: &[&Document],
    ) -> Result<()> {
        self.unlogged(|w| {
            if doc.is_some() && w.collection(ns)?.is_none() {
                let uuid = entries.iter().find_map(|e| uuid_of(e));
                w.create_collection_with_uuid(ns, Document::new(), uuid)?;
            }
            // As in `apply_entry`: a document this member refuses to store (nested too deep) is skipped with
            // a warning rather than failing the batch forever.
            match w.restore_document(ns, id, doc) {
                Err(err) if err.code == crate::error::code::OVERFLOW.0 && !w.fatal_pending() => {
                    tracing::warn!(error = %err, ns = %ns.full(), "replicated document could not be stored; skipped");
                }
                other => other?,
            }
            for entry in entries {
                w.record_applied(session_of(entry), 1)?;
            }
            Ok(())
        })
    }
}

fn namespace(ns: &str) -> Result<Namespace> {
    Namespace::parse(ns).ok_or_else(|| Error::bad_value(format!("bad namespace in oplog entry: '{ns}'")))
}

fn uuid_of(entry: &Document) -> Option<bson::Uuid> {
    match entry.get("ui") {
        Some(Bson::Binary(b)) => b.bytes.clone().try_into().ok().map(bson::Uuid::from_bytes),
        _ => None,
    }
}

fn session_of(entry: &Document) -> Option<SessionStatement> {
    let lsid = entry.get_document("lsid").ok()?.clone();
    let txn_number = entry.get_i64("txnNumber").ok()?;
    let stmt_id = entry
        .get("stmtId")
        .and_then(|v| v.as_i32().or_else(|| v.as_i64().map(|n| n as i32)))?;
    Some(SessionStatement {
        lsid,
        txn_number,
        stmt_id,
    })
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    fn entry(op: &str, o: Document, o2: Option<Document>) -> Document {
        let mut e = doc! {"op": op, "ns": "db.c", "o": o, "ts": bson::Timestamp { time: 1, increment: 1 }, "t": 1i64};
        if let Some(o2) = o2 {
            e.insert("o2", o2);
        }
        e
    }

    #[test]
    fn folding_follows_oplog_order_per_document() {
        let insert = entry("i", doc! {"_id": 1, "n": 1, "gone": true}, None);
        let update = entry(
            "u",
            OplogEntry::update_diff(&doc! {"_id": 1, "n": 1, "gone": true}, &doc! {"_id": 1, "n": 2}),
            Some(doc! {"_id": 1}),
        );
        let replace = entry("u", doc! {"r": 1}, Some(doc! {"_id": 1}));
        let delete = entry("d", doc! {"_id": 1}, None);
        assert_eq!(fold_document(None, &[&insert, &update]), Some(doc! {"_id": 1, "n": 2}));
        assert_eq!(
            fold_document(None, &[&insert, &update, &replace]),
            Some(doc! {"r": 1, "_id": 1})
        );
        assert_eq!(fold_document(None, &[&insert, &delete]), None);
        assert_eq!(
            fold_document(None, &[&delete, &insert]),
            Some(doc! {"_id": 1, "n": 1, "gone": true})
        );
        // An update of a missing document is a no-op (idempotent apply), as in sequential apply.
        assert_eq!(fold_document(None, &[&update]), None);
        assert_eq!(
            crud_target(&update).map(|(ns, id)| (ns.full(), id)),
            Some(("db.c".to_string(), Bson::Int32(1)))
        );
        assert_eq!(crud_target(&entry("n", doc! {"msg": "x"}, None)), None);
    }
}

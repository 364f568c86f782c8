//! Applying oplog entries from another member (secondaries, initial sync) and truncating the oplog
//! (rollback).
//!
//! Application is idempotent, as MongoDB's is: an insert of an existing `_id` replaces it, an update or
//! delete of a missing document does nothing, a repeated create, drop or rename does nothing. A CRUD entry's
//! effect is [`OplogOp::step`], whether it is applied alone or folded with the rest of its batch. Applied
//! entries are appended to the local oplog verbatim (same `ts` and `t`), in the same transaction as their
//! effects.

use std::sync::Arc;

use bson::{Bson, Document};
use redb::ReadableTable;

use super::catalog::{CollectionMeta, Namespace};
use super::oplog::{OpTime, ts_to_u64};
use super::oplog_entry::{CommandOp, OplogEntry, OplogOp};
use super::write_ctx::{RetryImage, WriteCtx};
use super::{OPLOG, docs_table_name};
use crate::error::{Error, Result};

/// A batch of another member's oplog entries encoded as the oplog stores them, back to back: the journal
/// record a secondary writes before it applies the batch ([`Storage::apply_prejournaled`]), and the bytes
/// its apply job appends to the oplog. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EncodedBatch {
    bytes: Arc<[u8]>,
    /// Where each entry ends in `bytes`.
    ends: Arc<[usize]>,
    /// The newest entry's optime and wall time (ms since the epoch; 0 when it has none).
    newest: (OpTime, i64),
    /// Whether a write waits for this batch's fsync (its sync source has writes waiting for members'
    /// durable positions): the batch is then fsynced at once, and the applying thread lets the fsync start
    /// before it applies; any other batch is fsynced within the journal interval.
    awaited: bool,
}

impl EncodedBatch {
    /// The entries of `batch` (in oplog order; not empty) back to back, as they came.
    pub fn new(batch: &[OplogEntry]) -> Result<EncodedBatch> {
        let last = batch
            .last()
            .ok_or_else(|| Error::internal("an empty batch to encode"))?;
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(batch.len());
        for entry in batch {
            bytes.extend_from_slice(entry.raw().as_bytes());
            ends.push(bytes.len());
        }
        Ok(EncodedBatch {
            bytes: bytes.into(),
            ends: ends.into(),
            newest: (last.optime, last.wall().map(|w| w.timestamp_millis()).unwrap_or(0)),
            awaited: false,
        })
    }

    /// Marks whether a write waits for this batch's fsync (see `awaited`).
    pub fn awaited(mut self, awaited: bool) -> EncodedBatch {
        self.awaited = awaited;
        self
    }

    /// The `i`th entry's bytes.
    pub fn entry(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The batch's size in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The whole batch, as one journal record's payload.
    pub(super) fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }

    /// The newest entry's optime and wall time.
    pub(super) fn newest(&self) -> (OpTime, i64) {
        self.newest
    }

    /// Whether a write waits for this batch's fsync.
    pub(super) fn is_awaited(&self) -> bool {
        self.awaited
    }
}

impl WriteCtx<'_> {
    /// Appends another member's oplog entry as it is.
    pub fn append_entry(&mut self, entry: &OplogEntry) -> Result<OpTime> {
        self.append_encoded(entry, entry.raw().as_bytes())
    }

    /// Appends another member's oplog entry, already encoded as stored (`bytes`, from [`EncodedBatch`]).
    pub fn append_encoded(&mut self, entry: &OplogEntry, bytes: &[u8]) -> Result<OpTime> {
        let optime = entry.optime;
        let txn = self.txn;
        let mut oplog = txn.open_table(OPLOG).map_err(|e| self.fatal("oplog", e))?;
        let replaced = oplog
            .insert(ts_to_u64(optime.ts), bytes)
            .map_err(|e| self.fatal("oplog insert", e))?
            .map(|old| old.value().len());
        drop(oplog);
        self.count_oplog_insert(bytes.len(), replaced);
        self.journal_entry(bytes);
        self.timestamps.observe(optime.ts);
        self.last_optime = Some(optime);
        self.last_wall_ms = entry.wall().map(|w| w.timestamp_millis()).unwrap_or(0);
        Ok(optime)
    }

    /// Applies one entry's effect on the data (not the oplog) and returns whether it changed anything.
    /// Errors that an idempotent replay can produce are tolerated and reported as `Ok(false)`.
    pub fn apply_entry(&mut self, entry: &OplogEntry) -> Result<bool> {
        match self.applying(|w| w.apply_entry_inner(entry)) {
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

    fn apply_entry_inner(&mut self, entry: &OplogEntry) -> Result<bool> {
        match &entry.op {
            OplogOp::Insert { ns, id, .. } | OplogOp::Update { ns, id, .. } | OplogOp::Delete { ns, id } => {
                let (meta, before) = self.current_version(ns, id)?;
                let after = entry.op.step(before.clone());
                let image = match entry.session.as_ref().and_then(|s| s.retry_image) {
                    Some(RetryImage::Pre) => before.clone(),
                    Some(RetryImage::Post) => after.clone(),
                    None => None,
                };
                let changed = self.put_document(ns, id, meta, before, after, entry.ui)?;
                if changed {
                    self.record_applied(entry, image)?;
                }
                Ok(changed)
            }
            OplogOp::Command(command) => self.apply_command(command, entry.ui),
            OplogOp::Noop => Ok(false),
            OplogOp::Unusable(reason) => Err(Error::bad_value(reason.clone())),
        }
    }

    /// A document's collection (when it exists) and current version (when there is one).
    fn current_version(&mut self, ns: &Namespace, id: &Bson) -> Result<(Option<CollectionMeta>, Option<Document>)> {
        let meta = self.collection(ns)?;
        let current = match &meta {
            Some(meta) => self.get_by_id(meta, id)?,
            None => None,
        };
        Ok((meta, current))
    }

    /// Moves the document with `_id` `id` from `before` to `after` (`None`: missing) without logging, and
    /// returns whether anything changed. `meta` is its collection's when that exists; else one is created (with
    /// `uuid`) when `after` is a document. `before` is what [`Self::current_version`] just read in this
    /// transaction, so a missing document is not looked up again to insert it.
    fn put_document(
        &mut self,
        ns: &Namespace,
        id: &Bson,
        meta: Option<CollectionMeta>,
        before: Option<Document>,
        after: Option<Document>,
        uuid: Option<bson::Uuid>,
    ) -> Result<bool> {
        let meta = match meta {
            Some(meta) => meta,
            None if after.is_some() => self.create_collection_with_uuid(ns, Document::new(), uuid)?,
            None => return Ok(false),
        };
        match (before, after) {
            (Some(before), Some(after)) => self.replace(&meta, &before, after, None)?,
            (None, Some(after)) if after.get("_id") == Some(id) => self.insert_missing(&meta, after)?,
            (None, Some(after)) => self.insert(&meta, after, None)?,
            (Some(before), None) => self.delete(&meta, &before, None)?,
            (None, None) => return Ok(false),
        }
        Ok(true)
    }

    fn apply_command(&mut self, command: &CommandOp, uuid: Option<bson::Uuid>) -> Result<bool> {
        match command {
            CommandOp::Create { ns, options } => {
                if self.collection(ns)?.is_some() {
                    return Ok(false);
                }
                self.create_collection_with_uuid(ns, options.clone(), uuid)?;
                Ok(true)
            }
            CommandOp::Drop { ns } => self.drop_collection(ns),
            CommandOp::DropDatabase { db } => Ok(self.drop_database(db)? > 0),
            CommandOp::CreateIndexes { ns, spec } => self.create_index(ns, spec),
            CommandOp::Rename { from, to, stay_temp } => self.apply_rename(from, to, *stay_temp, uuid),
            CommandOp::DropIndexes { ns, index } => Ok(self.drop_index(ns, index)? > 0),
            CommandOp::CollMod { ns, options } => self.modify_collection_options(ns, options),
        }
    }

    /// A replicated rename. The source is found by the entry's UUID when a collection has it (a replay
    /// after the rename already happened finds it under the new name and does nothing), else by name; a
    /// missing source does nothing. A collection in the target's place is dropped: the primary checked
    /// `dropTarget` before logging, so one found here is the one it dropped (or a stale copy).
    fn apply_rename(
        &mut self,
        from: &Namespace,
        to: &Namespace,
        stay_temp: bool,
        uuid: Option<bson::Uuid>,
    ) -> Result<bool> {
        let by_uuid = match uuid {
            Some(uuid) => self.collections(None)?.into_iter().find(|m| m.uuid == uuid),
            None => None,
        };
        let source = match by_uuid {
            Some(meta) => meta.ns,
            None if self.collection(from)?.is_some() => from.clone(),
            None => return Ok(false),
        };
        if source == *to {
            return Ok(false);
        }
        self.rename_collection(&source, to, true, stay_temp)?;
        Ok(true)
    }

    /// Keeps the session table in step with the entries this member applies (a secondary's, and a primary's
    /// replaying its journal), so that a retry after a failover or a crash gets the first reply back and does
    /// not run twice. What the entry did is stored: `n`, `nModified` for an update, `upserted` (the `_id`) for
    /// an insert, which an upsert retried reports, and `image`, the document version its `needsRetryImage`
    /// names (`command::write` rebuilds a findAndModify reply from it).
    fn record_applied(&mut self, entry: &OplogEntry, image: Option<Document>) -> Result<()> {
        let Some(stmt) = &entry.session else { return Ok(()) };
        let mut result = bson::doc! {"n": 1};
        match &entry.op {
            OplogOp::Insert { id, .. } => {
                result.insert("nModified", 0);
                result.insert("upserted", id.clone());
            }
            OplogOp::Update { .. } => {
                result.insert("nModified", 1);
            }
            _ => {}
        }
        if let Some(image) = image {
            result.insert("image", image);
        }
        self.record_statement(stmt, result)
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
        self.unlogged(|w| w.restore_with_uuid(ns, id, doc, None).map(|_| ()))
    }

    /// [`restore_document`](Self::restore_document), creating a missing collection with `uuid`.
    fn restore_with_uuid(
        &mut self,
        ns: &Namespace,
        id: &Bson,
        doc: Option<Document>,
        uuid: Option<bson::Uuid>,
    ) -> Result<bool> {
        let (meta, before) = self.current_version(ns, id)?;
        self.put_document(ns, id, meta, before, doc, uuid)
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

    /// Runs `change` without writing oplog entries: rollback, initial sync. What it changes is not in the
    /// oplog, so the journal does not cover the transaction.
    pub fn unlogged<T>(&mut self, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.uncovered();
        self.applying(change)
    }

    /// Runs `change`, the effect of oplog entries this transaction appends, without logging it again.
    fn applying<T>(&mut self, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
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

impl WriteCtx<'_> {
    /// Installs the folded final state of a document (parallel batch apply) and records the sessions of its
    /// entries. Creates the collection with the entries' UUID when it is missing.
    pub fn install_folded(
        &mut self,
        ns: &Namespace,
        id: &Bson,
        doc: Option<Document>,
        entries: &[&OplogEntry],
    ) -> Result<()> {
        self.applying(|w| {
            let uuid = entries.iter().find_map(|e| e.ui);
            // As in `apply_entry`: a document this member refuses to store (nested too deep) is skipped with
            // a warning rather than failing the batch forever.
            match w.restore_with_uuid(ns, id, doc, uuid).map(|_| ()) {
                Err(err) if err.code == crate::error::code::OVERFLOW.0 && !w.fatal_pending() => {
                    tracing::warn!(error = %err, ns = %ns.full(), "replicated document could not be stored; skipped");
                }
                other => other?,
            }
            // Entries that need a retry image are not folded (`member::applier`).
            for entry in entries {
                w.record_applied(entry, None)?;
            }
            Ok(())
        })
    }
}

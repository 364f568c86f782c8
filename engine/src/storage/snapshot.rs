//! Consistent reads: a [`Snapshot`] is one redb read transaction, so a whole command sees one state.

use std::ops::ControlFlow;
use std::sync::Arc;

use bson::{Bson, Document};
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::catalog::{CollectionMeta, DecodedCatalog, Namespace};
use super::keystring;
use super::{CATALOG, META, OPLOG, SESSIONS, docs_table_name, storage_error};
use crate::error::Result;

/// A consistent read-only view of a member's data.
pub struct Snapshot {
    txn: ReadTransaction,
    /// The oplog's figures when the snapshot was taken (kept in memory by the writer).
    oplog: super::OplogUsage,
    /// The member's decoded catalog entries.
    catalog: Arc<DecodedCatalog>,
}

fn decode(bytes: &[u8]) -> Result<Document> {
    super::decode(bytes).map_err(|e| storage_error("decode document", e))
}

impl Snapshot {
    pub(super) fn new(txn: ReadTransaction, oplog: super::OplogUsage, catalog: Arc<DecodedCatalog>) -> Snapshot {
        Snapshot { txn, oplog, catalog }
    }

    pub fn collection(&self, ns: &Namespace) -> Result<Option<CollectionMeta>> {
        let table = self.txn.open_table(CATALOG).map_err(|e| storage_error("catalog", e))?;
        let full = ns.full();
        let value = table.get(full.as_str()).map_err(|e| storage_error("catalog get", e))?;
        match value {
            None => Ok(None),
            Some(v) => self.catalog.get(&full, v.value(), |bytes| {
                Ok(CollectionMeta::from_document(&decode(bytes)?))
            }),
        }
    }

    /// Every collection, or those of one database, in namespace order.
    pub fn collections(&self, db: Option<&str>) -> Result<Vec<CollectionMeta>> {
        let table = self.txn.open_table(CATALOG).map_err(|e| storage_error("catalog", e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| storage_error("catalog scan", e))? {
            let (_, value) = item.map_err(|e| storage_error("catalog scan", e))?;
            if let Some(meta) = CollectionMeta::from_document(&decode(value.value())?)
                && db.is_none_or(|d| meta.ns.db == d)
            {
                out.push(meta);
            }
        }
        Ok(out)
    }

    pub fn get_by_id(&self, meta: &CollectionMeta, id: &Bson) -> Result<Option<Document>> {
        let name = docs_table_name(meta);
        let table = self
            .txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
            .map_err(|e| storage_error("open collection", e))?;
        let value = table
            .get(keystring::encode(id).as_slice())
            .map_err(|e| storage_error("get", e))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Visits documents in `_id` order, starting after the key `after` (a resumed cursor), until `visit`
    /// breaks. Returns the key of the last document visited.
    pub fn scan(
        &self,
        meta: &CollectionMeta,
        after: Option<&[u8]>,
        visit: impl FnMut(Document) -> ControlFlow<()>,
    ) -> Result<Option<Vec<u8>>> {
        self.scan_directed(meta, after, false, visit)
    }

    /// [`Snapshot::scan`] forwards, or backwards from the end (then `after` is the key to continue below).
    pub fn scan_directed(
        &self,
        meta: &CollectionMeta,
        after: Option<&[u8]>,
        reverse: bool,
        mut visit: impl FnMut(Document) -> ControlFlow<()>,
    ) -> Result<Option<Vec<u8>>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let name = docs_table_name(meta);
        let table = self
            .txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
            .map_err(|e| storage_error("open collection", e))?;
        let range = match (after, reverse) {
            (Some(key), false) => table.range::<&[u8]>((Excluded(key), Unbounded)),
            (Some(key), true) => table.range::<&[u8]>((Unbounded, Excluded(key))),
            (None, _) => table.range::<&[u8]>(..),
        }
        .map_err(|e| storage_error("scan", e))?;
        let items: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut last = None;
        for item in items {
            let (key, value) = item.map_err(|e| storage_error("scan", e))?;
            last = Some(key.value().to_vec());
            if visit(decode(value.value())?).is_break() {
                break;
            }
        }
        Ok(last)
    }

    /// Number of documents and their total BSON size.
    pub fn collection_stats(&self, meta: &CollectionMeta) -> Result<(u64, u64)> {
        let name = docs_table_name(meta);
        let table = self
            .txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
            .map_err(|e| storage_error("open collection", e))?;
        let count = table.len().map_err(|e| storage_error("count", e))?;
        let stats = table.stats().map_err(|e| storage_error("stats", e))?;
        Ok((count, stats.stored_bytes()))
    }

    /// Visits oplog entries in timestamp order (or reverse), starting after the key `after`.
    pub fn scan_oplog(
        &self,
        after: Option<u64>,
        reverse: bool,
        mut visit: impl FnMut(u64, Document) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut failure = None;
        self.scan_oplog_stored(after, reverse, |key, bytes| match decode(bytes) {
            Ok(entry) => visit(key, entry),
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// [`Snapshot::scan_oplog`] of the entries as stored, undecoded.
    pub fn scan_oplog_stored(
        &self,
        after: Option<u64>,
        reverse: bool,
        mut visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let table = self.txn.open_table(OPLOG).map_err(|e| storage_error("oplog", e))?;
        let range = match (after, reverse) {
            (Some(key), false) => table.range(key.saturating_add(1)..),
            (Some(key), true) => table.range(..key),
            (None, _) => table.range::<u64>(..),
        }
        .map_err(|e| storage_error("oplog scan", e))?;
        let mut step =
            |item: std::result::Result<(redb::AccessGuard<u64>, redb::AccessGuard<&[u8]>), redb::StorageError>| {
                let (key, value) = item.map_err(|e| storage_error("oplog scan", e))?;
                Ok::<_, crate::error::Error>(visit(key.value(), value.value()))
            };
        if reverse {
            for item in range.rev() {
                if step(item)?.is_break() {
                    break;
                }
            }
        } else {
            for item in range {
                if step(item)?.is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The optime of the newest oplog entry in this snapshot: everything read from it is at or before it.
    pub fn last_optime(&self) -> Result<crate::repl::OpTime> {
        let table = self.txn.open_table(OPLOG).map_err(|e| storage_error("oplog", e))?;
        let last = table.last().map_err(|e| storage_error("oplog last", e))?;
        Ok(match last {
            None => crate::repl::OpTime::null(),
            // Only `ts` and `t` are needed: the entry is not decoded (this runs for every read).
            Some((_, v)) => {
                let raw = bson::RawDocument::from_bytes(v.value()).map_err(|e| storage_error("oplog last", e))?;
                super::oplog_entry::optime_of_raw(raw).unwrap_or_else(crate::repl::OpTime::null)
            }
        })
    }

    /// Number of entries in the oplog.
    pub fn oplog_len(&self) -> Result<u64> {
        Ok(self.oplog_stats()?.0)
    }

    /// Number of entries in the oplog and their size in bytes (the in-memory figures, O(1)).
    pub fn oplog_stats(&self) -> Result<(u64, u64)> {
        Ok((self.oplog.entries, self.oplog.bytes))
    }

    /// The oplog's maximum size (`maxSize`).
    pub fn oplog_max_bytes(&self) -> u64 {
        self.oplog.max_bytes
    }

    /// The retryable-write session records (`config.transactions`), and their stored size in bytes.
    pub fn sessions(&self) -> Result<(Vec<Document>, u64)> {
        let table = self
            .txn
            .open_table(SESSIONS)
            .map_err(|e| storage_error("sessions", e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| storage_error("sessions scan", e))? {
            let (_, value) = item.map_err(|e| storage_error("sessions scan", e))?;
            out.push(decode(value.value())?);
        }
        let stats = table.stats().map_err(|e| storage_error("sessions stats", e))?;
        Ok((out, stats.stored_bytes()))
    }

    pub fn meta(&self, key: &str) -> Result<Option<Document>> {
        let table = self.txn.open_table(META).map_err(|e| storage_error("meta", e))?;
        let value = table.get(key).map_err(|e| storage_error("meta get", e))?;
        value.map(|v| decode(v.value())).transpose()
    }
}

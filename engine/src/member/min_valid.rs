//! The min-valid record: what a finished rollback leaves until the member's data is consistent again.
//!
//! A rollback replaces each document our diverged entries touched (and each collection whose catalog they
//! changed) with the sync source's *current* version, which may already include the source's entries up
//! to its newest one. Our data is consistent only once our oplog has reached that entry, min-valid, on the
//! same history: until then the member is RECOVERING (it neither serves reads nor stands for election).
//!
//! The record (`local` metadata `replset.minValid`) keeps min-valid and the documents and collections that
//! were refetched, durably:
//! - a restart before min-valid comes back RECOVERING, not SECONDARY on half-made data;
//! - a sync source must hold the min-valid entry itself: an optime that merely sorts after it (a later
//!   term) is another history, in which the refetched versions may never have existed. Such a source means
//!   rolling back again, and that rollback refetches this record's documents and collections as well as
//!   whatever diverged since (mongod, which has no such list, refuses the source and waits for a resync).
//!
//! The record is cleared, in a durable write after the applied entries, once the oplog reaches min-valid.

use std::collections::BTreeSet;
use std::sync::Mutex;

use bson::{Bson, Document, doc};

use crate::error::Result;
use crate::repl::OpTime;
use crate::storage::{Namespace, Storage, WriteCtx};

/// The metadata key of the record.
const META_MIN_VALID: &str = "replset.minValid";

/// What a rollback refetched, and the optime our oplog must reach before that data is consistent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct MinValid {
    pub optime: OpTime,
    /// Documents replaced by the sync source's version, as (namespace, `_id`).
    pub documents: Vec<(Namespace, Bson)>,
    /// Collections replaced whole by the sync source's.
    pub collections: BTreeSet<Namespace>,
}

impl MinValid {
    fn to_document(&self) -> Document {
        let documents: Vec<Bson> = self
            .documents
            .iter()
            .map(|(ns, id)| Bson::Document(doc! {"ns": ns.full(), "_id": id.clone()}))
            .collect();
        let collections: Vec<Bson> = self.collections.iter().map(|ns| Bson::String(ns.full())).collect();
        doc! {"minValid": self.optime.to_document(), "documents": documents, "collections": collections}
    }

    fn from_document(stored: &Document) -> Option<MinValid> {
        let optime = OpTime::from_bson(stored.get("minValid")?).ok()?;
        let documents = stored
            .get_array("documents")
            .map(|all| {
                all.iter()
                    .filter_map(Bson::as_document)
                    .filter_map(|d| Some((Namespace::parse(d.get_str("ns").ok()?)?, d.get("_id")?.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let collections = stored
            .get_array("collections")
            .map(|all| {
                all.iter()
                    .filter_map(Bson::as_str)
                    .filter_map(Namespace::parse)
                    .collect()
            })
            .unwrap_or_default();
        Some(MinValid {
            optime,
            documents,
            collections,
        })
    }

    /// Writes the record (inside the rollback's final write).
    pub fn store(&self, w: &mut WriteCtx<'_>) -> Result<()> {
        w.put_meta(META_MIN_VALID, &self.to_document())
    }
}

/// The member's min-valid record, read once at start and kept in memory.
pub(super) struct MinValidRecord {
    storage: Storage,
    current: Mutex<Option<MinValid>>,
}

impl MinValidRecord {
    pub fn load(storage: Storage) -> MinValidRecord {
        let current = storage
            .read_meta(META_MIN_VALID)
            .ok()
            .flatten()
            .and_then(|stored| MinValid::from_document(&stored));
        MinValidRecord {
            storage,
            current: Mutex::new(current),
        }
    }

    /// The record in force, if a rollback's data is not yet consistent.
    pub fn current(&self) -> Option<MinValid> {
        self.current.lock().ok()?.clone()
    }

    /// The optime our oplog must reach, if any.
    pub fn optime(&self) -> Option<OpTime> {
        self.current.lock().ok()?.as_ref().map(|record| record.optime)
    }

    /// Notes the record a rollback just stored.
    pub fn adopt(&self, record: MinValid) {
        if let Ok(mut current) = self.current.lock() {
            *current = Some(record);
        }
    }

    /// Clears the record once our oplog has reached min-valid (`last_written`), in a durable write after
    /// the entries that reached it.
    pub async fn clear_if_reached(&self, last_written: OpTime) -> Result<()> {
        if self.optime().is_some_and(|min_valid| last_written >= min_valid) {
            self.clear().await?;
        }
        Ok(())
    }

    /// Clears the record whatever our oplog holds (initial sync replaced all the data).
    pub async fn clear(&self) -> Result<()> {
        if self.optime().is_none() {
            return Ok(());
        }
        self.storage
            .write(true, |w| w.put_meta(META_MIN_VALID, &Document::new()))
            .await??;
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let record = MinValid {
            optime: OpTime::new(10, 2, 3),
            documents: vec![
                (Namespace::new("db", "c.with.dots"), Bson::Int64(7)),
                (Namespace::new("db", "d"), Bson::Document(doc! {"k": [1, 2]})),
            ],
            collections: [Namespace::new("other", "x")].into_iter().collect(),
        };
        assert_eq!(MinValid::from_document(&record.to_document()), Some(record));
        assert_eq!(
            MinValid::from_document(&Document::new()),
            None,
            "a cleared record is none"
        );
    }
}

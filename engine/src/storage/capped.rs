//! The oplog as a capped collection: its size accounting and the truncation of its oldest entries.
//!
//! ```text
//! open ──► scan the oplog table once: entries, bytes (sum of the entries' BSON sizes, collStats `size`)
//! every committed group ──► + appended entries, − removed ones (the writer, after the commit succeeds)
//! member's truncation task ──► while bytes > maxSize: remove the oldest entries older than the point the
//!                               replica set still needs (one write transaction per batch)
//! ```
//!
//! MongoDB's oplog is a capped collection whose maximum size is fixed when it is created: `--oplogSize` /
//! `replication.oplogSizeMB` when given (any size above 0 MB), otherwise 5 % of the free space of the dbpath's
//! filesystem, at least 990 MB and at most 50 GB; `replSetResizeOplog` changes it later. Unlike other capped
//! collections it may grow past that size rather than delete entries the replica set still needs (the majority
//! commit point). The figures live in memory so every size check is O(1); they are recomputed at open, so they
//! survive restarts. A truncation batch is one write transaction: a crash leaves all of it or none of it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bson::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::oplog::ts_to_u64;
use super::write_ctx::WriteCtx;
use super::{OPLOG, storage_error};
use crate::error::Result;

const MIB: u64 = 1024 * 1024;
/// mongod's smallest default oplog (990 MB).
pub const DEFAULT_MIN_BYTES: u64 = 990 * MIB;
/// mongod's largest default oplog (50 GB).
pub const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * MIB;
/// At most this many entries are removed per truncation transaction, so one batch never holds the writer long.
const TRUNCATE_BATCH: usize = 1_000;

/// The oplog's size figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OplogUsage {
    /// Number of entries.
    pub entries: u64,
    /// Sum of the entries' BSON sizes.
    pub bytes: u64,
    /// The maximum size (`maxSize`): truncation starts above it.
    pub max_bytes: u64,
}

/// What one truncation removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Truncated {
    pub entries: u64,
    pub bytes: u64,
}

/// The in-memory figures, shared by the writer (which moves them) and readers.
#[derive(Debug, Default)]
pub(super) struct OplogAccount {
    entries: AtomicU64,
    bytes: AtomicU64,
    max_bytes: AtomicU64,
}

/// How a group transaction changed the oplog; applied to the account only once the group committed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct OplogDelta {
    pub(super) entries: i64,
    pub(super) bytes: i64,
}

impl OplogAccount {
    /// Counts the oplog table (once, at open).
    pub(super) fn load(db: &Database) -> Result<OplogAccount> {
        let txn = db.begin_read().map_err(|e| storage_error("begin read", e))?;
        let table = txn.open_table(OPLOG).map_err(|e| storage_error("oplog", e))?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        for item in table.iter().map_err(|e| storage_error("oplog scan", e))? {
            let (_, value) = item.map_err(|e| storage_error("oplog scan", e))?;
            entries += 1;
            bytes += value.value().len() as u64;
        }
        Ok(OplogAccount {
            entries: AtomicU64::new(entries),
            bytes: AtomicU64::new(bytes),
            max_bytes: AtomicU64::new(DEFAULT_MIN_BYTES),
        })
    }

    pub(super) fn usage(&self) -> OplogUsage {
        OplogUsage {
            entries: self.entries.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            max_bytes: self.max_bytes.load(Ordering::SeqCst),
        }
    }

    pub(super) fn set_max_bytes(&self, bytes: u64) {
        self.max_bytes.store(bytes.max(1), Ordering::SeqCst);
    }

    /// Moves the figures by a committed group's changes (only the writer thread calls this).
    pub(super) fn apply(&self, delta: OplogDelta) {
        let shift = |counter: &AtomicU64, by: i64| {
            let now = counter.load(Ordering::SeqCst);
            counter.store(now.saturating_add_signed(by), Ordering::SeqCst);
        };
        shift(&self.entries, delta.entries);
        shift(&self.bytes, delta.bytes);
    }
}

impl WriteCtx<'_> {
    /// Records an entry of `len` bytes stored under a key that held `replaced` bytes before (or nothing).
    pub(super) fn count_oplog_insert(&mut self, len: usize, replaced: Option<usize>) {
        match replaced {
            Some(old) => self.oplog_delta.bytes += len as i64 - old as i64,
            None => {
                self.oplog_delta.entries += 1;
                self.oplog_delta.bytes += len as i64;
            }
        }
    }

    /// Records the removal of an entry of `len` bytes.
    pub(super) fn count_oplog_removal(&mut self, len: usize) {
        self.oplog_delta.entries -= 1;
        self.oplog_delta.bytes -= len as i64;
    }

    /// The oplog's size in bytes as this transaction sees it.
    fn oplog_bytes_now(&self) -> u64 {
        self.account.usage().bytes.saturating_add_signed(self.oplog_delta.bytes)
    }

    /// Removes the oldest entries while the oplog is over its maximum size, but never an entry at or after
    /// `keep_from`, and at most `max_entries` of them.
    pub fn truncate_oplog_oldest(&mut self, keep_from: Timestamp, max_entries: usize) -> Result<Truncated> {
        let cap = self.account.usage().max_bytes;
        let bound = key_of(keep_from);
        let txn = self.txn;
        let mut oplog = txn.open_table(OPLOG).map_err(|e| self.fatal("oplog", e))?;
        let mut removed = Vec::new();
        let mut bytes_now = self.oplog_bytes_now();
        while removed.len() < max_entries && bytes_now > cap {
            let first = oplog.first().map_err(|e| self.fatal("oplog first", e))?;
            let Some(key) = first.map(|(key, _)| key.value()).filter(|key| *key < bound) else {
                break;
            };
            let value = oplog.remove(key).map_err(|e| self.fatal("oplog truncate", e))?;
            let len = value.map(|v| v.value().len()).unwrap_or(0);
            bytes_now = bytes_now.saturating_sub(len as u64);
            removed.push(len);
        }
        drop(oplog);
        let mut out = Truncated::default();
        for len in removed {
            self.count_oplog_removal(len);
            out.entries += 1;
            out.bytes += len as u64;
        }
        Ok(out)
    }
}

/// mongod's default oplog size for a dbpath: 5 % of its filesystem's free space, within [990 MB, 50 GB].
/// The free space is measured at the dbpath's nearest existing ancestor (it may not exist yet); when it cannot
/// be measured, the minimum applies.
pub fn default_max_bytes(dbpath: &Path) -> u64 {
    let measured = dbpath
        .ancestors()
        .find(|p| p.exists())
        .and_then(|p| nix::sys::statvfs::statvfs(p).ok())
        .map(|s| widen(s.blocks_available()).saturating_mul(widen(s.fragment_size())));
    default_max_bytes_for_free(measured.unwrap_or(0))
}

/// mongod's default oplog size given `free` bytes on the dbpath's filesystem.
pub fn default_max_bytes_for_free(free: u64) -> u64 {
    (free / 20).clamp(DEFAULT_MIN_BYTES, DEFAULT_MAX_BYTES)
}

/// `statvfs` field types vary by platform (u32 or u64); all fit in a u64.
fn widen<T: Into<u64>>(value: T) -> u64 {
    value.into()
}

/// The oldest entry's key (`None` when the oplog is empty).
pub(super) fn oldest_key(db: &Database) -> Result<Option<u64>> {
    let txn = db.begin_read().map_err(|e| storage_error("begin read", e))?;
    let table = txn.open_table(OPLOG).map_err(|e| storage_error("oplog", e))?;
    let first = table.first().map_err(|e| storage_error("oplog first", e))?;
    Ok(first.map(|(key, _)| key.value()))
}

/// Upper bound of truncation batches: the caller loops until a batch removes nothing.
pub(super) const fn batch_size() -> usize {
    TRUNCATE_BATCH
}

/// Key form of a timestamp bound.
pub(super) fn key_of(ts: Timestamp) -> u64 {
    ts_to_u64(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::storage::{Storage, ts_from_u64};
    use bson::doc;

    fn runtime() -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal(e.to_string()))
    }

    /// Writes `n` no-ops of about `pad` bytes each.
    fn write_noops(rt: &tokio::runtime::Runtime, storage: &Storage, n: usize, pad: usize) -> Result<()> {
        rt.block_on(storage.write(false, move |w| -> Result<()> {
            for i in 0..n {
                w.noop(doc! {"i": i as i64, "pad": "x".repeat(pad)})?;
            }
            Ok(())
        }))?
    }

    /// The figures a full scan of the table gives.
    fn scanned(storage: &Storage) -> Result<(u64, u64)> {
        let snapshot = storage.snapshot()?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        snapshot.scan_oplog(None, false, |_, entry| {
            entries += 1;
            bytes += entry.to_vec().map(|v| v.len() as u64).unwrap_or(0);
            std::ops::ControlFlow::Continue(())
        })?;
        Ok((entries, bytes))
    }

    #[test]
    fn appends_past_the_cap_truncate_the_oldest_entries_and_the_figures_survive_a_restart() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let rt = runtime()?;
        let storage = Storage::open(dir.path())?;
        storage.set_oplog_max_bytes(64 * 1024);
        write_noops(&rt, &storage, 400, 1_000)?;
        let before = storage.oplog_usage();
        assert_eq!(
            (before.entries, before.bytes),
            scanned(&storage)?,
            "accounting matches the table"
        );
        assert!(before.bytes > 64 * 1024 * 5, "the oplog grew past its cap: {before:?}");

        let newest = storage.positions().last_written;
        let removed = rt.block_on(storage.truncate_oplog(newest.ts))?;
        let after = storage.oplog_usage();
        assert!(removed.entries > 0, "the oldest entries went");
        assert!(after.bytes <= 64 * 1024, "back under the cap: {after:?}");
        assert!(
            after.bytes + 1_200 > 64 * 1024,
            "no more than needed was removed: {after:?}"
        );
        assert_eq!((after.entries, after.bytes), scanned(&storage)?);
        assert_eq!(before.entries - removed.entries, after.entries);
        assert_eq!(storage.positions().last_written, newest, "the newest entry stays");
        // The oldest entries went, in order: what is left is the newest suffix.
        let oldest = storage.oldest_oplog_timestamp()?.expect("entries left");
        let snapshot = storage.snapshot()?;
        let mut keys = Vec::new();
        snapshot.scan_oplog(None, false, |key, _| {
            keys.push(key);
            std::ops::ControlFlow::Continue(())
        })?;
        drop(snapshot);
        assert_eq!(ts_from_u64(keys[0]), oldest);
        assert_eq!(keys.len() as u64, after.entries);
        storage.shutdown();
        drop(storage);

        let reopened = Storage::open(dir.path())?;
        let again = reopened.oplog_usage();
        assert_eq!(
            (again.entries, again.bytes),
            (after.entries, after.bytes),
            "the figures survive a restart"
        );
        reopened.shutdown();
        Ok(())
    }

    #[test]
    fn truncation_never_removes_entries_the_set_still_needs() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let rt = runtime()?;
        let storage = Storage::open(dir.path())?;
        storage.set_oplog_max_bytes(1);
        write_noops(&rt, &storage, 50, 100)?;
        let snapshot = storage.snapshot()?;
        let mut keys = Vec::new();
        snapshot.scan_oplog(None, false, |key, _| {
            keys.push(key);
            std::ops::ControlFlow::Continue(())
        })?;
        drop(snapshot);
        let keep_from = ts_from_u64(keys[20]);
        let removed = rt.block_on(storage.truncate_oplog(keep_from))?;
        assert_eq!(removed.entries, 20, "everything before the kept point, nothing after");
        assert_eq!(storage.oldest_oplog_timestamp()?, Some(keep_from));
        assert_eq!(storage.oplog_usage().entries, 30);
        // Nothing more may go, however far over the cap the oplog is.
        assert_eq!(rt.block_on(storage.truncate_oplog(keep_from))?, Truncated::default());
        storage.shutdown();
        Ok(())
    }

    /// A truncation is one transaction: when its group fails, nothing is removed and the figures do not move.
    #[test]
    fn a_failed_truncation_changes_nothing() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let rt = runtime()?;
        let storage = Storage::open(dir.path())?;
        storage.set_oplog_max_bytes(1);
        write_noops(&rt, &storage, 30, 100)?;
        let before = storage.oplog_usage();
        let keep_from = storage.positions().last_written.ts;
        let outcome = rt.block_on(storage.write(true, move |w| -> Result<Truncated> {
            let removed = w.truncate_oplog_oldest(keep_from, 1_000)?;
            assert!(removed.entries > 0);
            Err(w.fatal("test", "the disk went away mid-truncation"))
        }));
        assert!(outcome.is_err(), "the group failed");
        assert_eq!(storage.oplog_usage(), before);
        assert_eq!((before.entries, before.bytes), scanned(&storage)?);
        storage.shutdown();
        drop(storage);
        let reopened = Storage::open(dir.path())?;
        let again = reopened.oplog_usage();
        assert_eq!((again.entries, again.bytes), (before.entries, before.bytes));
        reopened.shutdown();
        Ok(())
    }

    #[test]
    fn the_default_size_is_five_percent_of_free_space_within_mongods_bounds() {
        const GIB: u64 = 1024 * MIB;
        assert_eq!(default_max_bytes_for_free(0), DEFAULT_MIN_BYTES, "at least 990 MB");
        assert_eq!(default_max_bytes_for_free(10 * GIB), DEFAULT_MIN_BYTES);
        assert_eq!(default_max_bytes_for_free(100 * GIB), 5 * GIB);
        assert_eq!(
            default_max_bytes_for_free(10_000 * GIB),
            DEFAULT_MAX_BYTES,
            "at most 50 GB"
        );
        // Measured on the dbpath's filesystem (at its nearest existing ancestor before it is created); other
        // processes write to the same disk, so the figure may move a little between two measurements.
        let dir = std::env::temp_dir();
        let stats = nix::sys::statvfs::statvfs(&dir).expect("statvfs");
        let free = widen(stats.blocks_available()) * widen(stats.fragment_size());
        let expected = default_max_bytes_for_free(free);
        for path in [dir.clone(), dir.join("not-yet/created")] {
            let got = default_max_bytes(&path);
            assert!(
                got.abs_diff(expected) <= expected / 100,
                "{got} vs {expected} for {}",
                path.display()
            );
        }
    }
}

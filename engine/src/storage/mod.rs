//! Durable state of one member, in one `redb` database file.
//!
//! ```text
//! catalog          ns → collection metadata (uuid, options, index specs)
//! docs:<uuid>      keystring(_id) → document                 one table per collection
//! index:<uuid>:<n> keystring(key values) → keystring(_id)    one table per secondary unique index
//! oplog            ts as u64 (secs << 32 | inc) → oplog entry (local.oplog.rs)
//! meta             name → document                            replication metadata (config, term, vote, ...)
//! sessions         keystring(lsid) → executed statements      retryable-write de-duplication
//! ```
//!
//! Writes go through one writer thread ([`writer`]) that groups concurrent jobs into one transaction
//! (group commit); a write and its oplog entries always commit together. Reads take a [`Snapshot`], a
//! consistent read transaction that never blocks the writer.

mod apply;
mod capped;
pub mod catalog;
mod history;
mod journal;
pub mod keystring;
mod memory_disk;
mod oplog;
mod oplog_entry;
mod snapshot;
mod write_ctx;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bson::Document;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

pub use apply::EncodedBatch;
use capped::OplogAccount;
pub use capped::{DEFAULT_MAX_BYTES, DEFAULT_MIN_BYTES, OplogUsage, Truncated, default_max_bytes};
pub use catalog::{CollectionMeta, IndexSpec, Namespace};
pub use memory_disk::MemoryDisk;
pub use oplog::{OpTime, scan_after as oplog_scan_after, ts_from_u64, ts_to_u64};
pub use oplog_entry::{CommandOp, OpKind, OplogEntry, OplogOp, UpdateChange, crud_target, fold_document};
pub use snapshot::Snapshot;
pub use write_ctx::{RetryImage, SessionStatement, WriteCtx};
pub use writer::JobSize;
use writer::{Writer, WriterMode};

use crate::clock::Clock;
use crate::error::{Error, Result};

pub(crate) const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
pub(crate) const OPLOG: TableDefinition<u64, &[u8]> = TableDefinition::new("oplog");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Per logical session: `{txnNumber, lastWrite}` of its newest retryable write.
pub(crate) const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// Per executed statement of a session's newest retryable write: key `session key ++ stmtId`, value the
/// result a retry gets back. One row per statement, so a batch of n statements costs O(n).
pub(crate) const SESSION_STATEMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("session_statements");

pub(crate) fn docs_table_name(meta: &CollectionMeta) -> String {
    format!("docs:{}", meta.uuid)
}

pub(crate) fn index_table_name(meta: &CollectionMeta, index: &str) -> String {
    format!("index:{}:{}", meta.uuid, index)
}

/// How often buffered (non-`j`) commits are made durable, like mongod's journal commit interval.
pub const JOURNAL_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The positions of the local oplog that callers wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positions {
    /// The newest committed (visible) oplog entry.
    pub last_written: OpTime,
    /// The newest oplog entry that is on disk (fsync'd).
    pub last_durable: OpTime,
    /// The `wall` time of the entry at `last_written` (ms since the epoch; 0 when unknown, as after a
    /// rollback truncated the oplog, until the next entry): `lastAppliedWallTime`.
    pub last_written_wall_ms: i64,
    /// The `wall` time of the entry at `last_durable`, likewise (`lastDurableWallTime`).
    pub last_durable_wall_ms: i64,
    /// The newest entry (and its wall time) whose journal record is on disk while its group is not yet
    /// committed: a secondary's batch journaled before it is applied (`Storage::apply_prejournaled`). The
    /// durable position moves to it when `last_written` reaches it (storage's own bookkeeping).
    pub(crate) synced_ahead: Option<(OpTime, i64)>,
}

/// Handle to a member's storage; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    writer: Writer,
    positions: watch::Receiver<Positions>,
    term: Arc<AtomicI64>,
    path: PathBuf,
    /// The oplog's entry count, byte size and maximum size (capped.rs).
    oplog: Arc<OplogAccount>,
    /// The member's wall clock (shared with the writer).
    clock: Clock,
    /// Views retained for snapshot reads at a past time.
    history: history::SnapshotHistory,
    /// Catalog entries readers have decoded.
    catalog: Arc<catalog::DecodedCatalog>,
}

fn storage_error(context: &str, err: impl std::fmt::Display) -> Error {
    Error::internal(format!("storage: {context}: {err}"))
}

/// Serializes a document for a table, refusing one nested deeper than `limit`
/// ([`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH) for user documents,
/// [`MAX_BSON_DEPTH`](crate::depth::MAX_BSON_DEPTH) for oplog entries and metadata) with Overflow and
/// `message`. Every document the writer thread stores passes through here, so the writer never serializes,
/// and no reader ever decodes, anything deeper than the limits.
pub(crate) fn encode(doc: &Document, limit: usize, message: impl FnOnce() -> String) -> Result<Vec<u8>> {
    if !crate::depth::document_within(doc, limit) {
        return Err(Error::new(crate::error::code::OVERFLOW, message()));
    }
    Ok(doc.to_vec()?)
}

/// Decodes a stored document. Bytes nested deeper than [`MAX_BSON_DEPTH`](crate::depth::MAX_BSON_DEPTH)
/// (which [`encode`] never writes, but an older version could have) are refused before the recursive
/// conversion into a [`Document`] could exhaust the stack.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Document, String> {
    let raw = bson::RawDocument::from_bytes(bytes).map_err(|e| e.to_string())?;
    match crate::depth::raw_nesting_within(raw, crate::depth::MAX_BSON_DEPTH) {
        Ok(true) => crate::bsonx::to_document(raw).map_err(|e| e.to_string()),
        Ok(false) => Err(format!(
            "stored document exceeds {} levels of nesting",
            crate::depth::MAX_BSON_DEPTH
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl Storage {
    /// [`Storage::open_with_clock`] with a clock of its own, never skewed (tests and tools; a member passes
    /// its clock).
    pub fn open(dbpath: &Path) -> Result<Storage> {
        Storage::open_with_clock(dbpath, Clock::new())
    }

    /// Opens (or creates) the database under `dbpath`, stamping new oplog entries with `clock`. A file left
    /// by a crashed process is repaired by redb on open: the newest checksummed commit wins.
    pub fn open_with_clock(dbpath: &Path, clock: Clock) -> Result<Storage> {
        std::fs::create_dir_all(dbpath).map_err(|e| storage_error(&format!("create {}", dbpath.display()), e))?;
        let path = dbpath.join("faultline.redb");
        let db = Database::builder()
            .create(&path)
            .map_err(|e| storage_error(&format!("open {}", path.display()), e))?;
        let (journal, records) = journal::Journal::open(dbpath)?;
        Storage::open_database(dbpath, db, clock, Some((journal, records)))
    }

    /// The simulation's storage: the database file on `disk` (in memory, surviving a simulated kill), and
    /// the writer inline on the calling task instead of on a thread of its own. `dbpath` still holds the
    /// member's other files (spill space).
    pub fn open_simulated(dbpath: &Path, disk: &MemoryDisk, clock: Clock) -> Result<Storage> {
        std::fs::create_dir_all(dbpath).map_err(|e| storage_error(&format!("create {}", dbpath.display()), e))?;
        let db = Database::builder()
            .create_with_backend(disk.backend())
            .map_err(|e| storage_error("open the simulated disk", e))?;
        Storage::open_database(dbpath, db, clock, None)
    }

    /// Opens the storage over `db`: with a journal (and the records read from it), first replays the records
    /// the last checkpoint does not cover and runs the writer on its own thread; without one (simulation),
    /// inline.
    fn open_database(
        dbpath: &Path,
        db: Database,
        clock: Clock,
        journal: Option<(journal::Journal, Vec<journal::Record>)>,
    ) -> Result<Storage> {
        let db = Arc::new(db);
        init_tables(&db)?;
        let mode = match journal {
            Some((journal, records)) => WriterMode::Thread(recover(&db, journal, records, &clock)?),
            None => WriterMode::Inline,
        };
        let (last, last_wall_ms) = last_oplog_entry(&db)?;
        let term = Arc::new(AtomicI64::new(last.term.max(0)));
        let positions = Positions {
            last_written: last,
            last_durable: last,
            last_written_wall_ms: last_wall_ms,
            last_durable_wall_ms: last_wall_ms,
            synced_ahead: None,
        };
        let (tx, rx) = watch::channel(positions);
        let oplog = Arc::new(OplogAccount::load(&db)?);
        let writer = Writer::start(mode, db.clone(), tx, term.clone(), last, oplog.clone(), clock.clone())?;
        Ok(Storage {
            inner: Arc::new(Inner {
                db,
                writer,
                positions: rx,
                term,
                path: dbpath.to_path_buf(),
                oplog,
                clock,
                history: history::SnapshotHistory::default(),
                catalog: Arc::default(),
            }),
        })
    }

    /// The member's wall clock: every wall-clock read of the member goes through it.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn dbpath(&self) -> &Path {
        &self.inner.path
    }

    /// A consistent read-only view of the current committed state.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let txn = self.inner.db.begin_read().map_err(|e| storage_error("begin read", e))?;
        Ok(Snapshot::new(txn, self.inner.oplog.usage(), self.inner.catalog.clone()))
    }

    /// The view a snapshot read reads: at `at`, or now (then kept for later reads at its time); with the
    /// timestamp it is at. See `history.rs` for what past times are available.
    pub fn snapshot_at(&self, at: Option<bson::Timestamp>) -> Result<(Arc<Snapshot>, bson::Timestamp)> {
        self.inner.history.view_at(self.snapshot()?, at)
    }

    /// Runs `job` inside the writer's next group transaction and returns its output once the transaction has
    /// committed (and, when `durable`, is fsync'd). `job` must check before it writes: an `Err` it returns is
    /// the command's error, and anything it wrote before returning still commits.
    pub async fn write<R, F>(&self, durable: bool, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> R + Send + 'static,
    {
        self.inner.writer.submit(durable, None, JobSize::Any, job).await
    }

    /// [`Storage::write`] for a job of the given size: a [`JobSize::Small`] one runs on the calling task when
    /// the writer is idle, which saves waking the writer thread (see `writer.rs`).
    pub async fn write_sized<R, F>(&self, durable: bool, size: JobSize, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> R + Send + 'static,
    {
        self.inner.writer.submit(durable, None, size, job).await
    }

    /// Runs `job` (a secondary applying `batch`, which it appends with [`WriteCtx::append_encoded`]) with the
    /// batch written to the journal before the job runs: the record's fsync starts at once and runs beside the
    /// apply, and the durable position moves to the batch's newest entry once both are done. A crash between
    /// the two replays the record on restart (apply is idempotent), as for any journaled group. Without a
    /// journal (simulation) this is [`Storage::write`] with `durable` false.
    pub async fn apply_prejournaled<R, F>(&self, batch: EncodedBatch, size: JobSize, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> R + Send + 'static,
    {
        self.inner.writer.submit(false, Some(batch), size, job).await
    }

    /// Makes everything committed so far durable now (one fsync shared with any concurrent durable write),
    /// instead of waiting for the next journal interval.
    pub async fn flush(&self) -> Result<()> {
        self.write(true, |_| ()).await
    }

    /// Whether the journal covers everything committed so far, so that a write that asked for
    /// [`WriteCtx::sync_soon`] becomes durable on its own (the durable position moves when it is). False
    /// without a journal or while changes it does not cover wait for a checkpoint: then the caller uses
    /// [`Storage::flush`].
    pub fn journal_covers(&self) -> bool {
        self.inner.writer.journal_covers()
    }

    /// The term written into new oplog entries.
    pub fn set_term(&self, term: i64) {
        self.inner.term.store(term, Ordering::SeqCst);
    }

    pub fn term(&self) -> i64 {
        self.inner.term.load(Ordering::SeqCst)
    }

    pub fn positions(&self) -> Positions {
        *self.inner.positions.borrow()
    }

    /// A receiver that changes whenever the oplog advances or becomes durable.
    pub fn watch_positions(&self) -> watch::Receiver<Positions> {
        self.inner.positions.clone()
    }

    /// Reads a metadata document (replica-set config, vote, ...).
    pub fn read_meta(&self, key: &str) -> Result<Option<Document>> {
        self.snapshot()?.meta(key)
    }

    /// The oplog's entry count, size and maximum size (O(1): kept in memory by the writer).
    pub fn oplog_usage(&self) -> OplogUsage {
        self.inner.oplog.usage()
    }

    /// Sets the oplog's maximum size (`maxSize`); entries beyond it are truncated by [`Storage::truncate_oplog`].
    pub fn set_oplog_max_bytes(&self, bytes: u64) {
        self.inner.oplog.set_max_bytes(bytes);
    }

    /// The oldest entry's timestamp (`None` when the oplog is empty).
    pub fn oldest_oplog_timestamp(&self) -> Result<Option<bson::Timestamp>> {
        Ok(capped::oldest_key(&self.inner.db)?.map(ts_from_u64))
    }

    /// Removes the oldest oplog entries while the oplog is over its maximum size, never one at or after
    /// `keep_from`. Runs in batches, each its own transaction (all or nothing if the process dies), so client
    /// writes queued behind a batch wait for one batch only. Returns what was removed.
    pub async fn truncate_oplog(&self, keep_from: bson::Timestamp) -> Result<Truncated> {
        let mut total = Truncated::default();
        loop {
            if self.oplog_usage().bytes <= self.oplog_usage().max_bytes {
                return Ok(total);
            }
            let batch = self
                .write(false, move |w| w.truncate_oplog_oldest(keep_from, capped::batch_size()))
                .await??;
            total.entries += batch.entries;
            total.bytes += batch.bytes;
            if batch.entries == 0 {
                return Ok(total);
            }
        }
    }

    /// Makes everything committed so far durable and stops the writer.
    pub fn shutdown(&self) {
        self.inner.writer.shutdown();
    }

    /// Stops as a killed process does (simulation): nothing more is committed or flushed.
    pub fn abandon(&self) {
        self.inner.writer.abandon();
    }
}

fn init_tables(db: &Database) -> Result<()> {
    let txn = db.begin_write().map_err(|e| storage_error("begin write", e))?;
    {
        txn.open_table(CATALOG).map_err(|e| storage_error("catalog", e))?;
        txn.open_table(OPLOG).map_err(|e| storage_error("oplog", e))?;
        txn.open_table(META).map_err(|e| storage_error("meta", e))?;
        txn.open_table(SESSIONS).map_err(|e| storage_error("sessions", e))?;
        txn.open_table(SESSION_STATEMENTS)
            .map_err(|e| storage_error("session statements", e))?;
    }
    txn.commit().map_err(|e| storage_error("commit", e))
}

/// Replays the journal's records newer than the last checkpoint through the oplog's apply path (appending
/// each entry and applying its effect, idempotently, as a secondary does), then checkpoints (only when there
/// was something to replay), so the journal starts again empty. A record that cannot be decoded ends the replay with an error: the member does not
/// start on a data file missing acknowledged writes.
fn recover(
    db: &Database,
    mut journal: journal::Journal,
    records: Vec<journal::Record>,
    clock: &Clock,
) -> Result<journal::Journal> {
    let checkpoint = {
        let txn = db.begin_read().map_err(|e| storage_error("begin read", e))?;
        let table = txn.open_table(META).map_err(|e| storage_error("meta", e))?;
        let stored = table
            .get(journal::CHECKPOINT_KEY)
            .map_err(|e| storage_error("meta get", e))?;
        match stored {
            Some(v) => decode(v.value())
                .map_err(|e| storage_error("journal checkpoint", e))?
                .get_i64("lsn")
                .unwrap_or(0) as u64,
            None => 0,
        }
    };
    journal.continue_after(checkpoint);
    let pending: Vec<&journal::Record> = records.iter().filter(|r| r.lsn > checkpoint).collect();
    let replayed: usize = pending.iter().map(|r| r.entries().count()).sum();
    if pending.is_empty() {
        // Every record is in the data file already (a clean shutdown leaves none after the checkpoint).
        journal.restart();
        return Ok(journal);
    }
    let (last, _) = last_oplog_entry(db)?;
    let account = OplogAccount::load(db)?;
    let mut timestamps = oplog::TimestampAllocator::new(last.ts);
    let mut txn = db.begin_write().map_err(|e| storage_error("begin write", e))?;
    {
        let mut w = WriteCtx::new(&txn, &mut timestamps, clock, last.term.max(0), &account);
        for record in &pending {
            for bytes in record.entries() {
                let entry = OplogEntry::from_bytes(bytes)?;
                w.append_entry(&entry)?;
                w.apply_entry(&entry)?;
            }
        }
        if let Some(err) = w.take_fatal() {
            return Err(err);
        }
        let mut meta = txn.open_table(META).map_err(|e| storage_error("meta", e))?;
        let stored = bson::doc! {"lsn": journal.last_lsn() as i64}.to_vec()?;
        meta.insert(journal::CHECKPOINT_KEY, stored.as_slice())
            .map_err(|e| storage_error("meta insert", e))?;
    }
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| storage_error("set durability", e))?;
    txn.commit().map_err(|e| storage_error("commit", e))?;
    tracing::info!(
        records = pending.len(),
        entries = replayed,
        "replayed the journal's records after the last checkpoint"
    );
    journal.restart();
    Ok(journal)
}

/// The newest oplog entry's optime and `wall` time (ms since the epoch).
fn last_oplog_entry(db: &Database) -> Result<(OpTime, i64)> {
    let txn = db.begin_read().map_err(|e| storage_error("begin read", e))?;
    let table = txn.open_table(OPLOG).map_err(|e| storage_error("oplog", e))?;
    let last = table.last().map_err(|e| storage_error("oplog last", e))?;
    match last {
        None => Ok((OpTime::null(), 0)),
        Some((_, value)) => {
            let entry = decode(value.value()).map_err(|e| storage_error("oplog entry", e))?;
            let wall_ms = entry.get_datetime("wall").map(|w| w.timestamp_millis()).unwrap_or(0);
            Ok((OplogEntry::optime_of(&entry).unwrap_or_else(OpTime::null), wall_ms))
        }
    }
}

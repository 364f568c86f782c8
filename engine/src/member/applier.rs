//! The replicator's applier: applies batches of another member's oplog entries to the data and appends them
//! to the local oplog, in one transaction per batch. Shared by the fetcher (steady-state tailing)
//! and the syncer (initial sync's oplog phase).
//!
//! A batch of CRUD entries is applied by document in parallel: entries are grouped by `(namespace, _id)`,
//! each document's entries are folded onto its current version in oplog order on worker threads, and the
//! final versions are written; batches with commands (create, drop, indexes, renames) are applied entry by
//! entry. A member with `secondaryDelaySecs` holds entries back until they are that old. Applied entries are
//! counted by kind for `serverStatus.opcountersRepl`. Fail point `applyOplogOutOfOrder` holds batches back
//! and applies them after newer ones (the oplog keeps its order).
//!
//! A batch is written to the journal before it is applied (`Storage::apply_prejournaled`, as mongod writes a
//! batch to its oplog before applying it), so its fsync runs while it is applied, and the applier returns
//! without waiting for either: the fetcher's next `getMore` is on its way while the disk syncs. The member's
//! durable optime, which the primary's majority commit point counts, moves once both are done. When the sync
//! source has writes waiting for members' durable positions (`$replData.durableAwaited`), the batch is marked
//! `awaited` and the applying thread lets the journal's sync thread start that fsync before it applies (on a
//! small host the sync thread, woken onto the applying thread's core, otherwise waited until the apply was
//! done). A short batch of document changes (`apply_size`) is applied on the fetcher's own task when the writer
//! is idle, which spares the writer thread's wake-up; anything longer goes to the writer thread.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bson::{Bson, Document};
use tokio::sync::watch;

use super::RoleSnapshot;
use crate::error::{Error, Result};
use crate::failpoint::{self, FailPoints};
use crate::storage::{
    EncodedBatch, JobSize, Namespace, OpKind, OplogEntry, OplogOp, Storage, fold_document, keystring,
};
use crate::tasks::Tasks;
use crate::workers;
use std::sync::Arc;

/// Fail point `applyOplogOutOfOrder`: how many batches the data lags behind the oplog.
const HELD_BATCHES: usize = 2;

/// Batches at least this long are applied by document in parallel.
const PARALLEL_APPLY_MIN: usize = 32;

/// The most entries a batch may hold and still be applied on the fetcher's own task (see [`apply_size`]): a
/// member that keeps up with a light load fetches one or two at a time; longer batches mean a load whose
/// applies should share the writer thread's group commits (and leave the fetcher's task to the network).
const SMALL_APPLY_ENTRIES: usize = 4;

/// The most bytes a batch may carry and still be applied on the fetcher's own task.
const SMALL_APPLY_BYTES: usize = 1024 * 1024;

/// How much work applying `batch` is: small when it has at most [`SMALL_APPLY_ENTRIES`] entries and
/// [`SMALL_APPLY_BYTES`], and only changes documents by `_id` (or notes no-ops). A command entry (a drop, an
/// index build, a transaction's `applyOps`) may take any time, and goes to the writer thread.
fn apply_size(batch: &[OplogEntry], bytes: usize, folded: bool) -> JobSize {
    let documents_only = batch.iter().all(|entry| {
        matches!(
            entry.op.kind(),
            Some(OpKind::Insert | OpKind::Update | OpKind::Delete | OpKind::Noop)
        )
    });
    if !folded && batch.len() <= SMALL_APPLY_ENTRIES && bytes <= SMALL_APPLY_BYTES && documents_only {
        JobSize::Small
    } else {
        JobSize::Any
    }
}

/// One document's share of a batch: where it lives, the positions of its entries in the batch (oplog order),
/// and its final state.
type Folded = Vec<(Namespace, Bson, Vec<usize>, Option<Document>)>;

/// Applies oplog batches from other members; owns the applied-op counters and the fail point's held batches.
pub(super) struct Applier {
    storage: Storage,
    failpoints: Arc<FailPoints>,
    /// The driver's role snapshot (this member's `secondaryDelaySecs`, whether it is catching up).
    role: watch::Receiver<RoleSnapshot>,
    /// Fail point `applyOplogOutOfOrder`: batches held back to be applied after newer ones.
    held_batches: Mutex<VecDeque<Vec<OplogEntry>>>,
    /// What was applied (`serverStatus.opcountersRepl`).
    applied_ops: AppliedOps,
    /// Bumped after each applied batch: the journal task makes everything applied so far durable.
    journal: watch::Sender<u64>,
}

/// Oplog entries applied from another member, by kind (`opcountersRepl`; the applier never queries, so
/// `query` and `getmore` stay 0 as on mongod).
#[derive(Debug, Default)]
pub struct AppliedOps {
    pub insert: AtomicU64,
    pub update: AtomicU64,
    pub delete: AtomicU64,
    pub command: AtomicU64,
    /// Entries applied while this member was a new primary catching up (`averageCatchUpOps`).
    pub during_catch_up: AtomicU64,
}

impl AppliedOps {
    /// Adds an applied batch's counts; `catching_up` when this member is a new primary catching up.
    pub fn add(&self, counts: OpCounts, catching_up: bool) {
        if catching_up {
            self.during_catch_up.fetch_add(counts.entries, Ordering::Relaxed);
        }
        self.insert.fetch_add(counts.insert, Ordering::Relaxed);
        self.update.fetch_add(counts.update, Ordering::Relaxed);
        self.delete.fetch_add(counts.delete, Ordering::Relaxed);
        self.command.fetch_add(counts.command, Ordering::Relaxed);
    }
}

/// The entries of one batch by kind (no-ops are not counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpCounts {
    insert: u64,
    update: u64,
    delete: u64,
    command: u64,
    /// Every entry, no-ops included.
    entries: u64,
}

impl OpCounts {
    pub fn of(batch: &[crate::storage::OplogEntry]) -> OpCounts {
        let mut counts = OpCounts {
            entries: batch.len() as u64,
            ..OpCounts::default()
        };
        for entry in batch {
            match entry.op.kind() {
                Some(crate::storage::OpKind::Insert) => counts.insert += 1,
                Some(crate::storage::OpKind::Update) => counts.update += 1,
                Some(crate::storage::OpKind::Delete) => counts.delete += 1,
                Some(crate::storage::OpKind::Command) => counts.command += 1,
                Some(crate::storage::OpKind::Noop) | None => {}
            }
        }
        counts
    }
}

impl Applier {
    /// The applier, with its journal task in `tasks` (it ends with the applier).
    pub(super) fn new(
        storage: Storage,
        failpoints: Arc<FailPoints>,
        role: watch::Receiver<RoleSnapshot>,
        tasks: &Tasks,
    ) -> Applier {
        let (journal, mut requests) = watch::channel(0u64);
        let journal_storage = storage.clone();
        tasks.spawn(async move {
            while requests.changed().await.is_ok() {
                requests.borrow_and_update();
                if let Err(err) = journal_storage.flush().await {
                    tracing::warn!(error = %err, "could not make applied oplog entries durable");
                }
            }
        });
        Applier {
            storage,
            failpoints,
            role,
            held_batches: Mutex::new(VecDeque::new()),
            applied_ops: AppliedOps::default(),
            journal,
        }
    }

    /// Makes sure everything applied so far becomes durable: the batch's journal record was fsynced at once
    /// (`WriteCtx::sync_soon`) when the journal covers it; otherwise the journal task flushes (a checkpoint).
    fn ensure_fsync(&self) {
        if self.storage.journal_covers() {
            return;
        }
        self.journal
            .send_modify(|requests| *requests = requests.wrapping_add(1));
    }

    /// What was applied so far, by kind.
    pub(super) fn applied_ops(&self) -> &AppliedOps {
        &self.applied_ops
    }

    /// Applies entries in order in one transaction (after holding them back for `secondaryDelaySecs`);
    /// `awaited` when a write on the sync source waits for this member's durable position.
    pub(super) async fn apply_batch(&self, batch: Vec<OplogEntry>, awaited: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let delay_secs = self
            .role
            .borrow()
            .self_member()
            .map(|m| m.secondary_delay_secs)
            .unwrap_or(0);
        if delay_secs > 0
            && let Some(wall) = batch.last().and_then(OplogEntry::wall)
        {
            let due = wall.timestamp_millis() + delay_secs * 1000;
            let wait = due - self.storage.clock().now_millis();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        // Fail point: the data sees the entries in another order than the oplog.
        let swapped =
            (self.failpoints.hit(failpoint::APPLY_OPLOG_OUT_OF_ORDER).is_some()).then(|| self.swap_with_held(&batch));
        let counts = OpCounts::of(&batch);
        if let Some(to_apply) = swapped {
            self.storage
                .write(false, move |w| -> Result<()> {
                    w.sync_soon();
                    for entry in &to_apply {
                        w.apply_entry(entry)?;
                    }
                    for entry in &batch {
                        w.append_entry(entry)?;
                    }
                    Ok(())
                })
                .await??;
        } else {
            // Journaled (and fsynced) while it is applied: the primary's majority commit point counts durable
            // optimes.
            let encoded = EncodedBatch::new(&batch)?.awaited(awaited);
            let batch = Arc::new(batch);
            let folded = if batch.len() >= PARALLEL_APPLY_MIN {
                self.fold_in_parallel(&batch)?
            } else {
                None
            };
            let size = apply_size(&batch, encoded.byte_len(), folded.is_some());
            let appended = encoded.clone();
            self.storage
                .apply_prejournaled(encoded, size, move |w| -> Result<()> {
                    // Only for a batch whose journal record could not be written first: it is then journaled
                    // with its group, and that record is fsynced at once.
                    w.sync_soon();
                    match folded {
                        Some(folded) => {
                            for (ns, id, positions, doc) in folded {
                                let entries: Vec<&OplogEntry> = positions.iter().map(|p| &batch[*p]).collect();
                                w.install_folded(&ns, &id, doc, &entries)?;
                            }
                            for (i, entry) in batch.iter().enumerate() {
                                w.append_encoded(entry, appended.entry(i))?;
                            }
                        }
                        None => {
                            for (i, entry) in batch.iter().enumerate() {
                                w.apply_entry(entry)?;
                                w.append_encoded(entry, appended.entry(i))?;
                            }
                        }
                    }
                    Ok(())
                })
                .await??;
        }
        self.ensure_fsync();
        self.applied_ops.add(counts, self.catching_up());
        Ok(())
    }

    /// Whether this member is a new primary still catching up (PRIMARY, not yet writable).
    fn catching_up(&self) -> bool {
        let role = self.role.borrow();
        role.state.is_primary() && !role.writable
    }

    /// Fail point `applyOplogOutOfOrder`: the data sees entries out of order (the oplog keeps its order).
    /// Each batch is held back until [`HELD_BATCHES`] newer ones arrived, then applied backwards.
    fn swap_with_held(&self, batch: &[OplogEntry]) -> Vec<OplogEntry> {
        let Ok(mut held) = self.held_batches.lock() else {
            return batch.to_vec();
        };
        held.push_back(batch.to_vec());
        if held.len() <= HELD_BATCHES {
            return Vec::new();
        }
        held.pop_front()
            .map(|oldest| oldest.into_iter().rev().collect())
            .unwrap_or_default()
    }

    /// Groups a CRUD-only batch by document and folds each document's entries (in oplog order) onto its
    /// current version, on several threads. `None` when the batch holds commands (create, drop, indexes) or
    /// an entry whose retry image must be kept (findAndModify): those batches are applied one by one.
    fn fold_in_parallel(&self, batch: &Arc<Vec<OplogEntry>>) -> Result<Option<Folded>> {
        let mut groups: Vec<(Namespace, Bson, Vec<usize>)> = Vec::new();
        let mut index: HashMap<(String, Vec<u8>), usize> = HashMap::new();
        for (i, entry) in batch.iter().enumerate() {
            if entry.session.as_ref().is_some_and(|s| s.retry_image.is_some()) {
                // Its document's intermediate version must be kept for a retry: applied one by one.
                return Ok(None);
            }
            let Some((ns, id)) = entry.op.target() else {
                if entry.op == OplogOp::Noop {
                    continue;
                }
                return Ok(None);
            };
            let key = (ns.full(), keystring::encode(id));
            let slot = *index.entry(key).or_insert_with(|| {
                groups.push((ns.clone(), id.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[slot].2.push(i);
        }
        let snapshot = self.storage.snapshot()?;
        let mut pre = Vec::with_capacity(groups.len());
        let mut collections: HashMap<Namespace, Option<crate::storage::CollectionMeta>> = HashMap::new();
        for (ns, id, _) in &groups {
            let meta = match collections.get(ns) {
                Some(meta) => meta,
                None => collections.entry(ns.clone()).or_insert(snapshot.collection(ns)?),
            };
            let current = match meta {
                Some(meta) => snapshot.get_by_id(meta, id)?,
                None => None,
            };
            pre.push(current);
        }
        drop(snapshot);
        // Each part: the positions of one document's entries in the batch, and its current version.
        let mut work: Vec<(Vec<usize>, Option<Document>)> = Vec::with_capacity(groups.len());
        let mut targets = Vec::with_capacity(groups.len());
        for ((ns, id, positions), pre) in groups.into_iter().zip(pre) {
            targets.push((ns, id));
            work.push((positions, pre));
        }
        let chunk = work.len().div_ceil(workers::parallelism()).max(1);
        let mut parts = Vec::new();
        let mut work = work.into_iter().peekable();
        while work.peek().is_some() {
            parts.push(work.by_ref().take(chunk).collect::<Vec<_>>());
        }
        let shared = batch.clone();
        let folded = workers::map_parts(parts, move |part| {
            part.into_iter()
                .map(|(positions, pre)| {
                    let entries: Vec<&OplogEntry> = positions.iter().map(|p| &shared[*p]).collect();
                    let doc = fold_document(pre, &entries);
                    (positions, doc)
                })
                .collect::<Vec<_>>()
        })
        .ok_or_else(|| Error::internal("parallel oplog apply failed"))?;
        let folded: Vec<_> = folded.into_iter().flatten().collect();
        if folded.len() != targets.len() {
            return Err(Error::internal("parallel oplog apply lost documents"));
        }
        Ok(Some(
            targets
                .into_iter()
                .zip(folded)
                .map(|((ns, id), (positions, doc))| (ns, id, positions, doc))
                .collect(),
        ))
    }
}

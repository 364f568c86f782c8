//! The oplog fetcher and applier of a secondary: tail the sync source's oplog, apply batches, report.
//!
//! ```text
//! find local.oplog.rs {ts >= lastApplied.ts} tailable awaitData   first entry must equal our last one:
//!   ├─ equal      → apply the rest, then getMore (long-poll) forever
//!   ├─ different  → the source's oldest entry is newer than our last one: we fell off its (capped) oplog,
//!   │               we are too stale to sync from it (the machine tries another source, else RECOVERING)
//!   ├─ different  → otherwise our history diverged: roll back (sync.rs)
//!   └─ none       → if the source's newest entry (`$replData.lastOpApplied`) is newer than ours in
//!                   (term, ts) order, our newest entries were never in its history: roll back;
//!                   otherwise the source is behind us: wait and retry
//! ```
//! The cursor is the wire client's [`OplogTail`] over a channel of the member's network (TCP, or the
//! simulation's in-process delivery). Every reply carries `$replData` (the source's term, commit point, newest entry, rollback id and primary),
//! which the machine uses to learn the commit point. A source that rolls back while we tail it changes its
//! rollback id: our cursor sits past its new history, so the fetch starts over (and finds out whether we
//! diverged). A batch is applied in one durable storage transaction and appended to the local
//! oplog with its original `ts` and `t`. A batch of CRUD entries is applied by document in parallel: entries
//! are grouped by `(namespace, _id)`, each document's entries are folded onto its current version in oplog
//! order on worker threads, and the final versions are written; batches with commands (create, drop,
//! indexes, renames) are applied entry by entry. A member with `secondaryDelaySecs` holds entries back until
//! they are that old. Applied entries are counted by kind for `serverStatus.opcountersRepl`.

use std::time::Duration;

use bson::{Bson, Document, doc};

use super::Member;
use super::network::PeerChannel;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::repl::{Event, OpTime};
use crate::storage::{Namespace, OplogEntry, OplogOp, fold_document, keystring};
use crate::wire::client::{OplogBatch, OplogTail, TailSpec};
use std::collections::HashMap;

/// The fetcher's tail of the sync source's oplog, over a channel of the member's network.
type PeerTail = OplogTail<Box<dyn PeerChannel>>;

/// Entries per batch of the fetcher's cursor.
const BATCH: i32 = 1000;
/// How long the source may hold a `getMore` open waiting for new entries.
const AWAIT: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_millis(100);

/// Why a fetch round stopped.
pub(super) enum FetchEnd {
    /// Our newest entry is not in the source's oplog.
    Diverged,
    /// The source has nothing at or after our newest entry.
    SourceBehind,
    /// The source's oldest entry is newer than our newest: it truncated what we still need.
    TooStale,
    /// Our oplog is empty: initial sync is needed.
    Empty,
}

impl Member {
    /// Fetches from `host` until aborted (the sync source changed) — reconnecting on errors.
    pub(super) async fn run_fetcher(&self, source_id: i32, host: String) {
        loop {
            match self.fetch_round(source_id, &host).await {
                Ok(FetchEnd::Diverged) => {
                    if let Err(err) = self.roll_back(&host).await {
                        tracing::error!(error = %err, source = %host, "rollback failed");
                    }
                }
                Ok(FetchEnd::SourceBehind) => tracing::debug!(source = %host, "sync source is behind us"),
                Ok(FetchEnd::TooStale) => tracing::debug!(source = %host, "too stale to sync from this source"),
                // Nothing to fetch from until initial sync has given us an oplog.
                Ok(FetchEnd::Empty) => self.spawn_initial_sync(),
                Err(err) => tracing::debug!(error = %err, source = %host, "oplog fetch interrupted"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn fetch_round(&self, source_id: i32, host: &str) -> Result<FetchEnd> {
        let last = self.storage.positions().last_written;
        if last.is_null() || self.syncing.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(FetchEnd::Empty);
        }
        let timeout = self.rpc_timeout() + AWAIT;
        let channel = self.peers.open(host, timeout).await?;
        let (mut tail, first) = OplogTail::open(channel, self.tail_spec(last)).await?;
        self.learn_metadata(source_id, &first)?;
        let rbid = first.rollback_id();
        let theirs = first
            .repl_data
            .as_ref()
            .and_then(|data| data.get("lastOpApplied"))
            .and_then(|v| OpTime::from_bson(v).ok());
        let batch = OplogEntry::parse_all(first.entries)?;
        let Some(first) = batch.first() else {
            // Nothing at or after our newest timestamp. A source whose newest entry is from a later term has
            // a history without our newest entries (they were written by a primary that was deposed).
            if theirs.is_none_or(|theirs| theirs <= last) {
                return Ok(FetchEnd::SourceBehind);
            }
            tracing::warn!(ours = ?last, theirs = ?theirs, source = host, "oplog diverged from the sync source: it is newer but lacks our newest entry");
            if self.failpoints.hit(failpoint::SKIP_ROLLBACK).is_none() {
                return Ok(FetchEnd::Diverged);
            }
            return self.follow(source_id, &mut tail, rbid).await;
        };
        if first.optime != last {
            // Falling off a capped oplog is not a divergence: check the source's oldest entry first.
            let oldest = oldest_entry_ts(&mut **tail.channel(), timeout).await?;
            if let Some(oldest) = oldest.filter(|oldest| last.ts < *oldest) {
                tracing::warn!(
                    "We are too stale to use {host} as a sync source. Denylisting this sync source because our last \
                     fetched timestamp: {:?} is before their earliest timestamp: {oldest:?} for 1min",
                    last.ts
                );
                self.report_probe(source_id, true);
                return Ok(FetchEnd::TooStale);
            }
            tracing::warn!(ours = ?last, theirs = ?first.optime, source = host, "oplog diverged from the sync source");
            if self.failpoints.hit(failpoint::SKIP_ROLLBACK).is_none() {
                return Ok(FetchEnd::Diverged);
            }
            // Fail point: keep our diverged entries and carry on with the source's newer ones.
            // Ours stay, so only the source's entries past our newest timestamp (the oplog's key) can follow.
            let newer = batch.into_iter().filter(|e| e.optime.ts > last.ts).collect();
            self.apply_batch(newer).await?;
            return self.follow(source_id, &mut tail, rbid).await;
        }
        self.report_probe(source_id, false);
        self.apply_batch(batch.into_iter().skip(1).collect()).await?;
        self.follow(source_id, &mut tail, rbid).await
    }

    /// The fetcher's cursor: every entry from our newest one's timestamp on, with the source's `$replData`.
    fn tail_spec(&self, last: OpTime) -> TailSpec {
        let mut spec = TailSpec::new(doc! {"ts": {"$gte": last.ts}});
        spec.batch_size = BATCH;
        spec.await_time = AWAIT;
        spec.repl_metadata = true;
        spec.round_trip = self.rpc_timeout();
        spec
    }

    /// Tells the machine whether the source's oplog still holds our newest entry. (Its actions run in a task
    /// of their own: they may change the sync source, which aborts this fetcher.)
    fn report_probe(&self, source_id: i32, too_stale: bool) {
        let actions = self.handle(Event::SyncSourceProbed {
            from: source_id,
            too_stale,
        });
        if !actions.is_empty() {
            let me = self.arc();
            self.tasks.spawn(async move { me.execute(actions).await });
        }
    }

    /// Applies the source's batches as they come, until the source rolls back or closes the cursor.
    async fn follow(&self, source_id: i32, tail: &mut PeerTail, rbid: Option<i32>) -> Result<FetchEnd> {
        while tail.is_open() {
            let batch = tail.next_batch().await?;
            if batch.rollback_id() != rbid {
                return Err(Error::bad_value("the sync source rolled back; fetching again"));
            }
            self.learn_metadata(source_id, &batch)?;
            self.apply_batch(OplogEntry::parse_all(batch.entries)?).await?;
        }
        Err(Error::bad_value("the sync source closed the oplog cursor"))
    }

    /// Feeds the source's `$replData` to the machine; refuses a source whose term is older than ours (a
    /// deposed primary or a member cut off from the set: its new entries may roll back).
    fn learn_metadata(&self, source_id: i32, batch: &OplogBatch) -> Result<()> {
        let Some(data) = &batch.repl_data else {
            return Ok(());
        };
        let term = data.get_i64("term").unwrap_or(-1);
        let ours = self.role().term;
        if term < ours {
            return Err(Error::bad_value(format!(
                "the sync source is in term {term}, behind ours ({ours})"
            )));
        }
        let commit_point = data
            .get("lastOpCommitted")
            .and_then(|v| OpTime::from_bson(v).ok())
            .unwrap_or_else(OpTime::null);
        let primary_id = data.get_i32("primaryIndex").ok();
        let actions = self.handle(Event::SyncSourceMetadata {
            from: source_id,
            term,
            commit_point,
            primary_id,
        });
        let me = self.arc();
        self.tasks.spawn(async move { me.execute(actions).await });
        Ok(())
    }

    /// Applies entries in order in one transaction (after holding them back for `secondaryDelaySecs`).
    pub(super) async fn apply_batch(&self, batch: Vec<OplogEntry>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let delay_secs = self.role().self_member().map(|m| m.secondary_delay_secs).unwrap_or(0);
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
        if swapped.is_none()
            && batch.len() >= PARALLEL_APPLY_MIN
            && let Some(folded) = self.fold_in_parallel(&batch)?
        {
            let counts = super::OpCounts::of(&batch);
            self.install_folded(batch, folded).await?;
            self.applied_ops.add(counts, self.catching_up());
            return Ok(());
        }
        let counts = super::OpCounts::of(&batch);
        // Durable at once: the primary's majority commit point counts durable optimes.
        self.storage
            .write(true, move |w| -> Result<()> {
                if let Some(to_apply) = swapped {
                    for entry in &to_apply {
                        w.apply_entry(entry)?;
                    }
                    for entry in &batch {
                        w.append_entry(entry)?;
                    }
                    return Ok(());
                }
                for entry in &batch {
                    w.apply_entry(entry)?;
                    w.append_entry(entry)?;
                }
                Ok(())
            })
            .await??;
        self.applied_ops.add(counts, self.catching_up());
        Ok(())
    }
}

impl Member {
    /// Whether this member is a new primary still catching up (PRIMARY, not yet writable).
    fn catching_up(&self) -> bool {
        let role = self.role();
        role.state.is_primary() && !role.writable
    }
}

/// Fail point `applyOplogOutOfOrder`: how many batches the data lags behind the oplog.
const HELD_BATCHES: usize = 2;

impl Member {
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
}

/// Batches at least this long are applied by document in parallel.
const PARALLEL_APPLY_MIN: usize = 32;

/// One document's share of a batch: where it lives, the positions of its entries in the batch (oplog order),
/// and its final state.
type Folded = Vec<(Namespace, Bson, Vec<usize>, Option<Document>)>;

impl Member {
    /// Groups a CRUD-only batch by document and folds each document's entries (in oplog order) onto its
    /// current version, on several threads. `None` when the batch holds commands (create, drop, indexes):
    /// those are applied one by one.
    fn fold_in_parallel(&self, batch: &[OplogEntry]) -> Result<Option<Folded>> {
        let mut groups: Vec<(Namespace, Bson, Vec<usize>)> = Vec::new();
        let mut index: HashMap<(String, Vec<u8>), usize> = HashMap::new();
        for (i, entry) in batch.iter().enumerate() {
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
        for (ns, id, _) in &groups {
            let current = match snapshot.collection(ns)? {
                Some(meta) => snapshot.get_by_id(&meta, id)?,
                None => None,
            };
            pre.push(current);
        }
        drop(snapshot);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let chunk = groups.len().div_ceil(threads).max(1);
        let mut finals: Vec<Option<Document>> = Vec::with_capacity(groups.len());
        std::thread::scope(|scope| {
            let workers: Vec<_> = groups
                .chunks(chunk)
                .zip(pre.chunks_mut(chunk))
                .map(|(group, pre)| {
                    scope.spawn(move || {
                        group
                            .iter()
                            .zip(pre.iter_mut())
                            .map(|((_, _, positions), pre)| {
                                let entries: Vec<&OplogEntry> = positions.iter().map(|p| &batch[*p]).collect();
                                fold_document(pre.take(), &entries)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for worker in workers {
                finals.extend(worker.join().unwrap_or_default());
            }
        });
        if finals.len() != groups.len() {
            return Err(Error::internal("parallel oplog apply lost documents"));
        }
        Ok(Some(
            groups
                .into_iter()
                .zip(finals)
                .map(|((ns, id, positions), doc)| (ns, id, positions, doc))
                .collect(),
        ))
    }

    /// Writes the folded documents and appends the whole batch to the oplog, in one durable transaction.
    async fn install_folded(&self, batch: Vec<OplogEntry>, folded: Folded) -> Result<()> {
        self.storage
            .write(true, move |w| -> Result<()> {
                for (ns, id, positions, doc) in folded {
                    let entries: Vec<&OplogEntry> = positions.iter().map(|p| &batch[*p]).collect();
                    w.install_folded(&ns, &id, doc, &entries)?;
                }
                for entry in &batch {
                    w.append_entry(entry)?;
                }
                Ok(())
            })
            .await?
    }
}

/// The entries of a reply's batch, parsed (once, here: every later step reads the typed entries).
fn entries(cursor: &Document, key: &str) -> Result<Vec<OplogEntry>> {
    let documents = cursor
        .get_array(key)
        .map(|batch| batch.iter().filter_map(|b| b.as_document().cloned()).collect())
        .unwrap_or_default();
    OplogEntry::parse_all(documents)
}

/// The timestamp of the source's oldest oplog entry (`None` when its oplog is empty).
pub(super) async fn oldest_entry_ts(conn: &mut dyn PeerChannel, timeout: Duration) -> Result<Option<bson::Timestamp>> {
    let reply = conn
        .command(
            &doc! {"find": "oplog.rs", "sort": {"$natural": 1}, "limit": 1, "singleBatch": true,
            "$readPreference": {"mode": "secondaryPreferred"}, "$db": "local"},
            timeout,
        )
        .await?;
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| Error::bad_value("find reply without cursor"))?;
    Ok(entries(cursor, "firstBatch")?.first().map(|entry| entry.optime.ts))
}

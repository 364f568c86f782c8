//! The replicator: a secondary's oplog fetcher (tails the sync source's oplog, hands batches to the applier).
//!
//! ```text
//! find local.oplog.rs {ts >= lastApplied.ts} tailable awaitData   first entry must equal our last one:
//!   ├─ equal      → below our min-valid (after a rollback), the source must hold the min-valid entry:
//!   │               not yet → try later / another source; a history without it → roll back again;
//!   │               then apply the rest, and getMore (long-poll) forever
//!   ├─ different  → the source's oldest entry is newer than our last one: we fell off its (capped) oplog,
//!   │               we are too stale to sync from it (the machine tries another source, else RECOVERING)
//!   ├─ different  → otherwise our history diverged: roll back (sync.rs)
//!   └─ none       → if the source's newest entry (`$replData.lastOpApplied`) is newer than ours in
//!                   (term, ts) order, our newest entries were never in its history: roll back;
//!                   otherwise the source is behind us: wait and retry
//! ```
//! The cursor is the wire client's [`OplogTail`] over a channel of the member's network (TCP, or the
//! simulation's in-process delivery). Every reply carries `$replData` (the source's term, commit point, newest
//! entry, rollback id and primary), which the machine uses to learn the commit point; a Faultline source adds
//! `durableAwaited` while a write there (or on its own sync source) waits for members' durable positions: the
//! batch is then fsynced at once, its fsync started before its apply, while other batches are fsynced within
//! the journal interval (applier.rs, `storage::EncodedBatch::awaited`). A source that rolls back while we tail
//! it changes its rollback id: our cursor sits past its new history, so the fetch starts over (and finds out
//! whether we diverged). Batches go to the [`Applier`] (applier.rs).
//!
//! The [`Replicator`] owns the fetcher task (one at a time, for the sync source the machine chose) and the
//! applier; it reaches the driver only through its [`DriverHandle`] and hands divergence and an empty oplog
//! to the [`Syncer`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bson::{Document, doc};
use tokio::task::JoinHandle;

use super::applier::{AppliedOps, Applier};
use super::handle::DriverHandle;
use super::network::{PeerChannel, PeerNetwork};
use super::sync::Syncer;
use crate::error::{Error, Result};
use crate::failpoint::{self, FailPoints};
use crate::repl::{Event, OpTime};
use crate::storage::{OplogEntry, Storage};
use crate::wire::client::{OplogBatch, OplogTail, TailSpec};

/// The fetcher's tail of the sync source's oplog, over a channel of the member's network.
type PeerTail = OplogTail<Box<dyn PeerChannel>>;

/// Entries per batch of the fetcher's cursor.
const BATCH: i32 = 1000;
/// How long the source may hold a `getMore` open waiting for new entries.
const AWAIT: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_millis(100);

/// Why a fetch round stopped.
pub(super) enum FetchEnd {
    /// Our newest entry is not in the source's oplog, or a rollback is unfinished: roll back.
    Diverged,
    /// The source has nothing at or after our newest entry.
    SourceBehind,
    /// The source's oldest entry is newer than our newest: it truncated what we still need.
    TooStale,
    /// Our oplog is empty: initial sync is needed.
    Empty,
    /// A rollback is still running (started by an earlier fetcher): nothing is fetched until it ends.
    RollingBack,
}

/// Fetches the sync source's oplog and applies it: the member's replicator.
pub(super) struct Replicator {
    me: Weak<Replicator>,
    storage: Storage,
    peers: Arc<dyn PeerNetwork>,
    failpoints: Arc<FailPoints>,
    driver: DriverHandle,
    applier: Arc<Applier>,
    syncer: Arc<Syncer>,
    /// The running fetcher: the sync source's member id and the task tailing it.
    fetcher: Mutex<Option<(i32, JoinHandle<()>)>>,
    /// Whether the sync source's latest reply said that writes wait for members' durable positions
    /// (`$replData.durableAwaited`); this member says so in turn to members that sync from it.
    pub(super) source_awaits_durable: AtomicBool,
}

impl Replicator {
    pub(super) fn new(
        storage: Storage,
        peers: Arc<dyn PeerNetwork>,
        failpoints: Arc<FailPoints>,
        driver: DriverHandle,
        applier: Arc<Applier>,
        syncer: Arc<Syncer>,
    ) -> Arc<Replicator> {
        Arc::new_cyclic(|me| Replicator {
            me: me.clone(),
            storage,
            peers,
            failpoints,
            driver,
            applier,
            syncer,
            fetcher: Mutex::new(None),
            source_awaits_durable: AtomicBool::new(false),
        })
    }

    /// What the applier applied (`serverStatus.opcountersRepl`).
    pub(super) fn applied_ops(&self) -> &AppliedOps {
        self.applier.applied_ops()
    }

    /// Whether the sync source's latest reply said that writes wait for members' durable positions.
    pub(super) fn source_awaits_durable(&self) -> bool {
        self.source_awaits_durable.load(Ordering::SeqCst)
    }

    /// Follows the machine's choice of sync source: stops the fetcher of the previous one, starts one for
    /// the new one (none when `member_id` is `None`).
    pub(super) fn change_sync_source(&self, member_id: Option<i32>) {
        let mut slot = match self.fetcher.lock() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        if slot.as_ref().map(|(id, _)| Some(*id)) == Some(member_id) {
            return;
        }
        if let Some((_, handle)) = slot.take() {
            handle.abort();
        }
        if let Some(id) = member_id
            && let Some(host) = self.driver.role().host_of(id)
            && let Some(me) = self.me.upgrade()
        {
            tracing::info!(sync_source = %host, "choosing a new sync source");
            *slot = Some((id, self.driver.spawn(async move { me.run_fetcher(id, host).await })));
        }
    }

    /// Stops the fetcher and waits until it is gone (a new primary stops applying before it writes).
    pub(super) async fn stop_fetcher(&self) {
        let handle = self.fetcher.lock().ok().and_then(|mut slot| slot.take());
        if let Some((_, handle)) = handle {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Fetches from `host` until aborted (the sync source changed) — reconnecting on errors.
    pub(super) async fn run_fetcher(&self, source_id: i32, host: String) {
        loop {
            match self.fetch_round(source_id, &host).await {
                Ok(FetchEnd::Diverged) => self.syncer.roll_back_to_the_end(&host).await,
                Ok(FetchEnd::RollingBack) => tracing::debug!(source = %host, "waiting for the rollback to end"),
                Ok(FetchEnd::SourceBehind) => tracing::debug!(source = %host, "sync source is behind us"),
                Ok(FetchEnd::TooStale) => tracing::debug!(source = %host, "too stale to sync from this source"),
                // Nothing to fetch from until initial sync has given us an oplog.
                Ok(FetchEnd::Empty) => self.syncer.spawn_initial_sync(),
                Err(err) => tracing::debug!(error = %err, source = %host, "oplog fetch interrupted"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn fetch_round(&self, source_id: i32, host: &str) -> Result<FetchEnd> {
        let last = self.storage.positions().last_written;
        if self.syncer.is_rolling_back() {
            return Ok(FetchEnd::RollingBack);
        }
        if self.syncer.unfinished_rollback().is_some() {
            // A rollback stopped half way (failed, or the process died): finish it before applying anything.
            return Ok(FetchEnd::Diverged);
        }
        if last.is_null() || self.syncer.is_syncing() {
            return Ok(FetchEnd::Empty);
        }
        let timeout = self.driver.role().rpc_timeout() + AWAIT;
        let channel = self.peers.open(host, timeout).await?;
        let (mut tail, first) = OplogTail::open(channel, self.tail_spec(last)).await?;
        self.learn_metadata(source_id, &first)?;
        let rbid = first.rollback_id();
        let theirs = first
            .repl_data
            .as_ref()
            .and_then(|data| data.get("lastOpApplied"))
            .and_then(|v| OpTime::from_bson(v).ok());
        let batch = OplogEntry::from_raw_all(first.entries)?;
        let Some(first) = batch.first() else {
            // Nothing at or after our newest timestamp. A source whose newest entry is from a later term has
            // a history without our newest entries (they were written by a primary that was deposed).
            if theirs.is_none_or(|theirs| theirs <= last) {
                self.driver.notify(Event::SyncSourceBehind { from: source_id });
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
            self.apply(newer, false).await?;
            return self.follow(source_id, &mut tail, rbid).await;
        }
        if let Some(min_valid) = self.syncer.min_valid().filter(|min_valid| *min_valid > last) {
            match min_valid_on_source(&mut **tail.channel(), min_valid, theirs, timeout).await? {
                MinValidOnSource::Held => {}
                MinValidOnSource::NotYet => {
                    tracing::debug!(min_valid = ?min_valid, theirs = ?theirs, source = host, "the sync source has not reached our min-valid yet");
                    self.driver.notify(Event::SyncSourceBehind { from: source_id });
                    return Ok(FetchEnd::SourceBehind);
                }
                MinValidOnSource::OtherHistory => {
                    tracing::warn!(min_valid = ?min_valid, theirs = ?theirs, source = host, "the sync source's history does not hold our min-valid entry: what our rollback refetched is from a branch that died; rolling back again");
                    if self.failpoints.hit(failpoint::SKIP_ROLLBACK).is_none() {
                        return Ok(FetchEnd::Diverged);
                    }
                }
            }
        }
        self.report_probe(source_id, false);
        self.apply(batch.into_iter().skip(1).collect(), false).await?;
        self.follow(source_id, &mut tail, rbid).await
    }

    /// Applies `entries` (`awaited`: the source has writes waiting for members' durable positions), then
    /// clears the min-valid record if they reached it.
    async fn apply(&self, entries: Vec<OplogEntry>, awaited: bool) -> Result<()> {
        self.applier.apply_batch(entries, awaited).await?;
        if self.syncer.min_valid().is_some() {
            self.syncer.note_written(self.storage.positions().last_written).await?;
        }
        Ok(())
    }

    /// The fetcher's cursor: every entry from our newest one's timestamp on, with the source's `$replData`.
    fn tail_spec(&self, last: OpTime) -> TailSpec {
        let mut spec = TailSpec::new(doc! {"ts": {"$gte": last.ts}});
        spec.batch_size = BATCH;
        spec.await_time = AWAIT;
        spec.repl_metadata = true;
        spec.round_trip = self.driver.role().rpc_timeout();
        spec
    }

    /// Tells the machine whether the source's oplog still holds our newest entry. (Its actions run in a task
    /// of their own: they may change the sync source, which aborts this fetcher.)
    fn report_probe(&self, source_id: i32, too_stale: bool) {
        self.driver.notify(Event::SyncSourceProbed {
            from: source_id,
            too_stale,
        });
    }

    /// Applies the source's batches as they come, until the source rolls back or closes the cursor. The next
    /// `getMore` is on its way while a batch is applied (as mongod's fetcher fills a buffer its applier
    /// drains), so a busy source's entries keep flowing while the disk and the writer work.
    async fn follow(&self, source_id: i32, tail: &mut PeerTail, rbid: Option<i32>) -> Result<FetchEnd> {
        let mut applying: Option<(Vec<OplogEntry>, Option<u64>, bool)> = None;
        while tail.is_open() {
            let apply = async {
                if let Some((entries, last_ts, awaited)) = applying.take() {
                    self.apply(entries, awaited).await?;
                    if let Some(ts) = last_ts {
                        tracing::trace!(target: "write_path", ts, "fetcher.applied");
                    }
                }
                Ok::<(), Error>(())
            };
            // The batch goes to the writer first (its journal fsync starts at once), then the next `getMore`.
            let (applied, fetched) = tokio::join!(apply, tail.next_batch());
            applied?;
            let batch = fetched?;
            if batch.rollback_id() != rbid {
                return Err(Error::bad_value("the sync source rolled back; fetching again"));
            }
            let last_ts = batch
                .entries
                .last()
                .and_then(|d| d.get_timestamp("ts").ok())
                .map(crate::storage::ts_to_u64);
            if let Some(ts) = last_ts {
                tracing::trace!(target: "write_path", ts, n = batch.entries.len(), "fetcher.received");
            }
            self.learn_metadata(source_id, &batch)?;
            if batch.entries.is_empty() {
                // An idle source that is not ahead of us: the machine may prefer a member that is (two
                // members behind a new primary must not tail each other for ever).
                let theirs = batch
                    .repl_data
                    .as_ref()
                    .and_then(|data| data.get("lastOpApplied"))
                    .and_then(|v| OpTime::from_bson(v).ok());
                if theirs.is_some_and(|theirs| theirs <= self.storage.positions().last_written) {
                    self.driver.notify(Event::SyncSourceBehind { from: source_id });
                }
                continue;
            }
            let awaited = durable_awaited(&batch);
            applying = Some((OplogEntry::from_raw_all(batch.entries)?, last_ts, awaited));
        }
        if let Some((entries, _, awaited)) = applying {
            self.apply(entries, awaited).await?;
        }
        Err(Error::bad_value("the sync source closed the oplog cursor"))
    }

    /// Feeds the source's `$replData` to the machine; refuses a source whose term is older than ours (a
    /// deposed primary or a member cut off from the set: its new entries may roll back).
    fn learn_metadata(&self, source_id: i32, batch: &OplogBatch) -> Result<()> {
        self.source_awaits_durable
            .store(durable_awaited(batch), Ordering::SeqCst);
        let Some(data) = &batch.repl_data else {
            return Ok(());
        };
        let term = data.get_i64("term").unwrap_or(-1);
        let ours = self.driver.role().term;
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
        self.driver.notify(Event::SyncSourceMetadata {
            from: source_id,
            term,
            commit_point,
            primary_id,
        });
        Ok(())
    }
}

/// Whether the source has writes waiting for members' durable positions (`$replData.durableAwaited`, which
/// `Member::repl_data` sends).
fn durable_awaited(batch: &OplogBatch) -> bool {
    batch
        .repl_data
        .as_ref()
        .is_some_and(|data| data.get_bool("durableAwaited").unwrap_or(false))
}

/// Whether a sync source's oplog holds our min-valid entry (its optime exactly, not a later one).
enum MinValidOnSource {
    Held,
    /// Not yet: the source is behind it.
    NotYet,
    /// Never: the source's newest entry sorts after min-valid but its history lacks it.
    OtherHistory,
}

async fn min_valid_on_source(
    conn: &mut dyn PeerChannel,
    min_valid: OpTime,
    theirs: Option<OpTime>,
    timeout: Duration,
) -> Result<MinValidOnSource> {
    let at = one_oplog_entry(conn, doc! {"filter": {"ts": min_valid.ts}}, timeout)
        .await?
        .map(|entry| entry.optime);
    Ok(if at == Some(min_valid) {
        MinValidOnSource::Held
    } else if at.is_some() || theirs.is_some_and(|theirs| theirs > min_valid) {
        MinValidOnSource::OtherHistory
    } else {
        MinValidOnSource::NotYet
    })
}

/// The first entry of the source's oplog that `query` (a `find`'s `filter` and `sort`) selects.
async fn one_oplog_entry(conn: &mut dyn PeerChannel, query: Document, timeout: Duration) -> Result<Option<OplogEntry>> {
    let mut find = doc! {"find": "oplog.rs"};
    find.extend(query);
    find.extend(
        doc! {"limit": 1, "singleBatch": true, "$readPreference": {"mode": "secondaryPreferred"}, "$db": "local"},
    );
    let reply = conn.command(&find, timeout).await?;
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| Error::bad_value("find reply without cursor"))?;
    Ok(entries(cursor, "firstBatch")?.into_iter().next())
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
    let oldest = one_oplog_entry(conn, doc! {"sort": {"$natural": 1}}, timeout).await?;
    Ok(oldest.map(|entry| entry.optime.ts))
}

//! The syncer: joining and re-joining (adopting a config from a heartbeat, initial sync, rollback).
//!
//! Initial sync (a member with no data): STARTUP2 → wipe user data → note the source's newest oplog entry
//! (begin) → clone every database, collection, index and document → apply the source's oplog from begin to
//! its newest entry then (stop), appending it to ours → SECONDARY.
//!
//! Initial sync copies the source's oplog from `begin` on, so the source may have truncated everything older;
//! if it truncates `begin` itself while we clone, the attempt fails (OplogStartMissing) and starts over.
//!
//! Rollback (our oplog diverged from the sync source's, e.g. we were a primary that lost its majority):
//! ROLLBACK → walk our oplog back to the newest entry the source also has (the common point) → save our
//! version of every document touched after it to `<dbpath>/rollback/<collection uuid>/removed.<millis>.bson` →
//! replace each with the source's current version (or delete it) → truncate our oplog after the common point
//! → bump the rollback id and store the min-valid record → RECOVERING until our oplog holds the source's newest
//! entry of that moment (min-valid, min_valid.rs) → SECONDARY. The source's rollback id is read before and after:
//! a source that rolled back meanwhile makes the attempt fail and start over. A rollback while an earlier one's
//! min-valid is unreached refetches that one's documents and collections too.
//! Entries after the common point were never majority-committed (the commit rule guarantees it); a rollback
//! that would undo majority-committed entries is a safety violation, so the member stops with a fatal error
//! instead, as mongod does. So does a rollback whose common point is no longer in either capped oplog (mongod's
//! RS100 / RS101): the member must be resynced. Rollback files are named by collection UUID (as in mongod 4.4+), never by the
//! client-chosen namespace, so nothing is written outside `<dbpath>/rollback/`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bson::{Bson, Document, doc};

use super::applier::Applier;
use super::handle::DriverHandle;
use super::min_valid::{MinValid, MinValidRecord};
use super::network::{PeerChannel, PeerNetwork};
use super::{META_CONFIG, META_INITIAL_SYNC, META_RBID, META_ROLLBACK, find_self};
use crate::error::{Error, Result};
use crate::failpoint::FailPoints;
use crate::options::NodeOptions;
use crate::repl::{Event, OpTime, ReplSetConfig, StartData};
use crate::storage::{Namespace, OplogEntry, Storage};

const CLONE_BATCH: i32 = 1000;
const READ_ANYWHERE: &str = "secondaryPreferred";

/// Brings the member's data to the set's: joining (adopting a config from a peer), initial sync and
/// rollback. Owns the flags that keep each of them single and the rollback id.
pub(super) struct Syncer {
    me: Weak<Syncer>,
    storage: Storage,
    options: NodeOptions,
    peers: Arc<dyn PeerNetwork>,
    failpoints: Arc<FailPoints>,
    driver: DriverHandle,
    /// Applies the source's oplog during initial sync (the replicator's applier).
    applier: Arc<Applier>,
    /// A config is being adopted from a peer (only one at a time).
    installing: AtomicBool,
    /// An initial sync is running (only one at a time).
    syncing: AtomicBool,
    /// A rollback is running (only one at a time; no oplog is fetched meanwhile).
    rolling_back: AtomicBool,
    /// The rollback id (`replSetGetRBID`), kept in memory: every oplog batch served carries it.
    rbid: AtomicI32,
    /// What the last rollback refetched, until our oplog reaches its min-valid (min_valid.rs).
    min_valid: MinValidRecord,
}

impl Syncer {
    pub(super) fn new(
        storage: Storage,
        options: NodeOptions,
        peers: Arc<dyn PeerNetwork>,
        failpoints: Arc<FailPoints>,
        driver: DriverHandle,
        applier: Arc<Applier>,
    ) -> Arc<Syncer> {
        let rbid = stored_rollback_id(&storage);
        let min_valid = MinValidRecord::load(storage.clone());
        Arc::new_cyclic(|me| Syncer {
            me: me.clone(),
            storage,
            options,
            peers,
            failpoints,
            driver,
            applier,
            installing: AtomicBool::new(false),
            syncing: AtomicBool::new(false),
            rolling_back: AtomicBool::new(false),
            rbid: AtomicI32::new(rbid),
            min_valid,
        })
    }

    /// Whether the data this member starts on is consistent (the machine starts it ROLLBACK or RECOVERING
    /// otherwise).
    pub(super) fn start_data(&self) -> StartData {
        if self.unfinished_rollback().is_some() {
            return StartData::RollbackUnfinished;
        }
        match self.min_valid.optime() {
            Some(optime) => StartData::BehindMinValid(optime),
            None => StartData::Consistent,
        }
    }

    /// The optime our oplog must reach, on the same history, before the last rollback's data is consistent.
    pub(super) fn min_valid(&self) -> Option<OpTime> {
        self.min_valid.optime()
    }

    /// Clears the min-valid record once `last_written` has reached it.
    pub(super) async fn note_written(&self, last_written: OpTime) -> Result<()> {
        self.min_valid.clear_if_reached(last_written).await
    }

    /// Whether an initial sync is running (the fetcher and the oplog truncation stand aside).
    pub(super) fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::SeqCst)
    }

    pub(super) fn is_rolling_back(&self) -> bool {
        self.rolling_back.load(Ordering::SeqCst)
    }

    /// The common point of a rollback that began changing data and did not finish (it failed, or the process
    /// died): its collections may be dropped and its documents half restored, so no oplog may be applied
    /// until a rollback to at least that point has finished.
    pub(super) fn unfinished_rollback(&self) -> Option<OpTime> {
        let marker = self.storage.read_meta(META_ROLLBACK).ok()??;
        if !marker.get_bool("inProgress").unwrap_or(false) {
            return None;
        }
        OpTime::from_bson(marker.get("commonPoint")?).ok()
    }

    /// Rolls back to the common point with `host` in a task of its own and waits for it. The task runs to its
    /// end even if the caller (the fetcher) is aborted meanwhile, as a change of sync source does: a rollback
    /// stopped half way would leave collections dropped for refetching, and the member in ROLLBACK, while
    /// the next fetcher carried on from the diverged oplog. A second call while one runs does nothing.
    pub(super) async fn roll_back_to_the_end(&self, host: &str) {
        if self.rolling_back.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            self.rolling_back.store(false, Ordering::SeqCst);
            return;
        };
        let host = host.to_string();
        let rollback = self.driver.spawn(async move {
            if let Err(err) = me.roll_back(&host).await {
                tracing::error!(error = %err, source = %host, "rollback failed");
                if me.unfinished_rollback().is_none() {
                    // Nothing was changed yet: the member leaves ROLLBACK and the next fetch tries again.
                    me.driver.feed(Event::RollbackAbandoned).await;
                }
            }
            me.rolling_back.store(false, Ordering::SeqCst);
        });
        let _ = rollback.await;
    }

    /// Whether a config from a peer is being adopted (`replSetInitiate` refuses meanwhile).
    pub(super) fn is_installing(&self) -> bool {
        self.installing.load(Ordering::SeqCst)
    }

    /// The rollback id, which changes whenever this member rolls back.
    pub(super) fn rollback_id(&self) -> i32 {
        self.rbid.load(Ordering::SeqCst)
    }

    /// Records a rollback's new id (after it is stored).
    fn set_rollback_id(&self, rbid: i32) {
        self.rbid.store(rbid, Ordering::SeqCst);
    }

    /// An uninitialised member heard from a set member: fetch its config and join.
    pub(super) fn adopt_config_from(&self, host: String) {
        if host.is_empty() || self.installing.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            self.installing.store(false, Ordering::SeqCst);
            return;
        };
        self.driver.spawn(async move {
            let result = me.try_adopt_config(&host).await;
            if let Err(err) = &result {
                tracing::warn!(error = %err, from = %host, "could not adopt the replica-set config");
            }
            me.installing.store(false, Ordering::SeqCst);
        });
    }

    async fn try_adopt_config(&self, host: &str) -> Result<()> {
        let reply = self
            .peers
            .command(
                host,
                "config",
                &doc! {"replSetGetConfig": 1, "$db": "admin"},
                self.driver.role().rpc_timeout(),
            )
            .await?;
        let doc = reply
            .get_document("config")
            .map_err(|_| Error::bad_value("replSetGetConfig reply without config"))?;
        let config = ReplSetConfig::parse_document(doc).map_err(super::repl_error)?;
        if config.set_name != self.options.repl_set || find_self(&config, &self.options).is_none() {
            return Err(Error::bad_value(format!(
                "the config from {host} does not include this member"
            )));
        }
        let stored = config.to_document();
        self.storage
            .write(true, move |w| w.put_meta(META_CONFIG, &stored))
            .await??;
        self.driver.install_config(config)?;
        tracing::info!(from = host, "joined the replica set");
        if self.storage.positions().last_written.is_null()
            && !self.driver.role().self_member().is_some_and(|m| m.arbiter_only)
        {
            self.spawn_initial_sync();
        }
        Ok(())
    }

    pub(super) fn spawn_initial_sync(&self) {
        if self.driver.role().self_member().is_some_and(|m| m.arbiter_only) || self.syncing.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            self.syncing.store(false, Ordering::SeqCst);
            return;
        };
        self.driver.spawn(async move {
            loop {
                match me.initial_sync().await {
                    Ok(()) => {
                        me.syncing.store(false, Ordering::SeqCst);
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "initial sync attempt failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }

    /// The member to clone from: the primary if known, else any other data-bearing member.
    fn initial_sync_source(&self) -> Option<String> {
        let role = self.driver.role();
        if let Some(primary) = role.primary_id.filter(|p| Some(*p) != role.self_id) {
            return role.host_of(primary);
        }
        let config = role.config.as_ref()?;
        config
            .members
            .iter()
            .find(|m| Some(m.id) != role.self_id && m.is_data_bearing())
            .map(|m| m.host.clone())
    }

    async fn initial_sync(&self) -> Result<()> {
        self.driver.feed(Event::InitialSyncStarted).await;
        let host = self
            .initial_sync_source()
            .ok_or_else(|| Error::bad_value("no member to initial-sync from"))?;
        tracing::info!(source = %host, "initial sync starting");
        let timeout = self.driver.role().rpc_timeout() + Duration::from_secs(5);
        let mut conn = self.peers.open(&host, timeout).await?;
        self.storage
            .write(true, |w| {
                w.put_meta(META_INITIAL_SYNC, &doc! {"inProgress": true})?;
                w.wipe_user_data()
            })
            .await??;
        let begin = newest_entry(&mut conn, timeout)
            .await?
            .ok_or_else(|| Error::bad_value("the sync source has an empty oplog"))?;
        let cloned = self.clone_databases(&mut conn, timeout).await?;
        if self
            .failpoints
            .hit(crate::failpoint::INITIAL_SYNC_HANG_AFTER_DATA_CLONING)
            .is_some()
        {
            tracing::info!(
                "initial sync - initialSyncHangAfterDataCloning fail point enabled; waiting until it is off"
            );
            while self
                .failpoints
                .is_on(crate::failpoint::INITIAL_SYNC_HANG_AFTER_DATA_CLONING)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let stop = newest_entry(&mut conn, timeout).await?.unwrap_or_else(|| begin.clone());
        let begin_ts = begin
            .get_timestamp("ts")
            .map_err(|_| Error::bad_value("oplog entry without ts"))?;
        let stop_ts = stop
            .get_timestamp("ts")
            .map_err(|_| Error::bad_value("oplog entry without ts"))?;
        let filter = doc! {"ts": {"$gte": begin_ts, "$lte": stop_ts}};
        let mut applied = 0usize;
        let mut first_batch = true;
        for_each_batch(&mut conn, "local", "oplog.rs", filter, timeout, |batch| {
            // The source's capped oplog may have dropped the begin point while we cloned: applying from a later
            // entry would miss writes, so this attempt fails and initial sync starts over.
            let starts_at = first_batch.then(|| batch.first().and_then(|e| e.get_timestamp("ts").ok()));
            first_batch = false;
            applied += batch.len();
            async move {
                if let Some(starts_at) = starts_at
                    && starts_at != Some(begin_ts)
                {
                    return Err(Error::new(
                        (120, "OplogStartMissing"),
                        format!(
                            "the sync source's oplog no longer holds the initial sync's begin point {begin_ts:?} \
                             (its oldest entry is now {starts_at:?}): it was truncated while we cloned"
                        ),
                    ));
                }
                self.applier.apply_batch(OplogEntry::parse_all(batch)?, false).await
            }
        })
        .await?;
        self.storage
            .write(true, |w| w.put_meta(META_INITIAL_SYNC, &doc! {"inProgress": false}))
            .await??;
        // The data is the source's whole: whatever an earlier rollback left to make consistent is moot.
        self.min_valid.clear().await?;
        tracing::info!(source = %host, documents = cloned, oplog_entries = applied, "initial sync done");
        self.driver.feed(Event::InitialSyncFinished).await;
        Ok(())
    }

    /// Clones every non-local database; returns the number of documents copied.
    async fn clone_databases(&self, conn: &mut dyn PeerChannel, timeout: Duration) -> Result<usize> {
        let listing = conn
            .command(&doc! {"listDatabases": 1, "nameOnly": true, "$db": "admin"}, timeout)
            .await?;
        let mut copied = 0;
        for db in listing.get_array("databases").map(|a| a.to_vec()).unwrap_or_default() {
            let Some(name) = db.as_document().and_then(|d| d.get_str("name").ok()).map(String::from) else {
                continue;
            };
            if name == "local" {
                continue;
            }
            let collections = conn
                .command(
                    &doc! {"listCollections": 1, "$db": &name, "$readPreference": {"mode": READ_ANYWHERE}},
                    timeout,
                )
                .await?;
            for entry in first_batch(&collections) {
                let Ok(coll) = entry.get_str("name").map(String::from) else {
                    continue;
                };
                if Namespace::new(&name, &coll).is_engine_view() {
                    continue;
                }
                copied += self.clone_collection(conn, &name, &coll, &entry, timeout).await?;
            }
        }
        Ok(copied)
    }

    async fn clone_collection(
        &self,
        conn: &mut dyn PeerChannel,
        db: &str,
        coll: &str,
        entry: &Document,
        timeout: Duration,
    ) -> Result<usize> {
        let ns = Namespace::new(db, coll);
        let options = entry.get_document("options").cloned().unwrap_or_default();
        let uuid = match entry.get_document("info").ok().and_then(|i| i.get("uuid")) {
            Some(Bson::Binary(b)) => b.bytes.clone().try_into().ok().map(bson::Uuid::from_bytes),
            _ => None,
        };
        let indexes = conn
            .command(
                &doc! {"listIndexes": coll, "$db": db, "$readPreference": {"mode": READ_ANYWHERE}},
                timeout,
            )
            .await?;
        let specs: Vec<Document> = first_batch(&indexes)
            .into_iter()
            .filter(|s| s.get_str("name").ok() != Some("_id_"))
            .collect();
        let ns_create = ns.clone();
        self.storage
            .write(false, move |w| w.clone_collection(&ns_create, options, uuid, &specs))
            .await??;
        let mut copied = 0usize;
        for_each_batch(conn, db, coll, Document::new(), timeout, |batch| {
            copied += batch.len();
            let ns = ns.clone();
            async move {
                self.storage
                    .write(false, move |w| -> Result<()> {
                        for doc in batch {
                            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                            w.restore_document(&ns, &id, Some(doc))?;
                        }
                        Ok(())
                    })
                    .await?
            }
        })
        .await?;
        Ok(copied)
    }

    /// Rolls our diverged oplog suffix back to the newest entry the sync source `host` also has.
    async fn roll_back(&self, host: &str) -> Result<()> {
        self.driver.feed(Event::RollbackStarted).await;
        let timeout = self.driver.role().rpc_timeout() + Duration::from_secs(5);
        let mut conn = self.peers.open(host, timeout).await?;
        // Everything read from the source below must come from one history: a source that rolls back
        // meanwhile changes its rollback id, and this attempt fails (to be resumed) rather than finish on a mix.
        let source_rbid = rollback_id_of(&mut *conn, timeout).await?;
        let common = match self.find_common_point(&mut conn, timeout).await? {
            Ok(common) => common,
            Err(unrecoverable) => {
                let message = format!(
                    "rollback error {unrecoverable} (sync source {host}); this member must be resynced (wipe its dbpath)"
                );
                self.driver.fail_fatally(message.clone());
                return Err(Error::internal(message));
            }
        };
        // An unfinished rollback is finished first: back to its common point at least, whatever this source
        // shares with us now (it may hold the very entries that rollback undid half way).
        let common = match self.unfinished_rollback() {
            Some(earlier) => common.min(earlier),
            None => common,
        };
        let verdict = self.driver.check_rollback_common_point(common)?;
        if let Err(refusal) = verdict {
            let message = format!(
                "{} (sync source {host}); this member must be resynced (wipe its dbpath)",
                refusal.message
            );
            self.driver.fail_fatally(message.clone());
            return Err(Error::internal(message));
        }
        let diverged = self.entries_after(common)?;
        tracing::warn!(common_point = ?common, entries = diverged.len(), source = host, "rolling back");
        // Collections whose catalog changed after the common point (created, dropped, indexed, renamed) are
        // refetched whole from the source; documents of other collections one by one.
        let mut refetch = self.collections_to_refetch(&mut conn, &diverged, timeout).await?;
        let mut affected: BTreeMap<(String, Vec<u8>), (Namespace, Bson)> = BTreeMap::new();
        let targets = diverged.iter().filter_map(crate::storage::crud_target);
        // An earlier rollback's refetched data that never reached its min-valid is refetched again: it may
        // come from a history this source does not share.
        let earlier = self.min_valid.current().unwrap_or_default();
        refetch.extend(earlier.collections);
        for (ns, id) in targets.chain(earlier.documents) {
            affected.insert((ns.full(), crate::storage::keystring::encode(&id)), (ns, id));
        }
        let refetched_documents: Vec<(Namespace, Bson)> = affected.values().cloned().collect();
        let snapshot = self.storage.snapshot()?;
        let mut saved: BTreeMap<bson::Uuid, (String, Vec<Document>)> = BTreeMap::new();
        let mut restore = Vec::new();
        for (ns, id) in affected.into_values() {
            if let Some(meta) = snapshot.collection(&ns)?
                && let Some(ours) = snapshot.get_by_id(&meta, &id)?
            {
                saved
                    .entry(meta.uuid)
                    .or_insert_with(|| (ns.full(), Vec::new()))
                    .1
                    .push(ours);
            }
            if refetch.contains(&ns) {
                continue;
            }
            let theirs = fetch_document(&mut conn, &ns, &id, timeout).await?;
            restore.push((ns, id, theirs));
        }
        drop(snapshot);
        self.save_rollback_files(&saved)?;
        // From here on data changes, in several writes: the marker makes a failure or a crash resume it.
        let marker = doc! {"inProgress": true, "commonPoint": common.to_document()};
        self.storage
            .write(true, move |w| w.put_meta(META_ROLLBACK, &marker))
            .await??;
        for ns in &refetch {
            self.refetch_collection(&mut conn, ns, timeout).await?;
        }
        let min_valid = newest_entry(&mut conn, timeout)
            .await?
            .and_then(|e| OplogEntry::optime_of(&e))
            .unwrap_or(common);
        let source_rbid_now = rollback_id_of(&mut *conn, timeout).await?;
        if source_rbid_now != source_rbid {
            return Err(Error::bad_value(format!(
                "the sync source {host} rolled back while we rolled back against it (its rollback id went from \
                 {source_rbid} to {source_rbid_now}); our rollback starts over"
            )));
        }
        let record = MinValid {
            optime: min_valid,
            documents: refetched_documents,
            collections: refetch,
        };
        let stored = record.clone();
        let rbid = self.rollback_id() + 1;
        self.storage
            .write(true, move |w| -> Result<()> {
                for (ns, id, doc) in restore {
                    w.restore_document(&ns, &id, doc)?;
                }
                w.truncate_oplog_after(common)?;
                stored.store(w)?;
                w.put_meta(META_ROLLBACK, &doc! {"inProgress": false})?;
                w.put_meta(META_RBID, &doc! {"rbid": rbid})
            })
            .await??;
        self.set_rollback_id(rbid);
        self.min_valid.adopt(record);
        self.note_written(common).await?;
        // The machine keeps us RECOVERING until our oplog reaches the source's newest entry.
        self.driver
            .feed(Event::RolledBack {
                common_point: common,
                min_valid,
            })
            .await;
        Ok(())
    }

    /// The collections named by the command entries among `diverged` (and, for `dropDatabase`, every
    /// collection of that database here or on the source).
    async fn collections_to_refetch(
        &self,
        conn: &mut dyn PeerChannel,
        diverged: &[Document],
        timeout: Duration,
    ) -> Result<std::collections::BTreeSet<Namespace>> {
        let mut out = std::collections::BTreeSet::new();
        for entry in diverged.iter().filter(|e| e.get_str("op").ok() == Some("c")) {
            let db = entry
                .get_str("ns")
                .unwrap_or("")
                .split('.')
                .next()
                .unwrap_or("")
                .to_string();
            let Ok(o) = entry.get_document("o") else { continue };
            let Some((name, value)) = o.iter().next() else { continue };
            match name.as_str() {
                "renameCollection" => {
                    for full in [value.as_str(), o.get_str("to").ok()].into_iter().flatten() {
                        out.extend(Namespace::parse(full));
                    }
                }
                "dropDatabase" => {
                    let snapshot = self.storage.snapshot()?;
                    out.extend(snapshot.collections(Some(&db))?.into_iter().map(|m| m.ns));
                    let theirs = conn
                        .command(
                            &doc! {"listCollections": 1, "nameOnly": true, "$db": &db,
                            "$readPreference": {"mode": READ_ANYWHERE}},
                            timeout,
                        )
                        .await?;
                    out.extend(
                        first_batch(&theirs)
                            .iter()
                            .filter_map(|c| c.get_str("name").ok())
                            .map(|coll| Namespace::new(&db, coll)),
                    );
                }
                _ => {
                    if let Some(coll) = value.as_str() {
                        out.insert(Namespace::new(&db, coll));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Replaces our copy of `ns` (catalog entry, indexes, documents) by the source's, or drops it when the
    /// source has no such collection.
    async fn refetch_collection(&self, conn: &mut dyn PeerChannel, ns: &Namespace, timeout: Duration) -> Result<()> {
        let dropped = ns.clone();
        self.storage
            .write(false, move |w| w.unlogged(|w| w.drop_collection(&dropped)))
            .await??;
        let listing = conn
            .command(
                &doc! {"listCollections": 1, "filter": {"name": &ns.coll}, "$db": &ns.db,
                "$readPreference": {"mode": READ_ANYWHERE}},
                timeout,
            )
            .await?;
        if let Some(entry) = first_batch(&listing).into_iter().next() {
            let copied = self.clone_collection(conn, &ns.db, &ns.coll, &entry, timeout).await?;
            tracing::warn!(namespace = %ns.full(), documents = copied, "rollback refetched the collection");
        } else {
            tracing::warn!(namespace = %ns.full(), "rollback dropped a collection the sync source does not have");
        }
        Ok(())
    }

    /// The newest entry both oplogs hold. `Ok(Err(message))` when there is none to find: the source truncated
    /// its oplog past the point where our histories part (mongod's RS100), or we truncated ours (RS101). Either
    /// way the member cannot roll back and must be resynced.
    async fn find_common_point(
        &self,
        conn: &mut dyn PeerChannel,
        timeout: Duration,
    ) -> Result<std::result::Result<OpTime, String>> {
        const MAX_SCAN: usize = 100_000;
        let snapshot = self.storage.snapshot()?;
        let mut ours = Vec::new();
        snapshot.scan_oplog(None, true, |_, entry| {
            ours.push(entry);
            if ours.len() >= MAX_SCAN {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        drop(snapshot);
        let scanned_all = ours.len() < MAX_SCAN;
        let their_oldest = super::fetcher::oldest_entry_ts(conn, timeout).await?;
        for entry in ours {
            let Some(optime) = OplogEntry::optime_of(&entry) else {
                continue;
            };
            if let Some(oldest) = their_oldest
                && (optime.ts.time, optime.ts.increment) < (oldest.time, oldest.increment)
            {
                return Ok(Err(format!(
                    "RS100 reached beginning of remote oplog: no common point at or after its oldest entry \
                     {oldest:?} (our entry {optime:?} is older; the sync source truncated the common point)"
                )));
            }
            let reply = conn
                .command(
                    &doc! {"find": "oplog.rs", "filter": {"ts": optime.ts}, "limit": 1, "singleBatch": true,
                    "$readPreference": {"mode": READ_ANYWHERE}, "$db": "local"},
                    timeout,
                )
                .await?;
            if first_batch(&reply).first().and_then(OplogEntry::optime_of) == Some(optime) {
                return Ok(Ok(optime));
            }
        }
        if scanned_all {
            return Ok(Err(
                "RS101 reached beginning of local oplog: no common point with the sync source".to_string(),
            ));
        }
        Err(Error::bad_value(format!(
            "no common point with the sync source within our newest {MAX_SCAN} oplog entries"
        )))
    }

    fn entries_after(&self, common: OpTime) -> Result<Vec<Document>> {
        let snapshot = self.storage.snapshot()?;
        let mut out = Vec::new();
        snapshot.scan_oplog(Some(crate::storage::ts_to_u64(common.ts)), false, |_, entry| {
            out.push(entry);
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Writes `<dbpath>/rollback/<collection uuid>/removed.<millis>.bson` per collection: the directory name
    /// is the UUID's hex form, so a namespace (client-chosen, may hold `/` or `..`) never becomes a path.
    fn save_rollback_files(&self, saved: &BTreeMap<bson::Uuid, (String, Vec<Document>)>) -> Result<()> {
        let millis = self.storage.clock().now_millis();
        for (uuid, (ns, docs)) in saved {
            let dir = self.storage.dbpath().join("rollback").join(uuid.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::internal(format!("rollback dir {}: {e}", dir.display())))?;
            let path = dir.join(format!("removed.{millis}.bson"));
            let mut file =
                std::fs::File::create(&path).map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
            for doc in docs {
                file.write_all(&doc.to_vec()?)
                    .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
            }
            file.sync_all()
                .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
            tracing::warn!(path = %path.display(), namespace = %ns, documents = docs.len(), "saved rolled-back documents");
        }
        Ok(())
    }
}

/// The sync source's rollback id (`replSetGetRBID`).
async fn rollback_id_of(conn: &mut dyn PeerChannel, timeout: Duration) -> Result<i32> {
    let reply = conn
        .command(&doc! {"replSetGetRBID": 1, "$db": "admin"}, timeout)
        .await?;
    reply
        .get_i32("rbid")
        .map_err(|_| Error::bad_value(format!("replSetGetRBID replied without rbid: {reply}")))
}

/// The rollback id stored by the last rollback (1 before any).
fn stored_rollback_id(storage: &Storage) -> i32 {
    storage
        .read_meta(META_RBID)
        .ok()
        .flatten()
        .and_then(|d| d.get_i32("rbid").ok())
        .unwrap_or(1)
}

fn first_batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get_array("firstBatch").ok())
        .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
        .unwrap_or_default()
}

async fn newest_entry(conn: &mut dyn PeerChannel, timeout: Duration) -> Result<Option<Document>> {
    let reply = conn
        .command(
            &doc! {"find": "oplog.rs", "sort": {"$natural": -1}, "limit": 1, "singleBatch": true,
            "$readPreference": {"mode": READ_ANYWHERE}, "$db": "local"},
            timeout,
        )
        .await?;
    Ok(first_batch(&reply).into_iter().next())
}

async fn fetch_document(
    conn: &mut dyn PeerChannel,
    ns: &Namespace,
    id: &Bson,
    timeout: Duration,
) -> Result<Option<Document>> {
    let reply = conn
        .command(
            &doc! {"find": &ns.coll, "filter": {"_id": id.clone()}, "limit": 1, "singleBatch": true,
            "$readPreference": {"mode": READ_ANYWHERE}, "$db": &ns.db},
            timeout,
        )
        .await?;
    Ok(first_batch(&reply).into_iter().next())
}

/// Runs a find over a whole collection in batches, handing each batch to `f`.
async fn for_each_batch<F, Fut>(
    conn: &mut dyn PeerChannel,
    db: &str,
    coll: &str,
    filter: Document,
    timeout: Duration,
    mut f: F,
) -> Result<()>
where
    F: FnMut(Vec<Document>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let reply = conn
        .command(
            &doc! {"find": coll, "filter": filter, "batchSize": CLONE_BATCH,
            "$readPreference": {"mode": READ_ANYWHERE}, "$db": db},
            timeout,
        )
        .await?;
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| Error::bad_value("find reply without cursor"))?;
    let mut id = cursor.get_i64("id").unwrap_or(0);
    f(first_batch(&reply)).await?;
    while id != 0 {
        let more = conn
            .command(
                &doc! {"getMore": id, "collection": coll, "batchSize": CLONE_BATCH, "$db": db},
                timeout,
            )
            .await?;
        let cursor = more
            .get_document("cursor")
            .map_err(|_| Error::bad_value("getMore reply without cursor"))?;
        id = cursor.get_i64("id").unwrap_or(0);
        let batch = cursor
            .get_array("nextBatch")
            .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
            .unwrap_or_default();
        f(batch).await?;
    }
    Ok(())
}

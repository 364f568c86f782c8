//! The donor's side of a migration: `_shardsvrMoveRange` drives every step (see the module header of
//! `migration`), and the donor serves the recipient's pulls: `_migrateClone` (the documents of the range as
//! of one snapshot, in batches) and `_transferMods` (the documents the oplog says were written since the last
//! pull, re-read now).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};

use super::range::KeyRange;
use super::{
    COORDINATORS, RANGE_DELETIONS, changelog, delete_local, hang_while_on, lock, migration_id, new_migration_id,
    put_local,
};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::node::Node;
use crate::router::collection_routing;
use crate::router::rs_client::{ReplicaSetClient, SeedList, find_all, write_majority};
use crate::shard::{ShardKeyPattern, code};
use crate::storage::{Namespace, ts_to_u64};

/// Documents per `_migrateClone` batch, and the bytes a batch stops after.
const CLONE_BATCH_DOCUMENTS: usize = 1000;
const CLONE_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Documents a `_transferMods` reply names at most.
const MODS_BATCH_DOCUMENTS: usize = 2000;
/// How long the outcome of a commit whose reply was lost is looked for before the decision is left to
/// recovery.
const DECIDE_WINDOW: Duration = Duration::from_secs(30);

/// The migration this member is donating: what the recipient's pulls read.
pub(super) struct DonorSession {
    pub(super) id: String,
    ns: Namespace,
    pattern: ShardKeyPattern,
    range: KeyRange,
    /// The `_id`s of the range's documents as of the clone's snapshot (filled by the first pull), and how
    /// many were sent.
    clone_ids: Option<Vec<Bson>>,
    sent: usize,
    /// The oplog key the next `_transferMods` reads after.
    mods_after: u64,
}

/// A migration's persisted coordinator document (`config.migrationCoordinators` on the donor).
#[derive(Clone)]
pub(super) struct Coordinator {
    pub(super) id: String,
    pub(super) ns: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) to_host: String,
    pub(super) chunk_id: bson::oid::ObjectId,
    pub(super) range: Document,
}

impl Coordinator {
    fn to_document(&self, state: &str) -> Document {
        doc! {
            "_id": &self.id, "nss": &self.ns, "donorShardId": &self.from, "recipientShardId": &self.to,
            "recipientHost": &self.to_host, "chunkId": self.chunk_id, "range": self.range.clone(), "state": state,
        }
    }

    pub(super) fn from_document(d: &Document) -> Option<Coordinator> {
        Some(Coordinator {
            id: d.get_str("_id").ok()?.to_string(),
            ns: d.get_str("nss").ok()?.to_string(),
            from: d.get_str("donorShardId").ok()?.to_string(),
            to: d.get_str("recipientShardId").ok()?.to_string(),
            to_host: d.get_str("recipientHost").ok()?.to_string(),
            chunk_id: d.get_object_id("chunkId").ok()?,
            range: d.get_document("range").ok()?.clone(),
        })
    }

    fn recipient(&self) -> Result<ReplicaSetClient> {
        Ok(ReplicaSetClient::new(SeedList::parse(&self.to_host)?, Arc::default()))
    }
}

/// How a migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Committed,
    Aborted,
}

impl Decision {
    pub(super) fn name(self) -> &'static str {
        match self {
            Decision::Committed => "committed",
            Decision::Aborted => "aborted",
        }
    }
}

/// `_shardsvrMoveRange: ns, min, max, toShard, waitForDelete`: moves the chunk [min, max) this shard owns
/// to `toShard`. Returns when the move committed (and, with `waitForDelete`, the donor's copy is deleted).
pub(super) async fn move_range(node: &Node, body: &Document) -> Result<Document> {
    let started = Instant::now();
    let ns = body
        .get_str("_shardsvrMoveRange")
        .map_err(|_| Error::type_mismatch("_shardsvrMoveRange takes a namespace"))?
        .to_string();
    let to = body
        .get_str("toShard")
        .map_err(|_| Error::failed_to_parse("BSON field '_shardsvrMoveRange.toShard' is missing but a required field"))?
        .to_string();
    let (min, max) = match (body.get_document("min"), body.get_document("max")) {
        (Ok(min), Ok(max)) => (min.clone(), max.clone()),
        _ => return Err(Error::failed_to_parse("_shardsvrMoveRange needs min and max")),
    };
    let wait_for_delete = body.get("waitForDelete").is_some_and(crate::bsonx::truthy);
    let identity = crate::shardsvr::identity(node)?;
    node.member.check_writable("config")?;
    let me = identity.shard_name.clone();
    let config = &identity.config;
    let table = collection_routing(config, &ns)
        .await?
        .ok_or_else(|| Error::new(code::NAMESPACE_NOT_SHARDED, format!("ns {ns} is not sharded")))?;
    let range = KeyRange::from_documents(&table.pattern, &min, &max)?;
    let chunk = table
        .chunks()
        .iter()
        .find(|c| c.min == range.min && c.max == range.max)
        .cloned()
        .ok_or_else(|| {
            Error::new(
                crate::error::code::ILLEGAL_OPERATION,
                format!("[{min}, {max}) is not a chunk of {ns}: a migration moves one whole chunk"),
            )
        })?;
    if chunk.shard != me {
        return Err(Error::new(
            code::STALE_CONFIG,
            format!(
                "shard {me} does not own the chunk [{min}, {max}) of {ns}; {} does",
                chunk.shard
            ),
        )
        .with_extra(doc! {"ns": &ns, "shardId": &me}));
    }
    if to == me {
        return Ok(doc! {"millis": 0_i64});
    }
    let shard_host = |id: String| async move {
        find_all(config, "config", "shards", doc! {"_id": &id}, None)
            .await?
            .first()
            .and_then(|s| s.get_str("host").ok().map(String::from))
            .ok_or_else(|| Error::new(code::SHARD_NOT_FOUND, format!("Shard {id} not found")))
    };
    let to_host = shard_host(to.clone()).await?;
    let me_host = shard_host(me.clone()).await?;

    let id = new_migration_id();
    {
        let mut donating = lock(&node.sharding.migrations.donating);
        if let Some(active) = donating.as_ref() {
            return Err(Error::new(
                code::CONFLICTING_OPERATION_IN_PROGRESS,
                format!(
                    "Unable to start new balancer operation because this shard is currently donating chunk \
                     [{}] of {} (migration {})",
                    active.range.min.to_document(&active.pattern.names()),
                    active.ns.full(),
                    active.id
                ),
            ));
        }
        *donating = Some(DonorSession {
            id: id.clone(),
            ns: super::parse_namespace(&ns)?,
            pattern: table.pattern.clone(),
            range: range.clone(),
            clone_ids: None,
            sent: 0,
            mods_after: 0,
        });
    }
    lock(&node.sharding.migrations.deciding).insert(id.clone());
    let coordinator = Coordinator {
        id: id.clone(),
        ns: ns.clone(),
        from: me.clone(),
        to: to.clone(),
        to_host,
        chunk_id: chunk.id,
        range: doc! {"min": &min, "max": &max},
    };
    let outcome = drive(node, &coordinator, &me_host, &table, chunk.lastmod, started).await;
    *lock(&node.sharding.migrations.donating) = None;
    lock(&node.sharding.migrations.deciding).remove(&id);
    let mut reply = outcome?;
    if wait_for_delete {
        super::cleanup::run_range_deletions(node).await?;
    }
    reply.insert("millis", started.elapsed().as_millis() as i64);
    Ok(reply)
}

/// Steps 1 to 6; any failure before the commit aborts (releasing what was taken), a lost commit reply is
/// decided by reading the chunk back.
async fn drive(
    node: &Node,
    coordinator: &Coordinator,
    me_host: &str,
    table: &crate::shard::RoutingTable,
    lastmod: crate::shard::Lastmod,
    started: Instant,
) -> Result<Document> {
    let identity = crate::shardsvr::identity(node)?;
    let config = &identity.config;
    let ns = &coordinator.ns;
    let id = &coordinator.id;
    let details = || {
        let mut d = coordinator.range.clone();
        d.insert("from", &coordinator.from);
        d.insert("to", &coordinator.to);
        d
    };
    // 1: persisted before anything else can point at this migration.
    put_local(node, COORDINATORS, coordinator.to_document("clone")).await?;
    let task = doc! {"_id": id, "nss": ns, "donorShardId": &coordinator.from, "range": coordinator.range.clone(),
    "pending": true, "whenToClean": "now"};
    let prepared = async {
        put_local(node, RANGE_DELETIONS, task.clone()).await?;
        let locked = write_majority(
            config,
            doc! {"update": "collections", "updates": [{"q": {"_id": ns, "activeMigration": {"$exists": false}},
            "u": {"$set": {"activeMigration": {"migrationId": id, "min": coordinator.range.get("min").cloned(),
            "max": coordinator.range.get("max").cloned(), "from": &coordinator.from, "to": &coordinator.to}}}}],
            "$db": "config"},
        )
        .await?;
        if locked.get_i32("n").unwrap_or(0) != 1 {
            return Err(Error::new(
                code::CONFLICTING_OPERATION_IN_PROGRESS,
                format!("another migration of {ns} is in progress"),
            ));
        }
        let fenced = write_majority(
            config,
            doc! {"update": "chunks", "updates": [{"q": {"_id": coordinator.chunk_id, "shard": &coordinator.from,
            "lastmod": lastmod.to_timestamp()}, "u": {"$set": {"migration": id}}}], "$db": "config"},
        )
        .await?;
        if fenced.get_i32("n").unwrap_or(0) != 1 {
            return Err(Error::new(
                code::CONFLICTING_OPERATION_IN_PROGRESS,
                format!("the chunk of {ns} changed since the migration began"),
            ));
        }
        Ok(())
    }
    .await;
    if let Err(err) = prepared {
        finish(node, coordinator, Decision::Aborted).await?;
        return Err(err);
    }
    changelog(node, "moveChunk.start", ns, details()).await;
    let mut steps = Document::new();
    let mut step_started = started;
    let mut step_done = |steps: &mut Document, n: usize| {
        steps.insert(format!("step {n} of 6"), step_started.elapsed().as_millis() as i64);
        step_started = Instant::now();
    };
    step_done(&mut steps, 1);
    hang_while_on(node, failpoint::MOVE_CHUNK_HANG_AT_STEP[0]).await;

    let recipient = coordinator.recipient()?;
    let names = table.pattern.names();
    let before_commit: Result<Document> = async {
        // 2: the recipient clones.
        let cloned = recipient
            .command(
                &doc! {"_recvChunkStart": ns, "migrationId": id, "fromShard": &coordinator.from,
                "fromShardHost": me_host, "toShard": &coordinator.to, "min": coordinator.range.get("min").cloned(),
                "max": coordinator.range.get("max").cloned(), "shardKeyPattern": table.pattern.to_document(),
                "$db": "admin"},
            )
            .await?;
        step_done(&mut steps, 2);
        hang_while_on(node, failpoint::MOVE_CHUNK_HANG_AT_STEP[1]).await;
        // 3: it catches up on the writes made meanwhile.
        let caught_up = recipient
            .command(&doc! {"_recvChunkCatchUp": ns, "migrationId": id, "$db": "admin"})
            .await?;
        step_done(&mut steps, 3);
        hang_while_on(node, failpoint::MOVE_CHUNK_HANG_AT_STEP[2]).await;
        // 4: critical section, and the last writes.
        node.sharding.enter_critical_section(ns).await?;
        let last = recipient
            .command(&doc! {"_recvChunkCommit": ns, "migrationId": id, "$db": "admin"})
            .await?;
        step_done(&mut steps, 4);
        hang_while_on(node, failpoint::MOVE_CHUNK_HANG_AT_STEP[3]).await;
        put_local(node, COORDINATORS, coordinator.to_document("commit")).await?;
        let count = |r: &Document, k: &str| r.get(k).and_then(crate::bsonx::as_i64).unwrap_or(0);
        Ok(doc! {
            "cloned": count(&cloned, "cloned"), "clonedBytes": count(&cloned, "clonedBytes"),
            "catchup": count(&caught_up, "mods"), "steady": count(&last, "mods"),
        })
    }
    .await;
    let counts = match before_commit {
        Ok(counts) => counts,
        Err(err) => {
            let mut d = details();
            d.insert("errmsg", err.message.clone());
            changelog(node, "moveChunk.error", ns, d).await;
            if let Err(finish_err) = finish(node, coordinator, Decision::Aborted).await {
                tracing::warn!(error = %finish_err, %ns, "aborted migration left for recovery");
            }
            return Err(err);
        }
    };
    // 5: the commit, one document on the config servers.
    let new_lastmod = crate::shard::Lastmod {
        major: table.collection_version().major + 1,
        minor: 0,
    };
    let now = crate::router::now_timestamp();
    let commit = write_majority(
        config,
        doc! {"update": "chunks", "updates": [{"q": {"_id": coordinator.chunk_id, "shard": &coordinator.from,
        "migration": id}, "u": {"$set": {"shard": &coordinator.to, "lastmod": new_lastmod.to_timestamp(),
        "onCurrentShardSince": now}, "$unset": {"migration": ""},
        "$push": {"history": {"$each": [{"validAfter": now, "shard": &coordinator.to}], "$position": 0}}}}],
        "$db": "config"},
    )
    .await;
    let decision = match commit {
        Ok(reply) if reply.get_i32("n").unwrap_or(0) == 1 => Decision::Committed,
        _ => decide(node, coordinator, DECIDE_WINDOW).await?,
    };
    step_done(&mut steps, 5);
    if decision == Decision::Committed {
        let mut d = details();
        d.insert("counts", counts.clone());
        d.insert("version", format!("{}|0", new_lastmod.major));
        changelog(node, "moveChunk.commit", ns, d).await;
        hang_while_on(node, failpoint::MOVE_CHUNK_HANG_AT_STEP[4]).await;
    }
    // 6: every party learns the outcome.
    finish(node, coordinator, decision).await?;
    step_done(&mut steps, 6);
    let _ = names;
    let mut d = details();
    d.extend(steps);
    d.insert(
        "note",
        if decision == Decision::Committed {
            "success"
        } else {
            "aborted"
        },
    );
    d.insert("totalMillis", started.elapsed().as_millis() as i64);
    changelog(node, "moveChunk.from", ns, d).await;
    if decision == Decision::Aborted {
        return Err(Error::new(
            code::OPERATION_FAILED,
            format!("the migration of {ns} could not commit and was aborted"),
        ));
    }
    hang_while_on(node, failpoint::MOVE_CHUNK_HANG_AT_STEP[5]).await;
    Ok(counts)
}

/// The outcome of a migration whose commit may or may not have happened: committed if the config servers
/// name the recipient; otherwise the chunk's fence is removed (so a late commit cannot match) and it is
/// aborted. Fails if the config servers cannot tell within `window`.
pub(super) async fn decide(node: &Node, coordinator: &Coordinator, window: Duration) -> Result<Decision> {
    let config = crate::shardsvr::identity(node)?.config;
    let deadline = Instant::now() + window;
    loop {
        let attempt: Result<Option<Decision>> = async {
            let chunk = find_all(&config, "config", "chunks", doc! {"_id": coordinator.chunk_id}, None)
                .await?
                .into_iter()
                .next();
            let Some(chunk) = chunk else {
                // The collection was dropped or its chunk split or merged: nothing was committed.
                return Ok(Some(Decision::Aborted));
            };
            if chunk.get_str("shard").ok() == Some(coordinator.to.as_str()) {
                return Ok(Some(Decision::Committed));
            }
            let unfenced = write_majority(
                &config,
                doc! {"update": "chunks", "updates": [{"q": {"_id": coordinator.chunk_id, "migration": &coordinator.id},
                "u": {"$unset": {"migration": ""}}}], "$db": "config"},
            )
            .await?;
            if unfenced.get_i32("n").unwrap_or(0) == 1 || chunk.get_str("migration").ok() != Some(&coordinator.id) {
                return Ok(Some(Decision::Aborted));
            }
            Ok(None)
        }
        .await;
        match attempt {
            Ok(Some(decision)) => return Ok(decision),
            Ok(None) => {}
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(err) => tracing::debug!(error = %err, "cannot decide a migration yet"),
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                code::OPERATION_FAILED,
                format!("the outcome of migration {} is not known yet", coordinator.id),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies a decision everywhere, idempotently (recovery calls it again until it succeeds): the donor's
/// range deletion becomes ready (committed) or is dropped (aborted), the donor refreshes and leaves its
/// critical section, the recipient is told, the collection's migration lock is released, and the
/// coordinator document goes last.
pub(super) async fn finish(node: &Node, coordinator: &Coordinator, decision: Decision) -> Result<()> {
    let ns = &coordinator.ns;
    let config = crate::shardsvr::identity(node)?.config;
    match decision {
        Decision::Committed => {
            if let Some(mut task) = super::local_document(node, RANGE_DELETIONS, &coordinator.id)? {
                task.remove("pending");
                put_local(node, RANGE_DELETIONS, task).await?;
            }
            if node
                .failpoints
                .hit(failpoint::MIGRATION_DONOR_ACCEPTS_WRITES_AFTER_COMMIT)
                .is_none()
            {
                crate::shardsvr::version_of(node, ns, true).await?;
            }
        }
        Decision::Aborted => {
            let _ = write_majority(
                &config,
                doc! {"update": "chunks", "updates": [{"q": {"_id": coordinator.chunk_id, "migration": &coordinator.id},
                "u": {"$unset": {"migration": ""}}}], "$db": "config"},
            )
            .await?;
            delete_local(node, RANGE_DELETIONS, &coordinator.id).await?;
            let _ = crate::shardsvr::version_of(node, ns, true).await;
        }
    }
    node.sharding.leave_critical_section(ns);
    coordinator
        .recipient()?
        .command(
            &doc! {"_recvChunkFinish": ns, "migrationId": &coordinator.id, "decision": decision.name(),
            "$db": "admin"},
        )
        .await?;
    write_majority(
        &config,
        doc! {"update": "collections", "updates": [{"q": {"_id": ns, "activeMigration.migrationId": &coordinator.id},
        "u": {"$unset": {"activeMigration": ""}}}], "$db": "config"},
    )
    .await?;
    delete_local(node, COORDINATORS, &coordinator.id).await?;
    tracing::info!(%ns, migration = %coordinator.id, decision = decision.name(), to = %coordinator.to, "migration finished");
    Ok(())
}

/// Serves one of the recipient's pulls (`_migrateClone`, `_transferMods`): `serve` runs on the session the
/// body's `migrationId` names, with a fresh snapshot.
pub(super) fn serve_pull(
    node: &Node,
    body: &Document,
    serve: fn(&Node, &mut DonorSession, &crate::storage::Snapshot) -> Result<Document>,
) -> Result<Document> {
    let id = migration_id(body)?;
    let snapshot = node.storage.snapshot()?;
    let mut donating = lock(&node.sharding.migrations.donating);
    let session = donating
        .as_mut()
        .filter(|s| s.id == id)
        .ok_or_else(|| no_session(&id))?;
    serve(node, session, &snapshot)
}

/// `_migrateClone {migrationId}`: the next batch of the range's documents (`objects`; empty: all sent).
pub(super) fn migrate_clone(
    _node: &Node,
    session: &mut DonorSession,
    snapshot: &crate::storage::Snapshot,
) -> Result<Document> {
    let Some(meta) = snapshot.collection(&session.ns)? else {
        return Ok(doc! {"objects": []});
    };
    if session.clone_ids.is_none() {
        let (pattern, range) = (&session.pattern, &session.range);
        let mut ids = Vec::new();
        snapshot.scan(&meta, None, |d| {
            if range.holds(pattern, &d) {
                ids.push(d.get("_id").cloned().unwrap_or(Bson::Null));
            }
            ControlFlow::Continue(())
        })?;
        session.mods_after = ts_to_u64(snapshot.last_optime()?.ts);
        session.clone_ids = Some(ids);
    }
    let ids = session.clone_ids.as_deref().unwrap_or_default();
    let mut objects = Vec::new();
    let mut bytes = 0;
    while session.sent < ids.len() && objects.len() < CLONE_BATCH_DOCUMENTS && bytes < CLONE_BATCH_BYTES {
        // Deleted since the snapshot: the deletion comes with the mods.
        if let Some(d) = snapshot.get_by_id(&meta, &ids[session.sent])? {
            bytes += d.to_vec().map(|v| v.len()).unwrap_or(0);
            objects.push(Bson::Document(d));
        }
        session.sent += 1;
    }
    Ok(doc! {"objects": objects})
}

/// `_transferMods {migrationId}`: the documents written since the last pull — `reload` (in range now:
/// their current version) and `deleted` (`_id`s no longer in range or gone).
pub(super) fn transfer_mods(
    node: &Node,
    session: &mut DonorSession,
    snapshot: &crate::storage::Snapshot,
) -> Result<Document> {
    if node
        .failpoints
        .hit(failpoint::MIGRATION_COMMIT_BEFORE_CATCH_UP)
        .is_some()
    {
        return Ok(doc! {"reload": [], "deleted": [], "size": 0});
    }
    // The entry the last pull ended at must still be in the (capped) oplog, or writes may have been missed.
    if let Some(oldest) = node.storage.oldest_oplog_timestamp()?
        && ts_to_u64(oldest) > session.mods_after
    {
        return Err(Error::new(
            code::OPERATION_FAILED,
            format!("the oplog rolled over during the migration of {}", session.ns.full()),
        ));
    }
    let full = session.ns.full();
    let mut touched: Vec<Bson> = Vec::new();
    let mut last = session.mods_after;
    let mut dropped = false;
    snapshot.scan_oplog(Some(session.mods_after), false, |key, entry| {
        if touched.len() >= MODS_BATCH_DOCUMENTS {
            return ControlFlow::Break(());
        }
        last = key;
        if entry.get_str("ns").ok() == Some(full.as_str()) {
            let id = match entry.get_str("op").unwrap_or_default() {
                "i" | "d" => entry.get_document("o").ok().and_then(|o| o.get("_id")).cloned(),
                "u" => entry.get_document("o2").ok().and_then(|o| o.get("_id")).cloned(),
                _ => None,
            };
            if let Some(id) = id
                && !touched.contains(&id)
            {
                touched.push(id);
            }
        } else if entry.get_str("op").ok() == Some("c")
            && entry.get_str("ns").ok() == Some(format!("{}.$cmd", session.ns.db).as_str())
            && entry
                .get_document("o")
                .is_ok_and(|o| o.get_str("drop").ok() == Some(session.ns.coll.as_str()))
        {
            dropped = true;
        }
        ControlFlow::Continue(())
    })?;
    if dropped {
        return Err(Error::new(
            code::OPERATION_FAILED,
            format!("{full} was dropped during its migration"),
        ));
    }
    session.mods_after = last;
    let meta = snapshot.collection(&session.ns)?;
    let mut reload = Vec::new();
    let mut deleted = Vec::new();
    for id in touched {
        let current = match &meta {
            Some(meta) => snapshot.get_by_id(meta, &id)?,
            None => None,
        };
        match current {
            Some(d) if session.range.holds(&session.pattern, &d) => reload.push(Bson::Document(d)),
            _ => deleted.push(id),
        }
    }
    let size = (reload.len() + deleted.len()) as i64;
    Ok(doc! {"reload": reload, "deleted": deleted, "size": size})
}

fn no_session(id: &str) -> Error {
    Error::new(
        code::OPERATION_FAILED,
        format!("migration {id} is not running on this member (it may have restarted or stepped down)"),
    )
}

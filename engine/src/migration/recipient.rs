//! The recipient's side of a migration: `_recvChunkStart` persists a pending range deletion for the range
//! (so an abort, even after a restart, cleans up the copy) and pulls the documents from the donor;
//! `_recvChunkCatchUp` and `_recvChunkCommit` pull the donor's later writes (the second until none are
//! left, inside the donor's critical section), each majority-committed before it answers;
//! `_recvChunkFinish {decision}` drops the pending deletion (committed) or makes it ready (aborted).
//! Until the commit, the copied documents are orphans here: routed reads do not see them.

use std::sync::Arc;

use bson::{Bson, Document, doc};

use super::range::KeyRange;
use super::{RANGE_DELETIONS, changelog, delete_local, local_document, lock, migration_id, put_local, wait_majority};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::router::rs_client::{ReplicaSetClient, SeedList};
use crate::shard::{ShardKeyPattern, code};
use crate::storage::Namespace;

/// Catch-up passes before the donor's critical section, at most, and the number of changes a pass may
/// still bring for the range to count as caught up.
const CATCH_UP_PASSES: usize = 50;
const CAUGHT_UP_CHANGES: i64 = 100;

/// A migration this member receives.
#[derive(Clone)]
pub(super) struct RecipientSession {
    ns: Namespace,
    pattern: ShardKeyPattern,
    range: KeyRange,
    donor: Arc<ReplicaSetClient>,
    from: String,
}

/// `_recvChunkStart: ns, migrationId, fromShard, fromShardHost, min, max, shardKeyPattern`: clones the range.
pub(super) async fn start(node: &Node, body: &Document) -> Result<Document> {
    let id = migration_id(body)?;
    let ns = body
        .get_str("_recvChunkStart")
        .map_err(|_| Error::type_mismatch("_recvChunkStart takes a namespace"))?
        .to_string();
    let field = |k: &str| {
        body.get_str(k)
            .map(String::from)
            .map_err(|_| Error::failed_to_parse(format!("_recvChunkStart needs {k}")))
    };
    let (from, from_host) = (field("fromShard")?, field("fromShardHost")?);
    let pattern = ShardKeyPattern::parse(
        body.get_document("shardKeyPattern")
            .map_err(|_| Error::failed_to_parse("_recvChunkStart needs shardKeyPattern"))?,
    )?;
    let (min, max) = match (body.get_document("min"), body.get_document("max")) {
        (Ok(min), Ok(max)) => (min.clone(), max.clone()),
        _ => return Err(Error::failed_to_parse("_recvChunkStart needs min and max")),
    };
    let range = KeyRange::from_documents(&pattern, &min, &max)?;
    node.member.check_writable("config")?;
    // A deletion of an overlapping range left here earlier must not eat the new copy: a ready one runs now,
    // a pending one (its migration undecided) makes this one wait.
    for task in super::local_documents(node, RANGE_DELETIONS)? {
        if task.get_str("nss").ok() != Some(ns.as_str()) {
            continue;
        }
        let overlaps = task
            .get_document("range")
            .ok()
            .and_then(|r| {
                KeyRange::from_documents(&pattern, r.get_document("min").ok()?, r.get_document("max").ok()?).ok()
            })
            .is_some_and(|r| r.overlaps(&range));
        if overlaps && task.get_bool("pending").unwrap_or(false) {
            return Err(Error::new(
                code::CONFLICTING_OPERATION_IN_PROGRESS,
                format!("an earlier migration of an overlapping range of {ns} is not decided yet"),
            ));
        }
        if overlaps {
            super::cleanup::delete_range(node, &task).await?;
        }
    }
    let session = RecipientSession {
        ns: super::parse_namespace(&ns)?,
        pattern,
        range,
        donor: Arc::new(ReplicaSetClient::new(SeedList::parse(&from_host)?, Arc::default())),
        from: from.clone(),
    };
    put_local(
        node,
        RANGE_DELETIONS,
        doc! {"_id": &id, "nss": &ns, "donorShardId": &from, "range": {"min": &min, "max": &max}, "pending": true,
        "whenToClean": "now", "recipient": true},
    )
    .await?;
    lock(&node.sharding.migrations.receiving).insert(id.clone(), session.clone());
    let mut cloned = 0_i64;
    let mut bytes = 0_i64;
    loop {
        let batch = session
            .donor
            .command(&doc! {"_migrateClone": &ns, "migrationId": &id, "$db": "admin"})
            .await?;
        let objects: Vec<Document> = batch
            .get_array("objects")
            .map(|a| a.iter().filter_map(|d| d.as_document().cloned()).collect())
            .unwrap_or_default();
        if objects.is_empty() {
            break;
        }
        cloned += objects.len() as i64;
        bytes += objects
            .iter()
            .map(|d| d.to_vec().map(|v| v.len() as i64).unwrap_or(0))
            .sum::<i64>();
        apply(node, &session, objects, Vec::new()).await?;
    }
    wait_majority(node).await?;
    Ok(doc! {"cloned": cloned, "clonedBytes": bytes})
}

/// `_recvChunkCatchUp` / `_recvChunkCommit` (`last`): pulls `_transferMods` until a pass brings few
/// changes (or, `last`, none), majority-committed before the reply.
pub(super) async fn catch_up(node: &Node, body: &Document, last: bool) -> Result<Document> {
    let id = migration_id(body)?;
    let session = lock(&node.sharding.migrations.receiving)
        .get(&id)
        .cloned()
        .ok_or_else(|| {
            Error::new(
                code::OPERATION_FAILED,
                format!("migration {id} is not being received here (this member may have restarted)"),
            )
        })?;
    let mut mods = 0_i64;
    for _ in 0..CATCH_UP_PASSES {
        let reply = session
            .donor
            .command(&doc! {"_transferMods": session.ns.full(), "migrationId": &id, "$db": "admin"})
            .await?;
        let size = reply.get("size").and_then(crate::bsonx::as_i64).unwrap_or(0);
        let docs = |k: &str| -> Vec<Bson> { reply.get_array(k).cloned().unwrap_or_default() };
        let reload = docs("reload")
            .into_iter()
            .filter_map(|d| d.as_document().cloned())
            .collect();
        apply(node, &session, reload, docs("deleted")).await?;
        mods += size;
        if size == 0 || (!last && size < CAUGHT_UP_CHANGES) {
            break;
        }
    }
    wait_majority(node).await?;
    Ok(doc! {"mods": mods})
}

/// Upserts `reload` and deletes the documents with `deleted` `_id`s that lie in the range.
async fn apply(node: &Node, session: &RecipientSession, reload: Vec<Document>, deleted: Vec<Bson>) -> Result<()> {
    node.member.check_writable(&session.ns.db)?;
    let ns = session.ns.clone();
    let (pattern, range) = (session.pattern.clone(), session.range.clone());
    node.storage
        .write(true, move |w| {
            let meta = w.ensure_collection(&ns)?;
            for document in reload {
                let id = document.get("_id").cloned().unwrap_or(Bson::Null);
                match w.get_by_id(&meta, &id)? {
                    Some(before) => w.replace(&meta, &before, document, None)?,
                    None => w.insert(&meta, document, None)?,
                }
            }
            for id in deleted {
                if let Some(before) = w.get_by_id(&meta, &id)?
                    && range.holds(&pattern, &before)
                {
                    w.delete(&meta, &before, None)?;
                }
            }
            Ok::<_, Error>(())
        })
        .await??;
    Ok(())
}

/// `_recvChunkFinish: ns, migrationId, decision: "committed" | "aborted"` (idempotent).
pub(super) async fn finish(node: &Node, body: &Document) -> Result<Document> {
    let id = migration_id(body)?;
    let ns = body.get_str("_recvChunkFinish").unwrap_or_default().to_string();
    let committed = match body.get_str("decision") {
        Ok("committed") => true,
        Ok("aborted") => false,
        _ => return Err(Error::bad_value("decision must be \"committed\" or \"aborted\"")),
    };
    node.member.check_writable("config")?;
    let session = lock(&node.sharding.migrations.receiving).remove(&id);
    if committed {
        delete_local(node, RANGE_DELETIONS, &id).await?;
        crate::shardsvr::version_of(node, &ns, true).await?;
        if let Some(session) = session {
            let details = doc! {"min": session.range.min.to_document(&session.pattern.names()),
            "max": session.range.max.to_document(&session.pattern.names()), "from": &session.from, "note": "success"};
            changelog(node, "moveChunk.to", &ns, details).await;
        }
    } else if let Some(mut task) = local_document(node, RANGE_DELETIONS, &id)? {
        task.remove("pending");
        put_local(node, RANGE_DELETIONS, task).await?;
    }
    Ok(Document::new())
}

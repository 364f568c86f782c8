//! What a shard primary does in the background every second: it finishes migrations no running donor
//! owns (a coordinator document left by a kill, a restart or a failover: [`recover`]) and runs the ready
//! range deletions (`config.rangeDeletions` without `pending`), which remove the documents of a range the
//! shard does not own — checked document by document against the chunks just read from the config servers.

use std::ops::ControlFlow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bson::{Bson, Document};

use super::donor::{Coordinator, decide, finish};
use super::range::KeyRange;
use super::{COORDINATORS, RANGE_DELETIONS, delete_local, local_documents, lock};
use crate::error::Result;
use crate::failpoint;
use crate::node::Node;
use crate::router::collection_routing;

/// How often recovery and the range deleter look for work.
const INTERVAL: Duration = Duration::from_secs(1);
/// Documents deleted per storage transaction.
const DELETE_BATCH: usize = 500;

/// Starts the background task of a shard member (it ends with the node).
pub fn spawn_background(node: &Arc<Node>) {
    let weak: Weak<Node> = Arc::downgrade(node);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            let Some(node) = weak.upgrade() else {
                return;
            };
            if node.member.check_writable("config").is_err() || crate::shardsvr::identity(&node).is_err() {
                continue;
            }
            if let Err(err) = recover(&node).await {
                tracing::debug!(error = %err, "migration recovery will try again");
            }
            if let Err(err) = run_range_deletions(&node).await {
                tracing::debug!(error = %err, "range deletion will try again");
            }
        }
    });
}

/// Decides and finishes every migration whose coordinator document no running migration owns.
pub(super) async fn recover(node: &Node) -> Result<()> {
    for document in local_documents(node, COORDINATORS)? {
        let Some(coordinator) = Coordinator::from_document(&document) else {
            continue;
        };
        if !lock(&node.sharding.migrations.deciding).insert(coordinator.id.clone()) {
            continue;
        }
        let outcome = async {
            let decision = decide(node, &coordinator, Duration::from_secs(5)).await?;
            tracing::info!(migration = %coordinator.id, ns = %coordinator.ns, decision = decision.name(),
                "recovering a migration");
            finish(node, &coordinator, decision).await
        }
        .await;
        lock(&node.sharding.migrations.deciding).remove(&coordinator.id);
        outcome?;
    }
    Ok(())
}

/// Runs every ready range deletion of this member.
pub(super) async fn run_range_deletions(node: &Node) -> Result<()> {
    for task in local_documents(node, RANGE_DELETIONS)? {
        if task.get_bool("pending").unwrap_or(false) {
            continue;
        }
        delete_range(node, &task).await?;
    }
    Ok(())
}

/// Deletes the documents of a task's range that this shard does not own, then the task.
pub(super) async fn delete_range(node: &Node, task: &Document) -> Result<()> {
    let id = task.get_str("_id").unwrap_or_default().to_string();
    let ns = task.get_str("nss").unwrap_or_default().to_string();
    let identity = crate::shardsvr::identity(node)?;
    let Some(table) = collection_routing(&identity.config, &ns).await? else {
        return delete_local(node, RANGE_DELETIONS, &id).await;
    };
    let bounds = task.get_document("range").ok();
    let bound = |k: &str| bounds.and_then(|r| r.get_document(k).ok()).cloned().unwrap_or_default();
    let Ok(mut range) = KeyRange::from_documents(&table.pattern, &bound("min"), &bound("max")) else {
        return delete_local(node, RANGE_DELETIONS, &id).await;
    };
    let careless = node.failpoints.hit(failpoint::RANGE_DELETER_DELETES_OWNED).is_some();
    if careless {
        range.max = table.pattern.global_max();
    }
    let me = identity.shard_name;
    let namespace = super::parse_namespace(&ns)?;
    let mut deleted = 0_usize;
    loop {
        node.member.check_writable(&namespace.db)?;
        let snapshot = node.storage.snapshot()?;
        let Some(meta) = snapshot.collection(&namespace)? else {
            break;
        };
        let mut doomed: Vec<Bson> = Vec::new();
        snapshot.scan(&meta, None, |d| {
            if let Ok(key) = table.pattern.extract(&d)
                && range.contains(&key)
                && (careless || table.chunk_for(&key).shard != me)
            {
                doomed.push(d.get("_id").cloned().unwrap_or(Bson::Null));
            }
            if doomed.len() >= DELETE_BATCH {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if doomed.is_empty() {
            break;
        }
        deleted += doomed.len();
        let ns = namespace.clone();
        node.storage
            .write(true, move |w| {
                let Some(meta) = w.collection(&ns)? else {
                    return Ok(());
                };
                for id in doomed {
                    if let Some(before) = w.get_by_id(&meta, &id)? {
                        w.delete(&meta, &before, None)?;
                    }
                }
                Ok::<_, crate::error::Error>(())
            })
            .await??;
    }
    super::wait_majority(node).await?;
    tracing::info!(%ns, deleted, "range deletion done");
    delete_local(node, RANGE_DELETIONS, &id).await
}

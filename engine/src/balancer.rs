//! The balancer, on the config servers' primary: once started (`balancerStart`, `sh.startBalancer()`), every
//! second it looks at each sharded collection (not `noBalance`, no migration running) and moves one chunk —
//! through the donor's `_shardsvrMoveRange`, as `moveChunk` does — from a draining shard (`removeShard`) to
//! the shard with the fewest chunks, or from the shard with the most chunks to the one with the fewest when
//! they differ by MongoDB's (pre-6.0) migration threshold: 2 below 20 chunks, 4 below 80, 8 from 80 on.
//!
//! [`pick_move`] is the pure policy; [`spawn`] the loop around it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bson::doc;

use crate::error::Result;
use crate::node::Node;
use crate::router::collection_routing;
use crate::router::rs_client::{ReplicaSetClient, SeedList, error_of_reply, find_all};

/// How often a balancer round runs while the balancer is on.
const ROUND_INTERVAL: Duration = Duration::from_secs(1);

/// One shard as the balancer sees a collection: its id, how many of the collection's chunks it owns,
/// whether it is draining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLoad {
    pub id: String,
    pub chunks: usize,
    pub draining: bool,
}

/// The chunk move a round should make for one collection: `(from, to)`, or none.
pub fn pick_move(shards: &[ShardLoad]) -> Option<(String, String)> {
    let receivers = shards.iter().filter(|s| !s.draining);
    let least = receivers.clone().min_by_key(|s| (s.chunks, s.id.clone()))?;
    if let Some(draining) = shards.iter().find(|s| s.draining && s.chunks > 0) {
        return Some((draining.id.clone(), least.id.clone()));
    }
    let most = receivers.max_by_key(|s| (s.chunks, std::cmp::Reverse(s.id.clone())))?;
    let total: usize = shards.iter().map(|s| s.chunks).sum();
    let threshold = match total {
        0..20 => 2,
        20..80 => 4,
        _ => 8,
    };
    (most.chunks - least.chunks >= threshold).then(|| (most.id.clone(), least.id.clone()))
}

/// Starts the balancer loop of a config server member (it acts only while primary; it ends with the node).
pub fn spawn(node: &Arc<Node>) {
    let seeds = format!("{}/{}", node.options().repl_set, node.options().self_host());
    let Ok(seeds) = SeedList::parse(&seeds) else {
        return;
    };
    let config = ReplicaSetClient::new(seeds, Arc::default());
    let weak: Weak<Node> = Arc::downgrade(node);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ROUND_INTERVAL).await;
            let Some(node) = weak.upgrade() else {
                return;
            };
            let primary = node.member.check_writable("config").is_ok();
            drop(node);
            if primary && let Err(err) = round(&config).await {
                tracing::debug!(error = %err, "balancer round failed");
            }
        }
    });
}

/// One balancer round over every collection.
async fn round(config: &ReplicaSetClient) -> Result<()> {
    let settings = find_all(config, "config", "settings", doc! {"_id": "balancer"}, None).await?;
    let on = settings
        .first()
        .is_some_and(|s| s.get_str("mode").ok() == Some("full") && !s.get_bool("stopped").unwrap_or(false));
    if !on {
        return Ok(());
    }
    let shards = find_all(config, "config", "shards", doc! {}, None).await?;
    let collections = find_all(
        config,
        "config",
        "collections",
        doc! {"dropped": {"$ne": true}, "noBalance": {"$ne": true}, "activeMigration": {"$exists": false}},
        None,
    )
    .await?;
    for collection in collections {
        let Ok(ns) = collection.get_str("_id") else {
            continue;
        };
        let Some(table) = collection_routing(config, ns).await? else {
            continue;
        };
        let loads: Vec<ShardLoad> = shards
            .iter()
            .filter_map(|s| {
                let id = s.get_str("_id").ok()?;
                Some(ShardLoad {
                    id: id.to_string(),
                    chunks: table.chunks().iter().filter(|c| c.shard == id).count(),
                    draining: s.get_bool("draining").unwrap_or(false),
                })
            })
            .collect();
        let Some((from, to)) = pick_move(&loads) else {
            continue;
        };
        let Some(chunk) = table.chunks().iter().find(|c| c.shard == from) else {
            continue;
        };
        let Some(host) = shards
            .iter()
            .find(|s| s.get_str("_id").ok() == Some(from.as_str()))
            .and_then(|s| s.get_str("host").ok())
        else {
            continue;
        };
        let names = table.pattern.names();
        let donor = ReplicaSetClient::new(SeedList::parse(host)?, Arc::default());
        tracing::info!(%ns, %from, %to, "balancer moves a chunk");
        let reply = donor
            .run(&doc! {"_shardsvrMoveRange": ns, "min": chunk.min.to_document(&names),
            "max": chunk.max.to_document(&names), "toShard": &to, "fromShard": &from, "$db": "admin"})
            .await?;
        if !crate::wire::client::reply_ok(&reply) {
            tracing::info!(%ns, error = %error_of_reply(&reply), "balancer move failed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(id: &str, chunks: usize, draining: bool) -> ShardLoad {
        ShardLoad {
            id: id.into(),
            chunks,
            draining,
        }
    }

    #[test]
    fn moves_from_the_fullest_to_the_emptiest_past_the_threshold() {
        assert_eq!(
            pick_move(&[load("a", 3, false), load("b", 1, false)]),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(pick_move(&[load("a", 2, false), load("b", 1, false)]), None);
        // 30 chunks: the threshold is 4.
        assert_eq!(pick_move(&[load("a", 16, false), load("b", 14, false)]), None);
        assert_eq!(
            pick_move(&[load("a", 17, false), load("b", 13, false)]),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(
            pick_move(&[load("a", 18, false), load("b", 12, false), load("c", 14, false)]),
            Some(("a".into(), "b".into()))
        );
        // 100 chunks: 8.
        assert_eq!(
            pick_move(&[load("a", 54, false), load("b", 46, false)]),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(pick_move(&[load("a", 53, false), load("b", 47, false)]), None);
    }

    #[test]
    fn a_draining_shard_is_emptied_first_and_never_receives() {
        assert_eq!(
            pick_move(&[load("a", 1, true), load("b", 5, false), load("c", 9, false)]),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(
            pick_move(&[load("a", 0, true), load("b", 5, false), load("c", 5, false)]),
            None
        );
        assert_eq!(pick_move(&[load("a", 4, true)]), None);
    }
}

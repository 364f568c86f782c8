//! The balancer, on the config servers' primary: once started (`balancerStart`, `sh.startBalancer()`), every
//! second it looks at each sharded collection (not `noBalance`, no migration running) and moves one chunk —
//! through the donor's `_shardsvrMoveRange`, as `moveChunk` does — from a draining shard (`removeShard`) to
//! the shard with the fewest chunks, or from the shard with the most chunks to the one with the fewest when
//! they differ by MongoDB's (pre-6.0) migration threshold: 2 below 20 chunks, 4 below 80, 8 from 80 on.
//!
//! Before moving, each round splits by size: it reads the chunk size (`config.settings`
//! `{_id: "chunksize", value: MB}`, 1–1024, default 128), asks each chunk's owning shard for the chunk's
//! `dataSize` and, when it holds more, for `splitVector` points, and commits the split on the config servers
//! as mongos's `split` does ([`crate::router::commit_split`]). A chunk over the size that yields no split
//! point (one key) is marked `jumbo: true` in `config.chunks` and not asked about again.
//!
//! [`pick_move`] and [`chunk_size_bytes`] are the pure policy; [`spawn`] the loop around it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bson::{Bson, Document, doc};

use crate::error::Result;
use crate::node::Node;
use crate::router::rs_client::{ReplicaSetClient, SeedList, error_of_reply, find_all, write_majority};
use crate::router::{collection_routing, commit_split};
use crate::shard::{RoutingTable, ShardKeyValue};

/// How often a balancer round runs while the balancer is on.
const ROUND_INTERVAL: Duration = Duration::from_secs(1);

/// MongoDB's default chunk size, in MB.
const DEFAULT_CHUNK_SIZE_MB: i64 = 128;

/// Who the balancer's `config.changelog` entries name as their server.
const CHANGELOG_SERVER: &str = "balancer";

/// The maximum chunk size in bytes a `config.settings` `{_id: "chunksize", value: MB}` document sets: its
/// `value` when it is a number from 1 to 1024 (MongoDB's bounds), else the default 128 MB.
pub fn chunk_size_bytes(setting: Option<&Document>) -> u64 {
    let mb = setting
        .and_then(|s| s.get("value"))
        .and_then(|v| match v {
            Bson::Int32(i) => Some(i64::from(*i)),
            Bson::Int64(i) => Some(*i),
            Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        })
        .filter(|mb| (1..=1024).contains(mb))
        .unwrap_or(DEFAULT_CHUNK_SIZE_MB);
    (mb as u64) << 20
}

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
    let chunk_size = find_all(config, "config", "settings", doc! {"_id": "chunksize"}, None).await?;
    let max_bytes = chunk_size_bytes(chunk_size.first());
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
        let Some(mut table) = collection_routing(config, ns).await? else {
            continue;
        };
        match split_by_size(config, &shards, &table, max_bytes).await {
            Ok(true) => {
                let Some(refreshed) = collection_routing(config, ns).await? else {
                    continue;
                };
                table = refreshed;
            }
            Ok(false) => {}
            Err(err) => tracing::info!(%ns, error = %err, "balancer: splitting by size failed"),
        }
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
        let Some(donor) = shard_client(&shards, &from)? else {
            continue;
        };
        let names = table.pattern.names();
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

/// A client of shard `id`'s replica set (its primary answers), from the `config.shards` documents.
fn shard_client(shards: &[Document], id: &str) -> Result<Option<ReplicaSetClient>> {
    let Some(host) = shards
        .iter()
        .find(|s| s.get_str("_id").ok() == Some(id))
        .and_then(|s| s.get_str("host").ok())
    else {
        return Ok(None);
    };
    Ok(Some(ReplicaSetClient::new(SeedList::parse(host)?, Arc::default())))
}

/// Splits every chunk of `table` holding more than `max_bytes` at its owning shard's `splitVector` points;
/// marks the ones that cannot be split `jumbo`. Whether any chunk was split.
async fn split_by_size(
    config: &ReplicaSetClient,
    shards: &[Document],
    table: &RoutingTable,
    max_bytes: u64,
) -> Result<bool> {
    let ns = table.namespace.as_str();
    let names = table.pattern.names();
    let jumbo: Vec<ShardKeyValue> = find_all(
        config,
        "config",
        "chunks",
        doc! {"uuid": &table.uuid, "jumbo": true},
        None,
    )
    .await?
    .iter()
    .filter_map(|c| ShardKeyValue::from_document(c.get_document("min").ok()?, &names))
    .collect();
    // One scan per shard first: a shard holding less than the chunk size of the collection in all has no
    // chunk to split (orphans only make this an overestimate).
    let mut owners: Vec<&str> = table.chunks().iter().map(|c| c.shard.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let mut heavy = Vec::new();
    for id in owners {
        let Some(owner) = shard_client(shards, id)? else {
            continue;
        };
        let whole = (&table.chunks()[0].min, &table.chunks()[table.chunks().len() - 1].max);
        if data_size(&owner, table, whole.0, whole.1)
            .await?
            .is_some_and(|bytes| bytes > max_bytes)
        {
            heavy.push(id);
        }
    }
    let mut split = false;
    let candidates = table
        .chunks()
        .iter()
        .filter(|c| heavy.contains(&c.shard.as_str()) && !jumbo.contains(&c.min));
    for chunk in candidates {
        let Some(owner) = shard_client(shards, &chunk.shard)? else {
            continue;
        };
        let Some(bytes) = data_size(&owner, table, &chunk.min, &chunk.max)
            .await?
            .filter(|b| *b > max_bytes)
        else {
            continue;
        };
        let split_vector = doc! {"splitVector": ns, "keyPattern": table.pattern.to_document(),
        "min": chunk.min.to_document(&names), "max": chunk.max.to_document(&names),
        "maxChunkSizeBytes": max_bytes as i64, "$db": "admin"};
        let reply = owner.run(&split_vector).await?;
        if !crate::wire::client::reply_ok(&reply) {
            tracing::info!(%ns, error = %error_of_reply(&reply), "balancer: splitVector failed");
            continue;
        }
        let points: Vec<ShardKeyValue> = reply
            .get_array("splitKeys")
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| ShardKeyValue::from_document(k.as_document()?, &names))
                    .filter(|k| chunk.min < *k && chunk.contains(k))
                    .collect()
            })
            .unwrap_or_default();
        if points.is_empty() {
            tracing::info!(%ns, min = %chunk.min.to_document(&names), bytes, "balancer marks a chunk jumbo");
            write_majority(
                config,
                doc! {"update": "chunks", "updates": [{"q": {"_id": chunk.id}, "u": {"$set": {"jumbo": true}}}],
                "$db": "config"},
            )
            .await?;
            continue;
        }
        tracing::info!(%ns, min = %chunk.min.to_document(&names), bytes, pieces = points.len() + 1, "balancer splits a chunk");
        commit_split(config, CHANGELOG_SERVER, table, chunk, &points).await?;
        split = true;
        // The table's versions are stale now: the next chunk is split in the next round.
        break;
    }
    Ok(split)
}

/// The bytes shard `owner` holds of `table`'s collection in [min, max) (`dataSize`); none when it fails.
async fn data_size(
    owner: &ReplicaSetClient,
    table: &RoutingTable,
    min: &ShardKeyValue,
    max: &ShardKeyValue,
) -> Result<Option<u64>> {
    let names = table.pattern.names();
    let ns = table.namespace.as_str();
    let reply = owner
        .run(
            &doc! {"dataSize": ns, "keyPattern": table.pattern.to_document(), "min": min.to_document(&names),
            "max": max.to_document(&names), "$db": "admin"},
        )
        .await?;
    if !crate::wire::client::reply_ok(&reply) {
        tracing::info!(%ns, error = %error_of_reply(&reply), "balancer: dataSize failed");
        return Ok(None);
    }
    Ok(reply.get("size").and_then(Bson::as_i64).map(|b| b.max(0) as u64))
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
    fn the_chunk_size_is_read_in_mb_within_mongodbs_bounds() {
        assert_eq!(chunk_size_bytes(None), 128 << 20);
        assert_eq!(chunk_size_bytes(Some(&doc! {"_id": "chunksize", "value": 1})), 1 << 20);
        assert_eq!(
            chunk_size_bytes(Some(&doc! {"_id": "chunksize", "value": 64_i64})),
            64 << 20
        );
        assert_eq!(
            chunk_size_bytes(Some(&doc! {"_id": "chunksize", "value": 2.0})),
            2 << 20
        );
        assert_eq!(
            chunk_size_bytes(Some(&doc! {"_id": "chunksize", "value": 0})),
            128 << 20
        );
        assert_eq!(
            chunk_size_bytes(Some(&doc! {"_id": "chunksize", "value": 2048})),
            128 << 20
        );
        assert_eq!(
            chunk_size_bytes(Some(&doc! {"_id": "chunksize", "value": "1"})),
            128 << 20
        );
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

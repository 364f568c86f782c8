//! The sharded side of `faultline test --shards N`: starting the cluster with a fault proxy on every link
//! ([`crate::sharded`]), sharding the workload's collection on `_id` (hashed or range) and spreading its
//! chunks over the shards before the run, and the placement check after it.
//!
//! **Placement** (a check of its own in `results.json`): every document lives on exactly the shard its chunk
//! names. After healing, the harness reads `config.chunks` and every document of the collection straight from
//! each shard's primary (no router, no orphan filter), and through a router. Anomalies:
//! - `misplaced`: a document on no shard that owns it, only on others — reads through a router miss it;
//! - `duplicated`: a document a router returns more than once (an orphan visible to reads, or two owners);
//! - `orphan` copies (on a non-owning shard besides the owner) are counted, not an anomaly: the range deleter
//!   removes them later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bson::{Bson, Document, doc};
use faultline_checker::result::CheckResult;
use faultline_engine::shard::{Chunk, ShardKeyPattern};

use super::spec::{ShardPlan, TestSpec};
use crate::cluster::wire;
use crate::nemesis::sharded::{ShardedTopology, first_batch, read_chunks};
use crate::sharded::{ShardedCluster, ShardedSpec};

/// How long one setup or check command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the cluster and shards `database.collection` as the plan says.
pub async fn start(
    spec: &TestSpec,
    plan: &ShardPlan,
    run_dir: &Path,
    database: &str,
    collection: &str,
) -> anyhow::Result<ShardedTopology> {
    let processes = spec.mongos + spec.config_servers + spec.shards * spec.nodes;
    let sharded = ShardedSpec {
        bin: std::env::current_exe().context("cannot find the faultline binary")?,
        dir: run_dir.to_path_buf(),
        shards: spec.shards,
        nodes: spec.nodes,
        config_servers: spec.config_servers,
        routers: spec.mongos,
        base_port: crate::sharded::free_port_run(processes).context("no run of free ports for the cluster")?,
        proxied: true,
        set_parameters: spec.set_parameters.clone(),
    };
    let cluster = ShardedCluster::start(&sharded, Duration::from_secs(30)).await?;
    // A router takes no --setParameter: its fail points are switched on with configureFailPoint.
    for (name, mode) in spec.set_parameters.iter().filter_map(|p| p.split_once('=')) {
        let Some(point) = name.strip_prefix("failpoint.") else {
            continue;
        };
        if point != faultline_engine::failpoint::ROUTER_IGNORES_STALE_CONFIG {
            continue;
        }
        for router in &cluster.routers {
            let body = doc! {"configureFailPoint": point, "mode": mode.trim(), "$db": "admin"};
            wire::command_ok(router.port, body, COMMAND_TIMEOUT)
                .await
                .with_context(|| format!("cannot switch on {point} on {}", router.name))?;
        }
    }
    let router = cluster.routers.first().context("no router")?.port;
    shard_collection(router, plan, spec, &format!("{database}.{collection}")).await?;
    Ok(ShardedTopology::new(cluster))
}

/// `shardCollection` on `_id` (hashed: the chunks spread at once; range: split and moved round-robin).
async fn shard_collection(router: u16, plan: &ShardPlan, spec: &TestSpec, ns: &str) -> anyhow::Result<()> {
    let key = if plan.hashed {
        doc! {"_id": "hashed"}
    } else {
        doc! {"_id": 1}
    };
    let mut command = doc! {"shardCollection": ns, "key": key, "$db": "admin"};
    if plan.hashed {
        command.insert("numInitialChunks", spec.chunks as i64);
    }
    wire::command_ok(router, command, COMMAND_TIMEOUT)
        .await
        .with_context(|| format!("cannot shard {ns}"))?;
    if plan.hashed {
        return Ok(());
    }
    // Keys are small non-negative integers that grow during the run: split every `keys` keys.
    let step = spec.keys.max(1) as i64;
    for i in 1..spec.chunks as i64 {
        wire::command_ok(
            router,
            doc! {"split": ns, "middle": {"_id": i * step}, "$db": "admin"},
            COMMAND_TIMEOUT,
        )
        .await
        .with_context(|| format!("cannot split {ns} at {}", i * step))?;
    }
    let shards: Vec<String> = (1..=spec.shards).map(|i| format!("shard{i}")).collect();
    for (i, chunk) in read_chunks(router, ns).await?.iter().enumerate() {
        let to = &shards[i % shards.len()];
        if chunk.get_str("shard").ok() == Some(to.as_str()) {
            continue;
        }
        let bounds = [chunk.get("min").cloned(), chunk.get("max").cloned()];
        let move_chunk = doc! {"moveChunk": ns, "bounds": bounds.into_iter().flatten().collect::<Vec<Bson>>(),
        "to": to, "$db": "admin"};
        if let Err(e) = wire::command_ok(router, move_chunk, COMMAND_TIMEOUT).await {
            println!("warning: cannot spread the range chunks of {ns} ({e:#}); they stay on their first shard");
            break;
        }
    }
    Ok(())
}

/// Waits until every replica set has a primary and every router answers.
pub async fn wait_healthy(topology: &ShardedTopology, timeout: Duration) -> anyhow::Result<()> {
    for set in topology.sets() {
        let mut set = set.lock().await;
        let name = set.spec.repl_set.clone();
        set.wait_healthy(timeout)
            .await
            .with_context(|| format!("replica set {name}"))?;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for (name, port) in topology.router_ports().await {
        while wire::hello(port, Duration::from_millis(500)).await.is_err() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{name} does not answer {timeout:?} after healing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The placement check (see the module's header).
pub async fn check_placement(topology: &Arc<ShardedTopology>, database: &str, collection: &str) -> CheckResult {
    match read_placement(topology, database, collection).await {
        Ok(observed) => judge(&observed),
        Err(e) => {
            let mut result = CheckResult::new("placement");
            result.valid = faultline_checker::result::Validity::Unknown;
            result.details = serde_json::json!({"error": format!("{e:#}")});
            result
        }
    }
}

/// What the placement check read.
#[derive(Debug, Default)]
pub struct Observed {
    pub key: Document,
    pub chunks: Vec<Document>,
    /// Each shard's documents' `_id`s, read from its primary.
    pub on_shard: BTreeMap<String, Vec<Bson>>,
    /// The `_id`s a router returned.
    pub through_router: Vec<Bson>,
}

async fn read_placement(topology: &Arc<ShardedTopology>, database: &str, collection: &str) -> anyhow::Result<Observed> {
    let ns = format!("{database}.{collection}");
    let routers = topology.router_ports().await;
    let (_, router) = routers.first().context("no router")?;
    let entry = wire::command_ok(
        *router,
        doc! {"find": "collections", "filter": {"_id": &ns}, "$db": "config"},
        COMMAND_TIMEOUT,
    )
    .await?;
    let key = first_batch(&entry)
        .into_iter()
        .next()
        .and_then(|e| e.get_document("key").ok().cloned())
        .with_context(|| format!("{ns} is not sharded"))?;
    let chunks = read_chunks(*router, &ns).await?;
    let mut on_shard = BTreeMap::new();
    for set in &topology.shards {
        let set = set.lock().await;
        let primary = set.primary().await.context("a shard has no primary")?;
        let port = set.members[primary].port;
        on_shard.insert(set.spec.repl_set.clone(), read_ids(port, database, collection).await?);
    }
    let through_router = read_ids(*router, database, collection).await?;
    Ok(Observed {
        key,
        chunks,
        on_shard,
        through_router,
    })
}

/// Every `_id` of the collection at `port`, with a majority read.
async fn read_ids(port: u16, database: &str, collection: &str) -> anyhow::Result<Vec<Bson>> {
    let mut ids = Vec::new();
    let mut reply = wire::command_ok(
        port,
        doc! {"find": collection, "projection": {"_id": 1}, "batchSize": 10_000,
        "readConcern": {"level": "majority"}, "$db": database},
        COMMAND_TIMEOUT,
    )
    .await?;
    loop {
        let cursor = reply.get_document("cursor")?;
        let batch = cursor
            .get_array("firstBatch")
            .or_else(|_| cursor.get_array("nextBatch"))?;
        ids.extend(
            batch
                .iter()
                .filter_map(Bson::as_document)
                .filter_map(|d| d.get("_id").cloned()),
        );
        let id = cursor.get_i64("id").unwrap_or(0);
        if id == 0 {
            return Ok(ids);
        }
        reply = wire::command_ok(
            port,
            doc! {"getMore": id, "collection": collection, "batchSize": 10_000, "$db": database},
            COMMAND_TIMEOUT,
        )
        .await?;
    }
}

/// The verdict on what was read (pure).
pub fn judge(observed: &Observed) -> CheckResult {
    let mut result = CheckResult::new("placement");
    let pattern = match ShardKeyPattern::parse(&observed.key) {
        Ok(pattern) => pattern,
        Err(e) => {
            result.add_anomaly(
                "bad-metadata",
                vec![],
                format!("shard key {}: {}", observed.key, e.message),
            );
            return result;
        }
    };
    let names = pattern.names();
    let chunks: Vec<Chunk> = observed
        .chunks
        .iter()
        .filter_map(|c| Chunk::from_document(c, &names))
        .collect();
    let owner = |id: &Bson| -> Option<String> {
        let key = pattern.extract(&doc! {"_id": id.clone()}).ok()?;
        chunks.iter().find(|c| c.contains(&key)).map(|c| c.shard.clone())
    };
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (shard, ids) in &observed.on_shard {
        for id in ids {
            holders.entry(key_text(id)).or_default().insert(shard.clone());
        }
    }
    let ids: BTreeMap<String, &Bson> = observed
        .on_shard
        .values()
        .flatten()
        .map(|id| (key_text(id), id))
        .collect();
    let (mut misplaced, mut orphans, mut unowned) = (Vec::new(), 0_u64, Vec::new());
    for (text, id) in &ids {
        let on = &holders[text];
        match owner(id) {
            None => unowned.push(text.clone()),
            Some(owner) if !on.contains(&owner) => misplaced.push(format!(
                "{text} on {} but its chunk is on {owner}",
                on.iter().cloned().collect::<Vec<_>>().join(",")
            )),
            Some(_) => orphans += on.len() as u64 - 1,
        }
    }
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for id in &observed.through_router {
        *seen.entry(key_text(id)).or_default() += 1;
    }
    let duplicated: Vec<String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} ×{n}"))
        .collect();
    result.set_count("documents", ids.len() as u64);
    result.set_count("chunks", chunks.len() as u64);
    result.set_count("orphans", orphans);
    result.set_count("shards", observed.on_shard.len() as u64);
    if chunks.is_empty() {
        result.add_anomaly(
            "bad-metadata",
            vec![],
            "config.chunks holds no chunk of the collection".into(),
        );
    }
    if !misplaced.is_empty() {
        result.add_anomaly(
            "misplaced",
            vec![],
            format!(
                "{} document(s) only on shards that do not own them (reads through a router miss them): {}",
                misplaced.len(),
                shown(&misplaced)
            ),
        );
    }
    if !unowned.is_empty() && !chunks.is_empty() {
        result.add_anomaly("bad-metadata", vec![], format!("no chunk covers {}", shown(&unowned)));
    }
    if !duplicated.is_empty() {
        result.add_anomaly(
            "duplicated",
            vec![],
            format!(
                "a router returned {} document(s) more than once: {}",
                duplicated.len(),
                shown(&duplicated)
            ),
        );
    }
    result
}

fn key_text(id: &Bson) -> String {
    id.to_string()
}

fn shown(list: &[String]) -> String {
    let mut text = list.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if list.len() > 5 {
        text.push_str(&format!("; and {} more", list.len() - 5));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_checker::result::Validity;

    fn chunk(min: Bson, max: Bson, shard: &str) -> Document {
        doc! {"_id": bson::oid::ObjectId::new(), "min": {"_id": min}, "max": {"_id": max}, "shard": shard,
        "lastmod": bson::Timestamp {time: 1, increment: 0}}
    }

    fn observed(shard1: &[i32], shard2: &[i32], router: &[i32]) -> Observed {
        let ids = |list: &[i32]| list.iter().map(|i| Bson::Int32(*i)).collect::<Vec<_>>();
        Observed {
            key: doc! {"_id": 1},
            chunks: vec![
                chunk(Bson::MinKey, Bson::Int32(10), "shard1"),
                chunk(Bson::Int32(10), Bson::MaxKey, "shard2"),
            ],
            on_shard: BTreeMap::from([("shard1".into(), ids(shard1)), ("shard2".into(), ids(shard2))]),
            through_router: ids(router),
        }
    }

    #[test]
    fn documents_on_their_owners_are_valid_and_orphan_copies_are_only_counted() {
        let result = judge(&observed(&[1, 2, 12], &[12, 15], &[1, 2, 12, 15]));
        assert_eq!(result.valid, Validity::True, "{:?}", result.anomalies);
        assert_eq!(result.counts["orphans"], 1, "12 is left on shard1 after a migration");
        assert_eq!(result.counts["documents"], 4);
    }

    #[test]
    fn a_document_only_on_a_non_owner_is_misplaced() {
        let result = judge(&observed(&[1, 12], &[15], &[1, 15]));
        assert_eq!(result.valid, Validity::False);
        assert_eq!(result.anomalies, vec!["misplaced".to_string()]);
    }

    #[test]
    fn a_document_a_router_returns_twice_is_duplicated() {
        let result = judge(&observed(&[1, 12], &[12], &[1, 12, 12]));
        assert_eq!(result.anomalies, vec!["duplicated".to_string()]);
    }

    #[test]
    fn hashed_keys_are_placed_by_their_hash() {
        let pattern = ShardKeyPattern::parse(&doc! {"_id": "hashed"}).expect("pattern");
        let key = pattern.extract(&doc! {"_id": 7}).expect("key");
        let owner_is_shard1 = matches!(key.0.first(), Some(Bson::Int64(h)) if *h < 0);
        let (mine, other) = if owner_is_shard1 {
            ("shard1", "shard2")
        } else {
            ("shard2", "shard1")
        };
        let placed = Observed {
            key: doc! {"_id": "hashed"},
            chunks: vec![
                chunk(Bson::MinKey, Bson::Int64(0), "shard1"),
                chunk(Bson::Int64(0), Bson::MaxKey, "shard2"),
            ],
            on_shard: BTreeMap::from([(mine.into(), vec![Bson::Int32(7)]), (other.into(), vec![])]),
            through_router: vec![Bson::Int32(7)],
        };
        assert_eq!(judge(&placed).valid, Validity::True);
        let moved = Observed {
            on_shard: BTreeMap::from([(other.into(), vec![Bson::Int32(7)]), (mine.into(), vec![])]),
            ..placed
        };
        assert_eq!(judge(&moved).anomalies, vec!["misplaced".to_string()]);
    }
}

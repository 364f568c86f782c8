//! Versioned routing: chunk ownership changes underneath two routers (a test-only handover: the donor enters
//! a critical section, the config servers' chunks are rewritten with higher versions, then both shards
//! refresh), and both routers, whose cached tables are now old, are refused by the shard with StaleConfig,
//! refresh, and write every document to the shard that owns it now — also while clients keep writing.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;

use super::{Cluster, MongosProcess, documents_on, raw_command};

/// Splits the single chunk of `ns` at `k: split` and gives the upper half to `to`, with versions as a
/// migration would leave them (major + 1 for both chunks), under the donor's critical section.
pub(super) async fn hand_over_upper_half(cluster: &Cluster, ns: &str, split: i32, to: &str) -> anyhow::Result<()> {
    let config = cluster.config.client().await?.database("config");
    let collection = config
        .collection::<Document>("collections")
        .find_one(doc! {"_id": ns})
        .await?
        .expect("sharded");
    let uuid = collection.get("uuid").cloned().expect("uuid");
    let chunks: Vec<Document> = config
        .collection::<Document>("chunks")
        .find(doc! {"uuid": uuid.clone()})
        .await?
        .try_collect()
        .await?;
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let old = &chunks[0];
    let from = old.get_str("shard")?.to_string();
    let now = old.get_timestamp("onCurrentShardSince")?;
    let chunk = |min: Bson, max: Bson, shard: &str, minor: u32| {
        doc! {"_id": bson::oid::ObjectId::new(), "uuid": uuid.clone(), "min": {"k": min}, "max": {"k": max},
        "shard": shard, "lastmod": bson::Timestamp { time: 2, increment: minor }, "onCurrentShardSince": now,
        "history": [{"validAfter": now, "shard": shard}]}
    };
    let donor = cluster.shard(&from).port;
    let entered = raw_command(donor, doc! {"_enterCriticalSection": ns, "$db": "admin"}).await?;
    anyhow::ensure!(entered.get_f64("ok")? == 1.0, "{entered}");
    let port = cluster.config.port;
    let write = |body: Document| async move {
        let reply = raw_command(port, body).await?;
        anyhow::ensure!(
            reply.get_f64("ok")? == 1.0 && !reply.contains_key("writeErrors"),
            "{reply}"
        );
        Ok(())
    };
    write(doc! {"insert": "chunks", "documents": [
        chunk(Bson::MinKey, Bson::Int32(split), &from, 0),
        chunk(Bson::Int32(split), Bson::MaxKey, to, 1),
    ], "writeConcern": {"w": "majority"}, "$db": "config"})
    .await?;
    write(
        doc! {"delete": "chunks", "deletes": [{"q": {"_id": old.get_object_id("_id")?}, "limit": 1}],
        "writeConcern": {"w": "majority"}, "$db": "config"},
    )
    .await?;
    // The recipient first, then the donor (which ends its critical section).
    for name in [to, from.as_str()] {
        let port = cluster.shard(name).port;
        let reply = raw_command(port, doc! {"_flushRoutingTableCacheUpdates": ns, "$db": "admin"}).await?;
        anyhow::ensure!(reply.get_f64("ok")? == 1.0, "{reply}");
    }
    Ok(())
}

fn stale_retries(status: &Document) -> i64 {
    status
        .get_document("shardingStatistics")
        .and_then(|s| s.get_i64("countStaleConfigErrors"))
        .unwrap_or(-1)
}

#[tokio::test]
async fn routers_with_old_tables_are_refused_refresh_and_write_to_the_new_owner() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let first = &cluster.router;
    let second = MongosProcess::start(&cluster.config_seed()).await?;
    first
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    let sharded = first.admin(doc! {"shardCollection": "test.r", "key": {"k": 1}}).await?;
    assert_eq!(sharded.get_f64("ok")?, 1.0, "{sharded}");

    // Both routers load the one-chunk table by writing through it.
    let clients = [first.client().await?, second.client().await?];
    for (i, client) in clients.iter().enumerate() {
        let docs: Vec<Document> = (0..50).map(|k| doc! {"k": (i as i32) * 50 + k}).collect();
        client
            .database("test")
            .collection::<Document>("r")
            .insert_many(docs)
            .await?;
    }
    assert_eq!(documents_on(cluster.shard("shA"), "test", "r").await?.len(), 100);

    hand_over_upper_half(&cluster, "test.r", 500, "shB").await?;

    // Both routers still believe shA owns everything at version 1; the shard tells them otherwise.
    for (i, client) in clients.iter().enumerate() {
        let coll = client.database("test").collection::<Document>("r");
        let docs: Vec<Document> = (0..100).map(|k| doc! {"k": 400 + (i as i32) * 100 + k}).collect();
        coll.insert_many(docs).await?;
    }
    for (i, client) in clients.iter().enumerate() {
        let coll = client.database("test").collection::<Document>("r");
        for k in [10, 450, 550] {
            let found = coll.find_one(doc! {"k": k}).await?;
            assert!(found.is_some(), "router {i} finds k = {k}");
        }
    }
    for router in [first, &second] {
        let status = router.admin(doc! {"serverStatus": 1}).await?;
        assert!(
            stale_retries(&status) >= 1,
            "the router was told it was stale: {status}"
        );
    }

    // No document on a shard that does not own its chunk, none lost, none twice.
    let on_a = documents_on(cluster.shard("shA"), "test", "r").await?;
    let on_b = documents_on(cluster.shard("shB"), "test", "r").await?;
    let key = |d: &Document| d.get_i32("k").expect("k");
    assert!(on_a.iter().all(|d| key(d) < 500), "shA holds only k < 500");
    assert!(on_b.iter().all(|d| key(d) >= 500), "shB holds only k >= 500");
    let mut keys: Vec<i32> = on_a.iter().chain(&on_b).map(key).collect();
    keys.sort_unstable();
    let mut expected: Vec<i32> = (0..100).chain(400..600).collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(on_b.len(), 100, "k 500..600 went to the new owner");
    let total = clients[1]
        .database("test")
        .collection::<Document>("r")
        .count_documents(doc! {})
        .await?;
    assert_eq!(total, 300);
    Ok(())
}

#[tokio::test]
async fn writes_through_two_routers_during_a_handover_land_only_on_the_owner() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let cluster = Cluster::start(2).await?;
    let second = MongosProcess::start(&cluster.config_seed()).await?;
    cluster
        .router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    cluster
        .router
        .admin(doc! {"shardCollection": "test.live", "key": {"k": 1}})
        .await?;
    let clients = [cluster.router.client().await?, second.client().await?];
    let stop = Arc::new(AtomicBool::new(false));
    let handed_over = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers = 4;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let coll = clients[writer % 2].database("test").collection::<Document>("live");
        let (stop, acknowledged, handed_over) = (stop.clone(), acknowledged.clone(), handed_over.clone());
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // Keys sweep 0..1000 so both halves are written before and after the handover.
                let k = ((i * writers + writer) % 1000) as i32;
                let id = format!("{writer}-{i}");
                let invoked_after_handover = handed_over.load(Ordering::Relaxed);
                coll.insert_one(doc! {"_id": &id, "k": k}).await?;
                keys.push((id, k, invoked_after_handover));
                acknowledged.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(keys)
        }));
    }
    let wait_for = |n: usize| {
        let acknowledged = acknowledged.clone();
        faultline_tests::wait_until(
            std::time::Duration::from_secs(60),
            "writes to be acknowledged",
            move || {
                let acknowledged = acknowledged.clone();
                async move { (acknowledged.load(Ordering::Relaxed) >= n).then_some(()) }
            },
        )
    };
    wait_for(200).await?;
    hand_over_upper_half(&cluster, "test.live", 500, "shB").await?;
    handed_over.store(true, Ordering::Relaxed);
    let after = acknowledged.load(Ordering::Relaxed);
    wait_for(after + 400).await?;
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for task in tasks {
        written.extend(task.await??);
    }

    let on_a = documents_on(cluster.shard("shA"), "test", "live").await?;
    let on_b = documents_on(cluster.shard("shB"), "test", "live").await?;
    let key = |d: &Document| d.get_i32("k").expect("k");
    let misplaced: Vec<&Document> = on_b.iter().filter(|d| key(d) < 500).collect();
    assert!(misplaced.is_empty(), "shB never owned k < 500: {misplaced:?}");
    // shA owned everything before the handover, so it may hold k >= 500 written then; but none written after.
    let late: std::collections::HashSet<&str> = written
        .iter()
        .filter(|(_, k, after)| *after && *k >= 500)
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert!(
        late.len() > 50,
        "enough writes to the moved half after the handover: {}",
        late.len()
    );
    let stale_writes: Vec<&Document> = on_a
        .iter()
        .filter(|d| late.contains(d.get_str("_id").unwrap_or("")))
        .collect();
    assert!(
        stale_writes.is_empty(),
        "{} writes to the moved half after the handover landed on the donor, e.g. {:?}",
        stale_writes.len(),
        stale_writes.first()
    );
    let mut ids: Vec<String> = on_a
        .iter()
        .chain(&on_b)
        .map(|d| d.get_str("_id").expect("_id").to_string())
        .collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), total, "no document twice");
    let mut expected: Vec<String> = written.iter().map(|(id, _, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected, "every acknowledged write is there, and nothing else");
    assert!(!on_b.is_empty(), "the new owner received writes");
    for router in [&cluster.router, &second] {
        let status = router.admin(doc! {"serverStatus": 1}).await?;
        assert!(
            stale_retries(&status) >= 1,
            "each router was refused at least once: {status}"
        );
    }
    // Both routers converged: a read through each finds a key of the moved half on shB.
    for client in &clients {
        let coll = client.database("test").collection::<Document>("live");
        let moved = on_b.first().expect("one");
        let found = coll.find_one(doc! {"_id": moved.get_str("_id")?}).await?;
        assert!(found.is_some());
    }
    Ok(())
}

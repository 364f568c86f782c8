//! Orphans stay invisible to routed reads: a document planted straight on a shard in a chunk another shard
//! owns is seen by a direct connection, but not by a find through the router (targeted or scattered, in the
//! first batch or in a getMore, with a sort and a limit), and `$shardedDataDistribution` counts it as an
//! orphan.

use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::options::FindOptions;

use super::Cluster;
use super::documents_on;
use super::t20_stale_routing::hand_over_upper_half;

#[tokio::test]
async fn a_planted_orphan_is_seen_directly_but_never_through_the_router() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    let sharded = router
        .admin(doc! {"shardCollection": "test.c", "key": {"k": 1}})
        .await?;
    assert_eq!(sharded.get_f64("ok")?, 1.0, "{sharded}");
    hand_over_upper_half(&cluster, "test.c", 100, "shB").await?;

    let client = router.client().await?;
    let routed = client.database("test").collection::<Document>("c");
    let documents: Vec<Document> = (0..200).map(|k| doc! {"_id": k, "k": k}).collect();
    routed.insert_many(documents).await?;

    // k: 500 belongs to shB's chunk [100, MaxKey); planted on shA it is an orphan there.
    let on_a = cluster.shard("shA").client().await?;
    on_a.database("test")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": "orphan", "k": 500})
        .await?;
    let direct: Vec<Document> = documents_on(cluster.shard("shA"), "test", "c").await?;
    assert!(
        direct.iter().any(|d| d.get_str("_id").ok() == Some("orphan")),
        "a direct connection to shA sees the orphan"
    );

    let is_orphan = |d: &Document| d.get_str("_id").ok() == Some("orphan");
    let small_batches = FindOptions::builder().batch_size(7).build();
    let scattered: Vec<Document> = routed
        .find(doc! {})
        .with_options(small_batches.clone())
        .await?
        .try_collect()
        .await?;
    assert_eq!(
        scattered.len(),
        200,
        "a scattered find returns the 200 owned documents only"
    );
    assert!(!scattered.iter().any(is_orphan));

    let targeted: Vec<Document> = routed.find(doc! {"k": 500}).await?.try_collect().await?;
    assert!(targeted.is_empty(), "k: 500 targets shB, which has none: {targeted:?}");

    let on_a_range: Vec<Document> = routed
        .find(doc! {"k": {"$gte": 50}})
        .with_options(small_batches)
        .await?
        .try_collect()
        .await?;
    assert_eq!(on_a_range.len(), 150);
    assert!(!on_a_range.iter().any(is_orphan));

    let top = FindOptions::builder().sort(doc! {"k": -1}).limit(3).build();
    let highest: Vec<Document> = routed.find(doc! {}).with_options(top).await?.try_collect().await?;
    let keys: Vec<i32> = highest.iter().map(|d| d.get_i32("k")).collect::<Result<_, _>>()?;
    assert_eq!(
        keys,
        vec![199, 198, 197],
        "the orphan's k: 500 does not lead a sorted read"
    );

    // count with a predicate leaves the orphan out too (as in MongoDB; without one it may count orphans).
    let counted = super::raw_command(
        router.port,
        doc! {"count": "c", "query": {"k": {"$gte": 0}}, "$db": "test"},
    )
    .await?;
    assert_eq!(counted.get_i64("n")?, 200, "{counted}");

    // What sh.status() prints as shardedDataDistribution: the orphan counted as one, on shA.
    let reply = router
        .admin(doc! {"aggregate": 1, "pipeline": [{"$shardedDataDistribution": {}}], "cursor": {}})
        .await?;
    let batch = reply.get_document("cursor")?.get_array("firstBatch")?;
    let entry = batch
        .iter()
        .filter_map(|e| e.as_document())
        .find(|e| e.get_str("ns").ok() == Some("test.c"))
        .unwrap_or_else(|| panic!("test.c in {reply}"));
    let mut counts = Vec::new();
    for shard in entry.get_array("shards")?.iter().filter_map(|s| s.as_document()) {
        counts.push((
            shard.get_str("shardName")?.to_string(),
            shard.get_i64("numOwnedDocuments")?,
            shard.get_i64("numOrphanedDocs")?,
        ));
    }
    counts.sort();
    assert_eq!(
        counts,
        vec![("shA".to_string(), 100, 1), ("shB".to_string(), 100, 0)],
        "{reply}"
    );
    Ok(())
}

//! The balancer splits by size: with `config.settings` `chunksize` at 1 MB, a single 5 MB chunk is split at
//! its shard's `splitVector` points (logged in `config.changelog`) and the pieces are spread over both shards,
//! every document still read once through the router; a chunk holding one key is marked `jumbo` instead.

use std::time::Duration;

use bson::{Document, doc};
use futures_util::TryStreamExt as _;

use super::{Cluster, wait_until};

const DOCUMENTS: i32 = 5000;

#[tokio::test]
async fn the_balancer_splits_chunks_over_the_chunk_size_and_spreads_them() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.big", "key": {"k": 1}})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.onekey", "key": {"k": 1}})
        .await?;
    let client = router.client().await?;
    let pad = "x".repeat(1000);
    let big = client.database("test").collection::<Document>("big");
    for batch in (0..DOCUMENTS).collect::<Vec<_>>().chunks(500) {
        big.insert_many(
            batch
                .iter()
                .map(|k| doc! {"_id": *k, "k": *k, "pad": &pad})
                .collect::<Vec<_>>(),
        )
        .await?;
    }
    client
        .database("test")
        .collection::<Document>("onekey")
        .insert_many(
            (0..1500)
                .map(|i| doc! {"_id": i, "k": 7, "pad": &pad})
                .collect::<Vec<_>>(),
        )
        .await?;
    let config = cluster.config.client().await?;
    config
        .database("config")
        .collection::<Document>("settings")
        .update_one(doc! {"_id": "chunksize"}, doc! {"$set": {"value": 1}})
        .upsert(true)
        .await?;
    assert_eq!(super::chunks_of(&cluster, "test.big").await?.len(), 1);

    // The shard commands the balancer asks, with MongoDB's reply shapes.
    let sha = cluster.shards[0].1.client().await?.database("admin");
    let range = doc! {"keyPattern": {"k": 1}, "min": {"k": 0}, "max": {"k": 2000}};
    let mut data_size = doc! {"dataSize": "test.big"};
    data_size.extend(range.clone());
    let size = sha.run_command(data_size).await?;
    assert_eq!(size.get_i64("numObjects")?, 2000, "{size}");
    assert!(size.get_i64("size")? > 2_000_000, "{size}");
    let mut split_vector = doc! {"splitVector": "test.big", "maxChunkSizeBytes": 1_i64 << 20};
    split_vector.extend(range);
    let points = sha.run_command(split_vector).await?;
    let keys: Vec<i32> = points
        .get_array("splitKeys")?
        .iter()
        .map(|k| k.as_document().and_then(|d| d.get_i32("k").ok()).expect("{k: int}"))
        .collect();
    assert_eq!(keys.len(), 3, "2 MB split into pieces of half of 1 MB: {points}");
    assert!(keys[0] > 400 && keys[0] < 600, "{points}");

    let started = router.admin(doc! {"balancerStart": 1}).await?;
    assert_eq!(started.get_f64("ok")?, 1.0, "{started}");
    let cluster_ref = &cluster;
    wait_until(
        Duration::from_secs(180),
        "the balancer to split test.big and spread it over both shards",
        || async move {
            let chunks = super::chunks_of(cluster_ref, "test.big").await.ok()?;
            let on = |s: &str| chunks.iter().filter(|c| c.get_str("shard").ok() == Some(s)).count();
            (chunks.len() >= 5 && on("shA") >= 2 && on("shB") >= 2).then_some(())
        },
    )
    .await?;
    wait_until(
        Duration::from_secs(60),
        "the one-key chunk to be marked jumbo",
        || async move {
            let chunks = super::chunks_of(cluster_ref, "test.onekey").await.ok()?;
            (chunks.len() == 1 && chunks[0].get_bool("jumbo").ok() == Some(true)).then_some(())
        },
    )
    .await?;
    router.admin(doc! {"balancerStop": 1}).await?;

    let splits = config
        .database("config")
        .collection::<Document>("changelog")
        .count_documents(doc! {"ns": "test.big", "what": {"$in": ["split", "multi-split"]}})
        .await?;
    assert!(splits > 0, "the splits are logged in config.changelog");

    let docs: Vec<Document> = big.find(doc! {}).await?.try_collect().await?;
    let mut ids: Vec<i32> = docs.iter().map(|d| d.get_i32("_id").expect("_id")).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..DOCUMENTS).collect::<Vec<_>>(),
        "every document once through mongos"
    );
    let one_key = client
        .database("test")
        .collection::<Document>("onekey")
        .count_documents(doc! {})
        .await?;
    assert_eq!(one_key, 1500);

    // mongos's own split still works after the balancer's splits.
    let split = router.admin(doc! {"split": "test.big", "middle": {"k": 4999}}).await?;
    assert_eq!(split.get_f64("ok")?, 1.0, "{split}");
    Ok(())
}

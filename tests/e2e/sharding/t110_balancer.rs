//! The balancer: off until `balancerStart`; then chunks split onto one shard are moved until the shards
//! differ by less than the migration threshold, with every document still read once through the router;
//! `noBalance` collections and a stopped balancer are left alone.

use std::time::Duration;

use bson::{Document, doc};
use futures_util::TryStreamExt as _;

use super::{Cluster, wait_until};

/// Chunks of `ns` per shard `[shA, shB]`.
async fn chunk_counts(cluster: &Cluster, ns: &str) -> anyhow::Result<[usize; 2]> {
    let chunks = super::chunks_of(cluster, ns).await?;
    let on = |shard: &str| chunks.iter().filter(|c| c.get_str("shard").ok() == Some(shard)).count();
    Ok([on("shA"), on("shB")])
}

async fn six_chunks_on_sha(cluster: &Cluster, coll: &str) -> anyhow::Result<()> {
    let ns = format!("test.{coll}");
    let router = &cluster.router;
    router.admin(doc! {"shardCollection": &ns, "key": {"k": 1}}).await?;
    let client = router.client().await?;
    client
        .database("test")
        .collection::<Document>(coll)
        .insert_many((0..600).map(|k| doc! {"_id": k, "k": k}).collect::<Vec<_>>())
        .await?;
    for middle in [100, 200, 300, 400, 500] {
        let split = router.admin(doc! {"split": &ns, "middle": {"k": middle}}).await?;
        anyhow::ensure!(split.get_f64("ok")? == 1.0, "{split}");
    }
    Ok(())
}

#[tokio::test]
async fn the_balancer_evens_out_chunks_once_started() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    six_chunks_on_sha(&cluster, "b").await?;
    six_chunks_on_sha(&cluster, "quiet").await?;
    let config = cluster.config.client().await?;
    config
        .database("config")
        .collection::<Document>("collections")
        .update_one(doc! {"_id": "test.quiet"}, doc! {"$set": {"noBalance": true}})
        .await?;
    assert_eq!(chunk_counts(&cluster, "test.b").await?, [6, 0], "off until started");

    let started = router.admin(doc! {"balancerStart": 1}).await?;
    assert_eq!(started.get_f64("ok")?, 1.0, "{started}");
    let cluster_ref = &cluster;
    wait_until(
        Duration::from_secs(120),
        "the balancer to even out test.b",
        || async move {
            let counts = chunk_counts(cluster_ref, "test.b").await.ok()?;
            (counts == [3, 3]).then_some(())
        },
    )
    .await?;
    let stopped = router.admin(doc! {"balancerStop": 1}).await?;
    assert_eq!(stopped.get_f64("ok")?, 1.0, "{stopped}");
    assert_eq!(
        chunk_counts(&cluster, "test.quiet").await?,
        [6, 0],
        "noBalance is left alone"
    );

    let client = router.client().await?;
    let docs: Vec<Document> = client
        .database("test")
        .collection::<Document>("b")
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    let mut ids: Vec<i32> = docs.iter().map(|d| d.get_i32("_id").expect("_id")).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..600).collect::<Vec<_>>());
    Ok(())
}

/// `removeShard` of a shard that owns chunks: the balancer drains it through migrations, then a later
/// `removeShard` call removes it; no document is lost.
#[tokio::test]
async fn remove_shard_drains_through_the_balancer() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    six_chunks_on_sha(&cluster, "r").await?;
    for find in [150, 350, 550] {
        let moved = router
            .admin(doc! {"moveChunk": "test.r", "find": {"k": find}, "to": "shB"})
            .await?;
        assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}");
    }
    assert_eq!(chunk_counts(&cluster, "test.r").await?, [3, 3]);
    let started = router.admin(doc! {"removeShard": "shB"}).await?;
    assert_eq!(started.get_str("state")?, "started", "{started}");
    router.admin(doc! {"balancerStart": 1}).await?;
    wait_until(Duration::from_secs(120), "removeShard to complete", || async move {
        let reply = router.admin(doc! {"removeShard": "shB"}).await.ok()?;
        (reply.get_str("state").ok() == Some("completed")).then_some(())
    })
    .await?;
    assert_eq!(chunk_counts(&cluster, "test.r").await?, [6, 0]);
    let client = router.client().await?;
    let count = client
        .database("test")
        .collection::<Document>("r")
        .find(doc! {})
        .await?
        .try_collect::<Vec<Document>>()
        .await?
        .len();
    assert_eq!(count, 600);
    Ok(())
}

//! `split` through the router (`sh.splitAt` with `middle`, `sh.splitFind` with `find`): chunks cut in two on
//! the same shard with the next minor versions, writes and reads unaffected, bad split points refused.

use bson::{Document, doc};
use futures_util::TryStreamExt as _;

use super::Cluster;

async fn chunks_of(client: &mongodb::Client, ns: &str) -> anyhow::Result<Vec<Document>> {
    let config = client.database("config");
    let uuid = config
        .collection::<Document>("collections")
        .find_one(doc! {"_id": ns})
        .await?
        .expect("sharded")
        .get("uuid")
        .cloned()
        .expect("uuid");
    Ok(config
        .collection::<Document>("chunks")
        .find(doc! {"uuid": uuid})
        .sort(doc! {"min": 1})
        .await?
        .try_collect()
        .await?)
}

#[tokio::test]
async fn split_at_a_key_and_at_a_chunks_median() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"shardCollection": "test.s", "key": {"k": 1}})
        .await?;
    let client = router.client().await?;
    let coll = client.database("test").collection::<Document>("s");
    coll.insert_many((0..100).map(|k| doc! {"k": k}).collect::<Vec<_>>())
        .await?;

    let at = router.admin(doc! {"split": "test.s", "middle": {"k": 50}}).await?;
    assert_eq!(at.get_f64("ok")?, 1.0, "{at}");
    let chunks = chunks_of(&client, "test.s").await?;
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    let versions: Vec<(u32, u32)> = chunks
        .iter()
        .map(|c| {
            c.get_timestamp("lastmod")
                .map(|t| (t.time, t.increment))
                .expect("lastmod")
        })
        .collect();
    assert_eq!(versions, vec![(1, 1), (1, 2)], "splits bump the minor version");
    assert_eq!(chunks[0].get_document("max")?, &doc! {"k": 50});

    let median = router.admin(doc! {"split": "test.s", "find": {"k": 10}}).await?;
    assert_eq!(median.get_f64("ok")?, 1.0, "{median}");
    let chunks = chunks_of(&client, "test.s").await?;
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0].get_document("max")?, &doc! {"k": 25}, "the median of 0..50");

    let boundary = router.admin(doc! {"split": "test.s", "middle": {"k": 50}}).await?;
    assert_eq!(boundary.get_i32("code")?, 2, "{boundary}");
    let wrong_key = router.admin(doc! {"split": "test.s", "middle": {"j": 1}}).await?;
    assert_eq!(wrong_key.get_i32("code")?, 2, "{wrong_key}");
    let unsharded = router.admin(doc! {"split": "test.nope", "middle": {"k": 1}}).await?;
    assert_eq!(unsharded.get_i32("code")?, 118, "{unsharded}");

    // Each change is in config.changelog.
    let logged: Vec<Document> = client
        .database("config")
        .collection::<Document>("changelog")
        .find(doc! {"ns": "test.s"})
        .sort(doc! {"time": 1})
        .await?
        .try_collect()
        .await?;
    let what: Vec<&str> = logged.iter().map(|e| e.get_str("what").unwrap_or("?")).collect();
    assert_eq!(
        what,
        vec!["shardCollection.start", "shardCollection.end", "split", "split"]
    );

    // Nothing moved; the router writes and reads on through the new chunks.
    coll.insert_many((100..200).map(|k| doc! {"k": k}).collect::<Vec<_>>())
        .await?;
    assert_eq!(coll.count_documents(doc! {}).await?, 200);
    assert_eq!(coll.count_documents(doc! {"k": {"$gte": 20, "$lt": 60}}).await?, 40);
    Ok(())
}

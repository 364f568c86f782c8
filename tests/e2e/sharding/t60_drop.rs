//! Index changes, `drop` and `dropDatabase` of sharded collections through the router: every shard takes
//! part, the metadata goes first, and a collection re-created under the same name is unsharded.

use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::IndexModel;

use super::{Cluster, documents_on};

#[tokio::test]
async fn indexes_drop_and_drop_database_reach_every_shard() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"shardCollection": "test.d", "key": {"k": "hashed"}})
        .await?;
    let client = router.client().await?;
    let coll = client.database("test").collection::<Document>("d");
    coll.insert_many((0..50).map(|k| doc! {"k": k, "v": k}).collect::<Vec<_>>())
        .await?;

    coll.create_index(IndexModel::builder().keys(doc! {"v": 1}).build())
        .await?;
    let names = coll.list_index_names().await?;
    assert!(names.contains(&"v_1".to_string()), "{names:?}");
    for (name, node) in &cluster.shards {
        let listed = node
            .client()
            .await?
            .database("test")
            .collection::<Document>("d")
            .list_index_names()
            .await?;
        assert!(listed.contains(&"v_1".to_string()), "shard {name}: {listed:?}");
    }

    // Unique indexes only where each shard can enforce them: prefixed by the shard key.
    let unique = mongodb::options::IndexOptions::builder().unique(true).build();
    let refused = coll
        .create_index(
            IndexModel::builder()
                .keys(doc! {"v": 1})
                .options(unique.clone())
                .build(),
        )
        .await
        .expect_err("not prefixed by the shard key");
    assert!(
        refused.to_string().contains("67") || refused.to_string().contains("CannotCreateIndex"),
        "{refused}"
    );
    coll.create_index(
        IndexModel::builder()
            .keys(doc! {"k": 1, "v": 1})
            .options(unique)
            .build(),
    )
    .await?;

    coll.drop().await?;
    let config = client.database("config");
    assert!(
        config
            .collection::<Document>("collections")
            .find_one(doc! {"_id": "test.d"})
            .await?
            .is_none()
    );
    for (_, node) in &cluster.shards {
        assert!(documents_on(node, "test", "d").await?.is_empty());
    }
    // Re-created under the same name, it is an unsharded collection on the primary shard.
    coll.insert_one(doc! {"k": 1}).await?;
    assert_eq!(coll.count_documents(doc! {}).await?, 1);

    client.database("test").drop().await?;
    assert!(
        config
            .collection::<Document>("databases")
            .find_one(doc! {"_id": "test"})
            .await?
            .is_none()
    );
    let names: Vec<String> = client.list_database_names().await?;
    assert!(!names.contains(&"test".to_string()), "{names:?}");
    let chunks: Vec<Document> = config
        .collection::<Document>("chunks")
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    assert!(chunks.is_empty(), "{chunks:?}");
    Ok(())
}

/// `removeShard`: draining starts, what the shard still owns is reported, an empty shard is removed, and
/// the last shard cannot be.
#[tokio::test]
async fn remove_shard_drains_reports_and_removes_an_empty_shard() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.r", "key": {"k": 1}})
        .await?;

    let started = router.admin(doc! {"removeShard": "shA"}).await?;
    assert_eq!(started.get_str("state")?, "started", "{started}");
    assert_eq!(started.get_array("dbsToMove")?.len(), 1, "{started}");
    let ongoing = router.admin(doc! {"removeShard": "shA"}).await?;
    assert_eq!(ongoing.get_str("state")?, "ongoing", "{ongoing}");
    assert_eq!(ongoing.get_document("remaining")?.get_i64("chunks")?, 1, "{ongoing}");

    // A draining shard gets no new databases.
    router.admin(doc! {"enableSharding": "other"}).await?;
    let client = router.client().await?;
    let other = client
        .database("config")
        .collection::<Document>("databases")
        .find_one(doc! {"_id": "other"})
        .await?
        .expect("created");
    assert_eq!(other.get_str("primary")?, "shB");

    let unknown = router.admin(doc! {"removeShard": "nope"}).await?;
    assert_eq!(unknown.get_i32("code")?, 70, "{unknown}");
    // shB is the primary of `other` now: it drains but cannot finish; a fresh empty shard can.
    let shard_c = super::start_set("shC", "--shardsvr").await?;
    router.admin(doc! {"addShard": super::seed("shC", &shard_c)}).await?;
    assert_eq!(
        router.admin(doc! {"removeShard": "shC"}).await?.get_str("state")?,
        "started"
    );
    let completed = router.admin(doc! {"removeShard": "shC"}).await?;
    assert_eq!(completed.get_str("state")?, "completed", "{completed}");
    let listed = router.admin(doc! {"listShards": 1}).await?;
    assert_eq!(listed.get_array("shards")?.len(), 2, "{listed}");
    Ok(())
}

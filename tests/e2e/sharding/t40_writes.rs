//! Updates, deletes and findAndModify on a hashed-sharded collection through the router, with MongoDB 7.0's
//! targeting rules and errors, and every document still on the shard its chunk names afterwards.

use bson::{Document, doc};
use faultline_engine::shard::{Chunk, ShardKeyPattern};
use futures_util::TryStreamExt as _;
use mongodb::options::UpdateOptions;

use super::{Cluster, documents_on};

fn code_of(err: &mongodb::error::Error) -> i32 {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Command(e) => e.code,
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(e)) => e.code,
        other => panic!("not a server error: {other:?}"),
    }
}

#[tokio::test]
async fn updates_and_deletes_follow_the_shard_key_or_id() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    cluster
        .router
        .admin(doc! {"shardCollection": "test.w", "key": {"k": "hashed"}})
        .await?;
    let client = cluster.router.client().await?;
    let coll = client.database("test").collection::<Document>("w");
    coll.insert_many((0..100).map(|i| doc! {"_id": i, "k": i, "n": 0}).collect::<Vec<_>>())
        .await?;

    // By the shard key, by _id, and neither.
    assert_eq!(
        coll.update_one(doc! {"k": 5}, doc! {"$inc": {"n": 1}})
            .await?
            .modified_count,
        1
    );
    assert_eq!(
        coll.update_one(doc! {"_id": 7}, doc! {"$inc": {"n": 1}})
            .await?
            .modified_count,
        1
    );
    let neither = coll
        .update_one(doc! {"n": 0}, doc! {"$inc": {"n": 1}})
        .await
        .expect_err("untargetable");
    assert_eq!(code_of(&neither), 72, "{neither}");
    let many = coll
        .update_many(doc! {"k": {"$lt": 50}}, doc! {"$set": {"low": true}})
        .await?;
    assert_eq!(many.modified_count, 50);

    // Upserts need the whole key; updates must not change it.
    let upsert = UpdateOptions::builder().upsert(true).build();
    let upserted = coll
        .update_one(doc! {"k": 1000}, doc! {"$set": {"n": 5}})
        .with_options(upsert.clone())
        .await?;
    assert!(upserted.upserted_id.is_some());
    let keyless = coll
        .update_one(doc! {"n": 99}, doc! {"$set": {"n": 5}})
        .with_options(upsert)
        .await
        .expect_err("no key");
    assert_eq!(code_of(&keyless), 61, "{keyless}");
    let key_change = coll
        .update_one(doc! {"k": 5}, doc! {"$set": {"k": 6}})
        .await
        .expect_err("key change");
    assert_eq!(code_of(&key_change), 66, "{key_change}");

    // findAndModify needs the key.
    let found = coll
        .find_one_and_update(doc! {"k": 10}, doc! {"$set": {"x": 1}})
        .await?
        .expect("k 10 exists");
    assert_eq!(found.get_i32("k")?, 10);
    let keyless = coll
        .find_one_and_update(doc! {"n": 0}, doc! {"$set": {"x": 1}})
        .await
        .expect_err("no key");
    assert_eq!(code_of(&keyless), 61, "{keyless}");

    // Deletes: by key, by _id, many.
    assert_eq!(coll.delete_one(doc! {"k": 3}).await?.deleted_count, 1);
    assert_eq!(coll.delete_one(doc! {"_id": 4}).await?.deleted_count, 1);
    assert_eq!(coll.delete_many(doc! {"low": true}).await?.deleted_count, 48);
    assert_eq!(coll.count_documents(doc! {}).await?, 51);
    let five = coll.find_one(doc! {"k": 7}).await?;
    assert!(five.is_none(), "k 7 was low and deleted");
    let n_total: i32 = coll
        .find(doc! {})
        .await?
        .try_collect::<Vec<Document>>()
        .await?
        .iter()
        .map(|d| d.get_i32("n").unwrap_or(0))
        .sum();
    assert_eq!(
        n_total, 5,
        "the upsert's n only: the increments were on deleted low keys"
    );

    // Everything is where config.chunks says.
    let config = client.database("config");
    let uuid = config
        .collection::<Document>("collections")
        .find_one(doc! {"_id": "test.w"})
        .await?
        .expect("sharded")
        .get("uuid")
        .cloned()
        .expect("uuid");
    let pattern = ShardKeyPattern::parse(&doc! {"k": "hashed"})?;
    let chunks: Vec<Chunk> = config
        .collection::<Document>("chunks")
        .find(doc! {"uuid": uuid})
        .await?
        .try_collect::<Vec<Document>>()
        .await?
        .iter()
        .map(|c| Chunk::from_document(c, &pattern.names()).expect("a chunk"))
        .collect();
    let mut total = 0;
    for (name, node) in &cluster.shards {
        for doc in documents_on(node, "test", "w").await? {
            let key = pattern.extract(&doc)?;
            let owner = chunks.iter().find(|c| c.contains(&key)).expect("an owner");
            assert_eq!(&owner.shard, name, "{doc}");
            total += 1;
        }
    }
    assert_eq!(total, 51);
    Ok(())
}

/// Write concern goes to the shards and their `writeConcernError`s come back merged: `w: 2` on one-member
/// shards writes the documents (on both shards) and reports UnsatisfiableWriteConcern (100) once.
#[tokio::test]
async fn write_concern_errors_from_the_shards_are_merged() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router.admin(doc! {"enableSharding": "test"}).await?;
    router
        .admin(doc! {"shardCollection": "test.wc", "key": {"k": "hashed"}})
        .await?;
    let documents: Vec<Document> = (0..20).map(|k| doc! {"_id": k, "k": k}).collect();
    let reply = super::raw_command(
        router.port,
        doc! {"insert": "wc", "documents": documents, "writeConcern": {"w": 2}, "$db": "test"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 20, "every document is written: {reply}");
    let error = reply
        .get_document("writeConcernError")
        .map_err(|_| anyhow::anyhow!("no writeConcernError in {reply}"))?;
    assert_eq!(error.get_i32("code")?, 100, "{reply}");
    for (name, node) in &cluster.shards {
        let on_shard = documents_on(node, "test", "wc").await?;
        assert!(!on_shard.is_empty(), "{name} holds some of the 20 documents");
    }
    Ok(())
}

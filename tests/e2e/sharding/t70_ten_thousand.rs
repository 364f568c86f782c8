//! The acceptance check: the Rust driver through two routers writes 10,000 documents to a hashed and
//! to a range-sharded collection, reads them back through each router, and a direct connection to each shard
//! shows every document exactly where `config.chunks` says it belongs.

use bson::{Document, doc};
use faultline_engine::shard::{Chunk, ShardKeyPattern};
use futures_util::TryStreamExt as _;
use mongodb::options::InsertManyOptions;

use super::t20_stale_routing::hand_over_upper_half;
use super::{Cluster, MongosProcess, documents_on};

const DOCUMENTS: i32 = 10_000;

async fn check_placement(cluster: &Cluster, client: &mongodb::Client, coll: &str, key: Document) -> anyhow::Result<()> {
    let ns = format!("test.{coll}");
    let config = client.database("config");
    let uuid = config
        .collection::<Document>("collections")
        .find_one(doc! {"_id": &ns})
        .await?
        .expect("sharded")
        .get("uuid")
        .cloned()
        .expect("uuid");
    let pattern = ShardKeyPattern::parse(&key)?;
    let chunks: Vec<Chunk> = config
        .collection::<Document>("chunks")
        .find(doc! {"uuid": uuid})
        .await?
        .try_collect::<Vec<Document>>()
        .await?
        .iter()
        .map(|c| Chunk::from_document(c, &pattern.names()).expect("a chunk"))
        .collect();
    let mut ids = Vec::new();
    for (name, node) in &cluster.shards {
        let held = documents_on(node, "test", coll).await?;
        assert!(!held.is_empty(), "{ns}: shard {name} holds nothing");
        for doc in held {
            let owner: Vec<&Chunk> = chunks
                .iter()
                .filter(|c| c.contains(&pattern.extract(&doc).expect("key")))
                .collect();
            assert_eq!(owner.len(), 1);
            assert_eq!(
                &owner[0].shard, name,
                "{ns}: {doc} is on {name}, its chunk on {}",
                owner[0].shard
            );
            ids.push(doc.get_i32("_id")?);
        }
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..DOCUMENTS).collect::<Vec<_>>(),
        "{ns}: every document exactly once"
    );
    Ok(())
}

#[tokio::test]
async fn ten_thousand_documents_through_two_routers_land_where_config_chunks_says() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let second = MongosProcess::start(&cluster.config_seed()).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.hashed", "key": {"k": "hashed"}})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.range", "key": {"k": 1}})
        .await?;
    hand_over_upper_half(&cluster, "test.range", DOCUMENTS / 2, "shB").await?;

    let clients = [router.client().await?, second.client().await?];
    let unordered = InsertManyOptions::builder().ordered(false).build();
    for coll in ["hashed", "range"] {
        for (i, client) in clients.iter().enumerate() {
            let half: Vec<Document> = (0..DOCUMENTS / 2)
                .map(|n| {
                    let k = n * 2 + i as i32;
                    doc! {"_id": k, "k": k, "payload": format!("document {k}")}
                })
                .collect();
            client
                .database("test")
                .collection::<Document>(coll)
                .insert_many(half)
                .with_options(unordered.clone())
                .await?;
        }
        for client in &clients {
            let collection = client.database("test").collection::<Document>(coll);
            assert_eq!(collection.count_documents(doc! {}).await?, DOCUMENTS as u64);
            let all: Vec<Document> = collection.find(doc! {}).await?.try_collect().await?;
            assert_eq!(all.len(), DOCUMENTS as usize);
            let one = collection.find_one(doc! {"k": 4321}).await?.expect("k 4321");
            assert_eq!(one.get_str("payload")?, "document 4321");
        }
    }
    check_placement(&cluster, &clients[0], "hashed", doc! {"k": "hashed"}).await?;
    check_placement(&cluster, &clients[0], "range", doc! {"k": 1}).await?;
    Ok(())
}

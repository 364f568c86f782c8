//! A two-shard cluster built as the tutorial builds it: roles, addShard (and its errors), hello as mongos,
//! enableSharding, shardCollection with a hashed key, 1,000 inserts through the router, each document found
//! on exactly the shard `config.chunks` names, and targeted and scatter-gather reads through the router.

use bson::{Bson, Document, doc};
use faultline_engine::shard::{Chunk, ShardKeyPattern};
use futures_util::TryStreamExt as _;

use super::{Cluster, documents_on, seed};

#[tokio::test]
async fn a_hashed_collection_is_spread_over_two_shards_exactly_as_config_chunks_says() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;

    // The router presents itself as mongos.
    let hello = router.admin(doc! {"hello": 1}).await?;
    assert_eq!(hello.get_str("msg")?, "isdbgrid", "{hello}");
    assert!(hello.get("setName").is_none(), "{hello}");
    assert_eq!(router.admin(doc! {"isdbgrid": 1}).await?.get_f64("ok")?, 1.0);
    // ... and a shard does not.
    let on_shard = super::raw_command(cluster.shard("shA").port, doc! {"isdbgrid": 1, "$db": "admin"}).await?;
    assert_eq!(on_shard.get_i32("code")?, 59, "{on_shard}");

    let shards = router.admin(doc! {"listShards": 1}).await?;
    let listed = shards.get_array("shards")?;
    assert_eq!(listed.len(), 2, "{shards}");
    let first = listed[0].as_document().expect("a document");
    assert_eq!(first.get_str("_id")?, "shA");
    assert!(first.get_str("host")?.starts_with("shA/127.0.0.1:"), "{first}");
    assert_eq!(first.get_i32("state")?, 1);

    assert_eq!(router.admin(doc! {"enableSharding": "test"}).await?.get_f64("ok")?, 1.0);
    let sharded = router
        .admin(doc! {"shardCollection": "test.h", "key": {"k": "hashed"}})
        .await?;
    assert_eq!(sharded.get_str("collectionsharded")?, "test.h", "{sharded}");

    let client = router.client().await?;
    let coll = client.database("test").collection::<Document>("h");
    let docs: Vec<Document> = (0..1000)
        .map(|i| doc! {"_id": i, "k": i, "v": format!("value {i}")})
        .collect();
    coll.insert_many(docs).await?;
    assert_eq!(coll.count_documents(doc! {}).await?, 1000);

    // Each document lives on exactly the shard its chunk names.
    let config = client.database("config");
    let collection = config
        .collection::<Document>("collections")
        .find_one(doc! {"_id": "test.h"})
        .await?
        .expect("config.collections has test.h");
    assert_eq!(collection.get_document("key")?, &doc! {"k": "hashed"});
    let uuid = collection.get("uuid").cloned().expect("a uuid");
    let chunk_docs: Vec<Document> = config
        .collection::<Document>("chunks")
        .find(doc! {"uuid": uuid})
        .await?
        .try_collect()
        .await?;
    assert_eq!(chunk_docs.len(), 4, "two chunks per shard: {chunk_docs:?}");
    let pattern = ShardKeyPattern::parse(&doc! {"k": "hashed"})?;
    let chunks: Vec<Chunk> = chunk_docs
        .iter()
        .map(|c| Chunk::from_document(c, &pattern.names()).expect("a chunk"))
        .collect();
    let mut seen = 0;
    for (name, node) in &cluster.shards {
        let held = documents_on(node, "test", "h").await?;
        assert!(!held.is_empty(), "shard {name} holds none of the documents");
        for doc in &held {
            let key = pattern.extract(doc)?;
            let owner: Vec<&Chunk> = chunks.iter().filter(|c| c.contains(&key)).collect();
            assert_eq!(owner.len(), 1);
            assert_eq!(
                &owner[0].shard, name,
                "{doc} is on {name} but its chunk is on {}",
                owner[0].shard
            );
        }
        seen += held.len();
    }
    assert_eq!(seen, 1000, "every document exactly once");

    // Reads: targeted by the key, scatter-gather with sort, skip and limit, and a cursor over everything.
    let one = coll.find_one(doc! {"k": 417}).await?.expect("found");
    assert_eq!(one.get_str("v")?, "value 417");
    let page: Vec<Document> = coll
        .find(doc! {"k": {"$gte": 100}})
        .sort(doc! {"k": -1})
        .skip(5)
        .limit(10)
        .projection(doc! {"v": 0})
        .await?
        .try_collect()
        .await?;
    let keys: Vec<i32> = page.iter().map(|d| d.get_i32("k").expect("k")).collect();
    assert_eq!(keys, (985..995).rev().collect::<Vec<_>>());
    assert!(page.iter().all(|d| !d.contains_key("v")), "projected after the merge");
    let everything: Vec<Document> = coll.find(doc! {}).batch_size(64).await?.try_collect().await?;
    assert_eq!(everything.len(), 1000);
    assert_eq!(coll.count_documents(doc! {"k": {"$lt": 10}}).await?, 10);

    // An unsharded collection lives on the database's primary shard.
    let primary = config
        .collection::<Document>("databases")
        .find_one(doc! {"_id": "test"})
        .await?
        .expect("config.databases has test")
        .get_str("primary")?
        .to_string();
    client
        .database("test")
        .collection::<Document>("plain")
        .insert_one(doc! {"x": 1})
        .await?;
    assert_eq!(documents_on(cluster.shard(&primary), "test", "plain").await?.len(), 1);
    let other = if primary == "shA" { "shB" } else { "shA" };
    assert!(documents_on(cluster.shard(other), "test", "plain").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn bad_cluster_commands_get_mongodbs_errors_and_change_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start(1).await?;
    let router = &cluster.router;
    let code = |reply: &Document| reply.get_i32("code").unwrap_or(0);

    // A set name that does not match, a host nobody listens on, a replica set not started with --shardsvr.
    let shard = cluster.shard("shA");
    let wrong_name = router
        .admin(doc! {"addShard": format!("other/127.0.0.1:{}", shard.port)})
        .await?;
    assert_eq!(code(&wrong_name), 96, "{wrong_name}");
    let unreachable = router
        .admin(doc! {"addShard": format!("x/127.0.0.1:{}", faultline_tests::free_port())})
        .await?;
    assert_eq!(code(&unreachable), 6, "{unreachable}");
    let plain_node = faultline_tests::NodeProcess::start(super::bin(), &["--replSet", "plain"]).await?;
    plain_node.initiate().await?;
    let not_shard = router.admin(doc! {"addShard": seed("plain", &plain_node)}).await?;
    assert_eq!(code(&not_shard), 96, "{not_shard}");
    assert!(not_shard.get_str("errmsg")?.contains("--shardsvr"), "{not_shard}");
    let listed = router.admin(doc! {"listShards": 1}).await?;
    assert_eq!(listed.get_array("shards")?.len(), 1, "nothing half-added: {listed}");
    let last = router.admin(doc! {"removeShard": "shA"}).await?;
    assert_eq!(code(&last), 20, "the last shard stays: {last}");
    // Adding the same shard again is a success that changes nothing.
    let again = router.admin(doc! {"addShard": seed("shA", shard)}).await?;
    assert_eq!(again.get_str("shardAdded")?, "shA", "{again}");

    // Bad shard keys, bad namespaces, commands in the wrong place.
    for key in [doc! {"k": -1}, doc! {"a": "hashed", "b": "hashed"}, doc! {}] {
        let reply = router
            .admin(doc! {"shardCollection": "test.c", "key": key.clone()})
            .await?;
        assert_eq!(code(&reply), 2, "{key}: {reply}");
    }
    let bad_ns = router.admin(doc! {"shardCollection": "nodot", "key": {"k": 1}}).await?;
    assert_eq!(code(&bad_ns), 73, "{bad_ns}");
    let unique_hashed = router
        .admin(doc! {"shardCollection": "test.c", "key": {"k": "hashed"}, "unique": true})
        .await?;
    assert_eq!(code(&unique_hashed), 72, "{unique_hashed}");
    let not_admin = super::raw_command(router.port, doc! {"listShards": 1, "$db": "test"}).await?;
    assert_eq!(code(&not_admin), 13, "{not_admin}");
    let repl_on_router = router.admin(doc! {"replSetGetStatus": 1}).await?;
    assert_eq!(code(&repl_on_router), 59, "{repl_on_router}");
    let router_only_on_shard =
        super::raw_command(shard.port, doc! {"addShard": "x/127.0.0.1:1", "$db": "admin"}).await?;
    assert_eq!(code(&router_only_on_shard), 59, "{router_only_on_shard}");

    // Re-sharding with another key is refused; with the same key it is a success.
    router
        .admin(doc! {"shardCollection": "test.r", "key": {"k": 1}})
        .await?;
    let same = router
        .admin(doc! {"shardCollection": "test.r", "key": {"k": 1}})
        .await?;
    assert_eq!(same.get_f64("ok")?, 1.0, "{same}");
    let other_key = router
        .admin(doc! {"shardCollection": "test.r", "key": {"j": 1}})
        .await?;
    assert_eq!(code(&other_key), 23, "{other_key}");

    // Balancer settings.
    router.admin(doc! {"balancerStop": 1}).await?;
    assert_eq!(router.admin(doc! {"balancerStatus": 1}).await?.get_str("mode")?, "off");
    router.admin(doc! {"balancerStart": 1}).await?;
    assert_eq!(router.admin(doc! {"balancerStatus": 1}).await?.get_str("mode")?, "full");
    let map = router.admin(doc! {"getShardMap": 1}).await?;
    assert!(map.get_document("map")?.contains_key("shA"), "{map}");
    assert_eq!(map.get_document("map")?.get_str("config")?, cluster.config_seed());
    let flushed = router.admin(doc! {"flushRouterConfig": 1}).await?;
    assert_eq!(flushed.get("flushed"), Some(&Bson::Boolean(true)));
    Ok(())
}

/// What mongosh's `sh.status()` reads, through the router: the cluster id, the shards, the active routers,
/// the balancer, the databases with their primary shard, the sharded collections with their key, and the
/// chunk distribution per shard.
#[tokio::test]
async fn what_sh_status_reads_is_there_through_the_router() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router
        .admin(doc! {"shardCollection": "shop.orders", "key": {"customer": "hashed"}})
        .await?;
    let client = router.client().await?;
    let config = client.database("config");
    let version = config
        .collection::<Document>("version")
        .find_one(doc! {})
        .await?
        .expect("config.version");
    assert!(version.get_object_id("clusterId").is_ok(), "{version}");
    let routers: Vec<Document> = super::wait_until(std::time::Duration::from_secs(20), "config.mongos", || {
        let config = config.clone();
        async move {
            let found: Vec<Document> = config
                .collection::<Document>("mongos")
                .find(doc! {})
                .await
                .ok()?
                .try_collect()
                .await
                .ok()?;
            (!found.is_empty()).then_some(found)
        }
    })
    .await?;
    assert_eq!(routers[0].get_str("_id")?, format!("127.0.0.1:{}", router.port));
    assert!(routers[0].get_datetime("ping").is_ok() && routers[0].get_str("mongoVersion").is_ok());
    assert_eq!(router.admin(doc! {"balancerStatus": 1}).await?.get_str("mode")?, "full");
    let databases: Vec<Document> = config
        .collection::<Document>("databases")
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    assert_eq!(databases.len(), 1);
    assert!(databases[0].get_str("primary")?.starts_with("sh"));
    assert!(databases[0].get_document("version")?.get("uuid").is_some());
    let collections: Vec<Document> = config
        .collection::<Document>("collections")
        .find(doc! {"_id": {"$regex": "^shop\\."}})
        .await?
        .try_collect()
        .await?;
    assert_eq!(collections.len(), 1);
    assert_eq!(collections[0].get_document("key")?, &doc! {"customer": "hashed"});
    let uuid = collections[0].get("uuid").cloned().expect("uuid");
    let distribution: Vec<Document> = config
        .collection::<Document>("chunks")
        .aggregate(vec![
            doc! {"$match": {"uuid": uuid}},
            doc! {"$group": {"_id": "$shard", "nChunks": {"$sum": 1}}},
            doc! {"$sort": {"_id": 1}},
        ])
        .await?
        .try_collect()
        .await?;
    assert_eq!(
        distribution,
        vec![doc! {"_id": "shA", "nChunks": 2}, doc! {"_id": "shB", "nChunks": 2}]
    );
    Ok(())
}

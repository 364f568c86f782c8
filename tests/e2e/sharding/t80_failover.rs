//! A router follows failovers: the primary of a three-member shard and then of a three-member config server
//! set are killed, and writes and metadata changes through the router go on (retryable writes through the
//! router; a metadata command the router could not finish is retried by the client, as with mongos), with
//! every acknowledged document still there.

use bson::{Document, doc};

use super::{MongosProcess, documents_on, primary_of, seeds, start_set, start_set_of, wait_until};

#[tokio::test]
async fn writes_and_metadata_changes_survive_shard_and_config_primary_failovers() -> anyhow::Result<()> {
    let mut config = start_set_of("cfg", "--configsvr", 3).await?;
    let mut shard_a = start_set_of("shA", "--shardsvr", 3).await?;
    let shard_b = start_set("shB", "--shardsvr").await?;
    let router = MongosProcess::start(&seeds("cfg", &config)).await?;
    super::add_shards(&router, &[seeds("shA", &shard_a), super::seed("shB", &shard_b)]).await?;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.f", "key": {"k": "hashed"}})
        .await?;
    let client = router.client().await?;
    let coll = client.database("test").collection::<Document>("f");
    for k in 0..100 {
        coll.insert_one(doc! {"_id": k, "k": k}).await?;
    }

    // The shard's primary dies; retryable writes through the router reach the new one.
    let old = primary_of(&shard_a).await?;
    shard_a[old].kill();
    for k in 100..200 {
        coll.insert_one(doc! {"_id": k, "k": k}).await?;
    }
    assert_eq!(coll.count_documents(doc! {}).await?, 200);

    // The config servers' primary dies; a metadata change goes through once a new one is elected.
    let old_config = primary_of(&config).await?;
    config[old_config].kill();
    let router_ref = &router;
    wait_until(
        std::time::Duration::from_secs(60),
        "shardCollection after the config failover",
        || async move {
            let reply = router_ref
                .admin(doc! {"shardCollection": "test.g", "key": {"k": 1}})
                .await
                .ok()?;
            (reply.get_f64("ok").ok() == Some(1.0)).then_some(())
        },
    )
    .await?;
    let g = client.database("test").collection::<Document>("g");
    for k in 0..50 {
        g.insert_one(doc! {"k": k}).await?;
    }
    assert_eq!(g.count_documents(doc! {}).await?, 50);

    // Every acknowledged document is on the shards: shA's new primary and shB.
    let new_primary = primary_of(&shard_a).await?;
    let on_a = documents_on(&shard_a[new_primary], "test", "f").await?.len();
    let on_b = documents_on(&shard_b, "test", "f").await?.len();
    assert_eq!(on_a + on_b, 200, "shA {on_a} + shB {on_b}");
    Ok(())
}

//! Causal consistency through the router: mongos keeps the greatest cluster time it has seen (from clients,
//! shards and config servers), passes it on with every request, and returns it with `operationTime` in every
//! reply, so a causally consistent session reads its writes through the router, and a client's gossiped time
//! reaches the shards.

use bson::{Bson, Document, Timestamp, doc};
use futures_util::TryStreamExt as _;

use super::{Cluster, raw_command};

fn cluster_time_of(reply: &Document) -> anyhow::Result<Timestamp> {
    match reply.get_document("$clusterTime")?.get("clusterTime") {
        Some(Bson::Timestamp(ts)) => Ok(*ts),
        other => anyhow::bail!("no $clusterTime.clusterTime in {reply}: {other:?}"),
    }
}

#[tokio::test]
async fn the_router_gossips_cluster_time_and_sessions_read_their_writes() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let router = &cluster.router;
    router.admin(doc! {"enableSharding": "test"}).await?;
    let sharded = router
        .admin(doc! {"shardCollection": "test.c", "key": {"k": "hashed"}})
        .await?;
    assert_eq!(sharded.get_f64("ok")?, 1.0, "{sharded}");

    let client = router.client().await?;
    let db = client.database("test");
    let inserted = db
        .run_command(doc! {"insert": "c", "documents": [{"_id": 1, "k": 1}]})
        .await?;
    let operation_time = match inserted.get("operationTime") {
        Some(Bson::Timestamp(ts)) => *ts,
        other => anyhow::bail!("the router's insert reply has no operationTime: {inserted} ({other:?})"),
    };
    let cluster_time = cluster_time_of(&inserted)?;
    assert!(cluster_time >= operation_time, "{inserted}");

    // A read after the write's time, through the router, sees it.
    let read = db
        .run_command(doc! {"find": "c", "filter": {"_id": 1},
        "readConcern": {"level": "majority", "afterClusterTime": operation_time}})
        .await?;
    let batch = read.get_document("cursor")?.get_array("firstBatch")?;
    assert_eq!(batch.len(), 1, "{read}");

    // A client's newer cluster time is taken in and handed back.
    let ahead = Timestamp {
        time: cluster_time.time + 5,
        increment: 1,
    };
    let unsigned = bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: vec![0; 20],
    };
    let gossip = doc! {"clusterTime": ahead, "signature": {"hash": unsigned, "keyId": 0i64}};
    let pinged = raw_command(router.port, doc! {"ping": 1, "$db": "admin", "$clusterTime": gossip}).await?;
    assert!(cluster_time_of(&pinged)? >= ahead, "{pinged}");
    let later = raw_command(router.port, doc! {"ping": 1, "$db": "admin"}).await?;
    assert!(
        cluster_time_of(&later)? >= ahead,
        "another client is handed the newer time: {later}"
    );

    // The driver's causally consistent session reads its own writes through the router.
    let mut session = client.start_session().causal_consistency(true).await?;
    let coll = db.collection::<Document>("c");
    for k in 2..20 {
        coll.insert_one(doc! {"_id": k, "k": k}).session(&mut session).await?;
        let found: Vec<Document> = coll
            .find(doc! {"_id": k})
            .session(&mut session)
            .await?
            .stream(&mut session)
            .try_collect()
            .await?;
        assert_eq!(found.len(), 1, "a causal session's read of _id {k} missed its write");
    }
    Ok(())
}

//! Causal consistency on one member: every reply of a replica-set member carries `operationTime` and
//! `$clusterTime` as mongod shapes them, a client's `$clusterTime` is gossiped back, and `afterClusterTime`
//! is validated with MongoDB's codes.

use bson::{Bson, Document, Timestamp, doc};
use faultline_tests::raw_command;

use crate::primary;

fn timestamp(reply: &Document, key: &str) -> Timestamp {
    match reply.get(key) {
        Some(Bson::Timestamp(ts)) => *ts,
        other => panic!("{key} is not a timestamp ({other:?}) in {reply}"),
    }
}

fn cluster_time(reply: &Document) -> Timestamp {
    let gossip = reply
        .get_document("$clusterTime")
        .unwrap_or_else(|_| panic!("no $clusterTime in {reply}"));
    timestamp(gossip, "clusterTime")
}

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

/// `insert`, `find`, `ping` and a failed command all carry `operationTime` and a `$clusterTime` with the
/// unsigned signature (20 zero bytes, key id 0); a write's `operationTime` is its oplog entry's timestamp.
#[tokio::test(flavor = "multi_thread")]
async fn replies_carry_operation_time_and_cluster_time() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    let inserted = raw_command(port, doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "cc"}).await?;
    let written = timestamp(&inserted, "operationTime");
    let oplog = raw_command(
        port,
        doc! {"find": "oplog.rs", "filter": {"ns": "cc.c", "op": "i"}, "$db": "local"},
    )
    .await?;
    let entry = oplog.get_document("cursor")?.get_array("firstBatch")?[0]
        .as_document()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        Some(&Bson::Timestamp(written)),
        entry.get("ts"),
        "the insert's operationTime is its entry's: {inserted} / {entry}"
    );
    let gossip = inserted.get_document("$clusterTime")?;
    assert!(cluster_time(&inserted) >= written, "{inserted}");
    let signature = gossip.get_document("signature")?;
    match signature.get("hash") {
        Some(Bson::Binary(hash)) => assert_eq!(hash.bytes, vec![0u8; 20], "{gossip}"),
        other => panic!("signature.hash is not binary: {other:?}"),
    }
    assert_eq!(signature.get_i64("keyId")?, 0, "{gossip}");

    let found = raw_command(port, doc! {"find": "c", "$db": "cc"}).await?;
    assert!(timestamp(&found, "operationTime") >= written, "{found}");
    let ping = raw_command(port, doc! {"ping": 1, "$db": "admin"}).await?;
    assert!(timestamp(&ping, "operationTime") >= written, "{ping}");
    let failed = raw_command(port, doc! {"find": 5, "$db": "cc"}).await?;
    assert_eq!(failed.get_f64("ok")?, 0.0, "{failed}");
    assert!(
        failed.contains_key("operationTime") && failed.contains_key("$clusterTime"),
        "{failed}"
    );
    Ok(())
}

/// A client's newer `$clusterTime` is taken in and handed back to every later client.
#[tokio::test(flavor = "multi_thread")]
async fn a_clients_cluster_time_is_gossiped() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    let ping = raw_command(port, doc! {"ping": 1, "$db": "admin"}).await?;
    let now = cluster_time(&ping);
    let later = Timestamp {
        time: now.time + 100,
        increment: 3,
    };
    let gossip = doc! {"clusterTime": later, "signature": {"hash": Bson::Binary(bson::Binary {
    subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 20]}), "keyId": 0i64}};
    let reply = raw_command(port, doc! {"ping": 1, "$clusterTime": gossip, "$db": "admin"}).await?;
    assert_eq!(cluster_time(&reply), later, "{reply}");
    let other = raw_command(port, doc! {"ping": 1, "$db": "admin"}).await?;
    assert_eq!(
        cluster_time(&other),
        later,
        "another client sees the gossiped time: {other}"
    );
    Ok(())
}

/// `afterClusterTime` as MongoDB validates it: a timestamp (14), not null (72), not with linearizable (72),
/// not ahead of the member's cluster time (72); one this member has reached reads at once.
#[tokio::test(flavor = "multi_thread")]
async fn after_cluster_time_is_validated() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    let inserted = raw_command(port, doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "cc"}).await?;
    let written = timestamp(&inserted, "operationTime");
    let find = |rc: Document| doc! {"find": "c", "readConcern": rc, "$db": "cc"};
    let cases = [
        (doc! {"level": "local", "afterClusterTime": 10}, 14),
        (
            doc! {"level": "local", "afterClusterTime": Timestamp {time: 0, increment: 0}},
            72,
        ),
        (doc! {"level": "linearizable", "afterClusterTime": written}, 72),
        (doc! {"level": "available", "afterClusterTime": written}, 72),
        (
            doc! {"level": "majority", "afterClusterTime": Timestamp {time: written.time + 1000, increment: 1}},
            72,
        ),
    ];
    for (rc, expected) in cases {
        let reply = raw_command(port, find(rc.clone())).await?;
        assert_eq!(code(&reply), Some(expected), "{rc}: {reply}");
    }
    for level in ["local", "majority"] {
        let reply = raw_command(port, find(doc! {"level": level, "afterClusterTime": written})).await?;
        let batch = reply.get_document("cursor")?.get_array("firstBatch")?;
        assert_eq!(batch.len(), 1, "{level}: {reply}");
    }
    Ok(())
}

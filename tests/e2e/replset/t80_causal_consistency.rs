//! Causal consistency across members: a secondary that has not yet replicated a write refuses to answer a
//! read `afterClusterTime` that write (it waits, here until `maxTimeMS`) instead of returning stale data,
//! and answers it once it has caught up; a causally consistent driver session reads its own writes on a
//! secondary.

use bson::{Bson, Document, Timestamp, doc};
use faultline_tests::raw_command;
use mongodb::options::{ReadPreference, SelectionCriteria};

use crate::*;

fn operation_time(reply: &Document) -> Timestamp {
    match reply.get("operationTime") {
        Some(Bson::Timestamp(ts)) => *ts,
        other => panic!("no operationTime ({other:?}) in {reply}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_secondary_waits_for_after_cluster_time() -> anyhow::Result<()> {
    let routed = faultline_tests::proxy::start_routed(bin(), 3, &[]).await?;
    let nodes = &routed.nodes;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(nodes, config(members)).await?;
    let lagging = (primary + 1) % nodes.len();
    routed.isolate(lagging);
    let inserted = raw_command(
        nodes[primary].port,
        doc! {"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": "majority", "wtimeout": 30_000},
        "$db": "cc"},
    )
    .await?;
    assert_eq!(inserted.get_i32("n")?, 1, "{inserted}");
    let after = operation_time(&inserted);
    let gossip = inserted.get_document("$clusterTime")?.clone();
    let read = |max_time: Option<i64>| {
        let mut find = doc! {"find": "c", "readConcern": {"level": "local", "afterClusterTime": after},
        "$clusterTime": gossip.clone(), "$readPreference": {"mode": "secondary"}, "$db": "cc"};
        if let Some(ms) = max_time {
            find.insert("maxTimeMS", ms);
        }
        find
    };
    let stale = raw_command(nodes[lagging].port, read(Some(300))).await?;
    assert_eq!(
        stale.get_i32("code").ok(),
        Some(50),
        "a secondary behind afterClusterTime waits (MaxTimeMSExpired), never answers stale: {stale}"
    );
    routed.heal();
    let fresh = raw_command(nodes[lagging].port, read(None)).await?;
    let batch = fresh.get_document("cursor")?.get_array("firstBatch")?;
    assert_eq!(
        batch.len(),
        1,
        "after catching up the secondary returns the write: {fresh}"
    );
    assert!(operation_time(&fresh) >= after, "{fresh}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_causal_session_reads_its_writes_on_a_secondary() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| Vec::new()).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    initiate(&nodes, config(members)).await?;
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let coll = client.database("cc").collection::<Document>("c");
    let mut session = client.start_session().causal_consistency(true).await?;
    for i in 0..20 {
        coll.insert_one(doc! {"_id": i}).session(&mut session).await?;
        assert!(session.operation_time().is_some(), "the driver saw an operationTime");
        let found = coll
            .find_one(doc! {"_id": i})
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::SecondaryPreferred {
                options: None,
            }))
            .session(&mut session)
            .await?;
        assert!(found.is_some(), "write {i} read back through the causal session");
    }
    Ok(())
}

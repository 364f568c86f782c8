//! Membership: adding a member to a set with data (initial sync), a delayed member, and step-down.

use bson::{Document, doc};
use faultline_tests::{raw_command, wait_until};
use mongodb::options::{Acknowledgment, WriteConcern};

use crate::*;

/// A fourth member added with `rs.add()` to a set holding 10,000 documents initial-syncs and its dbHash
/// matches.
#[tokio::test(flavor = "multi_thread")]
async fn added_member_initial_syncs() -> anyhow::Result<()> {
    let nodes = start_members(4, |_| vec![]).await?;
    let members: Vec<Document> = nodes
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, n)| member(i as i32, n))
        .collect();
    let primary = initiate(&nodes[..3], config(members)).await?;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().take(3).collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let coll = client.database("big").collection::<Document>("c");
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"k": 1})
            .options(mongodb::options::IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await?;
    for chunk in (0..10_000).collect::<Vec<i32>>().chunks(1000) {
        coll.insert_many(chunk.iter().map(|i| doc! {"_id": *i, "k": format!("key-{i}")}))
            .write_concern(WriteConcern::builder().w(Acknowledgment::Majority).build())
            .await?;
    }
    // rs.add(): read the config, append the member, bump the version, reconfig.
    let current = raw_command(nodes[primary].port, doc! {"replSetGetConfig": 1, "$db": "admin"}).await?;
    let mut config = current.get_document("config")?.clone();
    let mut members = config.get_array("members")?.clone();
    members.push(bson::Bson::Document(member(3, &nodes[3])));
    config.insert("members", members);
    config.insert("version", config.get_i32("version")? + 1);
    let reply = raw_command(nodes[primary].port, doc! {"replSetReconfig": config, "$db": "admin"}).await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");
    let fourth = &nodes[3];
    wait_until(ELECTION, "the new member to become SECONDARY", || async move {
        (state_of(fourth).await? == 2).then_some(())
    })
    .await?;
    let all: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    wait_same_data(&all, "big").await?;
    let indexes = raw_command(
        fourth.port,
        doc! {"listIndexes": "c", "$db": "big", "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await?;
    let names: Vec<&str> = indexes
        .get_document("cursor")
        .map_err(|_| anyhow::anyhow!("listIndexes on the new member failed: {indexes}"))?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|i| i.as_document()?.get_str("name").ok())
        .collect();
    assert!(names.contains(&"k_1"), "indexes are cloned too: {names:?}");
    let source_oplog = oplog_optimes(&nodes[primary]).await?;
    let cloned_oplog = oplog_optimes(fourth).await?;
    let foreign: Vec<_> = cloned_oplog.iter().filter(|e| !source_oplog.contains(e)).collect();
    assert!(
        foreign.is_empty(),
        "the initial sync wrote oplog entries of its own (the clone is not a write): {foreign:?}"
    );
    Ok(())
}

/// `(ts, t, op)` of every entry in a member's oplog.
async fn oplog_optimes(node: &faultline_tests::NodeProcess) -> anyhow::Result<Vec<(bson::Timestamp, i64, String)>> {
    let direct = node.client().await?;
    let oplog = direct.database("local").collection::<Document>("oplog.rs");
    let mut cursor = oplog
        .find(doc! {})
        .projection(doc! {"ts": 1, "t": 1, "op": 1})
        .selection_criteria(mongodb::options::SelectionCriteria::ReadPreference(
            mongodb::options::ReadPreference::SecondaryPreferred {
                options: Default::default(),
            },
        ))
        .await?;
    let mut optimes = Vec::new();
    while cursor.advance().await? {
        let entry = cursor.deserialize_current()?;
        optimes.push((
            entry.get_timestamp("ts")?,
            entry.get_i64("t").unwrap_or(-1),
            entry.get_str("op").unwrap_or("?").to_string(),
        ));
    }
    Ok(optimes)
}

/// A member with `secondaryDelaySecs` lags by about that much: a secondary read there returns old data.
#[tokio::test(flavor = "multi_thread")]
async fn delayed_member_serves_old_data() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let mut members: Vec<Document> = nodes
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, n)| member(i as i32, n))
        .collect();
    members.push(doc! {"_id": 2, "host": host(&nodes[2]), "priority": 0, "hidden": true, "secondaryDelaySecs": 3});
    let primary = initiate(&nodes, config(members)).await?;
    let reply = raw_command(
        nodes[primary].port,
        doc! {"insert": "c", "documents": [{"_id": 1, "v": "new"}], "writeConcern": {"w": 2}, "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");
    let written = std::time::Instant::now();
    let read = doc! {"find": "c", "filter": {"_id": 1}, "$db": "app", "$readPreference": {"mode": "secondary"}};
    let stale = raw_command(nodes[2].port, read.clone()).await?;
    assert!(
        stale.get_document("cursor")?.get_array("firstBatch")?.is_empty(),
        "the delayed member does not have the write yet: {stale}"
    );
    let port = nodes[2].port;
    wait_until(ELECTION, "the delayed member to apply the write", || {
        let read = read.clone();
        async move {
            let reply = raw_command(port, read).await.ok()?;
            (!reply
                .get_document("cursor")
                .ok()?
                .get_array("firstBatch")
                .ok()?
                .is_empty())
            .then_some(())
        }
    })
    .await?;
    let lag = written.elapsed();
    assert!(
        lag >= std::time::Duration::from_millis(2500),
        "applied after {lag:?}, expected about 3 s"
    );
    Ok(())
}

/// `rs.stepDown()` hands over to a caught-up secondary; the old primary becomes SECONDARY.
#[tokio::test(flavor = "multi_thread")]
async fn step_down_hands_over() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let old = initiate(&nodes, config(members)).await?;
    let reply = raw_command(
        nodes[old].port,
        doc! {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 10, "$db": "admin"},
    )
    .await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");
    let new = wait_for_primary(&nodes, &[old]).await?;
    assert_ne!(new, old);
    assert_eq!(state_of(&nodes[old]).await, Some(2));
    // The hand-over is a replSetStepUp to the successor: serverStatus counts it as such.
    let mut step_ups = 0;
    for node in nodes.iter().enumerate().filter(|(i, _)| *i != old).map(|(_, n)| n) {
        let status = raw_command(node.port, doc! {"serverStatus": 1, "$db": "admin"}).await?;
        let counter = status.get_document("electionMetrics")?.get_document("stepUpCmd")?;
        step_ups += counter.get_i64("called")?;
    }
    assert!(step_ups >= 1, "the old primary asked a successor to step up");
    let not_primary = raw_command(nodes[old].port, doc! {"replSetStepDown": 30, "$db": "admin"}).await?;
    assert_eq!(not_primary.get_i32("code")?, 10107, "{not_primary}");
    Ok(())
}

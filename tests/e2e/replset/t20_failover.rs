//! Failover: killing the primary elects a new one, the driver's next writes succeed, nothing acknowledged
//! with `w: "majority"` is lost, and the old primary rejoins as SECONDARY.

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{Acknowledgment, WriteConcern};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_primary_elects_a_new_one_and_loses_no_majority_write() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let old = initiate(&nodes, config(members)).await?;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let coll = client.database("app").collection::<Document>("c");
    for i in 0..100 {
        coll.insert_one(doc! {"_id": i}).write_concern(majority.clone()).await?;
    }
    nodes[old].kill();
    let new = wait_for_primary(&nodes, &[old]).await?;
    assert_ne!(new, old);
    // The driver follows the failover: a write eventually succeeds without a new client.
    let coll2 = coll.clone();
    let majority2 = majority.clone();
    faultline_tests::wait_until(ELECTION, "a majority write after failover", || {
        let (coll, wc) = (coll2.clone(), majority2.clone());
        async move {
            coll.insert_one(doc! {"_id": "after"})
                .write_concern(wc)
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await?;
    for (i, node) in nodes.iter().enumerate() {
        if i == old {
            continue;
        }
        let direct = node.client().await?;
        let present: Vec<Document> = direct
            .database("app")
            .collection::<Document>("c")
            .find(doc! {"_id": {"$lt": 100}})
            .selection_criteria(mongodb::options::SelectionCriteria::ReadPreference(
                mongodb::options::ReadPreference::PrimaryPreferred {
                    options: Default::default(),
                },
            ))
            .await?
            .try_collect()
            .await?;
        assert_eq!(present.len(), 100, "member {i} has every majority-acknowledged write");
    }
    nodes[old].restart().await?;
    let rejoined = &nodes[old];
    faultline_tests::wait_until(ELECTION, "the old primary to rejoin as SECONDARY", || async move {
        (state_of(rejoined).await? == 2).then_some(())
    })
    .await?;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    Ok(())
}

/// Two members down out of three: the survivor steps down to SECONDARY and refuses writes.
#[tokio::test(flavor = "multi_thread")]
async fn lone_survivor_steps_down() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    for (i, node) in nodes.iter_mut().enumerate() {
        if i != primary {
            node.kill();
        }
    }
    let survivor = &nodes[primary];
    faultline_tests::wait_until(ELECTION, "the survivor to step down to SECONDARY", || async move {
        (state_of(survivor).await? == 2).then_some(())
    })
    .await?;
    let reply = faultline_tests::raw_command(
        survivor.port,
        doc! {"insert": "c", "documents": [{"x": 1}], "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("code")?, 10107, "{reply}");
    Ok(())
}

/// Two data members and an arbiter: killing the primary elects the other data member.
#[tokio::test(flavor = "multi_thread")]
async fn arbiter_helps_elect_the_other_data_member() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let mut members: Vec<Document> = nodes
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, n)| member(i as i32, n))
        .collect();
    members.push(doc! {"_id": 2, "host": host(&nodes[2]), "arbiterOnly": true});
    let primary = initiate(&nodes, config(members)).await?;
    assert_ne!(primary, 2, "an arbiter is never primary");
    let hello = faultline_tests::raw_command(nodes[2].port, doc! {"hello": 1, "$db": "admin"}).await?;
    assert!(hello.get_bool("arbiterOnly").unwrap_or(false), "{hello}");
    let other = 1 - primary;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    client
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .write_concern(WriteConcern::builder().w(Acknowledgment::Majority).build())
        .await?;
    nodes[primary].kill();
    let new = wait_for_primary(&nodes, &[primary, 2]).await?;
    assert_eq!(new, other);
    // With the other data member down a majority write could never be acknowledged: probe with w:1.
    let reply = faultline_tests::raw_command(
        nodes[other].port,
        doc! {"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": 1}, "$db": "app"},
    )
    .await?;
    let code = reply
        .get_array("writeErrors")?
        .first()
        .and_then(|e| e.as_document()?.get_i32("code").ok());
    assert_eq!(code, Some(11000), "the majority write survived the failover: {reply}");
    Ok(())
}

/// A secondary that joined by initial sync and is then killed resumes from its own oplog when restarted: it
/// keeps its data and catches up on what it missed, without a second initial sync.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_secondary_resumes_without_initial_sync() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    // A secondary that joined by initial sync (the member that ran replSetInitiate did not).
    let secondary = (0..nodes.len())
        .find(|i| *i != primary && nodes[*i].log().contains("initial sync done"))
        .ok_or_else(|| anyhow::anyhow!("no secondary joined by initial sync"))?;
    let insert = |ids: std::ops::Range<i32>| {
        let docs: Vec<Document> = ids.map(|i| doc! {"_id": i}).collect();
        doc! {"insert": "c", "documents": docs, "writeConcern": {"w": "majority"}, "$db": "app"}
    };
    let reply = faultline_tests::raw_command(nodes[primary].port, insert(0..50)).await?;
    assert_eq!(reply.get_i32("n")?, 50, "{reply}");
    let log = nodes[secondary].log();
    assert_eq!(
        log.matches("initial sync done").count(),
        1,
        "the secondary joined by initial sync:\n{log}"
    );
    let attempts_before = log.matches("initial sync starting").count();

    nodes[secondary].kill();
    let reply = faultline_tests::raw_command(nodes[primary].port, insert(50..100)).await?;
    assert_eq!(reply.get_i32("n")?, 50, "{reply}");
    nodes[secondary].restart().await?;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    assert_eq!(
        nodes[secondary].log().matches("initial sync starting").count(),
        attempts_before,
        "the restarted secondary initial-synced again:\n{}",
        nodes[secondary].log()
    );
    Ok(())
}

/// A retryable write retried on the member that became primary after a failover gets the first reply back,
/// not a second execution and not a reply of another shape: findAndModify (remove, old and new images, an
/// upsert returning the new document, with a projection) and an upserting update.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_failover_gets_the_first_reply() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let old = initiate(&nodes, config(members)).await?;
    let port = nodes[old].port;
    let majority = doc! {"w": "majority"};
    let setup = doc! {"insert": "r", "documents": [{"_id": 1, "n": 1}, {"_id": 2, "n": 2}, {"_id": 3, "n": 3}],
    "writeConcern": majority.clone(), "$db": "app"};
    faultline_tests::raw_command(port, setup).await?;
    let commands = [
        doc! {"findAndModify": "r", "query": {"_id": 1}, "update": {"$inc": {"n": 10}}, "new": true,
        "fields": {"n": 1, "_id": 0}},
        doc! {"findAndModify": "r", "query": {"_id": 2}, "update": {"$set": {"n": 20}}},
        doc! {"findAndModify": "r", "query": {"_id": 3}, "remove": true},
        doc! {"findAndModify": "r", "query": {"_id": 4}, "update": {"$set": {"n": 4}}, "upsert": true, "new": true},
        doc! {"update": "r", "updates": [{"q": {"_id": 5}, "u": {"$set": {"n": 5}}, "upsert": true}]},
    ];
    // Each command on a session of its own: only a session's newest transaction number can be retried.
    let mut sent = Vec::new();
    for mut command in commands {
        command.insert("lsid", doc! {"id": bson::Uuid::new()});
        command.insert("txnNumber", 1i64);
        command.insert("writeConcern", majority.clone());
        command.insert("$db", "app");
        let first = faultline_tests::raw_command(port, command.clone()).await?;
        anyhow::ensure!(first.get_f64("ok")? == 1.0, "{command}: {first}");
        sent.push((command, without_times(first)));
    }
    nodes[old].kill();
    let new = wait_for_primary(&nodes, &[old]).await?;
    for (command, first) in &sent {
        let again = faultline_tests::raw_command(nodes[new].port, command.clone()).await?;
        assert_eq!(
            &without_times(again),
            first,
            "the retry of {command} on the new primary"
        );
    }
    let data: Vec<Document> = nodes[new]
        .client()
        .await?
        .database("app")
        .collection::<Document>("r")
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    let expected = vec![
        doc! {"_id": 1, "n": 11},
        doc! {"_id": 2, "n": 20},
        doc! {"_id": 4, "n": 4},
        doc! {"_id": 5, "n": 5},
    ];
    assert_eq!(data, expected, "nothing ran twice");
    Ok(())
}

/// A reply without the fields that name when and where it was produced.
fn without_times(mut reply: Document) -> Document {
    for key in ["$clusterTime", "operationTime", "electionId", "opTime"] {
        reply.remove(key);
    }
    reply
}

//! Three members elect a primary, replicate majority writes, and agree on their data.

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{Acknowledgment, ReadPreference, SelectionCriteria, WriteConcern};

use crate::*;

/// `rs.initiate()` with three members: one primary, two secondaries; `w: "majority"` writes replicate and
/// `dbHash` agrees on all three; replSetGetStatus reports MongoDB's fields.
#[tokio::test(flavor = "multi_thread")]
async fn three_members_elect_and_replicate() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;

    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let coll = client.database("app").collection::<Document>("c");
    for i in 0..200 {
        coll.insert_one(doc! {"_id": i, "v": i * 2})
            .write_concern(majority.clone())
            .await?;
    }
    coll.update_many(doc! {"_id": {"$lt": 50}}, doc! {"$inc": {"v": 1}})
        .write_concern(majority.clone())
        .await?;
    let hash = wait_same_data(&refs, "app").await?;
    assert!(!hash.is_empty());

    let status = client
        .database("admin")
        .run_command(doc! {"replSetGetStatus": 1})
        .await?;
    assert_eq!(status.get_str("set")?, "rs0");
    let members = status.get_array("members")?;
    assert_eq!(members.len(), 3);
    let states: Vec<&str> = members
        .iter()
        .filter_map(|m| m.as_document()?.get_str("stateStr").ok())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "PRIMARY").count(), 1, "{states:?}");
    assert_eq!(states.iter().filter(|s| **s == "SECONDARY").count(), 2, "{states:?}");
    let optimes = status.get_document("optimes")?;
    assert!(optimes.get_document("lastCommittedOpTime").is_ok());
    for m in members {
        let m = m.as_document().expect("member document");
        for field in [
            "name",
            "health",
            "state",
            "stateStr",
            "optime",
            "optimeDate",
            "syncSourceHost",
            "configVersion",
        ] {
            assert!(m.contains_key(field), "member field {field} missing: {m}");
        }
    }

    // Secondary reads only with a secondary read preference; the data is there.
    let secondary = (0..3).find(|i| *i != primary).expect("a secondary");
    let direct = nodes[secondary].client().await?;
    let on_secondary = direct.database("app").collection::<Document>("c");
    let err = on_secondary
        .insert_one(doc! {"_id": "x"})
        .await
        .expect_err("writes on a secondary are refused");
    assert_eq!(crate_error_code(&err), Some(10107));
    let reads = SelectionCriteria::ReadPreference(ReadPreference::Secondary {
        options: Default::default(),
    });
    let all: Vec<Document> = on_secondary
        .find(doc! {})
        .selection_criteria(reads)
        .await?
        .try_collect()
        .await?;
    assert_eq!(all.len(), 200);
    Ok(())
}

/// A URI that lists only two of the three hosts still finds the primary; a direct connection to a
/// secondary refuses primary reads (13435) and serves secondary reads.
#[tokio::test(flavor = "multi_thread")]
async fn partial_seed_list_and_direct_secondary_reads() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let others: Vec<&faultline_tests::NodeProcess> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != primary)
        .map(|(_, n)| n)
        .collect();
    let client = mongodb::Client::with_uri_str(set_uri(&others)).await?;
    client
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await?;

    let secondary = others[0];
    let reply = faultline_tests::raw_command(secondary.port, doc! {"find": "c", "$db": "app"}).await?;
    assert_eq!(reply.get_i32("code")?, 13435, "{reply}");
    let port = secondary.port;
    faultline_tests::wait_until(ELECTION, "the insert to reach the secondary", || async move {
        let reply = faultline_tests::raw_command(
            port,
            doc! {"find": "c", "$db": "app", "$readPreference": {"mode": "secondary"}},
        )
        .await
        .ok()?;
        (reply.get_document("cursor").ok()?.get_array("firstBatch").ok()?.len() == 1).then_some(())
    })
    .await?;
    // Majority reads are served by secondaries too, once what they read is majority-committed.
    let majority = faultline_tests::raw_command(
        port,
        doc! {"find": "c", "readConcern": {"level": "majority"}, "$db": "app", "$readPreference": {"mode": "secondary"}},
    )
    .await?;
    assert_eq!(
        majority.get_document("cursor")?.get_array("firstBatch")?.len(),
        1,
        "{majority}"
    );
    Ok(())
}

pub fn crate_error_code(err: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match err.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        _ => None,
    }
}

//! `renameCollection` replicates: secondaries end up with the renamed collection, its documents and its
//! indexes; secondaries count what their oplog applier applied (`opcountersRepl`); the primary counts its
//! election (`electionMetrics`).

use bson::{Bson, Document, doc};
use mongodb::IndexModel;
use mongodb::options::{Acknowledgment, IndexOptions, WriteConcern};

use crate::*;

/// Collection names, index names and document count of `db.coll` read on one member (secondary reads
/// allowed); `None` while the collection does not exist there.
async fn shape_on(node: &faultline_tests::NodeProcess, db: &str, coll: &str) -> Option<(Vec<String>, i64)> {
    let secondary_ok = doc! {"mode": "secondaryPreferred"};
    let listed = raw_command(
        node.port,
        doc! {"listIndexes": coll, "$db": db, "$readPreference": secondary_ok.clone()},
    )
    .await
    .ok()?;
    let mut indexes: Vec<String> = listed
        .get_document("cursor")
        .ok()?
        .get_array("firstBatch")
        .ok()?
        .iter()
        .filter_map(|i| i.as_document()?.get_str("name").ok().map(String::from))
        .collect();
    indexes.sort();
    let count = raw_command(
        node.port,
        doc! {"count": coll, "$db": db, "$readPreference": secondary_ok},
    )
    .await
    .ok()?;
    Some((indexes, count.get_i64("n").ok()?))
}

async fn collection_names(node: &faultline_tests::NodeProcess, db: &str) -> Vec<String> {
    let reply = raw_command(
        node.port,
        doc! {"listCollections": 1, "nameOnly": true, "$db": db, "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await
    .unwrap_or_default();
    let mut names: Vec<String> = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| {
            b.iter()
                .filter_map(|e| e.as_document()?.get_str("name").ok().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn num(doc: &Document, key: &str) -> i64 {
    match doc.get(key) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        other => panic!("{key} is not an integer: {other:?} in {doc}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_collection_replicates_with_documents_and_indexes() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let app = client.database("app");
    let src = app.collection::<Document>("src");
    src.insert_many((0..50).map(|i| doc! {"_id": i, "k": i}))
        .write_concern(majority.clone())
        .await?;
    src.create_index(
        IndexModel::builder()
            .keys(doc! {"k": 1})
            .options(IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await?;
    app.collection::<Document>("dst")
        .insert_one(doc! {"_id": "old target"})
        .write_concern(majority.clone())
        .await?;

    let admin = client.database("admin");
    admin
        .run_command(
            doc! {"renameCollection": "app.src", "to": "app.dst", "dropTarget": true,
            "writeConcern": {"w": "majority"}},
        )
        .await?;
    admin
        .run_command(doc! {"renameCollection": "app.dst", "to": "archive.kept", "writeConcern": {"w": "majority"}})
        .await?;

    for (i, node) in nodes.iter().enumerate() {
        let shape = wait_until(ELECTION, &format!("member {i} to hold archive.kept"), || async move {
            shape_on(node, "archive", "kept").await.filter(|(_, n)| *n == 50)
        })
        .await?;
        assert_eq!(shape.0, ["_id_", "k_1"], "member {i} has the indexes");
        assert!(
            collection_names(node, "app").await.is_empty(),
            "member {i} kept no app collection"
        );
    }
    let hashes: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    wait_same_data(&hashes, "archive").await?;

    // What the secondaries' appliers did, and the primary's election.
    for (i, node) in nodes.iter().enumerate() {
        let status = raw_command(node.port, doc! {"serverStatus": 1, "$db": "admin"}).await?;
        let applied = status.get_document("opcountersRepl")?;
        if i == primary {
            assert_eq!(num(applied, "insert"), 0, "{applied}");
            let elections = status.get_document("electionMetrics")?;
            let won: i64 = ["stepUpCmd", "priorityTakeover", "electionTimeout", "freezeTimeout"]
                .iter()
                .map(|r| num(elections.get_document(r).expect("reason counter"), "successful"))
                .sum();
            assert!(won >= 1, "the primary won an election: {elections}");
        } else {
            assert!(num(applied, "insert") >= 51, "member {i}: {applied}");
            assert!(
                num(applied, "command") >= 3,
                "member {i} applied create/index/rename: {applied}"
            );
        }
    }
    Ok(())
}

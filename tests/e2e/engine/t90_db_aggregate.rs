//! Database-level aggregation (`{aggregate: 1}`) through the Rust driver's `Database::aggregate`: `$documents`
//! feeds its literal documents to the rest of the pipeline on any database, `$listLocalSessions` lists the
//! sessions commands ran in (an ended session leaves the list), `$currentOp` still needs admin, and a stage that
//! reads a collection is refused with InvalidNamespace (73).

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use crate::{error_code, primary};

#[tokio::test(flavor = "multi_thread")]
async fn documents_feed_the_rest_of_the_pipeline_in_batches() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("dbagg");
    let docs: Vec<Bson> = (0..250)
        .map(|i| Bson::Document(doc! {"i": i, "even": i % 2 == 0}))
        .collect();
    let out: Vec<Document> = db
        .aggregate(vec![
            doc! {"$documents": docs},
            doc! {"$match": {"even": true}},
            doc! {"$project": {"_id": 0, "i": 1}},
        ])
        .batch_size(10)
        .await?
        .try_collect()
        .await?;
    let expected: Vec<Document> = (0..250).filter(|i| i % 2 == 0).map(|i| doc! {"i": i}).collect();
    assert_eq!(out, expected, "all 125 even documents, in order, across getMores");

    let reply = db
        .run_command(doc! {"aggregate": 1, "pipeline": [{"$documents": [{"a": 1}]}], "cursor": {}})
        .await?;
    let cursor = reply.get_document("cursor")?;
    assert_eq!(cursor.get_str("ns")?, "dbagg.$cmd.aggregate", "{reply}");
    assert_eq!(cursor.get_array("firstBatch")?.len(), 1, "{reply}");

    let err = db
        .run_command(doc! {"aggregate": 1, "pipeline": [{"$documents": 5}], "cursor": {}})
        .await
        .expect_err("$documents takes an array");
    assert!(error_code(&err).is_some(), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_local_sessions_shows_used_sessions_until_ended() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let admin = client.database("admin");
    let mut session = client.start_session().await?;
    let id = session.id().get("id").cloned().expect("a session id");
    client
        .database("dbagg")
        .collection::<Document>("c")
        .insert_one(doc! {"x": 1})
        .session(&mut session)
        .await?;
    let listed = |sessions: &[Document]| {
        sessions
            .iter()
            .any(|s| s.get_document("_id").ok().and_then(|i| i.get("id")) == Some(&id))
    };
    let sessions: Vec<Document> = admin
        .aggregate(vec![doc! {"$listLocalSessions": {}}])
        .await?
        .try_collect()
        .await?;
    assert!(listed(&sessions), "the used session is listed: {sessions:?}");
    let first = &sessions[0];
    assert!(first.get_datetime("lastUse").is_ok(), "{first}");
    assert_eq!(
        first.get_document("_id")?.get_binary_generic("uid")?.len(),
        32,
        "{first}"
    );

    admin.run_command(doc! {"endSessions": [session.id().clone()]}).await?;
    let after: Vec<Document> = admin
        .aggregate(vec![doc! {"$listLocalSessions": {"allUsers": true}}])
        .await?
        .try_collect()
        .await?;
    assert!(!listed(&after), "an ended session is not listed: {after:?}");

    let err = admin
        .aggregate(vec![doc! {"$listLocalSessions": {"bogus": 1}}])
        .await
        .expect_err("unknown option");
    assert_eq!(error_code(&err), Some(40415), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_stages_and_current_op_outside_admin_are_refused() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("dbagg");
    let err = db
        .aggregate(vec![doc! {"$match": {}}])
        .await
        .expect_err("$match needs a collection");
    assert_eq!(error_code(&err), Some(73), "{err}");
    let err = db
        .aggregate(vec![doc! {"$currentOp": {}}])
        .await
        .expect_err("$currentOp needs admin");
    assert_eq!(error_code(&err), Some(73), "{err}");
    let ops: Vec<Document> = client
        .database("admin")
        .aggregate(vec![doc! {"$currentOp": {}}, doc! {"$match": {"command.aggregate": 1}}])
        .await?
        .try_collect()
        .await?;
    assert!(!ops.is_empty(), "$currentOp sees its own aggregate");
    Ok(())
}

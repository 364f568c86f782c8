//! Change streams through the Rust driver's `runCommand`, on a one-member set: events and their resume
//! tokens (ordered), `fullDocument: updateLookup`, resuming after an event, drop then invalidate (the cursor
//! closes), `startAfter` an invalidate (allowed) and `resumeAfter` one (260), a token older than the oplog
//! (ChangeStreamHistoryLost, 286) and one naming no entry (ChangeStreamFatalError, 280).

use bson::{Bson, Document, doc};

use crate::{error_code, primary};

/// Runs getMores on `id` until `n` events arrived (each waits for new majority-committed entries).
async fn events(
    db: &mongodb::Database,
    coll: &str,
    id: i64,
    mut got: Vec<Document>,
    n: usize,
) -> anyhow::Result<Vec<Document>> {
    for _ in 0..20 {
        if got.len() >= n {
            break;
        }
        let reply = db
            .run_command(doc! {"getMore": id, "collection": coll, "maxTimeMS": 5000i64})
            .await?;
        let cursor = reply.get_document("cursor")?;
        assert!(cursor.get_document("postBatchResumeToken").is_ok(), "{reply}");
        for event in cursor.get_array("nextBatch")? {
            got.push(event.as_document().cloned().expect("an event document"));
        }
        if cursor.get_i64("id")? == 0 {
            break;
        }
    }
    anyhow::ensure!(got.len() >= n, "{n} events expected, got {got:?}");
    Ok(got)
}

fn open(pipeline_stage: Document) -> Document {
    doc! {"aggregate": "c", "pipeline": [{"$changeStream": pipeline_stage}], "cursor": {}}
}

fn first_batch(reply: &Document) -> anyhow::Result<(i64, Vec<Document>)> {
    let cursor = reply.get_document("cursor")?;
    let docs = cursor
        .get_array("firstBatch")?
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect();
    Ok((cursor.get_i64("id")?, docs))
}

fn data(event: &Document) -> String {
    event
        .get_document("_id")
        .and_then(|t| t.get_str("_data"))
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn change_stream_events_resume_and_invalidate() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("cs");
    let coll = db.collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await?;

    let (id, first) = first_batch(&db.run_command(open(doc! {"fullDocument": "updateLookup"})).await?)?;
    assert_ne!(id, 0);
    for i in 1..=3 {
        coll.insert_one(doc! {"_id": i, "x": 0}).await?;
    }
    coll.update_one(doc! {"_id": 2}, doc! {"$set": {"x": 7}}).await?;
    let got = events(&db, "c", id, first, 4).await?;
    let kinds: Vec<&str> = got.iter().map(|e| e.get_str("operationType").unwrap_or("")).collect();
    assert_eq!(kinds, ["insert", "insert", "insert", "update"], "{got:?}");
    assert_eq!(got[3].get_document("fullDocument")?, &doc! {"_id": 2, "x": 7});
    assert_eq!(
        got[3]
            .get_document("updateDescription")?
            .get_document("updatedFields")?,
        &doc! {"x": 7}
    );
    let tokens: Vec<String> = got.iter().map(data).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens in event order: {tokens:?}"
    );

    // Resuming after the first insert gives the rest, from the same oplog.
    let (id2, first) = first_batch(
        &db.run_command(open(doc! {"resumeAfter": got[0].get_document("_id")?.clone()}))
            .await?,
    )?;
    let resumed = events(&db, "c", id2, first, 3).await?;
    assert_eq!(resumed.iter().take(3).map(data).collect::<Vec<_>>(), tokens[1..4]);

    // A drop ends a collection stream: drop, then invalidate, then the cursor is closed.
    coll.drop().await?;
    let ended = events(&db, "c", id, Vec::new(), 2).await?;
    let kinds: Vec<&str> = ended.iter().map(|e| e.get_str("operationType").unwrap_or("")).collect();
    assert_eq!(kinds, ["drop", "invalidate"], "{ended:?}");
    let invalidate = ended[1].get_document("_id")?.clone();
    let err = db
        .run_command(doc! {"getMore": id, "collection": "c"})
        .await
        .expect_err("the invalidated stream's cursor is closed");
    assert_eq!(error_code(&err), Some(43), "{err}");
    db.run_command(open(doc! {"startAfter": invalidate.clone()})).await?;
    let err = db
        .run_command(open(doc! {"resumeAfter": invalidate}))
        .await
        .expect_err("resumeAfter an invalidate is refused");
    assert_eq!(error_code(&err), Some(260), "{err}");

    // A position before the oldest entry is history lost; a token naming no entry cannot be resumed.
    let err = db
        .run_command(open(doc! {"resumeAfter": {"_data": "82000000010000000101"}}))
        .await
        .expect_err("history lost");
    assert_eq!(error_code(&err), Some(286), "{err}");
    let ts = got[0].get_timestamp("clusterTime")?;
    let absent = format!("82{:08X}{:08X}01", ts.time, ts.increment + 100_000);
    let err = db
        .run_command(open(doc! {"resumeAfter": {"_data": absent}}))
        .await
        .expect_err("no entry at that position");
    assert_eq!(error_code(&err), Some(280), "{err}");

    // Projecting out _id fails the stream (280) once an event comes.
    let (id3, _) = first_batch(
        &db.run_command(
            doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}, {"$project": {"_id": 0}}],
            "cursor": {}},
        )
        .await?,
    )?;
    coll.insert_one(doc! {"_id": 9}).await?;
    let err = events(&db, "c", id3, Vec::new(), 1)
        .await
        .expect_err("_id projected out");
    let code = err.downcast_ref::<mongodb::error::Error>().and_then(error_code);
    assert_eq!(code, Some(280), "{err}");
    assert!(matches!(got[0].get("clusterTime"), Some(Bson::Timestamp(_))));
    Ok(())
}

//! Snapshot reads outside transactions (`readConcern: {level: "snapshot", atClusterTime}`), through the Rust
//! driver's snapshot sessions and raw commands: a session's later reads see the state of its first read
//! while writes go on; replies carry `atClusterTime`; a time the member kept no view for is SnapshotTooOld
//! (239), a future one InvalidOptions (72).

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;

use crate::{error_code, primary};

async fn find_all(
    coll: &mongodb::Collection<Document>,
    session: &mut mongodb::ClientSession,
) -> anyhow::Result<Vec<Document>> {
    Ok(coll
        .find(doc! {})
        .session(&mut *session)
        .await?
        .stream(session)
        .try_collect()
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_session_reads_one_point_in_time() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("snapdb");
    let coll = db.collection::<Document>("c");
    coll.insert_many(vec![doc! {"_id": 1, "x": 1}, doc! {"_id": 2, "x": 1}])
        .await?;

    let mut session = client.start_session().snapshot(true).await?;
    let first = find_all(&coll, &mut session).await?;
    assert_eq!(first.len(), 2);
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"x": 2}}).await?;
    coll.insert_one(doc! {"_id": 3, "x": 3}).await?;
    let again = find_all(&coll, &mut session).await?;
    assert_eq!(
        again,
        vec![doc! {"_id": 1, "x": 1}, doc! {"_id": 2, "x": 1}],
        "the first read's state"
    );
    let distinct = coll.distinct("x", doc! {}).session(&mut session).await?;
    assert_eq!(distinct, vec![Bson::Int32(1)]);
    let aggregated: Vec<Document> = coll
        .aggregate(vec![doc! {"$match": {"_id": {"$gte": 1}}}])
        .session(&mut session)
        .await?
        .stream(&mut session)
        .try_collect()
        .await?;
    assert_eq!(aggregated.len(), 2);
    assert_eq!(
        coll.count_documents(doc! {}).await?,
        3,
        "outside the session: the newest state"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_replies_carry_their_time_and_old_times_are_refused() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("snapdb2");
    let coll = db.collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "x": 1}).await?;
    let before = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "majority"}})
        .await?;
    let old_time = before.get_timestamp("operationTime")?;
    coll.insert_one(doc! {"_id": 2}).await?;

    let reply = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "snapshot"}})
        .await?;
    let at = reply.get_document("cursor")?.get_timestamp("atClusterTime")?;
    assert!(at > old_time);
    let distinct = db
        .run_command(doc! {"distinct": "c", "key": "x", "readConcern": {"level": "snapshot", "atClusterTime": at}})
        .await?;
    assert_eq!(distinct.get_timestamp("atClusterTime")?, at);

    // No snapshot read kept a view at the older time, and a write came after it.
    let err = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "snapshot", "atClusterTime": old_time}})
        .await
        .expect_err("no history that old");
    assert_eq!(error_code(&err), Some(239), "{err}");
    let future = bson::Timestamp {
        time: at.time + 3600,
        increment: 1,
    };
    let err = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "snapshot", "atClusterTime": future}})
        .await
        .expect_err("a time in the future");
    assert_eq!(error_code(&err), Some(72), "{err}");
    let err = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "majority", "atClusterTime": at}})
        .await
        .expect_err("atClusterTime needs the snapshot level");
    assert_eq!(error_code(&err), Some(72), "{err}");
    Ok(())
}

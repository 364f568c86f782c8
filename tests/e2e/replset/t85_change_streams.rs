//! Change streams across a failover: a driver's change stream opened on the primary sees every write
//! acknowledged with `w: "majority"` exactly once and in order, resumes on the new primary after the old one
//! is cut off and killed, and never shows the old primary's `w: 1` writes that were never majority-committed.

use std::collections::HashSet;
use std::time::Duration;

use bson::{Bson, Document, doc};
use faultline_tests::raw_command;
use futures_util::StreamExt;
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::ChangeStreamEvent;
use mongodb::options::{Acknowledgment, WriteConcern};

use crate::*;

/// Inserts `{_id: i}` for each `i` in `ids` with `w: "majority"` through the driver (which retries once
/// across a failover); returns the ids acknowledged. A write that failed may or may not have happened.
async fn insert_majority(coll: &mongodb::Collection<Document>, ids: std::ops::Range<i32>) -> Vec<i32> {
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let mut acknowledged = Vec::new();
    for i in ids {
        if coll
            .insert_one(doc! {"_id": i})
            .write_concern(majority.clone())
            .await
            .is_ok()
        {
            acknowledged.push(i);
        }
    }
    acknowledged
}

/// Reads `stream` into `seen` (each event's `_id`) until every id in `wanted` is there. The driver resumes
/// the stream by itself after a resumable error; when it gives up instead (its server selection timed out on
/// the dead member), the stream is reopened from its last resume token, as an application does.
async fn read_until_seen(
    coll: &mongodb::Collection<Document>,
    stream: &mut ChangeStream<ChangeStreamEvent<Document>>,
    wanted: &HashSet<i32>,
    seen: &mut Vec<Bson>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + 3 * ELECTION;
    loop {
        let seen_ids: HashSet<i32> = seen.iter().filter_map(Bson::as_i32).collect();
        if wanted.is_subset(&seen_ids) {
            return Ok(());
        }
        let next = tokio::time::timeout_at(deadline, stream.next()).await.map_err(|_| {
            anyhow::anyhow!(
                "timed out: the stream showed {seen:?}, missing {:?}",
                wanted.difference(&seen_ids).collect::<Vec<_>>()
            )
        })?;
        match next {
            Some(Ok(event)) => {
                if let Some(key) = event.document_key {
                    seen.push(key.get("_id").cloned().unwrap_or(Bson::Null));
                }
            }
            Some(Err(_)) | None => {
                let token = stream.resume_token();
                let watched = coll.clone();
                *stream = faultline_tests::wait_until(ELECTION, "the change stream to reopen from its token", || {
                    let (coll, token) = (watched.clone(), token.clone());
                    async move { coll.watch().resume_after(token).await.ok() }
                })
                .await?;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_stream_survives_failover_without_missing_repeating_or_rolled_back_events() -> anyhow::Result<()> {
    let mut routed = faultline_tests::proxy::start_routed(bin(), 3, &[]).await?;
    let members: Vec<Document> = routed
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| member(i as i32, n))
        .collect();
    let old = initiate(&routed.nodes, config(members)).await?;
    let refs: Vec<&faultline_tests::NodeProcess> = routed.nodes.iter().collect();
    // Server selection gives up on the dead member after 5 s rather than 30.
    let uri = set_uri(&refs).replace("serverSelectionTimeoutMS=30000", "serverSelectionTimeoutMS=5000");
    let client = mongodb::Client::with_uri_str(uri).await?;
    let coll = client.database("app").collection::<Document>("c");
    let mut stream = coll.watch().await?;

    let mut acknowledged = insert_majority(&coll, 0..30).await;
    assert_eq!(acknowledged.len(), 30, "no fault yet: every write is acknowledged");
    // The stream reads these on the old primary, and stays open there.
    let mut seen: Vec<Bson> = Vec::new();
    read_until_seen(&coll, &mut stream, &acknowledged.iter().copied().collect(), &mut seen).await?;

    // The primary, cut off from the others, still takes w:1 writes for a moment: they can never be
    // majority-committed, so no change stream may show them.
    routed.isolate(old);
    let mut unreplicated = Vec::new();
    for i in 0..20 {
        let id = format!("lost-{i}");
        let reply = raw_command(
            routed.nodes[old].port,
            doc! {"insert": "c", "documents": [{"_id": &id}], "writeConcern": {"w": 1}, "$db": "app"},
        )
        .await?;
        if reply.get_i32("n").unwrap_or(0) != 1 {
            break;
        }
        unreplicated.push(id);
    }
    // The stream's getMores on the cut-off primary, which has those writes but cannot commit them: anything
    // they return is checked with the rest below.
    // An error here (the driver could not resume within the wait) is left to `read_until_seen`, which
    // reopens the stream from its token.
    if let Ok(Some(Ok(event))) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await
        && let Some(key) = event.document_key
    {
        seen.push(key.get("_id").cloned().unwrap_or(Bson::Null));
    }
    let new = wait_for_primary(&routed.nodes, &[old]).await?;
    assert_ne!(new, old);
    routed.nodes[old].kill();

    acknowledged.extend(insert_majority(&coll, 30..60).await);

    let wanted: HashSet<i32> = acknowledged.iter().copied().collect();
    read_until_seen(&coll, &mut stream, &wanted, &mut seen).await?;
    // Whatever else arrives within half a second is checked too (a repeat, a lost write).
    while let Ok(Some(Ok(event))) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        if let Some(key) = event.document_key {
            seen.push(key.get("_id").cloned().unwrap_or(Bson::Null));
        }
    }
    let ints: Vec<i32> = seen.iter().filter_map(Bson::as_i32).collect();
    assert_eq!(
        ints.len(),
        seen.len(),
        "only majority writes appear, never {unreplicated:?}: {seen:?}"
    );
    assert!(
        ints.windows(2).all(|w| w[0] < w[1]),
        "every event once and in write order: {ints:?}"
    );
    assert!(ints.iter().all(|i| (0..60).contains(i)), "{ints:?}");
    Ok(())
}

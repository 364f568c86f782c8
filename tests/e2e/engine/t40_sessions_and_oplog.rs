//! Retryable writes are applied once (the session table is durable), and the oplog is readable and
//! tailable as `local.oplog.rs`.

use bson::{Bson, Document, doc};
use faultline_tests::{raw_command, read_reply, send_op_msg};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;

use crate::primary;

fn session() -> Document {
    doc! {"id": bson::Uuid::new()}
}

/// Re-sending a statement with the same lsid/txnNumber/stmtId returns the first result and changes
/// nothing; an older txnNumber is refused (225); the de-duplication survives a crash and restart.
#[tokio::test(flavor = "multi_thread")]
async fn retryable_writes_apply_once() -> anyhow::Result<()> {
    let (mut node, client) = primary().await?;
    let lsid = session();
    let port = node.port;
    let insert =
        doc! {"insert": "r", "documents": [{"_id": 1, "n": 0}], "lsid": lsid.clone(), "txnNumber": 1i64, "$db": "s"};
    for attempt in 0..3 {
        let reply = raw_command(port, insert.clone()).await?;
        assert_eq!(reply.get_i32("n")?, 1, "attempt {attempt}: {reply}");
        assert!(
            reply.get("writeErrors").is_none(),
            "attempt {attempt}: a retry is not a duplicate: {reply}"
        );
    }
    let inc = doc! {"update": "r", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}}], "lsid": lsid.clone(),
    "txnNumber": 2i64, "writeConcern": {"w": 1, "j": true}, "$db": "s"};
    for _ in 0..3 {
        let reply = raw_command(port, inc.clone()).await?;
        assert_eq!((reply.get_i32("n")?, reply.get_i32("nModified")?), (1, 1), "{reply}");
    }
    let coll = client.database("s").collection::<Document>("r");
    assert_eq!(coll.find_one(doc! {"_id": 1}).await?.expect("doc").get_i32("n")?, 1);

    let cas = doc! {"findAndModify": "r", "query": {"_id": 1, "n": 1}, "update": {"$set": {"n": 10}}, "new": true,
    "lsid": lsid.clone(), "txnNumber": 3i64, "writeConcern": {"w": 1, "j": true}, "$db": "s"};
    let first = raw_command(port, cas.clone()).await?;
    assert_eq!(first.get_document("value")?.get_i32("n")?, 10);

    let stale = raw_command(port, insert.clone()).await?;
    assert_eq!(stale.get_i32("code")?, 225, "an older txnNumber is too old: {stale}");

    node.restart().await?;
    node.wait_primary().await?;
    let retried = raw_command(port, cas).await?;
    assert_eq!(
        retried.get_document("value")?.get_i32("n")?,
        10,
        "the retry after restart gets the stored result: {retried}"
    );
    let reply = raw_command(port, inc).await?;
    assert_eq!(reply.get_i32("code")?, 225, "{reply}");
    let client = node.client().await?;
    let doc = client
        .database("s")
        .collection::<Document>("r")
        .find_one(doc! {"_id": 1})
        .await?
        .expect("doc");
    assert_eq!(doc.get_i32("n")?, 10);
    Ok(())
}

/// Inserts, updates and deletes appear in `local.oplog.rs` in MongoDB's entry format; `$inc` is logged as
/// the value it produced; `$natural: -1` reads newest first.
#[tokio::test(flavor = "multi_thread")]
async fn oplog_is_readable_in_mongodb_format() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("app").collection::<Document>("things");
    coll.insert_one(doc! {"_id": "a", "n": 1}).await?;
    coll.update_one(doc! {"_id": "a"}, doc! {"$inc": {"n": 41}}).await?;
    coll.delete_one(doc! {"_id": "a"}).await?;
    let oplog = client.database("local").collection::<Document>("oplog.rs");
    let newest: Vec<Document> = oplog
        .find(doc! {"ns": "app.things"})
        .sort(doc! {"$natural": -1})
        .await?
        .try_collect()
        .await?;
    let ops: Vec<&str> = newest.iter().map(|e| e.get_str("op").unwrap_or("?")).collect();
    assert_eq!(ops, vec!["d", "u", "i"]);
    let update = &newest[1];
    let diff = update.get_document("o")?.get_document("diff")?;
    assert_eq!(
        diff.get_document("u")?.get_i32("n")?,
        42,
        "the update is logged as its result: {update}"
    );
    assert_eq!(update.get_document("o2")?.get_str("_id")?, "a");
    for entry in &newest {
        assert!(matches!(entry.get("ts"), Some(Bson::Timestamp(_))), "{entry}");
        assert!(entry.get_i64("t")? >= 1);
        assert!(matches!(entry.get("wall"), Some(Bson::DateTime(_))));
        assert!(matches!(entry.get("ui"), Some(Bson::Binary(_))));
    }
    let creates = oplog.count_documents(doc! {"op": "c", "o.create": "things"}).await?;
    assert_eq!(creates, 1, "implicit creation logs a create command");
    let ts: Vec<u64> = newest
        .iter()
        .rev()
        .map(|e| {
            e.get_timestamp("ts")
                .map(|t| (u64::from(t.time) << 32) | u64::from(t.increment))
                .unwrap_or(0)
        })
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "timestamps strictly increase");
    Ok(())
}

/// A tailable awaitData cursor on the oplog blocks in getMore until a new entry arrives.
#[tokio::test(flavor = "multi_thread")]
async fn tailable_oplog_cursor_waits_for_new_entries() -> anyhow::Result<()> {
    let (node, client) = primary().await?;
    let last = client
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! {"$natural": -1})
        .await?
        .expect("the oplog has the initiate entries");
    let last_ts = last.get_timestamp("ts")?;
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).await?;
    send_op_msg(
        &mut stream,
        1,
        &doc! {"find": "oplog.rs", "filter": {"ts": {"$gt": last_ts}}, "tailable": true,
        "awaitData": true, "$db": "local"},
    )
    .await?;
    let first = read_reply(&mut stream).await?;
    let cursor = first.get_document("cursor")?;
    let id = cursor.get_i64("id")?;
    assert_ne!(id, 0, "a tailable cursor stays open at the end of the oplog: {first}");
    assert!(cursor.get_array("firstBatch")?.is_empty());

    let writer = client.clone();
    let insert = tokio::spawn(async move {
        writer
            .database("tail")
            .collection::<Document>("c")
            .insert_one(doc! {"_id": "new"})
            .await
    });
    let mut seen = Vec::new();
    for request in 2..20 {
        send_op_msg(
            &mut stream,
            request,
            &doc! {"getMore": id, "collection": "oplog.rs", "maxTimeMS": 10_000i64, "$db": "local"},
        )
        .await?;
        let more = read_reply(&mut stream).await?;
        let batch = more.get_document("cursor")?.get_array("nextBatch")?.clone();
        seen.extend(batch.into_iter().filter_map(|b| b.as_document().cloned()));
        if seen.iter().any(|e| e.get_str("op").ok() == Some("i")) {
            break;
        }
    }
    insert.await??;
    let entry = seen
        .iter()
        .find(|e| e.get_str("op").ok() == Some("i"))
        .expect("the insert reached the tailing cursor");
    assert_eq!(entry.get_str("ns")?, "tail.c");
    Ok(())
}

/// The newest oplog entry's `ts` and `wall`, read through the driver.
async fn newest_entry(client: &mongodb::Client) -> anyhow::Result<(bson::Timestamp, bson::DateTime)> {
    let oplog = client.database("local").collection::<Document>("oplog.rs");
    let entry = oplog
        .find_one(doc! {})
        .sort(doc! {"$natural": -1})
        .await?
        .ok_or_else(|| anyhow::anyhow!("the oplog is empty"))?;
    Ok((entry.get_timestamp("ts")?, *entry.get_datetime("wall")?))
}

/// The `skewClock` fail point runs the member's wall clock ahead: oplog timestamps and wall times follow it.
/// Turned off, the clock is true again but timestamps never go backwards. It refuses a missing offset.
#[tokio::test(flavor = "multi_thread")]
async fn skew_clock_moves_oplog_timestamps_and_never_backwards() -> anyhow::Result<()> {
    let (node, client) = primary().await?;
    let coll = client.database("app").collection::<Document>("clock");
    let hour_ms: i64 = 3_600_000;
    let refused = raw_command(
        node.port,
        doc! {"configureFailPoint": "skewClock", "mode": "alwaysOn", "$db": "admin"},
    )
    .await?;
    assert_eq!(refused.get_f64("ok")?, 0.0, "an offset is required: {refused}");
    let reply = raw_command(
        node.port,
        doc! {"configureFailPoint": "skewClock", "mode": "alwaysOn", "data": {"offsetMillis": hour_ms}, "$db": "admin"},
    )
    .await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");

    let before_ms = bson::DateTime::now().timestamp_millis();
    coll.insert_one(doc! {"_id": 1}).await?;
    let (skewed_ts, skewed_wall) = newest_entry(&client).await?;
    let ahead_ms = skewed_wall.timestamp_millis() - before_ms;
    assert!(
        (hour_ms - 60_000..hour_ms + 60_000).contains(&ahead_ms),
        "the entry's wall time is an hour ahead: {ahead_ms} ms"
    );
    assert!(
        i64::from(skewed_ts.time) * 1000 >= before_ms + hour_ms - 60_000,
        "the timestamp is an hour ahead: {skewed_ts:?}"
    );
    let status = raw_command(node.port, doc! {"serverStatus": 1, "$db": "admin"}).await?;
    let local_ahead_ms = status.get_datetime("localTime")?.timestamp_millis() - before_ms;
    assert!(
        (hour_ms - 60_000..hour_ms + 60_000).contains(&local_ahead_ms),
        "serverStatus's localTime is an hour ahead: {local_ahead_ms} ms"
    );

    let reply = raw_command(
        node.port,
        doc! {"configureFailPoint": "skewClock", "mode": "off", "$db": "admin"},
    )
    .await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");
    coll.insert_one(doc! {"_id": 2}).await?;
    let (after_ts, after_wall) = newest_entry(&client).await?;
    assert!(
        after_wall.timestamp_millis() < before_ms + 60_000,
        "the wall clock is true again: {after_wall}"
    );
    assert!(
        (after_ts.time, after_ts.increment) > (skewed_ts.time, skewed_ts.increment),
        "timestamps never go backwards: {after_ts:?} after {skewed_ts:?}"
    );
    Ok(())
}

/// Every batch of a tailing cursor whose filter is only a `ts` bound (a member's oplog fetcher; the entries
/// go out as stored, never decoded) holds what a cursor with a further filter (decoded and matched) holds,
/// in the same reply shape, within the same `batchSize`.
#[tokio::test(flavor = "multi_thread")]
async fn an_oplog_tail_served_as_stored_matches_one_served_decoded() -> anyhow::Result<()> {
    let (node, client) = primary().await?;
    let (start, _) = newest_entry(&client).await?;
    let coll = client.database("tail").collection::<Document>("stored");
    for i in 0..7i32 {
        coll.insert_one(doc! {"_id": i, "text": "x".repeat(100 * i as usize), "nested": {"a": [i, {"b": i}]}})
            .await?;
    }
    coll.update_one(doc! {"_id": 3}, doc! {"$set": {"text": "updated"}})
        .await?;
    coll.delete_one(doc! {"_id": 4}).await?;
    let (newest, _) = newest_entry(&client).await?;

    let mut request = 0;
    let mut tail = |filter: Document| {
        let port = node.port;
        request += 100;
        let first_request = request;
        async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
            send_op_msg(
                &mut stream,
                first_request,
                &doc! {"find": "oplog.rs", "filter": filter, "tailable": true, "awaitData": true,
                "batchSize": 0, "$db": "local"},
            )
            .await?;
            let first = read_reply(&mut stream).await?;
            let id = first.get_document("cursor")?.get_i64("id")?;
            let (mut entries, mut replies) = (Vec::new(), Vec::new());
            for request in first_request + 1..first_request + 50 {
                send_op_msg(
                    &mut stream,
                    request,
                    &doc! {"getMore": id, "collection": "oplog.rs", "batchSize": 2, "maxTimeMS": 10i64,
                    "$db": "local"},
                )
                .await?;
                let mut reply = read_reply(&mut stream).await?;
                let cursor = reply.get_document_mut("cursor")?;
                let batch = cursor.remove("nextBatch");
                let Some(Bson::Array(batch)) = batch else {
                    anyhow::bail!("a getMore reply without nextBatch: {reply}");
                };
                assert!(batch.len() <= 2, "batchSize 2 is honoured: {} entries", batch.len());
                entries.extend(batch.into_iter().filter_map(|b| b.as_document().cloned()));
                reply.remove("$clusterTime");
                reply.remove("operationTime");
                replies.push(reply);
                if entries.last().and_then(|e| e.get_timestamp("ts").ok()) == Some(newest) {
                    break;
                }
            }
            anyhow::Ok((entries, replies))
        }
    };
    let (stored, stored_replies) = tail(doc! {"ts": {"$gte": start}}).await?;
    let (decoded, decoded_replies) = tail(doc! {"ts": {"$gte": start}, "op": {"$exists": true}}).await?;
    assert!(stored.len() >= 9, "the inserts, the update and the delete: {stored:?}");
    assert_eq!(stored, decoded, "the same entries, byte for byte once decoded");
    assert_eq!(
        stored_replies
            .iter()
            .map(|r| r.keys().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        decoded_replies
            .iter()
            .map(|r| r.keys().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        "the same reply fields"
    );
    for reply in stored_replies.iter().chain(&decoded_replies) {
        let cursor = reply.get_document("cursor")?;
        assert_eq!(cursor.get_str("ns")?, "local.oplog.rs");
        assert_eq!(reply.get_f64("ok")?, 1.0);
    }
    Ok(())
}

//! Smaller server features the drivers' specification tests need, through the Rust driver: `$setField` /
//! `$unsetField` / `$getField` in pipeline-style updates and aggregation, the refusal of a `$`-prefixed
//! field name inside `_id` (52), collations (case-insensitive finds, counts, distinct, updates, deletes and
//! sorts; NotImplemented, 238, for what the engine cannot collate), and the refusal of writes and catalog
//! reads with `readConcern: snapshot` (72).

use bson::{Document, doc};
use futures_util::TryStreamExt;

use crate::{error_code, primary};

#[tokio::test(flavor = "multi_thread")]
async fn set_field_writes_dotted_and_dollar_prefixed_names() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("specmisc").collection::<Document>("fields");
    coll.insert_one(doc! {"_id": 1, "foo": {}}).await?;
    coll.update_one(
        doc! {"_id": 1},
        vec![doc! {"$replaceWith": {"$setField": {"field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}}],
    )
    .await?;
    coll.update_one(
        doc! {"_id": 1},
        vec![doc! {"$set": {"foo": {"$setField": {"field": "a.b", "value": 2, "input": "$foo"}}}}],
    )
    .await?;
    let stored = coll.find_one(doc! {"_id": 1}).await?.expect("the document");
    assert_eq!(stored, doc! {"_id": 1, "foo": {"a.b": 2}, "$a": 1});

    let read: Vec<Document> = coll
        .aggregate(vec![doc! {"$project": {
            "_id": 0,
            "dollar": {"$getField": {"$literal": "$a"}},
            "dotted": {"$getField": {"field": "a.b", "input": "$foo"}},
            "without": {"$unsetField": {"field": {"$literal": "$a"}, "input": "$$ROOT"}},
        }}])
        .await?
        .try_collect()
        .await?;
    assert_eq!(
        read,
        vec![doc! {"dollar": 1, "dotted": 2, "without": {"_id": 1, "foo": {"a.b": 2}}}]
    );

    let err = coll
        .update_one(
            doc! {"_id": 1},
            vec![doc! {"$set": {"foo": {"$setField": {"field": "$x", "value": 1, "input": "$foo"}}}}],
        )
        .await
        .expect_err("a field path as the field name");
    assert_eq!(error_code(&err), Some(4161108), "{err}");
    let err = coll
        .update_one(
            doc! {"_id": 1},
            vec![doc! {"$set": {"foo": {"$setField": {"field": "x", "value": 1, "input": 5}}}}],
        )
        .await
        .expect_err("an input that is not a document");
    assert_eq!(error_code(&err), Some(4161105), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dollar_prefixed_names_inside_id_are_refused() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("specmisc").collection::<Document>("ids");
    let err = coll
        .insert_one(doc! {"_id": {"$a": 1}})
        .await
        .expect_err("a $-prefixed name in _id");
    assert_eq!(error_code(&err), Some(52), "{err}");
    let err = coll
        .insert_one(doc! {"_id": {"x": {"$b": 1}}})
        .await
        .expect_err("a nested $-prefixed name in _id");
    assert_eq!(error_code(&err), Some(52), "{err}");
    coll.insert_one(doc! {"_id": {"$ref": "c", "$id": 1}}).await?;
    coll.insert_one(doc! {"_id": 2, "$c": 1}).await?;
    assert_eq!(coll.count_documents(doc! {}).await?, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_insensitive_collation_applies_to_reads_and_writes() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("specmisc");
    let coll = db.collection::<Document>("collated");
    coll.insert_many(vec![
        doc! {"_id": 1, "x": "ping"},
        doc! {"_id": 2, "x": "PING"},
        doc! {"_id": 3, "x": "Pong"},
        doc! {"_id": 4, "x": "pïng"},
    ])
    .await?;
    let strength2 = doc! {"locale": "en_US", "strength": 2};
    let find = |filter: Document, sort: Document| {
        doc! {"find": "collated", "filter": filter, "sort": sort, "collation": strength2.clone()}
    };
    let ids = |reply: Document| -> Vec<i32> {
        reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|docs| {
                docs.iter()
                    .filter_map(|d| d.as_document().and_then(|d| d.get_i32("_id").ok()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        ids(db.run_command(find(doc! {"x": "Ping"}, doc! {"_id": 1})).await?),
        [1, 2]
    );
    assert_eq!(
        ids(db
            .run_command(find(doc! {"x": {"$gt": "PING"}}, doc! {"_id": 1}))
            .await?),
        [3, 4],
        "pïng sorts after ping at strength 2, before pong"
    );
    // Sorted by the collation: ping = PING (stable by _id), then pïng, then Pong.
    assert_eq!(
        ids(db.run_command(find(doc! {}, doc! {"x": 1, "_id": 1})).await?),
        [1, 2, 4, 3]
    );
    let sorted = db
        .run_command(
            doc! {"aggregate": "collated", "pipeline": [{"$sort": {"x": 1, "_id": 1}}, {"$limit": 10}],
            "cursor": {}, "collation": strength2.clone()},
        )
        .await?;
    assert_eq!(ids(sorted), [1, 2, 4, 3], "an aggregation's $sort under the collation");
    let count = db
        .run_command(doc! {"count": "collated", "query": {"x": "PONG"}, "collation": strength2.clone()})
        .await?;
    assert_eq!(count.get_i32("n").or_else(|_| count.get_i64("n").map(|n| n as i32))?, 1);
    let distinct = db
        .run_command(doc! {"distinct": "collated", "key": "x", "collation": strength2.clone()})
        .await?;
    assert_eq!(distinct.get_array("values")?.len(), 3, "{distinct}");
    let updated = db
        .run_command(doc! {"update": "collated", "updates": [
            {"q": {"x": "PING"}, "u": {"$set": {"y": 1}}, "multi": true, "collation": strength2.clone()}
        ]})
        .await?;
    assert_eq!(updated.get_i32("nModified")?, 2, "{updated}");
    let deleted = db
        .run_command(doc! {"delete": "collated", "deletes": [
            {"q": {"x": "pong"}, "limit": 0, "collation": strength2.clone()}
        ]})
        .await?;
    assert_eq!(deleted.get_i32("n")?, 1, "{deleted}");
    // Without a collation, binary comparison as before.
    assert_eq!(coll.count_documents(doc! {"x": "PING"}).await?, 1);

    let refused = |body: Document| {
        let db = db.clone();
        async move { db.run_command(body).await.err().and_then(|e| error_code(&e)) }
    };
    assert_eq!(
        refused(doc! {"find": "collated", "filter": {"x": {"$regex": "^p"}}, "collation": strength2.clone()}).await,
        Some(238)
    );
    assert_eq!(
        refused(doc! {"find": "collated", "collation": {"locale": "sv", "strength": 1}}).await,
        Some(238)
    );
    assert_eq!(
        refused(doc! {"aggregate": "collated", "pipeline": [{"$group": {"_id": "$x"}}], "cursor": {}, "collation": strength2.clone()}).await,
        Some(238)
    );
    let reply = db
        .run_command(doc! {"update": "collated", "updates": [
            {"q": {}, "u": {"$addToSet": {"l": "A"}}, "collation": strength2.clone()}
        ]})
        .await?;
    let first_error = reply.get_array("writeErrors")?[0]
        .as_document()
        .cloned()
        .unwrap_or_default();
    assert_eq!(first_error.get_i32("code")?, 238, "{reply}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_read_concern_is_refused_outside_reads() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("specmisc");
    let snapshot = doc! {"level": "snapshot"};
    for body in [
        doc! {"insert": "snap", "documents": [{"_id": 1}], "readConcern": snapshot.clone()},
        doc! {"update": "snap", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}], "readConcern": snapshot.clone()},
        doc! {"delete": "snap", "deletes": [{"q": {}, "limit": 1}], "readConcern": snapshot.clone()},
        doc! {"findAndModify": "snap", "query": {}, "remove": true, "readConcern": snapshot.clone()},
        doc! {"listCollections": 1, "readConcern": snapshot.clone()},
        doc! {"listIndexes": "snap", "readConcern": snapshot.clone()},
        doc! {"count": "snap", "readConcern": snapshot.clone()},
    ] {
        let err = db
            .run_command(body.clone())
            .await
            .expect_err("snapshot read concern refused");
        assert_eq!(error_code(&err), Some(72), "{body}: {err}");
    }
    let err = client
        .database("admin")
        .run_command(doc! {"listDatabases": 1, "readConcern": snapshot.clone()})
        .await
        .expect_err("snapshot read concern refused");
    assert_eq!(error_code(&err), Some(72), "{err}");
    assert_eq!(
        db.collection::<Document>("snap").count_documents(doc! {}).await?,
        0,
        "nothing written"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn return_key_and_min_max_bounds() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("specmisc");
    let coll = db.collection::<Document>("keys");
    coll.insert_many((1..=6).map(|i| doc! {"_id": i, "x": i * 11})).await?;
    coll.insert_one(doc! {"_id": "s", "x": 0}).await?;
    let batch = |reply: Document| -> anyhow::Result<Vec<Document>> {
        Ok(reply
            .get_document("cursor")?
            .get_array("firstBatch")?
            .iter()
            .filter_map(|d| d.as_document().cloned())
            .collect())
    };
    // The _id index serves the sort: its keys are returned; a collection scan has no keys.
    let keys = batch(
        db.run_command(doc! {"find": "keys", "filter": {"_id": {"$lte": 2}}, "sort": {"_id": 1}, "returnKey": true})
            .await?,
    )?;
    assert_eq!(keys, vec![doc! {"_id": 1}, doc! {"_id": 2}]);
    let scanned = batch(
        db.run_command(doc! {"find": "keys", "filter": {"x": 11}, "returnKey": true})
            .await?,
    )?;
    assert_eq!(scanned, vec![doc! {}]);

    // min inclusive, max exclusive, in index order: {_id: 2} up to (not including) {_id: 5}.
    let bounded = batch(
        db.run_command(
            doc! {"find": "keys", "hint": {"_id": 1}, "min": {"_id": 2}, "max": {"_id": 5}, "sort": {"_id": 1}},
        )
        .await?,
    )?;
    let ids: Vec<i32> = bounded.iter().filter_map(|d| d.get_i32("_id").ok()).collect();
    assert_eq!(ids, [2, 3, 4]);
    // Index bounds cross types: numbers sort before strings, so the string _id is above min {_id: 5}.
    let above = batch(
        db.run_command(doc! {"find": "keys", "hint": "_id_", "min": {"_id": 5}})
            .await?,
    )?;
    assert_eq!(above.len(), 3, "{above:?}");
    let err = db
        .run_command(doc! {"find": "keys", "min": {"_id": 2}})
        .await
        .expect_err("min without a hint");
    assert_eq!(error_code(&err), Some(2), "{err}");
    let err = db
        .run_command(doc! {"find": "keys", "hint": {"_id": 1}, "min": {"x": 2}})
        .await
        .expect_err("min on other fields than the index's");
    assert_eq!(error_code(&err), Some(51174), "{err}");
    Ok(())
}

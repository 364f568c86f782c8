//! Positional update operators: `$` (the array element the query matched), `$[]` (every element) and
//! `$[<identifier>]` with `arrayFilters`, in update, findAndModify and the driver's bulk writes, with
//! MongoDB's errors.

use bson::{Document, doc};
use faultline_tests::raw_command;

use crate::primary;

async fn update(port: u16, q: Document, u: Document, extra: Document) -> anyhow::Result<Document> {
    let mut statement = doc! {"q": q, "u": u};
    statement.extend(extra);
    raw_command(port, doc! {"update": "c", "updates": [statement], "$db": "pos"}).await
}

async fn stored(port: u16, id: i32) -> anyhow::Result<Document> {
    let reply = raw_command(port, doc! {"find": "c", "filter": {"_id": id}, "$db": "pos"}).await?;
    Ok(reply.get_document("cursor")?.get_array("firstBatch")?[0]
        .as_document()
        .cloned()
        .unwrap_or_default())
}

/// The first write error's code and message.
fn write_error(reply: &Document) -> (i32, String) {
    let err = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|e| e.first())
        .and_then(|e| e.as_document())
        .cloned()
        .unwrap_or_else(|| panic!("no write error in {reply}"));
    (
        err.get_i32("code").unwrap_or(0),
        err.get_str("errmsg").unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn positional_operators_update_the_elements_they_name() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    raw_command(
        port,
        doc! {"insert": "c", "documents": [
            {"_id": 1, "grades": [80, 85, 90]},
            {"_id": 2, "items": [{"n": "a", "q": 1}, {"n": "b", "q": 2}]},
            {"_id": 3, "y": [{"b": 3}, {"b": 1}, {"b": 3}]},
            {"_id": 4, "m": [[1, 2], [3, 4]]},
        ], "$db": "pos"},
    )
    .await?;

    let reply = update(
        port,
        doc! {"_id": 1, "grades": 85},
        doc! {"$set": {"grades.$": 82}},
        doc! {},
    )
    .await?;
    assert_eq!(reply.get_i32("nModified")?, 1, "{reply}");
    assert_eq!(stored(port, 1).await?, doc! {"_id": 1, "grades": [80, 82, 90]});

    update(port, doc! {"items.n": "b"}, doc! {"$inc": {"items.$.q": 5}}, doc! {}).await?;
    update(
        port,
        doc! {"items": {"$elemMatch": {"n": "a", "q": 1}}},
        doc! {"$set": {"items.$.n": "A"}},
        doc! {},
    )
    .await?;
    assert_eq!(
        stored(port, 2).await?,
        doc! {"_id": 2, "items": [{"n": "A", "q": 1}, {"n": "b", "q": 7}]}
    );

    update(port, doc! {"_id": 1}, doc! {"$inc": {"grades.$[]": 1}}, doc! {}).await?;
    assert_eq!(stored(port, 1).await?, doc! {"_id": 1, "grades": [81, 83, 91]});
    update(
        port,
        doc! {"_id": 1},
        doc! {"$set": {"grades.$[high]": 100}},
        doc! {"arrayFilters": [{"high": {"$gte": 83}}]},
    )
    .await?;
    assert_eq!(stored(port, 1).await?, doc! {"_id": 1, "grades": [81, 100, 100]});

    update(
        port,
        doc! {"_id": 3},
        doc! {"$set": {"y.$[i].b": 2}},
        doc! {"arrayFilters": [{"i.b": 3}]},
    )
    .await?;
    assert_eq!(
        stored(port, 3).await?,
        doc! {"_id": 3, "y": [{"b": 2}, {"b": 1}, {"b": 2}]}
    );
    update(
        port,
        doc! {"_id": 4},
        doc! {"$inc": {"m.$[].$[v]": 10}},
        doc! {"arrayFilters": [{"v": {"$gt": 2}}]},
    )
    .await?;
    assert_eq!(stored(port, 4).await?, doc! {"_id": 4, "m": [[1, 2], [13, 14]]});

    let fam = raw_command(
        port,
        doc! {"findAndModify": "c", "query": {"_id": 3}, "update": {"$set": {"y.$[e].b": 9}},
        "arrayFilters": [{"e.b": 1}], "new": true, "$db": "pos"},
    )
    .await?;
    assert_eq!(
        fam.get_document("value")?,
        &doc! {"_id": 3, "y": [{"b": 2}, {"b": 9}, {"b": 2}]},
        "{fam}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn positional_errors_are_mongodbs() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    raw_command(
        port,
        doc! {"insert": "c", "documents": [{"_id": 1, "a": [1, 2], "s": 5}], "$db": "pos"},
    )
    .await?;
    let cases = [
        (
            doc! {"_id": 1},
            doc! {"$set": {"a.$": 9}},
            doc! {},
            2,
            "The positional operator did not find the match needed from the query.",
        ),
        (
            doc! {"_id": 1},
            doc! {"$set": {"a.$[i]": 9}},
            doc! {},
            2,
            "No array filter found for identifier 'i' in path 'a.$[i]'",
        ),
        (
            doc! {"_id": 1},
            doc! {"$set": {"a.$[i]": 9}},
            doc! {"arrayFilters": [{"i": 1}, {"j": 2}]},
            9,
            "The array filter for identifier 'j' was not used in the update",
        ),
        (
            doc! {"_id": 1},
            doc! {"$set": {"a.$[I]": 9}},
            doc! {"arrayFilters": [{"I": 1}]},
            2,
            "The top-level field name must be an alphanumeric string beginning with a lowercase letter, found 'I'",
        ),
        (
            doc! {"_id": 1},
            doc! {"$set": {"a.$[i]": 9}},
            doc! {"arrayFilters": [{"i": 1}, {"i": 2}]},
            9,
            "Found multiple array filters with the same top-level field name i",
        ),
        (
            doc! {"_id": 1},
            doc! {"$set": {"s.$[]": 9}},
            doc! {},
            2,
            "Cannot apply array updates to non-array element s: 5",
        ),
        (
            doc! {"_id": 1},
            doc! {"$set": {"none.$[]": 9}},
            doc! {},
            2,
            "The path 'none' must exist in the document in order to apply array updates.",
        ),
        (
            doc! {"_id": 1, "a": 1},
            doc! {"$set": {"a.$.$": 9}},
            doc! {},
            2,
            "Too many positional (i.e. '$') elements found in path 'a.$.$'",
        ),
    ];
    for (q, u, extra, code, message) in cases {
        let reply = update(port, q, u.clone(), extra).await?;
        let (got, errmsg) = write_error(&reply);
        assert_eq!(got, code, "{u}: {reply}");
        assert!(errmsg.contains(message), "{u}: {errmsg:?} should contain {message:?}");
    }
    assert_eq!(stored(port, 1).await?, doc! {"_id": 1, "a": [1, 2], "s": 5});
    Ok(())
}

/// The driver's updateOne and updateMany with `arrayFilters` (the crud specification's bulkWrite-arrayFilters).
#[tokio::test(flavor = "multi_thread")]
async fn the_drivers_updates_take_array_filters() -> anyhow::Result<()> {
    let (node, client) = primary().await?;
    let coll = client.database("pos").collection::<Document>("c");
    coll.insert_many([
        doc! {"_id": 1, "y": [{"b": 3}, {"b": 1}]},
        doc! {"_id": 2, "y": [{"b": 0}, {"b": 1}]},
    ])
    .await?;
    let one = coll
        .update_one(doc! {}, doc! {"$set": {"y.$[i].b": 2}})
        .array_filters(vec![doc! {"i.b": 3}])
        .await?;
    assert_eq!((one.matched_count, one.modified_count), (1, 1));
    let updated = coll
        .update_many(doc! {}, doc! {"$set": {"y.$[i].b": 2}})
        .array_filters(vec![doc! {"i.b": 1}])
        .await?;
    assert_eq!((updated.matched_count, updated.modified_count), (2, 2));
    let docs: Vec<Document> = {
        use futures_util::TryStreamExt;
        coll.find(doc! {}).sort(doc! {"_id": 1}).await?.try_collect().await?
    };
    assert_eq!(
        docs,
        vec![
            doc! {"_id": 1, "y": [{"b": 2}, {"b": 2}]},
            doc! {"_id": 2, "y": [{"b": 0}, {"b": 2}]},
        ]
    );
    drop(node);
    Ok(())
}

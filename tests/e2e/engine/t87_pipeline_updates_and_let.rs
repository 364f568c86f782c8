//! Pipeline-style updates (an array of `$set`/`$addFields`/`$unset`/`$project`/`$replaceRoot`/`$replaceWith`
//! stages) in update and findAndModify, and `let` variables (`$$name`) in find, aggregate, update, delete and
//! findAndModify, with the system variables `$$NOW` and `$$CLUSTER_TIME`.

use bson::{Bson, Document, doc};
use faultline_tests::raw_command;

use crate::primary;

async fn run(port: u16, mut body: Document) -> anyhow::Result<Document> {
    body.insert("$db", "pl");
    raw_command(port, body).await
}

async fn all(port: u16) -> anyhow::Result<Vec<Document>> {
    let reply = run(port, doc! {"find": "c", "sort": {"_id": 1}}).await?;
    Ok(reply
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect())
}

fn first_batch(reply: &Document) -> Vec<Bson> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .cloned()
        .unwrap_or_else(|_| panic!("no first batch in {reply}"))
}

fn write_error_code(reply: &Document) -> Option<i32> {
    reply
        .get_array("writeErrors")
        .ok()?
        .first()?
        .as_document()?
        .get_i32("code")
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_updates_run_their_stages() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    run(
        port,
        doc! {"insert": "c", "documents": [{"_id": 1, "a": 1, "b": 2}, {"_id": 2, "a": 10, "b": 20}]},
    )
    .await?;
    let reply = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1},
        "u": [{"$set": {"total": {"$add": ["$a", "$b"]}}}, {"$unset": "a"}]}]},
    )
    .await?;
    assert_eq!((reply.get_i32("n")?, reply.get_i32("nModified")?), (1, 1), "{reply}");
    let reply = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 2}, "u": [{"$replaceWith": {"x": "$b"}}]},
        {"q": {"_id": 3}, "u": [{"$addFields": {"n": 1}}, {"$project": {"n": 1}}], "upsert": true}]},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 2, "{reply}");
    assert_eq!(
        all(port).await?,
        vec![
            doc! {"_id": 1, "b": 2, "total": 3},
            doc! {"_id": 2, "x": 20},
            doc! {"_id": 3, "n": 1}
        ]
    );
    let fam = run(
        port,
        doc! {"findAndModify": "c", "query": {"_id": 1}, "update": [{"$set": {"b": {"$multiply": ["$b", 10]}}}],
        "new": true},
    )
    .await?;
    assert_eq!(
        fam.get_document("value")?,
        &doc! {"_id": 1, "b": 20, "total": 3},
        "{fam}"
    );

    let refused = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": [{"$match": {"b": 1}}]}]},
    )
    .await?;
    assert_eq!(write_error_code(&refused), Some(72), "$match in an update: {refused}");
    let refused = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": [{"$set": {"b": 1}}], "arrayFilters": [{"i": 1}]}]},
    )
    .await?;
    assert_eq!(
        write_error_code(&refused),
        Some(9),
        "arrayFilters with a pipeline: {refused}"
    );
    let refused = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": [{"$set": {"_id": 5}}]}]},
    )
    .await?;
    assert_eq!(write_error_code(&refused), Some(66), "changing _id: {refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn let_variables_reach_every_command() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    run(
        port,
        doc! {"insert": "c", "documents": [{"_id": 1, "b": 1}, {"_id": 2, "b": 2}, {"_id": 3, "b": 3}]},
    )
    .await?;
    let found = run(
        port,
        doc! {"find": "c", "filter": {"$expr": {"$eq": ["$b", "$$target"]}}, "let": {"target": 2}},
    )
    .await?;
    assert_eq!(
        first_batch(&found),
        vec![Bson::Document(doc! {"_id": 2, "b": 2})],
        "{found}"
    );

    let aggregated = run(
        port,
        doc! {"aggregate": "c", "pipeline": [{"$match": {"$expr": {"$gt": ["$b", "$$min"]}}},
        {"$project": {"_id": 1, "label": "$$tag", "deep": "$$obj.k"}}],
        "let": {"min": 2, "tag": "x", "obj": {"k": "v"}}, "cursor": {}},
    )
    .await?;
    assert_eq!(
        first_batch(&aggregated),
        vec![Bson::Document(doc! {"_id": 3, "label": "x", "deep": "v"})],
        "{aggregated}"
    );

    // The crud specification's aggregate-let: a constant, a $literal and a closed expression ($rand).
    let spec_case = run(
        port,
        doc! {"aggregate": "c", "pipeline": [{"$match": {"$expr": {"$eq": ["$_id", "$$id"]}}},
        {"$project": {"_id": 0, "x": "$$x", "y": "$$y", "rand": "$$rand"}}],
        "let": {"id": 1, "x": "foo", "y": {"$literal": "$bar"}, "rand": {"$rand": {}}}, "cursor": {}},
    )
    .await?;
    let only = first_batch(&spec_case);
    let only = only.first().and_then(Bson::as_document).cloned().unwrap_or_default();
    assert_eq!((only.get_str("x")?, only.get_str("y")?), ("foo", "$bar"), "{spec_case}");
    assert!(matches!(only.get("rand"), Some(Bson::Double(_))), "{spec_case}");

    let updated = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"$expr": {"$eq": ["$_id", "$$id"]}}, "u": [{"$set": {"n": "$$v"}}]}],
        "let": {"id": 1, "v": 5}},
    )
    .await?;
    assert_eq!(updated.get_i32("nModified")?, 1, "{updated}");
    let deleted = run(
        port,
        doc! {"delete": "c", "deletes": [{"q": {"$expr": {"$eq": ["$_id", "$$id"]}}, "limit": 1}], "let": {"id": 2}},
    )
    .await?;
    assert_eq!(deleted.get_i32("n")?, 1, "{deleted}");
    let fam = run(
        port,
        doc! {"findAndModify": "c", "query": {"$expr": {"$eq": ["$_id", "$$id"]}},
        "update": [{"$set": {"m": "$$v"}}], "new": true, "let": {"id": 3, "v": "w"}},
    )
    .await?;
    assert_eq!(fam.get_document("value")?, &doc! {"_id": 3, "b": 3, "m": "w"}, "{fam}");
    assert_eq!(
        all(port).await?,
        vec![doc! {"_id": 1, "b": 1, "n": 5}, doc! {"_id": 3, "b": 3, "m": "w"}]
    );

    // The system variables: $$NOW in a pipeline update, $$CLUSTER_TIME in a projection.
    run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": [{"$set": {"at": "$$NOW"}}]}]},
    )
    .await?;
    let stamped = run(
        port,
        doc! {"aggregate": "c", "pipeline": [{"$match": {"_id": 1}}, {"$project": {"at": 1, "ct": "$$CLUSTER_TIME"}}],
        "cursor": {}},
    )
    .await?;
    let stamped = first_batch(&stamped);
    let stamped = stamped.first().and_then(Bson::as_document).cloned().unwrap_or_default();
    assert!(matches!(stamped.get("at"), Some(Bson::DateTime(_))), "{stamped}");
    assert!(matches!(stamped.get("ct"), Some(Bson::Timestamp(_))), "{stamped}");

    let undefined = run(
        port,
        doc! {"find": "c", "filter": {"$expr": {"$eq": ["$b", "$$nope"]}}, "let": {"other": 1}},
    )
    .await?;
    assert_eq!(undefined.get_i32("code").ok(), Some(17276), "{undefined}");
    Ok(())
}

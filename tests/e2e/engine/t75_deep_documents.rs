//! Hostile nesting against a live member: documents the server itself would build deeper than MongoDB's
//! storage limit (180 levels, `BSONDepth::getMaxDepthForUserStorage()`) are refused with `Overflow` (15),
//! nothing deeper is ever stored, and the member keeps serving, before and after a restart.
//!
//! The wire decoder already refuses messages nested past 200 levels; these cases build the depth on the
//! server: a long dotted path in `$set`, in an upsert, in `findAndModify`, in a projection or in an
//! aggregation stage.

use bson::{Bson, Document, doc};
use faultline_tests::{NodeProcess, raw_command};

use crate::primary;

/// MongoDB's storage depth limit.
const LIMIT: usize = 180;

/// `{a: {a: ... {a: 1}}}`, `levels` deep (the top-level document is level 1).
fn nested(levels: usize) -> Document {
    let mut doc = doc! {"a": 1};
    for _ in 1..levels {
        doc = doc! {"a": doc};
    }
    doc
}

/// `a.a.…a` with `parts` parts.
fn dotted(parts: usize) -> String {
    vec!["a"; parts].join(".")
}

async fn command(node: &NodeProcess, mut body: Document) -> anyhow::Result<Document> {
    body.insert("$db", "deep");
    raw_command(node.port, body).await
}

async fn assert_alive(node: &NodeProcess, after: &str) -> anyhow::Result<()> {
    let reply = raw_command(node.port, doc! {"ping": 1, "$db": "admin"})
        .await
        .map_err(|e| anyhow::anyhow!("the member stopped answering after {after}: {e}\nlog:\n{}", node.log()))?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "ping after {after}: {reply}");
    Ok(())
}

/// The code of a command error, or of the first write error.
fn error_code(reply: &Document) -> Option<i32> {
    if reply.get_f64("ok").ok() == Some(0.0) {
        return reply.get_i32("code").ok();
    }
    let errors = reply.get_array("writeErrors").ok()?;
    errors.first()?.as_document()?.get_i32("code").ok()
}

fn error_message(reply: &Document) -> String {
    if let Ok(message) = reply.get_str("errmsg") {
        return message.to_string();
    }
    reply
        .get_array("writeErrors")
        .ok()
        .and_then(|errors| errors.first()?.as_document()?.get_str("errmsg").ok())
        .unwrap_or_default()
        .to_string()
}

async fn all_documents(node: &NodeProcess) -> anyhow::Result<Vec<Document>> {
    let reply = command(node, doc! {"find": "c", "filter": {}, "sort": {"_id": 1}}).await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "find: {reply}");
    Ok(reply
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect())
}

/// The case: a 1,500-part `$set` path (and far longer ones) is refused with Overflow, stores nothing,
/// and neither a `find` nor a restart takes the member down.
#[tokio::test(flavor = "multi_thread")]
async fn long_dotted_update_paths_are_refused_and_the_member_keeps_serving() -> anyhow::Result<()> {
    let (mut node, _client) = primary().await?;
    let reply = command(&node, doc! {"insert": "c", "documents": [{"_id": 1, "x": 1}]}).await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");

    for parts in [1_500, 20_000] {
        let reply = command(
            &node,
            doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {dotted(parts): 1}}}]},
        )
        .await?;
        assert_eq!(error_code(&reply), Some(15), "$set with {parts} parts: {reply}");
        assert_eq!(reply.get_i32("nModified")?, 0, "{reply}");
        assert_alive(&node, &format!("a {parts}-part $set")).await?;

        let reply = command(
            &node,
            doc! {"update": "c", "updates": [{"q": {"_id": 2}, "u": {"$set": {dotted(parts): 1}}, "upsert": true}]},
        )
        .await?;
        assert_eq!(error_code(&reply), Some(15), "upsert with {parts} parts: {reply}");
        let reply = command(
            &node,
            doc! {"findAndModify": "c", "query": {"_id": 1}, "update": {"$set": {dotted(parts): 1}}, "new": true},
        )
        .await?;
        assert_eq!(
            error_code(&reply),
            Some(15),
            "findAndModify with {parts} parts: {reply}"
        );
        assert_alive(&node, &format!("a {parts}-part upsert and findAndModify")).await?;
    }
    assert_eq!(all_documents(&node).await?, vec![doc! {"_id": 1, "x": 1}]);

    node.restart().await?;
    node.wait_primary().await?;
    assert_eq!(all_documents(&node).await?, vec![doc! {"_id": 1, "x": 1}]);
    assert_alive(&node, "a restart").await
}

/// Exactly at the limit is stored and read back; one level more is Overflow with MongoDB's wording, whether
/// inserted whole or built by an update, and is not stored.
#[tokio::test(flavor = "multi_thread")]
async fn documents_past_the_storage_limit_are_never_stored() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let mut at_limit = nested(LIMIT);
    at_limit.insert("_id", 1);
    let reply = command(&node, doc! {"insert": "c", "documents": [at_limit.clone()]}).await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");

    let mut too_deep = nested(LIMIT + 1);
    too_deep.insert("_id", 2);
    let reply = command(&node, doc! {"insert": "c", "documents": [too_deep]}).await?;
    assert_eq!(error_code(&reply), Some(15), "{reply}");
    assert_eq!(
        error_message(&reply),
        format!("cannot insert document because it exceeds {LIMIT} levels of nesting")
    );

    let reply = command(
        &node,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {dotted(LIMIT): {"b": 1}}}}]},
    )
    .await?;
    assert_eq!(error_code(&reply), Some(15), "{reply}");
    assert_eq!(
        error_message(&reply),
        format!("Document exceeds maximum nesting depth of {LIMIT}")
    );
    let reply = command(
        &node,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {dotted(LIMIT): 2}}}]},
    )
    .await?;
    assert_eq!(reply.get_i32("nModified")?, 1, "exactly at the limit: {reply}");

    let docs = all_documents(&node).await?;
    assert_eq!(docs.len(), 1, "only the document at the limit is stored");
    assert_eq!(docs[0].get("_id"), Some(&Bson::Int32(1)));
    assert_alive(&node, "deep inserts and updates").await
}

/// Long dotted paths in projections, filters and pipelines are refused with MongoDB's codes, and a projection
/// or pipeline that would build a document past the limit fails instead of returning it.
#[tokio::test(flavor = "multi_thread")]
async fn long_paths_in_reads_are_refused_without_crashing() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    command(&node, doc! {"insert": "c", "documents": [{"_id": 1, "a": {"a": 1}}]}).await?;

    let reply = command(&node, doc! {"find": "c", "projection": {dotted(1_500): 1}}).await?;
    assert_eq!(error_code(&reply), Some(15), "projection: {reply}");
    assert_eq!(error_message(&reply), "FieldPath is too long");
    let reply = command(&node, doc! {"find": "c", "filter": {dotted(1_500): 1}}).await?;
    assert_eq!(error_code(&reply), Some(5729100), "filter: {reply}");
    let reply = command(&node, doc! {"find": "c", "sort": {dotted(1_500): 1}}).await?;
    assert_eq!(error_code(&reply), Some(15), "sort: {reply}");
    let reply = command(
        &node,
        doc! {"aggregate": "c", "pipeline": [{"$addFields": {dotted(1_500): 1}}], "cursor": {}},
    )
    .await?;
    assert_eq!(error_code(&reply), Some(15), "$addFields: {reply}");
    let reply = command(
        &node,
        doc! {"aggregate": "c", "pipeline": [{"$project": {"x": format!("${}", dotted(1_500))}}], "cursor": {}},
    )
    .await?;
    assert_eq!(error_code(&reply), Some(15), "$project of a field path: {reply}");
    assert_alive(&node, "long paths in reads").await?;

    // Within the path limits, but building past the depth limit.
    let reply = command(
        &node,
        doc! {"find": "c", "projection": {dotted(150): {"$literal": nested(100)}}},
    )
    .await?;
    assert_eq!(
        error_code(&reply),
        Some(15),
        "a projection building 250 levels: {reply}"
    );
    let pipeline = vec![doc! {"$addFields": {"x": "$$ROOT"}}; LIMIT + 20];
    let reply = command(&node, doc! {"aggregate": "c", "pipeline": pipeline, "cursor": {}}).await?;
    assert_eq!(error_code(&reply), Some(15), "200 stages of $$ROOT: {reply}");
    assert_alive(&node, "reads building deep documents").await?;
    assert_eq!(all_documents(&node).await?.len(), 1);
    Ok(())
}

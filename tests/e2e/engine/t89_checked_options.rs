//! Options the engine used to accept and ignore are checked: a `hint` must name an existing index (2), a
//! `collation` the engine cannot honour (a locale with its own rules, or on an index or collection) is refused
//! as not implemented (238) instead of comparing bytes silently, `min`/`max` need a hint (2) naming an index
//! with their fields (51174), and a collection `validator` is enforced on writes (121) unless bypassed.

use bson::{Document, doc};
use faultline_tests::raw_command;

use crate::primary;

async fn run(port: u16, mut body: Document) -> anyhow::Result<Document> {
    body.insert("$db", "opt");
    raw_command(port, body).await
}

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok().or_else(|| {
        reply
            .get_array("writeErrors")
            .ok()?
            .first()?
            .as_document()?
            .get_i32("code")
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hint_must_name_an_existing_index() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    run(port, doc! {"insert": "c", "documents": [{"_id": 1, "x": 1}]}).await?;
    run(
        port,
        doc! {"createIndexes": "c", "indexes": [{"key": {"x": 1}, "name": "x_1"}]},
    )
    .await?;
    let good = [
        doc! {"find": "c", "hint": "x_1"},
        doc! {"find": "c", "hint": {"x": 1}},
        doc! {"find": "c", "hint": {"$natural": 1}},
        doc! {"find": "c", "hint": "_id_"},
        doc! {"count": "c", "hint": {"_id": 1}},
        doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "hint": "x_1"},
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"y": 1}}, "hint": "x_1"}]},
        doc! {"delete": "c", "deletes": [{"q": {"_id": 9}, "limit": 1, "hint": {"x": 1}}]},
        doc! {"findAndModify": "c", "query": {"_id": 1}, "update": {"$set": {"y": 2}}, "hint": "x_1"},
        doc! {"find": "missing", "hint": "nope"},
    ];
    for command in good {
        let reply = run(port, command.clone()).await?;
        assert_eq!(code(&reply), None, "{command}: {reply}");
    }
    let bad = [
        doc! {"find": "c", "hint": "nope"},
        doc! {"find": "c", "hint": {"y": 1}},
        doc! {"count": "c", "hint": "nope"},
        doc! {"distinct": "c", "key": "x", "hint": "nope"},
        doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "hint": {"y": -1}},
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"y": 3}}, "hint": "nope"}]},
        doc! {"delete": "c", "deletes": [{"q": {"_id": 1}, "limit": 1, "hint": "nope"}]},
        doc! {"findAndModify": "c", "query": {"_id": 1}, "remove": true, "hint": "nope"},
    ];
    for command in bad {
        let reply = run(port, command.clone()).await?;
        assert_eq!(code(&reply), Some(2), "{command}: {reply}");
    }
    let found = run(port, doc! {"find": "c"}).await?;
    let batch = found.get_document("cursor")?.get_array("firstBatch")?;
    assert_eq!(batch.len(), 1, "nothing was deleted: {found}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn collation_and_min_max_are_refused_not_ignored() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    run(port, doc! {"insert": "c", "documents": [{"_id": 1, "s": "a"}]}).await?;
    let simple = run(port, doc! {"find": "c", "collation": {"locale": "simple"}}).await?;
    assert_eq!(code(&simple), None, "{simple}");
    let cases = [
        (doc! {"find": "c", "collation": {"locale": "sv", "strength": 2}}, 238),
        (doc! {"find": "c", "collation": {"strength": 2}}, 40414),
        (
            doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "collation": {"locale": "sv"}},
            238,
        ),
        (doc! {"count": "c", "collation": {"locale": "sv"}}, 238),
        (doc! {"distinct": "c", "key": "s", "collation": {"locale": "sv"}}, 238),
        (
            doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"t": 1}}, "collation": {"locale": "sv"}}]},
            238,
        ),
        (
            doc! {"delete": "c", "deletes": [{"q": {}, "limit": 0, "collation": {"locale": "sv"}}]},
            238,
        ),
        (
            doc! {"findAndModify": "c", "query": {}, "remove": true, "collation": {"locale": "sv"}},
            238,
        ),
        (doc! {"create": "d", "collation": {"locale": "fr"}}, 238),
        (
            doc! {"createIndexes": "c", "indexes": [{"key": {"s": 1}, "name": "s_1", "collation": {"locale": "fr"}}]},
            238,
        ),
        (doc! {"find": "c", "min": {"_id": 0}}, 2),
        (doc! {"find": "c", "max": {"s": 5}, "hint": "_id_"}, 51174),
    ];
    for (command, expected) in cases {
        let reply = run(port, command.clone()).await?;
        assert_eq!(code(&reply), Some(expected), "{command}: {reply}");
    }
    let found = run(port, doc! {"find": "c"}).await?;
    assert_eq!(
        found.get_document("cursor")?.get_array("firstBatch")?.len(),
        1,
        "{found}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collection_validator_is_enforced() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    let created = run(port, doc! {"create": "v", "validator": {"n": {"$gte": 0}}}).await?;
    assert_eq!(code(&created), None, "{created}");
    let ok = run(port, doc! {"insert": "v", "documents": [{"_id": 1, "n": 1}]}).await?;
    assert_eq!(ok.get_i32("n")?, 1, "{ok}");
    let refused = run(port, doc! {"insert": "v", "documents": [{"_id": 2, "n": -1}]}).await?;
    assert_eq!(code(&refused), Some(121), "{refused}");
    let refused = run(
        port,
        doc! {"update": "v", "updates": [{"q": {"_id": 1}, "u": {"$set": {"n": -5}}}]},
    )
    .await?;
    assert_eq!(code(&refused), Some(121), "{refused}");
    let refused = run(
        port,
        doc! {"findAndModify": "v", "query": {"_id": 1}, "update": {"$set": {"n": -5}}},
    )
    .await?;
    assert_eq!(code(&refused), Some(121), "{refused}");
    // errInfo says which document failed and why (MongoDB 5.0's details).
    let info = refused.get_document("errInfo")?;
    assert_eq!(info.get_i32("failingDocumentId")?, 1, "{refused}");
    assert_eq!(
        info.get_document("details")?,
        &doc! {"operatorName": "$gte", "specifiedAs": {"n": {"$gte": 0}}, "reason": "comparison failed", "consideredValue": -5},
        "{refused}"
    );
    let bypassed = run(
        port,
        doc! {"insert": "v", "documents": [{"_id": 3, "n": -1}], "bypassDocumentValidation": true},
    )
    .await?;
    assert_eq!(bypassed.get_i32("n")?, 1, "{bypassed}");
    let warned = run(
        port,
        doc! {"create": "w", "validator": {"n": {"$gte": 0}}, "validationAction": "warn"},
    )
    .await?;
    assert_eq!(code(&warned), None, "{warned}");
    let accepted = run(port, doc! {"insert": "w", "documents": [{"_id": 1, "n": -1}]}).await?;
    assert_eq!(accepted.get_i32("n")?, 1, "validationAction warn only logs: {accepted}");
    let bad = run(port, doc! {"create": "x", "validator": {"n": {"$bogus": 0}}}).await?;
    assert_eq!(code(&bad), Some(2), "a validator that does not parse is refused: {bad}");
    Ok(())
}

/// A field an update or delete statement does not have (MongoDB 8.0's `sort` among them: this engine is 7.0)
/// fails the whole command as mongod's parser fails it, never silently ignored.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_statement_fields_are_refused() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    run(
        port,
        doc! {"insert": "c", "documents": [{"_id": 1, "x": 1}, {"_id": 2, "x": 2}]},
    )
    .await?;
    let sorted = run(
        port,
        doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"y": 1}}, "sort": {"x": -1}}]},
    )
    .await?;
    assert_eq!(code(&sorted), Some(40415), "{sorted}");
    assert_eq!(
        sorted.get_str("errmsg")?,
        "BSON field 'update.updates.sort' is an unknown field.",
        "{sorted}"
    );
    let bogus = run(
        port,
        doc! {"delete": "c", "deletes": [{"q": {}, "limit": 1, "bogus": 1}]},
    )
    .await?;
    assert_eq!(code(&bogus), Some(40415), "{bogus}");
    let untouched = run(port, doc! {"find": "c", "filter": {"y": 1}}).await?;
    let batch = untouched.get_document("cursor")?.get_array("firstBatch")?;
    assert!(batch.is_empty(), "a refused update changed nothing: {untouched}");
    let known = run(
        port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"y": 1}}, "upsert": false,
        "multi": false, "hint": {"_id": 1}, "collation": {"locale": "simple"}, "arrayFilters": [], "c": {}}]},
    )
    .await?;
    assert_eq!(known.get_i32("nModified")?, 1, "{known}");
    Ok(())
}

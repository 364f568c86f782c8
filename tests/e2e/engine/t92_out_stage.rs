//! `$out` through the Rust driver: the pipeline's output replaces the target collection (its indexes kept),
//! documents without `_id` get one, `{db, coll}` writes to another database, `{aggregate: 1}` with `$documents`
//! can `$out` too, and a duplicate key (11000) or the target's validator (121) fails the stage, leaving the
//! target as it was; a linearizable read concern is refused (72).

use bson::{Document, doc};
use futures_util::TryStreamExt;

use crate::{error_code, primary};

#[tokio::test(flavor = "multi_thread")]
async fn out_replaces_the_target_collection() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("outdb");
    let source = db.collection::<Document>("src");
    let target = db.collection::<Document>("dst");
    source.insert_many((0..5).map(|i| doc! {"_id": i, "x": i})).await?;
    target.insert_one(doc! {"_id": 100, "old": true}).await?;
    db.run_command(doc! {"createIndexes": "dst", "indexes": [{"key": {"x": 1}, "name": "x_1", "unique": true}]})
        .await?;

    let returned: Vec<Document> = source
        .aggregate(vec![doc! {"$match": {"x": {"$gte": 2}}}, doc! {"$out": "dst"}])
        .await?
        .try_collect()
        .await?;
    assert!(returned.is_empty(), "$out returns no documents");
    let written: Vec<Document> = target.find(doc! {}).sort(doc! {"_id": 1}).await?.try_collect().await?;
    assert_eq!(written, (2..5).map(|i| doc! {"_id": i, "x": i}).collect::<Vec<_>>());
    let indexes = target.list_index_names().await?;
    assert!(indexes.contains(&"x_1".to_string()), "{indexes:?}");

    let err = source
        .aggregate(vec![
            doc! {"$project": {"_id": 0, "x": {"$literal": 1}}},
            doc! {"$out": "dst"},
        ])
        .await
        .expect_err("the unique index x_1 refuses two x: 1");
    assert_eq!(error_code(&err), Some(11000), "{err}");
    assert_eq!(target.count_documents(doc! {}).await?, 3, "the target is as it was");

    source
        .aggregate(vec![
            doc! {"$project": {"_id": 0, "x": 1}},
            doc! {"$out": {"db": "otherdb", "coll": "copy"}},
        ])
        .await?;
    let copy: Vec<Document> = client
        .database("otherdb")
        .collection::<Document>("copy")
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    assert_eq!(copy.len(), 5);
    assert!(copy.iter().all(|d| d.get_object_id("_id").is_ok()), "{copy:?}");

    db.aggregate(vec![
        doc! {"$documents": [{"_id": 1, "a": 1}]},
        doc! {"$out": "fromdocs"},
    ])
    .await?;
    assert_eq!(db.collection::<Document>("fromdocs").count_documents(doc! {}).await?, 1);

    db.run_command(doc! {"collMod": "fromdocs", "validator": {"a": {"$gt": 5}}})
        .await?;
    let err = db
        .aggregate(vec![
            doc! {"$documents": [{"_id": 2, "a": 2}]},
            doc! {"$out": "fromdocs"},
        ])
        .await
        .expect_err("the target's validator refuses a: 2");
    assert_eq!(error_code(&err), Some(121), "{err}");
    db.aggregate(vec![
        doc! {"$documents": [{"_id": 2, "a": 2}]},
        doc! {"$out": "fromdocs"},
    ])
    .bypass_document_validation(true)
    .await?;
    let err = db
        .run_command(doc! {"aggregate": "src", "pipeline": [{"$out": "dst"}], "cursor": {},
        "readConcern": {"level": "linearizable"}})
        .await
        .expect_err("no $out with linearizable reads");
    assert_eq!(error_code(&err), Some(72), "{err}");

    let err = source
        .aggregate(vec![doc! {"$out": "dst"}, doc! {"$match": {}}])
        .await
        .expect_err("$out must be last");
    assert_eq!(error_code(&err), Some(40601), "{err}");
    Ok(())
}

//! `$merge` through the Rust driver: the defaults (on `_id`, merge, insert), every `whenMatched` and
//! `whenNotMatched` mode, a pipeline with `$$new` and `let`, `on` other fields with the unique index they
//! need (51183 without), a missing `on` field (51132), and the codes MongoDB gives (11000, 13113, 40601).

use bson::{Document, doc};
use futures_util::TryStreamExt;

use crate::{error_code, primary};

async fn contents(coll: &mongodb::Collection<Document>) -> anyhow::Result<Vec<Document>> {
    Ok(coll.find(doc! {}).sort(doc! {"_id": 1}).await?.try_collect().await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_modes_insert_replace_merge_keep_and_fail() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("mergedb");
    let source = db.collection::<Document>("src");
    let target = db.collection::<Document>("dst");
    source
        .insert_many(vec![doc! {"_id": 1, "a": 10}, doc! {"_id": 2, "a": 20}])
        .await?;
    target.insert_one(doc! {"_id": 1, "a": 1, "b": 1}).await?;
    let merge = |spec: Document| vec![doc! {"$merge": spec}];

    // Defaults: merge the matched one's fields, insert the other; the cursor is empty.
    let returned: Vec<Document> = source
        .aggregate(merge(doc! {"into": "dst"}))
        .await?
        .try_collect()
        .await?;
    assert!(returned.is_empty());
    assert_eq!(
        contents(&target).await?,
        vec![doc! {"_id": 1, "a": 10, "b": 1}, doc! {"_id": 2, "a": 20}]
    );

    target.update_one(doc! {"_id": 1}, doc! {"$set": {"a": 1}}).await?;
    source
        .aggregate(merge(doc! {"into": "dst", "whenMatched": "keepExisting"}))
        .await?;
    assert_eq!(contents(&target).await?[0], doc! {"_id": 1, "a": 1, "b": 1});
    source
        .aggregate(merge(doc! {"into": "dst", "whenMatched": "replace"}))
        .await?;
    assert_eq!(contents(&target).await?[0], doc! {"_id": 1, "a": 10});
    source
        .aggregate(merge(doc! {
            "into": "dst",
            "whenMatched": [{"$set": {"a": {"$add": ["$a", "$$new.a"]}}}],
        }))
        .await?;
    assert_eq!(contents(&target).await?[0], doc! {"_id": 1, "a": 20});
    source
        .aggregate(merge(doc! {
            "into": "dst",
            "let": {"twice": {"$multiply": ["$a", 2]}},
            "whenMatched": [{"$set": {"t": "$$twice"}}],
        }))
        .await?;
    assert_eq!(
        contents(&target).await?,
        vec![doc! {"_id": 1, "a": 20, "t": 20}, doc! {"_id": 2, "a": 40, "t": 40}]
    );

    let err = source
        .aggregate(merge(doc! {"into": "dst", "whenMatched": "fail"}))
        .await
        .expect_err("matched documents fail");
    assert_eq!(error_code(&err), Some(11000), "{err}");
    source.insert_one(doc! {"_id": 3, "a": 30}).await?;
    let err = source
        .aggregate(merge(
            doc! {"into": "dst", "whenMatched": "keepExisting", "whenNotMatched": "fail"},
        ))
        .await
        .expect_err("an unmatched document fails");
    assert_eq!(error_code(&err), Some(13113), "{err}");
    source
        .aggregate(merge(
            doc! {"into": "dst", "whenMatched": "keepExisting", "whenNotMatched": "discard"},
        ))
        .await?;
    assert_eq!(target.count_documents(doc! {}).await?, 2, "discarded");

    // A string names the target; a database-level pipeline can merge too.
    db.aggregate(vec![doc! {"$documents": [{"_id": 9, "z": 1}]}, doc! {"$merge": "dst"}])
        .await?;
    assert_eq!(target.count_documents(doc! {"_id": 9}).await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_on_other_fields_needs_a_unique_index() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("mergedb2");
    let source = db.collection::<Document>("src");
    let target = db.collection::<Document>("dst");
    source
        .insert_many(vec![
            doc! {"_id": 1, "k": "a", "v": 1},
            doc! {"_id": 2, "k": "b", "v": 2},
        ])
        .await?;
    target.insert_one(doc! {"_id": 100, "k": "a", "v": 0}).await?;
    let pipeline = vec![
        doc! {"$project": {"_id": 0, "k": 1, "v": 1}},
        doc! {"$merge": {"into": "dst", "on": "k"}},
    ];
    let err = source
        .aggregate(pipeline.clone())
        .await
        .expect_err("no unique index on k");
    assert_eq!(error_code(&err), Some(51183), "{err}");
    db.run_command(doc! {"createIndexes": "dst", "indexes": [{"key": {"k": 1}, "name": "k_1", "unique": true}]})
        .await?;
    source.aggregate(pipeline).await?;
    let docs = contents(&target).await?;
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[0], doc! {"_id": 100, "k": "a", "v": 1});
    assert_eq!(docs[1].get_str("k")?, "b");

    let err = source
        .aggregate(vec![
            doc! {"$project": {"k": 0}},
            doc! {"$merge": {"into": "dst", "on": "k"}},
        ])
        .await
        .expect_err("an output document without k");
    assert_eq!(error_code(&err), Some(51132), "{err}");
    let err = source
        .aggregate(vec![doc! {"$merge": {"into": "dst"}}, doc! {"$match": {}}])
        .await
        .expect_err("$merge not last");
    assert_eq!(error_code(&err), Some(40601), "{err}");
    let err = source
        .aggregate(vec![doc! {"$merge": {"into": "dst", "whenMatched": "nope"}}])
        .await
        .expect_err("an unknown mode");
    assert_eq!(error_code(&err), Some(2), "{err}");
    Ok(())
}

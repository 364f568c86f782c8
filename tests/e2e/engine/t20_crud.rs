//! CRUD through the official driver: inserts, every update operator, upserts, multi-updates, deletes and
//! findAndModify used as compare-and-set.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::ReturnDocument;

use crate::{error_code, primary};

/// Inserting, finding with filters/projection/sort/skip/limit, and the duplicate-key error.
#[tokio::test(flavor = "multi_thread")]
async fn insert_find_and_duplicate_keys() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("shop").collection::<Document>("items");
    coll.insert_many(vec![
        doc! {"_id": 1, "name": "apple", "qty": 5, "tags": ["red", "fruit"], "dim": {"w": 3}},
        doc! {"_id": 2, "name": "pear", "qty": 0, "tags": ["green", "fruit"]},
        doc! {"_id": 3, "name": "kale", "qty": 12, "tags": ["green"], "dim": {"w": 9}},
    ])
    .await?;
    let generated = coll.insert_one(doc! {"name": "no id"}).await?;
    assert!(matches!(generated.inserted_id, Bson::ObjectId(_)));

    let green: Vec<Document> = coll
        .find(doc! {"tags": "green", "qty": {"$gte": 0}})
        .sort(doc! {"qty": -1})
        .projection(doc! {"name": 1, "_id": 0})
        .await?
        .try_collect()
        .await?;
    assert_eq!(green, vec![doc! {"name": "kale"}, doc! {"name": "pear"}]);

    let second: Vec<Document> = coll
        .find(doc! {"qty": {"$exists": true}})
        .sort(doc! {"_id": 1})
        .skip(1)
        .limit(1)
        .await?
        .try_collect()
        .await?;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].get_i32("_id")?, 2);

    let dotted = coll.find_one(doc! {"dim.w": {"$gt": 5}}).await?.expect("kale matches");
    assert_eq!(dotted.get_str("name")?, "kale");
    let ors = coll
        .count_documents(doc! {"$or": [{"name": "apple"}, {"qty": {"$in": [12, 99]}}]})
        .await?;
    assert_eq!(ors, 2);

    let dup = coll
        .insert_one(doc! {"_id": 1, "name": "again"})
        .await
        .expect_err("duplicate _id");
    assert_eq!(error_code(&dup), Some(11000));
    // The same value as another numeric type is the same key.
    let dup = coll
        .insert_one(doc! {"_id": 1.0, "name": "again"})
        .await
        .expect_err("1.0 == 1");
    assert_eq!(error_code(&dup), Some(11000));
    assert_eq!(coll.count_documents(doc! {}).await?, 4);
    Ok(())
}

/// Every update operator the issue lists, applied through update_one, and read back.
#[tokio::test(flavor = "multi_thread")]
async fn update_operators() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("ops").collection::<Document>("c");
    coll.insert_one(
        doc! {"_id": 1, "n": 10, "m": 3, "lo": 5, "hi": 5, "arr": [1, 2, 3], "set": ["a"], "old": "x", "gone": true},
    )
    .await?;
    let update = doc! {
        "$set": {"s": "set", "nested.deep": 1},
        "$unset": {"gone": ""},
        "$inc": {"n": 5},
        "$mul": {"m": 2},
        "$min": {"lo": 1},
        "$max": {"hi": 9},
        "$push": {"arr": 4},
        "$addToSet": {"set": {"$each": ["a", "b"]}},
        "$rename": {"old": "new"},
        "$currentDate": {"when": true},
        "$setOnInsert": {"never": true},
    };
    let result = coll.update_one(doc! {"_id": 1}, update).await?;
    assert_eq!((result.matched_count, result.modified_count), (1, 1));
    coll.update_one(doc! {"_id": 1}, doc! {"$pull": {"arr": 2}, "$pop": {"set": -1}})
        .await?;
    let doc = coll.find_one(doc! {"_id": 1}).await?.expect("document exists");
    assert_eq!(doc.get_i32("n")?, 15);
    assert_eq!(doc.get_i32("m")?, 6);
    assert_eq!(doc.get_i32("lo")?, 1);
    assert_eq!(doc.get_i32("hi")?, 9);
    assert_eq!(
        doc.get_array("arr")?,
        &vec![Bson::Int32(1), Bson::Int32(3), Bson::Int32(4)]
    );
    assert_eq!(doc.get_array("set")?, &vec![Bson::String("b".into())]);
    assert_eq!(doc.get_str("new")?, "x");
    assert!(!doc.contains_key("old") && !doc.contains_key("gone") && !doc.contains_key("never"));
    assert_eq!(doc.get_document("nested")?.get_i32("deep")?, 1);
    assert!(matches!(doc.get("when"), Some(Bson::DateTime(_))));

    let err = coll
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"s": 1}})
        .await
        .expect_err("$inc on a string");
    assert_eq!(error_code(&err), Some(14));
    let err = coll
        .update_one(doc! {"_id": 1}, doc! {"$set": {"_id": 2}})
        .await
        .expect_err("_id is immutable");
    assert_eq!(error_code(&err), Some(66));
    Ok(())
}

/// Upserts (operator and replacement), multi-updates, replacements and deletes.
#[tokio::test(flavor = "multi_thread")]
async fn upserts_multi_updates_and_deletes() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("ops").collection::<Document>("u");
    let up = coll
        .update_one(
            doc! {"key": "k1"},
            doc! {"$inc": {"count": 1}, "$setOnInsert": {"created": true}},
        )
        .upsert(true)
        .await?;
    assert_eq!(up.matched_count, 0);
    let id = up.upserted_id.expect("upserted");
    let doc = coll.find_one(doc! {"_id": id.clone()}).await?.expect("upserted doc");
    assert_eq!(
        (doc.get_str("key")?, doc.get_i32("count")?, doc.get_bool("created")?),
        ("k1", 1, true)
    );
    let again = coll
        .update_one(
            doc! {"key": "k1"},
            doc! {"$inc": {"count": 1}, "$setOnInsert": {"created": false}},
        )
        .upsert(true)
        .await?;
    assert_eq!(
        (again.matched_count, again.modified_count, again.upserted_id),
        (1, 1, None)
    );

    coll.replace_one(doc! {"_id": "r"}, doc! {"v": 1}).upsert(true).await?;
    assert_eq!(coll.find_one(doc! {"_id": "r"}).await?, Some(doc! {"_id": "r", "v": 1}));
    coll.replace_one(doc! {"_id": "r"}, doc! {"v": 2}).await?;
    assert_eq!(coll.find_one(doc! {"_id": "r"}).await?, Some(doc! {"_id": "r", "v": 2}));

    coll.insert_many((0..10).map(|i| doc! {"_id": 100 + i, "group": i % 2}))
        .await?;
    let multi = coll
        .update_many(doc! {"group": 1}, doc! {"$set": {"odd": true}})
        .await?;
    assert_eq!((multi.matched_count, multi.modified_count), (5, 5));
    let unchanged = coll
        .update_many(doc! {"group": 1}, doc! {"$set": {"odd": true}})
        .await?;
    assert_eq!((unchanged.matched_count, unchanged.modified_count), (5, 0));
    assert_eq!(coll.count_documents(doc! {"odd": true}).await?, 5);

    assert_eq!(coll.delete_one(doc! {"group": 0}).await?.deleted_count, 1);
    assert_eq!(
        coll.delete_many(doc! {"group": {"$exists": true}}).await?.deleted_count,
        9
    );
    assert_eq!(coll.count_documents(doc! {}).await?, 2);
    Ok(())
}

/// findAndModify as compare-and-set: only the writer that saw the current value wins.
#[tokio::test(flavor = "multi_thread")]
async fn find_and_modify_is_compare_and_set() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("jepsen").collection::<Document>("registers");
    coll.insert_one(doc! {"_id": 7, "value": 1}).await?;
    let won = coll
        .find_one_and_update(doc! {"_id": 7, "value": 1}, doc! {"$set": {"value": 2}})
        .return_document(ReturnDocument::After)
        .await?;
    assert_eq!(won, Some(doc! {"_id": 7, "value": 2}));
    let lost = coll
        .find_one_and_update(doc! {"_id": 7, "value": 1}, doc! {"$set": {"value": 3}})
        .await?;
    assert_eq!(lost, None, "a CAS from a stale value must not apply");
    let before = coll
        .find_one_and_update(doc! {"_id": 7}, doc! {"$set": {"value": 4}})
        .await?;
    assert_eq!(
        before,
        Some(doc! {"_id": 7, "value": 2}),
        "returns the document before by default"
    );
    let inserted = coll
        .find_one_and_update(doc! {"_id": 8}, doc! {"$set": {"value": 0}})
        .upsert(true)
        .return_document(ReturnDocument::After)
        .await?;
    assert_eq!(inserted, Some(doc! {"_id": 8, "value": 0}));
    let removed = coll.find_one_and_delete(doc! {"_id": 8}).await?;
    assert_eq!(removed, Some(doc! {"_id": 8, "value": 0}));
    let sorted = coll
        .find_one_and_replace(doc! {}, doc! {"value": 9})
        .sort(doc! {"_id": -1})
        .await?;
    assert_eq!(sorted.map(|d| d.get_i32("_id").unwrap_or(0)), Some(7));
    Ok(())
}

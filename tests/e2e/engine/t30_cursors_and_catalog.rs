//! Cursors across getMore batches, and the catalog: databases, collections, indexes, count, distinct,
//! aggregate.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::IndexModel;
use mongodb::options::IndexOptions;

use crate::{error_code, primary};

/// A query returning far more than one batch is read completely through getMore, in order.
#[tokio::test(flavor = "multi_thread")]
async fn cursors_span_several_get_more_batches() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("big").collection::<Document>("c");
    coll.insert_many((0..1_000).map(|i| doc! {"_id": i, "even": i % 2 == 0, "pad": "x".repeat(100)}))
        .await?;
    let all: Vec<Document> = coll.find(doc! {}).batch_size(64).await?.try_collect().await?;
    assert_eq!(all.len(), 1_000);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, d)| d.get_i32("_id").ok() == Some(i as i32)),
        "natural order is _id order"
    );
    let evens: Vec<Document> = coll
        .find(doc! {"even": true})
        .batch_size(7)
        .await?
        .try_collect()
        .await?;
    assert_eq!(evens.len(), 500);
    let sorted: Vec<Document> = coll
        .find(doc! {})
        .sort(doc! {"_id": -1})
        .batch_size(100)
        .limit(250)
        .await?
        .try_collect()
        .await?;
    assert_eq!(sorted.len(), 250);
    assert_eq!(sorted[0].get_i32("_id")?, 999);

    // An unknown cursor id is error 43.
    let db = client.database("big");
    let err = db
        .run_command(doc! {"getMore": 12345i64, "collection": "c"})
        .await
        .expect_err("no such cursor");
    assert_eq!(error_code(&err), Some(43));
    Ok(())
}

/// listDatabases / listCollections / create / drop / dropDatabase.
#[tokio::test(flavor = "multi_thread")]
async fn databases_and_collections() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    client
        .database("alpha")
        .collection::<Document>("one")
        .insert_one(doc! {"x": 1})
        .await?;
    client.database("alpha").create_collection("two").await?;
    client
        .database("beta")
        .collection::<Document>("three")
        .insert_one(doc! {"x": 1})
        .await?;
    let names = client.list_database_names().await?;
    for expected in ["alpha", "beta", "local"] {
        assert!(names.contains(&expected.to_string()), "{expected} in {names:?}");
    }
    let mut colls = client.database("alpha").list_collection_names().await?;
    colls.sort();
    assert_eq!(colls, vec!["one", "two"]);
    let err = client
        .database("alpha")
        .create_collection("two")
        .capped(true)
        .size(4096)
        .await
        .expect_err("exists");
    assert_eq!(error_code(&err), Some(48));
    client.database("alpha").collection::<Document>("one").drop().await?;
    assert_eq!(client.database("alpha").list_collection_names().await?, vec!["two"]);
    client.database("beta").drop().await?;
    assert!(!client.list_database_names().await?.contains(&"beta".to_string()));
    Ok(())
}

/// A unique index is enforced on insert and update, and refused when existing data violates it.
#[tokio::test(flavor = "multi_thread")]
async fn unique_indexes_are_enforced() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("idx").collection::<Document>("users");
    coll.insert_many(vec![doc! {"_id": 1, "email": "a@x"}, doc! {"_id": 2, "email": "b@x"}])
        .await?;
    let unique = IndexOptions::builder().unique(true).build();
    let name = coll
        .create_index(IndexModel::builder().keys(doc! {"email": 1}).options(unique).build())
        .await?
        .index_name;
    assert_eq!(name, "email_1");
    let err = coll
        .insert_one(doc! {"_id": 3, "email": "a@x"})
        .await
        .expect_err("duplicate email");
    assert_eq!(error_code(&err), Some(11000));
    let err = coll
        .update_one(doc! {"_id": 2}, doc! {"$set": {"email": "a@x"}})
        .await
        .expect_err("duplicate via update");
    assert_eq!(error_code(&err), Some(11000));
    coll.update_one(doc! {"_id": 2}, doc! {"$set": {"email": "c@x"}})
        .await?;
    coll.insert_one(doc! {"_id": 4, "email": "b@x"}).await?; // b@x was freed by the update
    let names = coll.list_index_names().await?;
    assert_eq!(names, vec!["_id_", "email_1"]);
    coll.create_index(IndexModel::builder().keys(doc! {"other": 1}).build())
        .await?;
    coll.drop_index("email_1").await?;
    coll.insert_one(doc! {"_id": 5, "email": "a@x"}).await?;
    let err = coll
        .create_index(
            IndexModel::builder()
                .keys(doc! {"email": 1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect_err("existing duplicates");
    assert_eq!(error_code(&err), Some(11000));
    Ok(())
}

/// count (estimatedDocumentCount), countDocuments (an aggregation), distinct and simple pipelines.
#[tokio::test(flavor = "multi_thread")]
async fn count_distinct_and_aggregate() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let coll = client.database("agg").collection::<Document>("sales");
    coll.insert_many((0..20).map(|i| {
        let region = ["n", "s", "e", "w"][i % 4];
        doc! {"_id": i as i32, "region": region, "amount": i as i32}
    }))
    .await?;
    assert_eq!(coll.estimated_document_count().await?, 20);
    assert_eq!(coll.count_documents(doc! {"region": "n"}).await?, 5);
    assert_eq!(coll.count_documents(doc! {"region": "nowhere"}).await?, 0);
    let mut regions = coll.distinct("region", doc! {}).await?;
    regions.sort_by_key(|b| b.as_str().unwrap_or_default().to_string());
    assert_eq!(
        regions,
        vec![Bson::from("e"), Bson::from("n"), Bson::from("s"), Bson::from("w")]
    );
    let totals: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$match": {"amount": {"$gte": 4}}},
            doc! {"$group": {"_id": "$region", "total": {"$sum": "$amount"}, "first": {"$first": "$amount"}}},
            doc! {"$sort": {"_id": 1}},
            doc! {"$project": {"total": 1}},
        ])
        .await?
        .try_collect()
        .await?;
    assert_eq!(totals.len(), 4);
    assert_eq!(totals[1], doc! {"_id": "n", "total": 4 + 8 + 12 + 16});
    let counted: Vec<Document> = coll
        .aggregate(vec![doc! {"$skip": 5}, doc! {"$limit": 3}, doc! {"$count": "n"}])
        .await?
        .try_collect()
        .await?;
    assert_eq!(counted, vec![doc! {"n": 3}]);
    Ok(())
}

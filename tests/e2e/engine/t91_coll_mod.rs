//! `collMod` through the Rust driver: a validator added to an existing collection is enforced on the next
//! write (121), `validationAction: warn` lets invalid documents in, `validator: {}` removes validation, and
//! listCollections shows the options; a missing collection is NamespaceNotFound (26), index changes are
//! NotImplemented (238) and an unknown field is 40415.

use bson::{Document, doc};

use crate::{error_code, primary};

#[tokio::test(flavor = "multi_thread")]
async fn coll_mod_changes_document_validation() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("collmod");
    let coll = db.collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "x": 0}).await?;

    db.run_command(doc! {"collMod": "c", "validator": {"x": {"$gt": 0}}, "writeConcern": {"w": 1}})
        .await?;
    let err = coll
        .insert_one(doc! {"_id": 2, "x": -1})
        .await
        .expect_err("the new validator refuses x <= 0");
    assert_eq!(error_code(&err), Some(121), "{err}");
    coll.insert_one(doc! {"_id": 3, "x": 5}).await?;

    db.run_command(doc! {"collMod": "c", "validationAction": "warn"})
        .await?;
    coll.insert_one(doc! {"_id": 4, "x": -4}).await?;
    let reply = db
        .run_command(doc! {"listCollections": 1, "filter": {"name": "c"}})
        .await?;
    let batch = reply.get_document("cursor")?.get_array("firstBatch")?;
    let options = batch[0].as_document().expect("a collection").get_document("options")?;
    assert_eq!(options.get_document("validator")?, &doc! {"x": {"$gt": 0}}, "{options}");
    assert_eq!(options.get_str("validationAction")?, "warn", "{options}");

    db.run_command(doc! {"collMod": "c", "validationAction": "error", "validator": {}})
        .await?;
    coll.insert_one(doc! {"_id": 5, "x": -5}).await?;
    assert_eq!(coll.count_documents(doc! {}).await?, 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn coll_mod_refuses_what_it_cannot_do() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("collmod");
    db.collection::<Document>("c").insert_one(doc! {"x": 1}).await?;
    let cases = [
        (doc! {"collMod": "missing", "validator": {"x": 1}}, 26),
        (doc! {"collMod": "c", "index": {"name": "_id_", "hidden": true}}, 238),
        (
            doc! {"collMod": "c", "changeStreamPreAndPostImages": {"enabled": 1}},
            14,
        ),
        (doc! {"collMod": "c", "expireAfterSeconds": 10}, 238),
        (doc! {"collMod": "c", "validationLevel": "sometimes"}, 2),
        (doc! {"collMod": "c", "bogus": 1}, 40415),
    ];
    for (command, expected) in cases {
        let err = db.run_command(command.clone()).await.expect_err("refused");
        assert_eq!(error_code(&err), Some(expected), "{command}: {err}");
    }
    Ok(())
}

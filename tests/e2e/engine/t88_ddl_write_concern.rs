//! DDL commands (create, createIndexes, dropIndexes, renameCollection, drop, dropDatabase) wait for their
//! `writeConcern` and report a `writeConcernError` as mongod does, after doing their work.

use bson::{Document, doc};
use faultline_tests::raw_command;

use crate::primary;

fn wc_error_code(reply: &Document) -> Option<i32> {
    reply.get_document("writeConcernError").ok()?.get_i32("code").ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_commands_wait_for_their_write_concern() -> anyhow::Result<()> {
    let (node, _client) = primary().await?;
    let port = node.port;
    // One data-bearing member: w:2 can never be satisfied (100), an unknown tag is unknown (79), majority is.
    let unsatisfiable = doc! {"w": 2};
    let commands = [
        doc! {"create": "a", "$db": "ddl"},
        doc! {"createIndexes": "a", "indexes": [{"key": {"x": 1}, "name": "x_1"}], "$db": "ddl"},
        doc! {"dropIndexes": "a", "index": "x_1", "$db": "ddl"},
        doc! {"renameCollection": "ddl.a", "to": "ddl.b", "$db": "admin"},
        doc! {"drop": "b", "$db": "ddl"},
        doc! {"create": "c", "$db": "ddl"},
        doc! {"dropDatabase": 1, "$db": "ddl"},
    ];
    for command in commands {
        let mut body = command.clone();
        body.insert("writeConcern", unsatisfiable.clone());
        let reply = raw_command(port, body).await?;
        assert_eq!(reply.get_f64("ok")?, 1.0, "the work is done: {reply}");
        assert_eq!(wc_error_code(&reply), Some(100), "{command}: {reply}");
    }
    let listed = raw_command(port, doc! {"listCollections": 1, "$db": "ddl"}).await?;
    let batch = listed.get_document("cursor")?.get_array("firstBatch")?;
    assert!(batch.is_empty(), "the database was dropped: {listed}");

    let tagged = raw_command(
        port,
        doc! {"create": "d", "writeConcern": {"w": "noSuchTag"}, "$db": "ddl"},
    )
    .await?;
    assert_eq!(wc_error_code(&tagged), Some(79), "{tagged}");
    let majority = raw_command(
        port,
        doc! {"create": "e", "writeConcern": {"w": "majority", "j": true, "wtimeout": 10_000}, "$db": "ddl"},
    )
    .await?;
    assert_eq!(majority.get_f64("ok")?, 1.0, "{majority}");
    assert!(majority.get("writeConcernError").is_none(), "{majority}");
    let bad = raw_command(port, doc! {"create": "f", "writeConcern": {"w": true}, "$db": "ddl"}).await?;
    assert_eq!(bad.get_f64("ok")?, 0.0, "a malformed write concern is refused: {bad}");

    // A cluster-wide default set by an administrator applies to DDL commands that give none.
    let set = raw_command(
        port,
        doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": 2}, "$db": "admin"},
    )
    .await?;
    assert_eq!(set.get_f64("ok")?, 1.0, "{set}");
    let defaulted = raw_command(port, doc! {"create": "g", "$db": "ddl"}).await?;
    assert_eq!(wc_error_code(&defaulted), Some(100), "{defaulted}");
    Ok(())
}

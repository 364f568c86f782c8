//! MongoDB's test fail points as drivers' tests use them, end to end through a real member and the Rust
//! driver: `failCommand` with each of its data options (errorCode, closeConnection, writeConcernError,
//! blockConnection/blockTimeMS, errorLabels, appName, namespace) and modes (`times`, `skip`, `alwaysOn`,
//! `off`), `failGetMoreAfterCursorCheckout`, `maxTimeAlwaysTimeOut`, `onPrimaryTransactionalWrite`, and
//! `getParameter: '*'` reporting `enableTestCommands`.

use std::time::{Duration, Instant};

use bson::{Document, doc};
use faultline_tests::{NodeProcess, raw_command};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;

use super::{bin, error_code};

/// A started one-member set and a driver client that retries nothing (so each failure is seen as it is).
async fn member() -> anyhow::Result<(NodeProcess, mongodb::Client)> {
    let node = NodeProcess::start(bin(), &[]).await?;
    node.initiate().await?;
    let client = client_named(&node, None, false).await?;
    Ok((node, client))
}

async fn client_named(node: &NodeProcess, app: Option<&str>, retry: bool) -> anyhow::Result<mongodb::Client> {
    let mut options = ClientOptions::parse(node.uri()).await?;
    options.app_name = app.map(str::to_string);
    options.retry_reads = Some(retry);
    options.retry_writes = Some(retry);
    Ok(mongodb::Client::with_options(options)?)
}

async fn configure(client: &mongodb::Client, spec: Document) -> anyhow::Result<()> {
    let mut command = doc! {"configureFailPoint": "failCommand"};
    command.extend(spec);
    client.database("admin").run_command(command).await?;
    Ok(())
}

async fn ping(client: &mongodb::Client) -> mongodb::error::Result<Document> {
    client.database("app").run_command(doc! {"ping": 1}).await
}

#[tokio::test(flavor = "multi_thread")]
async fn error_code_fails_named_commands_for_times_then_turns_off() -> anyhow::Result<()> {
    let (_node, client) = member().await?;
    configure(
        &client,
        doc! {"mode": {"times": 2}, "data": {"failCommands": ["ping"], "errorCode": 91}},
    )
    .await?;
    for attempt in 0..2 {
        let err = ping(&client).await.expect_err("failed by the fail point");
        assert_eq!(error_code(&err), Some(91), "attempt {attempt}: {err}");
        let ErrorKind::Command(command) = err.kind.as_ref() else {
            panic!("a command error: {err}");
        };
        assert_eq!(command.code_name, "ShutdownInProgress");
        assert!(command.message.contains("failCommand"), "{}", command.message);
    }
    ping(&client).await?;
    let count = client
        .database("app")
        .collection::<Document>("c")
        .count_documents(doc! {})
        .await?;
    assert_eq!(count, 0, "commands not named are never failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_lets_the_first_chances_pass_then_always_on_until_off() -> anyhow::Result<()> {
    let (_node, client) = member().await?;
    configure(
        &client,
        doc! {"mode": {"skip": 2}, "data": {"failCommands": ["ping"], "errorCode": 8}},
    )
    .await?;
    ping(&client).await?;
    ping(&client).await?;
    for _ in 0..3 {
        assert_eq!(ping(&client).await.err().as_ref().and_then(error_code), Some(8));
    }
    configure(&client, doc! {"mode": "off"}).await?;
    ping(&client).await?;
    configure(
        &client,
        doc! {"mode": "alwaysOn", "data": {"failCommands": ["ping"], "errorCode": 8}},
    )
    .await?;
    for _ in 0..3 {
        assert_eq!(ping(&client).await.err().as_ref().and_then(error_code), Some(8));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn close_connection_drops_the_connection_without_running_the_command() -> anyhow::Result<()> {
    let (node, client) = member().await?;
    let coll = client.database("app").collection::<Document>("c");
    configure(
        &client,
        doc! {"mode": {"times": 1}, "data": {"failCommands": ["insert"], "closeConnection": true}},
    )
    .await?;
    let err = coll.insert_one(doc! {"_id": 1}).await.expect_err("network error");
    assert!(matches!(err.kind.as_ref(), ErrorKind::Io(_)), "a network error: {err}");
    assert_eq!(coll.count_documents(doc! {}).await?, 0, "the insert did not run");

    // The raw wire view: no reply at all, the connection closed.
    configure(
        &client,
        doc! {"mode": {"times": 1}, "data": {"failCommands": ["ping"], "closeConnection": true}},
    )
    .await?;
    assert!(raw_command(node.port, doc! {"ping": 1, "$db": "admin"}).await.is_err());

    // A retryable write is retried by the driver on a new connection and applied once.
    let retrying = client_named(&node, None, true).await?;
    configure(
        &client,
        doc! {"mode": {"times": 1}, "data": {"failCommands": ["insert"], "closeConnection": true}},
    )
    .await?;
    retrying
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 2})
        .await?;
    assert_eq!(coll.count_documents(doc! {}).await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn write_concern_error_runs_the_write_and_reports_the_error() -> anyhow::Result<()> {
    let (_node, client) = member().await?;
    let coll = client.database("app").collection::<Document>("c");
    configure(
        &client,
        doc! {"mode": {"times": 1}, "data": {"failCommands": ["insert"],
        "writeConcernError": {"code": 91, "errmsg": "Replication is being shut down"}}},
    )
    .await?;
    let err = coll.insert_one(doc! {"_id": 1}).await.expect_err("write concern error");
    let ErrorKind::Write(WriteFailure::WriteConcernError(wce)) = err.kind.as_ref() else {
        panic!("a write concern error: {err}");
    };
    assert_eq!(wce.code, 91);
    assert_eq!(coll.count_documents(doc! {"_id": 1}).await?, 1, "the write itself ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn block_connection_delays_the_command_for_block_time_ms() -> anyhow::Result<()> {
    let (_node, client) = member().await?;
    ping(&client).await?;
    configure(
        &client,
        doc! {"mode": {"times": 1}, "data": {"failCommands": ["ping"], "blockConnection": true, "blockTimeMS": 300}},
    )
    .await?;
    let started = Instant::now();
    ping(&client).await?;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "blocked at least 300 ms: {:?}",
        started.elapsed()
    );
    let refused = client
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "alwaysOn",
        "data": {"failCommands": ["ping"], "blockConnection": true}})
        .await;
    assert!(refused.is_err(), "blockConnection needs blockTimeMS");
    Ok(())
}

/// The labels a raw reply carries.
fn labels(reply: &Document) -> Vec<String> {
    reply
        .get_array("errorLabels")
        .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn error_labels_replace_the_labels_the_server_would_add() -> anyhow::Result<()> {
    let (node, client) = member().await?;
    let fail_insert = |labels: Option<Vec<&str>>| {
        let mut data = doc! {"failCommands": ["insert"], "errorCode": 189};
        if let Some(labels) = labels {
            data.insert("errorLabels", labels);
        }
        doc! {"mode": {"times": 1}, "data": data}
    };
    // A retryable write (lsid + txnNumber) failing with a retryable code gets RetryableWriteError...
    let insert = doc! {"insert": "c", "documents": [{"_id": 1}], "lsid": {"id": bson::Uuid::new()},
    "txnNumber": 1_i64, "$db": "app"};
    configure(&client, fail_insert(None)).await?;
    let reply = raw_command(node.port, insert.clone()).await?;
    assert_eq!(
        (reply.get_i32("code").ok(), labels(&reply)),
        (Some(189), vec!["RetryableWriteError".to_string()])
    );
    // ... unless errorLabels names the labels (here none at all) ...
    configure(&client, fail_insert(Some(Vec::new()))).await?;
    let reply = raw_command(node.port, insert.clone()).await?;
    assert_eq!(
        (reply.get_i32("code").ok(), labels(&reply)),
        (Some(189), Vec::<String>::new())
    );
    // ... or others; and the driver reads them.
    configure(&client, fail_insert(Some(vec!["SomeLabel"]))).await?;
    let reply = raw_command(node.port, insert).await?;
    assert_eq!(labels(&reply), vec!["SomeLabel".to_string()]);
    configure(&client, fail_insert(Some(vec!["SomeLabel"]))).await?;
    let err = client
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 2})
        .await
        .expect_err("fails");
    assert!(err.contains_label("SomeLabel"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn app_name_and_namespace_narrow_what_fails() -> anyhow::Result<()> {
    let (node, client) = member().await?;
    let named = client_named(&node, Some("victim"), false).await?;
    configure(
        &client,
        doc! {"mode": "alwaysOn", "data": {"failCommands": ["find"], "errorCode": 2, "appName": "victim",
        "namespace": "app.target"}},
    )
    .await?;
    let find = |c: &mongodb::Client, coll: &str| {
        let coll = c.database("app").collection::<Document>(coll);
        async move { coll.find_one(doc! {}).await }
    };
    assert_eq!(
        find(&named, "target").await.err().as_ref().and_then(error_code),
        Some(2)
    );
    find(&named, "other").await?;
    find(&client, "target").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn companion_fail_points_get_more_max_time_and_transactional_write() -> anyhow::Result<()> {
    let (node, client) = member().await?;
    let admin = client.database("admin");
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_many((0..10).map(|i| doc! {"_id": i})).await?;

    admin
        .run_command(
            doc! {"configureFailPoint": "failGetMoreAfterCursorCheckout", "mode": {"times": 1},
            "data": {"errorCode": 7}},
        )
        .await?;
    let first = client
        .database("app")
        .run_command(doc! {"find": "c", "batchSize": 2})
        .await?;
    let cursor_id = first.get_document("cursor")?.get_i64("id")?;
    let err = client
        .database("app")
        .run_command(doc! {"getMore": cursor_id, "collection": "c"})
        .await
        .expect_err("getMore fails");
    assert_eq!(error_code(&err), Some(7), "{err}");

    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": {"times": 1}})
        .await?;
    let err = client
        .database("app")
        .run_command(doc! {"find": "c", "maxTimeMS": 60_000})
        .await
        .expect_err("times out");
    assert_eq!(error_code(&err), Some(50), "{err}");
    client
        .database("app")
        .run_command(doc! {"find": "c", "maxTimeMS": 60_000})
        .await?;

    // A retryable write that fails before commit is not applied...
    admin
        .run_command(
            doc! {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1},
            "data": {"failBeforeCommitExceptionCode": 1, "closeConnection": false}},
        )
        .await?;
    let insert = doc! {"insert": "c", "documents": [{"_id": 100}], "lsid": {"id": bson::Uuid::new()},
    "txnNumber": 1_i64, "$db": "app"};
    let reply = raw_command(node.port, insert).await?;
    assert_eq!(reply.get_i32("code").ok(), Some(1), "{reply}");
    assert_eq!(coll.count_documents(doc! {"_id": 100}).await?, 0);
    // ... one whose connection closes after it ran is applied, and the driver's retry finds it done.
    let retrying = client_named(&node, None, true).await?;
    admin
        .run_command(doc! {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1}})
        .await?;
    retrying
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 101})
        .await?;
    assert_eq!(coll.count_documents(doc! {"_id": 101}).await?, 1);

    let parameters = admin.run_command(doc! {"getParameter": "*"}).await?;
    assert_eq!(
        parameters.get_bool("enableTestCommands").ok(),
        Some(true),
        "{parameters}"
    );
    Ok(())
}

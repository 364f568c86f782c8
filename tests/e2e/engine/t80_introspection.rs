//! What mongosh users and the tutorials look at: `show dbs`, `db.serverStatus()`, `explain()`,
//! `renameCollection`, `db.currentOp()`, `db.getProfilingStatus()`, `db.getUsers()` / `db.getRoles()` and
//! `listCommands`, on a one-member set.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::IndexModel;
use mongodb::options::IndexOptions;

use faultline_tests::{raw_command, wait_until};

use crate::{error_code, primary};

fn num(doc: &Document, key: &str) -> i64 {
    match doc.get(key) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        other => panic!("{key} is not a number: {other:?} in {doc}"),
    }
}

fn sub<'a>(doc: &'a Document, path: &str) -> &'a Document {
    let mut current = doc;
    for key in path.split('.') {
        current = current
            .get_document(key)
            .unwrap_or_else(|_| panic!("no document at {path} in {doc}"));
    }
    current
}

/// `show dbs` on a fresh set lists admin, config and local, with plausible sizes; `nameOnly` and `filter` are
/// honoured; admin holds `system.version` with the feature compatibility version.
#[tokio::test(flavor = "multi_thread")]
async fn list_databases_lists_admin_config_and_local() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    client
        .database("shop")
        .collection::<Document>("items")
        .insert_many((0..20).map(|i| doc! {"_id": i, "pad": "x".repeat(200)}))
        .await?;
    let admin = client.database("admin");
    let reply = admin.run_command(doc! {"listDatabases": 1}).await?;
    let dbs = reply.get_array("databases")?;
    let names: Vec<&str> = dbs
        .iter()
        .filter_map(|d| d.as_document()?.get_str("name").ok())
        .collect();
    for expected in ["admin", "config", "local", "shop"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let mut total = 0;
    for db in dbs {
        let db = db.as_document().expect("database entry");
        let size = db.get_i64("sizeOnDisk")?;
        assert!(size > 0, "{db}");
        assert!(!db.get_bool("empty")?, "{db}");
        total += size;
    }
    assert_eq!(reply.get_i64("totalSize")?, total);
    assert_eq!(reply.get_i64("totalSizeMb")?, total / (1024 * 1024));

    let names_only = admin.run_command(doc! {"listDatabases": 1, "nameOnly": true}).await?;
    for db in names_only.get_array("databases")? {
        let keys: Vec<&String> = db.as_document().expect("entry").keys().collect();
        assert_eq!(keys, ["name"], "nameOnly entries carry only the name");
    }
    assert!(names_only.get("totalSize").is_none());

    let filtered = admin
        .run_command(doc! {"listDatabases": 1, "filter": {"name": {"$in": ["admin", "shop"]}}})
        .await?;
    let kept: Vec<&str> = filtered
        .get_array("databases")?
        .iter()
        .filter_map(|d| d.as_document()?.get_str("name").ok())
        .collect();
    assert_eq!(kept, ["admin", "shop"]);
    let by_size = admin
        .run_command(doc! {"listDatabases": 1, "filter": {"sizeOnDisk": {"$gt": 1i64 << 40}}})
        .await?;
    assert!(by_size.get_array("databases")?.is_empty());

    let mut names = client.list_database_names().await?;
    names.sort();
    assert_eq!(names, ["admin", "config", "local", "shop"]);
    assert_eq!(admin.list_collection_names().await?, ["system.version"]);
    let fcv = admin
        .collection::<Document>("system.version")
        .find_one(doc! {"_id": "featureCompatibilityVersion"})
        .await?
        .expect("the FCV document");
    assert_eq!(fcv.get_str("version")?, "7.0");
    assert!(
        client
            .database("config")
            .list_collection_names()
            .await?
            .contains(&"transactions".to_string())
    );
    Ok(())
}

/// `db.serverStatus()` carries mongod's common sections, its counters move with the traffic, and sections
/// can be left out with `{section: 0}`.
#[tokio::test(flavor = "multi_thread")]
async fn server_status_has_the_common_sections() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let admin = client.database("admin");
    let before = admin.run_command(doc! {"serverStatus": 1}).await?;
    for section in [
        "asserts",
        "connections",
        "mem",
        "network",
        "opLatencies",
        "opcounters",
        "opcountersRepl",
        "electionMetrics",
        "transactions",
        "repl",
        "metrics",
    ] {
        assert!(
            before.get_document(section).is_ok(),
            "section {section} missing: {before}"
        );
    }
    assert!(before.get_f64("uptime")? >= 0.0);
    let asserts = sub(&before, "asserts");
    for field in ["regular", "warning", "msg", "user", "rollovers"] {
        num(asserts, field);
    }
    let mem = sub(&before, "mem");
    assert_eq!(num(mem, "bits"), 64);
    assert!(mem.get_bool("supported")?);
    assert!(num(mem, "resident") > 0, "{mem}");
    assert!(num(mem, "virtual") >= num(mem, "resident"), "{mem}");
    let network = sub(&before, "network");
    assert!(num(network, "bytesIn") > 0 && num(network, "bytesOut") > 0 && num(network, "numRequests") > 0);
    for class in ["reads", "writes", "commands"] {
        let latency = sub(&before, &format!("opLatencies.{class}"));
        num(latency, "latency");
        num(latency, "ops");
    }
    let repl_counters = sub(&before, "opcountersRepl");
    for field in ["insert", "query", "update", "delete", "getmore", "command"] {
        assert_eq!(num(repl_counters, field), 0, "a primary applies no oplog entries");
    }
    let elections = sub(&before, "electionMetrics");
    for reason in [
        "stepUpCmd",
        "priorityTakeover",
        "catchUpTakeover",
        "electionTimeout",
        "freezeTimeout",
    ] {
        let counter = sub(elections, reason);
        num(counter, "called");
        num(counter, "successful");
    }
    assert_eq!(num(sub(elections, "electionTimeout"), "successful"), 1, "{elections}");
    assert_eq!(
        num(elections, "numCatchUpsSkipped"),
        1,
        "no catch-up in a one-member set"
    );
    for field in [
        "numStepDownsCausedByHigherTerm",
        "numCatchUps",
        "numCatchUpsSucceeded",
        "numCatchUpsAlreadyCaughtUp",
        "numCatchUpsTimedOut",
        "numCatchUpsFailedWithError",
        "numCatchUpsFailedWithNewTerm",
        "numCatchUpsFailedWithReplSetAbortPrimaryCatchUpCmd",
        "averageCatchUpOps",
    ] {
        num(elections, field);
    }
    let transactions = sub(&before, "transactions");
    for field in [
        "currentActive",
        "currentOpen",
        "totalStarted",
        "totalCommitted",
        "totalAborted",
    ] {
        num(transactions, field);
    }

    // Traffic moves the counters: one read, one write, one failed command.
    let coll = client.database("t").collection::<Document>("c");
    coll.insert_one(doc! {"x": 1}).await?;
    coll.find_one(doc! {}).await?;
    let err = client
        .database("t")
        .run_command(doc! {"noSuchCommand": 1})
        .await
        .expect_err("unknown command");
    assert_eq!(error_code(&err), Some(59));
    let after = admin.run_command(doc! {"serverStatus": 1}).await?;
    for class in ["reads", "writes", "commands"] {
        let was = num(sub(&before, &format!("opLatencies.{class}")), "ops");
        let now = num(sub(&after, &format!("opLatencies.{class}")), "ops");
        assert!(now > was, "opLatencies.{class}.ops did not move ({was} -> {now})");
    }
    assert!(num(sub(&after, "asserts"), "user") > num(asserts, "user"));
    let (was, now) = (network, sub(&after, "network"));
    assert!(num(now, "numRequests") >= num(was, "numRequests") + 4);
    assert!(num(now, "bytesIn") > num(was, "bytesIn"));
    assert!(num(now, "bytesOut") > num(was, "bytesOut"));

    // Exclusions, as `db.serverStatus({repl: 0, mem: 0})` sends them.
    let trimmed = admin
        .run_command(doc! {"serverStatus": 1, "repl": 0, "mem": false, "opLatencies": {"reads": 0}})
        .await?;
    assert!(
        trimmed.get("repl").is_none() && trimmed.get("mem").is_none(),
        "{trimmed}"
    );
    assert!(trimmed.get_document("asserts").is_ok());
    let latencies = sub(&trimmed, "opLatencies");
    assert!(
        latencies.get("reads").is_none() && latencies.get("writes").is_some(),
        "{latencies}"
    );
    Ok(())
}

async fn explain(db: &mongodb::Database, command: Document, verbosity: Option<&str>) -> anyhow::Result<Document> {
    let mut body = doc! {"explain": command};
    if let Some(v) = verbosity {
        body.insert("verbosity", v);
    }
    Ok(db.run_command(body).await?)
}

fn winning(reply: &Document) -> &Document {
    sub(reply, "queryPlanner.winningPlan")
}

/// `explain` reports the plan the engine really runs (a collection scan unless the filter pins `_id`; the
/// engine does not read secondary indexes yet) and, with `executionStats`, the counts of running it.
#[tokio::test(flavor = "multi_thread")]
async fn explain_reports_the_plan_the_engine_runs() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("shop");
    let coll = db.collection::<Document>("c");
    coll.insert_many((0..10).map(|i| doc! {"_id": i, "a": i % 3})).await?;
    coll.create_index(IndexModel::builder().keys(doc! {"a": 1}).build())
        .await?;

    let plan = explain(&db, doc! {"find": "c", "filter": {"a": 1}}, Some("queryPlanner")).await?;
    let planner = sub(&plan, "queryPlanner");
    assert_eq!(planner.get_str("namespace")?, "shop.c");
    assert!(!planner.get_bool("indexFilterSet")?);
    assert_eq!(planner.get_document("parsedQuery")?, &doc! {"a": {"$eq": 1}});
    assert_eq!(winning(&plan).get_str("stage")?, "COLLSCAN", "{plan}");
    assert_eq!(winning(&plan).get_str("direction")?, "forward");
    assert!(planner.get_array("rejectedPlans")?.is_empty());
    assert!(
        plan.get("executionStats").is_none(),
        "queryPlanner does not run the plan"
    );
    assert_eq!(sub(&plan, "command").get_str("find")?, "c");
    assert!(sub(&plan, "serverInfo").get_str("version").is_ok());
    assert_eq!(plan.get_f64("ok")?, 1.0);

    // Without a verbosity the command runs at mongod's default, allPlansExecution.
    let default = explain(&db, doc! {"find": "c", "filter": {"a": 1}}, None).await?;
    assert!(
        sub(&default, "executionStats").get_array("allPlansExecution").is_ok(),
        "{default}"
    );
    let stats = explain(&db, doc! {"find": "c", "filter": {"a": 1}}, Some("executionStats")).await?;
    let execution = sub(&stats, "executionStats");
    assert!(execution.get_bool("executionSuccess")?);
    assert_eq!(num(execution, "nReturned"), 3);
    assert_eq!(num(execution, "totalDocsExamined"), 10);
    assert_eq!(num(execution, "totalKeysExamined"), 0);
    num(execution, "executionTimeMillis");
    assert_eq!(sub(execution, "executionStages").get_str("stage")?, "COLLSCAN");

    // A limit without a sort stops the scan early: a == 1 at _id 1 and 4, so five documents are read.
    let limited = explain(
        &db,
        doc! {"find": "c", "filter": {"a": 1}, "limit": 2},
        Some("executionStats"),
    )
    .await?;
    let execution = sub(&limited, "executionStats");
    assert_eq!(
        (num(execution, "nReturned"), num(execution, "totalDocsExamined")),
        (2, 5)
    );
    assert_eq!(winning(&limited).get_str("stage")?, "LIMIT");
    assert_eq!(sub(winning(&limited), "inputStage").get_str("stage")?, "COLLSCAN");

    let by_id = explain(&db, doc! {"find": "c", "filter": {"_id": 3}}, Some("executionStats")).await?;
    assert_eq!(winning(&by_id).get_str("stage")?, "IDHACK", "{by_id}");
    let execution = sub(&by_id, "executionStats");
    assert_eq!(
        (
            num(execution, "nReturned"),
            num(execution, "totalKeysExamined"),
            num(execution, "totalDocsExamined")
        ),
        (1, 1, 1)
    );

    let id_and_more = explain(
        &db,
        doc! {"find": "c", "filter": {"_id": 3, "a": 1}},
        Some("allPlansExecution"),
    )
    .await?;
    let fetch = winning(&id_and_more);
    assert_eq!(fetch.get_str("stage")?, "FETCH", "{id_and_more}");
    let ixscan = sub(fetch, "inputStage");
    assert_eq!(ixscan.get_str("stage")?, "IXSCAN");
    assert_eq!(ixscan.get_str("indexName")?, "_id_");
    assert_eq!(ixscan.get_document("keyPattern")?, &doc! {"_id": 1});
    let execution = sub(&id_and_more, "executionStats");
    assert_eq!(num(execution, "nReturned"), 0, "_id 3 has a == 0");
    assert!(execution.get_array("allPlansExecution").is_ok());

    let sorted = explain(&db, doc! {"find": "c", "sort": {"a": -1}}, None).await?;
    let sort = winning(&sorted);
    assert_eq!(sort.get_str("stage")?, "SORT");
    assert_eq!(sort.get_document("sortPattern")?, &doc! {"a": -1});
    assert_eq!(sub(sort, "inputStage").get_str("stage")?, "COLLSCAN");

    let missing = explain(&db, doc! {"find": "nothing"}, None).await?;
    assert_eq!(winning(&missing).get_str("stage")?, "EOF");

    let counted = explain(&db, doc! {"count": "c", "query": {}}, None).await?;
    assert_eq!(winning(&counted).get_str("stage")?, "RECORD_STORE_FAST_COUNT");
    let counted = explain(&db, doc! {"count": "c", "query": {"a": 2}}, Some("executionStats")).await?;
    assert_eq!(winning(&counted).get_str("stage")?, "COUNT");
    assert_eq!(sub(winning(&counted), "inputStage").get_str("stage")?, "COLLSCAN");
    assert_eq!(num(sub(&counted, "executionStats"), "totalDocsExamined"), 10);

    let distinct = explain(&db, doc! {"distinct": "c", "key": "a"}, None).await?;
    assert_eq!(sub(&distinct, "queryPlanner").get_str("namespace")?, "shop.c");
    assert_eq!(winning(&distinct).get_str("stage")?, "COLLSCAN");

    // aggregate with `explain: true` (what `aggregate(...).explain()` sends): the cursor stage, then the rest.
    let agg = db
        .run_command(
            doc! {"aggregate": "c", "pipeline": [{"$match": {"a": 1}}, {"$group": {"_id": null, "n": {"$sum": 1}}}],
            "explain": true},
        )
        .await?;
    let stages = agg.get_array("stages")?;
    let cursor = stages[0].as_document().expect("stage").get_document("$cursor")?;
    assert_eq!(sub(cursor, "queryPlanner.winningPlan").get_str("stage")?, "COLLSCAN");
    assert!(stages[1].as_document().expect("stage").get_document("$group").is_ok());
    let agg_stats = explain(
        &db,
        doc! {"aggregate": "c", "pipeline": [{"$match": {"a": 1}}, {"$group": {"_id": null, "n": {"$sum": 1}}}], "cursor": {}},
        Some("executionStats"),
    )
    .await?;
    let stages = agg_stats.get_array("stages")?;
    let cursor = stages[0].as_document().expect("stage").get_document("$cursor")?;
    assert_eq!(num(sub(cursor, "executionStats"), "nReturned"), 3);
    assert_eq!(num(stages[1].as_document().expect("stage"), "nReturned"), 1);

    let err = db
        .run_command(doc! {"explain": {"find": "c"}, "verbosity": "everything"})
        .await
        .expect_err("bad verbosity");
    assert_eq!(error_code(&err), Some(2));
    Ok(())
}

/// `renameCollection`: documents and indexes move, within and across databases; MongoDB's errors; one oplog
/// entry in MongoDB's shape.
#[tokio::test(flavor = "multi_thread")]
async fn rename_collection_moves_documents_and_indexes() -> anyhow::Result<()> {
    let (node, client) = primary().await?;
    let admin = client.database("admin");
    let db = client.database("shop");
    let old = db.collection::<Document>("old");
    old.insert_many((0..25).map(|i| doc! {"_id": i, "u": i, "tag": "t"}))
        .await?;
    old.create_index(
        IndexModel::builder()
            .keys(doc! {"u": 1})
            .options(IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await?;
    old.create_index(IndexModel::builder().keys(doc! {"tag": 1}).build())
        .await?;

    admin
        .run_command(doc! {"renameCollection": "shop.old", "to": "shop.new"})
        .await?;
    let mut names = db.list_collection_names().await?;
    names.sort();
    assert_eq!(names, ["new"]);
    let moved = db.collection::<Document>("new");
    assert_eq!(moved.count_documents(doc! {}).await?, 25);
    let mut indexes: Vec<String> = moved.list_index_names().await?;
    indexes.sort();
    assert_eq!(indexes, ["_id_", "tag_1", "u_1"]);
    let err = moved
        .insert_one(doc! {"_id": 100, "u": 3})
        .await
        .expect_err("the unique index moved with the collection");
    assert_eq!(error_code(&err), Some(11000));

    let entry = raw_command(
        node.port,
        doc! {"find": "oplog.rs", "filter": {"op": "c", "o.renameCollection": "shop.old"}, "$db": "local"},
    )
    .await?;
    let entry = entry.get_document("cursor")?.get_array("firstBatch")?[0]
        .as_document()
        .expect("the rename's oplog entry")
        .clone();
    assert_eq!(entry.get_str("ns")?, "shop.$cmd");
    assert!(entry.get("ui").is_some());
    let o = entry.get_document("o")?;
    assert_eq!(o.get_str("to")?, "shop.new");
    assert!(!o.get_bool("stayTemp")?);
    assert!(o.get("dropTarget").is_none(), "nothing was dropped: {o}");

    // Errors: missing source, existing target, renaming onto itself, the oplog, admin.system.version, and
    // running it outside admin.
    let code_of = |reply: mongodb::error::Result<Document>| reply.err().and_then(|e| error_code(&e));
    assert_eq!(
        code_of(
            admin
                .run_command(doc! {"renameCollection": "shop.none", "to": "shop.x"})
                .await
        ),
        Some(26)
    );
    db.collection::<Document>("other")
        .insert_one(doc! {"_id": "in-other"})
        .await?;
    assert_eq!(
        code_of(
            admin
                .run_command(doc! {"renameCollection": "shop.new", "to": "shop.other"})
                .await
        ),
        Some(48)
    );
    assert_eq!(
        code_of(
            admin
                .run_command(doc! {"renameCollection": "shop.new", "to": "shop.new"})
                .await
        ),
        Some(20)
    );
    assert_eq!(
        code_of(
            admin
                .run_command(doc! {"renameCollection": "local.oplog.rs", "to": "local.x"})
                .await
        ),
        Some(20)
    );
    assert_eq!(
        code_of(
            admin
                .run_command(doc! {"renameCollection": "admin.system.version", "to": "admin.v"})
                .await
        ),
        Some(20)
    );
    assert_eq!(
        code_of(
            db.run_command(doc! {"renameCollection": "shop.new", "to": "shop.y"})
                .await
        ),
        Some(13)
    );
    assert_eq!(
        code_of(admin.run_command(doc! {"renameCollection": "shop.new"}).await),
        Some(40414)
    );

    // dropTarget replaces the target; the oplog entry names the dropped collection's UUID.
    admin
        .run_command(doc! {"renameCollection": "shop.new", "to": "shop.other", "dropTarget": true})
        .await?;
    let other = db.collection::<Document>("other");
    assert_eq!(other.count_documents(doc! {}).await?, 25);
    assert!(other.find_one(doc! {"_id": "in-other"}).await?.is_none());
    let entry = raw_command(
        node.port,
        doc! {"find": "oplog.rs", "filter": {"op": "c", "o.renameCollection": "shop.new"}, "$db": "local"},
    )
    .await?;
    let entry = entry.get_document("cursor")?.get_array("firstBatch")?[0]
        .as_document()
        .expect("entry")
        .clone();
    assert!(
        matches!(entry.get_document("o")?.get("dropTarget"), Some(Bson::Binary(_))),
        "{entry}"
    );

    // Across databases.
    admin
        .run_command(doc! {"renameCollection": "shop.other", "to": "archive.items"})
        .await?;
    let archived = client.database("archive").collection::<Document>("items");
    assert_eq!(archived.count_documents(doc! {}).await?, 25);
    assert_eq!(archived.list_index_names().await?.len(), 3);
    assert!(!db.list_collection_names().await?.contains(&"other".to_string()));
    Ok(())
}

/// `db.currentOp()` (mongosh sends `$currentOp` on admin) and the `currentOp` command list operations in
/// flight with mongod's fields; `idleConnections` adds the idle ones.
#[tokio::test(flavor = "multi_thread")]
async fn current_op_lists_operations_in_flight() -> anyhow::Result<()> {
    let (node, client) = primary().await?;
    let port = node.port;
    // An awaitData getMore on the oplog waits for new entries: an operation that stays in flight.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    faultline_tests::send_op_msg(
        &mut stream,
        1,
        &doc! {"find": "oplog.rs", "filter": {}, "tailable": true, "awaitData": true, "$db": "local"},
    )
    .await?;
    let found = faultline_tests::read_reply(&mut stream).await?;
    let cursor_id = found.get_document("cursor")?.get_i64("id")?;
    assert_ne!(cursor_id, 0);
    faultline_tests::send_op_msg(
        &mut stream,
        2,
        &doc! {"getMore": cursor_id, "collection": "oplog.rs", "maxTimeMS": 60_000, "$db": "local"},
    )
    .await?;

    let admin = client.database("admin");
    let pipeline = vec![
        doc! {"$currentOp": {"allUsers": true, "idleConnections": false, "truncateOps": false}},
        doc! {"$match": {"command.getMore": {"$exists": true}}},
    ];
    let op = wait_until(std::time::Duration::from_secs(20), "the getMore in $currentOp", || {
        let admin = admin.clone();
        let pipeline = pipeline.clone();
        async move {
            let ops: Vec<Document> = admin.aggregate(pipeline).await.ok()?.try_collect().await.ok()?;
            ops.into_iter().next()
        }
    })
    .await?;
    assert_eq!(op.get_str("type")?, "op");
    assert!(op.get_bool("active")?);
    assert_eq!(op.get_str("op")?, "getmore");
    assert_eq!(op.get_str("ns")?, "local.oplog.rs");
    assert!(op.get("opid").is_some());
    num(&op, "secs_running");
    num(&op, "microsecs_running");
    let conn = num(&op, "connectionId");
    assert_eq!(op.get_str("desc")?, format!("conn{conn}"));
    assert!(op.get_str("client")?.starts_with("127.0.0.1:"), "{op}");

    // The command form lists itself.
    let reply = admin.run_command(doc! {"currentOp": 1}).await?;
    let inprog = reply.get_array("inprog")?;
    assert!(
        inprog
            .iter()
            .filter_map(Bson::as_document)
            .any(|o| o.get_document("command").is_ok_and(|c| c.contains_key("currentOp"))),
        "{reply}"
    );
    // Idle connections: the driver's pooled connections show up, inactive.
    let all: Vec<Document> = admin
        .aggregate(vec![doc! {"$currentOp": {"idleConnections": true}}])
        .await?
        .try_collect()
        .await?;
    assert!(all.iter().any(|o| o.get_bool("active").ok() == Some(false)), "{all:?}");

    // $currentOp belongs to admin and {aggregate: 1}; unknown options are refused.
    let err = client
        .database("shop")
        .aggregate(vec![doc! {"$currentOp": {}}])
        .await
        .expect_err("not on admin");
    assert_eq!(error_code(&err), Some(73));
    let err = admin
        .aggregate(vec![doc! {"$currentOp": {"bogus": true}}])
        .await
        .expect_err("unknown option");
    assert_eq!(error_code(&err), Some(9));

    // A new oplog entry wakes the getMore; it leaves the list.
    client
        .database("shop")
        .collection::<Document>("c")
        .insert_one(doc! {"x": 1})
        .await?;
    let more = faultline_tests::read_reply(&mut stream).await?;
    assert!(!more.get_document("cursor")?.get_array("nextBatch")?.is_empty());
    Ok(())
}

/// The profiler is off and stays off; users and roles are empty lists; the new commands are listed.
#[tokio::test(flavor = "multi_thread")]
async fn profile_users_roles_and_list_commands() -> anyhow::Result<()> {
    let (_node, client) = primary().await?;
    let db = client.database("shop");
    for level in [-1, 0] {
        let status = db.run_command(doc! {"profile": level}).await?;
        assert_eq!(status.get_i32("was")?, 0);
        assert_eq!(status.get_i32("slowms")?, 100);
        assert_eq!(status.get_f64("sampleRate")?, 1.0);
    }
    for level in [1, 2] {
        let err = db
            .run_command(doc! {"profile": level})
            .await
            .expect_err("the profiler cannot be switched on");
        assert!(error_code(&err).is_some(), "{err}");
        assert!(err.to_string().contains("profil"), "{err}");
    }
    let users = db
        .run_command(doc! {"usersInfo": 1, "showCredentials": false, "showPrivileges": false})
        .await?;
    assert!(users.get_array("users")?.is_empty());
    let one = db
        .run_command(doc! {"usersInfo": {"user": "ann", "db": "shop"}})
        .await?;
    assert!(one.get_array("users")?.is_empty());
    let roles = db.run_command(doc! {"rolesInfo": 1, "showBuiltinRoles": true}).await?;
    assert!(roles.get_array("roles").is_ok());

    let listed = db.run_command(doc! {"listCommands": 1}).await?;
    let commands = listed.get_document("commands")?;
    for name in [
        "explain",
        "renameCollection",
        "currentOp",
        "profile",
        "usersInfo",
        "rolesInfo",
        "serverStatus",
        "listDatabases",
        "replSetStepDown",
    ] {
        assert!(commands.contains_key(name), "{name} missing from listCommands");
    }
    Ok(())
}

//! Hostile queries cannot exhaust the member's memory: cursors hold positions, not results; blocking stages
//! stop at their memory limit with MongoDB's 292 unless `allowDiskUse` lets them spill to `<dbpath>/_tmp`;
//! idle cursors are closed by a timer.

use std::time::Duration;

use bson::{Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};
use futures_util::TryStreamExt;

use crate::{bin, error_code};

/// A member with small blocking-stage limits (so a few hundred kilobytes exceed them) and a short cursor
/// timeout, plus a collection of 2,000 documents of about 1 KB in shuffled `k` order.
async fn small_limits() -> anyhow::Result<(NodeProcess, mongodb::Client)> {
    let node = NodeProcess::start(
        bin(),
        &[
            "--setParameter",
            "internalQueryMaxBlockingSortMemoryUsageBytes=200000",
            "--setParameter",
            "internalDocumentSourceGroupMaxMemoryBytes=200000",
        ],
    )
    .await?;
    node.initiate().await?;
    let client = node.client().await?;
    let coll = client.database("q").collection::<Document>("c");
    coll.insert_many(
        (0..2_000).map(|i| doc! {"_id": i, "k": (i * 7919) % 2_000, "g": i % 10, "pad": "x".repeat(1_000)}),
    )
    .await?;
    Ok((node, client))
}

fn tmp_files(node: &NodeProcess) -> usize {
    std::fs::read_dir(node.dbpath().join("_tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn ks(docs: &[Document]) -> Vec<i32> {
    docs.iter().map(|d| d.get_i32("k").unwrap_or(-1)).collect()
}

/// A sort over more than its memory limit fails with 292 QueryExceededMemoryLimitNoDiskUseAllowed (find and
/// $sort); with a limit only the top k are held, so it succeeds; `allowDiskUse: true` spills and returns the
/// right order, and the spilled runs are gone once the cursor is.
#[tokio::test(flavor = "multi_thread")]
async fn blocking_sort_is_capped_and_spills_with_allow_disk_use() -> anyhow::Result<()> {
    let (node, client) = small_limits().await?;
    let coll = client.database("q").collection::<Document>("c");

    let err = coll
        .find(doc! {})
        .sort(doc! {"k": 1})
        .await
        .expect_err("a sort over the limit must fail");
    assert_eq!(error_code(&err), Some(292), "{err}");
    assert!(
        err.to_string().contains("Sort exceeded memory limit of 200000 bytes"),
        "{err}"
    );
    let err = coll
        .aggregate(vec![doc! {"$sort": {"k": -1}}])
        .await
        .expect_err("a $sort over the limit must fail");
    assert_eq!(error_code(&err), Some(292), "{err}");

    let top: Vec<Document> = coll
        .find(doc! {})
        .sort(doc! {"k": -1})
        .limit(5)
        .await?
        .try_collect()
        .await?;
    assert_eq!(ks(&top), vec![1999, 1998, 1997, 1996, 1995]);
    let top: Vec<Document> = coll
        .aggregate(vec![doc! {"$sort": {"k": 1}}, doc! {"$skip": 2}, doc! {"$limit": 3}])
        .await?
        .with_type::<Document>()
        .try_collect()
        .await?;
    assert_eq!(ks(&top), vec![2, 3, 4]);

    let mut cursor = coll
        .find(doc! {})
        .sort(doc! {"k": 1})
        .allow_disk_use(true)
        .batch_size(100)
        .await?;
    let mut sorted = Vec::new();
    while let Some(doc) = cursor.try_next().await? {
        if sorted.is_empty() {
            assert!(tmp_files(&node) > 0, "the sort spilled runs to <dbpath>/_tmp");
        }
        sorted.push(doc);
    }
    assert_eq!(ks(&sorted), (0..2_000).collect::<Vec<i32>>());
    drop(cursor);
    let spilled: Vec<Document> = coll
        .aggregate(vec![doc! {"$sort": {"k": -1}}, doc! {"$project": {"k": 1}}])
        .allow_disk_use(true)
        .await?
        .with_type::<Document>()
        .try_collect()
        .await?;
    assert_eq!(ks(&spilled), (0..2_000).rev().collect::<Vec<i32>>());
    wait_until(Duration::from_secs(10), "spilled runs to be removed", || async {
        (tmp_files(&node) == 0).then_some(())
    })
    .await?;

    // What a crash leaves in <dbpath>/_tmp is removed when the member starts.
    let mut node = node;
    std::fs::write(node.dbpath().join("_tmp").join("run-left-by-a-crash"), b"x")?;
    node.restart().await?;
    assert_eq!(tmp_files(&node), 0, "the temporary directory is emptied at start-up");
    Ok(())
}

/// `$group` accounts what it holds, `$push` included: over the limit it is 292; with `allowDiskUse` it spills
/// and merges to the same groups, `$push` arrays in input order.
#[tokio::test(flavor = "multi_thread")]
async fn group_is_capped_and_spills_with_allow_disk_use() -> anyhow::Result<()> {
    let (node, client) = small_limits().await?;
    let coll = client.database("q").collection::<Document>("c");
    let pipeline = vec![
        doc! {"$group": {"_id": "$g", "docs": {"$push": "$$ROOT"}, "n": {"$sum": 1}, "first": {"$first": "$_id"},
        "last": {"$last": "$_id"}, "max": {"$max": "$k"}, "avg": {"$avg": "$_id"}}},
        doc! {"$sort": {"_id": 1}},
        doc! {"$project": {"docs": {"$size": "$docs"}, "ids": "$docs._id", "n": 1, "first": 1, "last": 1, "max": 1, "avg": 1}},
    ];
    let err = coll
        .aggregate(pipeline.clone())
        .await
        .expect_err("a $group over the limit must fail");
    assert_eq!(error_code(&err), Some(292), "{err}");
    assert!(err.to_string().contains("Exceeded memory limit for $group"), "{err}");

    let groups: Vec<Document> = coll
        .aggregate(pipeline)
        .allow_disk_use(true)
        .await?
        .with_type::<Document>()
        .try_collect()
        .await?;
    assert_eq!(groups.len(), 10);
    for (g, group) in groups.iter().enumerate() {
        let g = g as i32;
        let ids: Vec<i32> = (0..2_000).filter(|i| i % 10 == g).collect();
        assert_eq!(group.get_i32("_id")?, g);
        assert_eq!(group.get_i32("n")?, 200, "{group}");
        assert_eq!(group.get_i32("first")?, g, "{group}");
        assert_eq!(group.get_i32("last")?, 1990 + g, "{group}");
        assert_eq!(
            group.get_f64("avg")?,
            f64::from(ids.iter().sum::<i32>()) / 200.0,
            "{group}"
        );
        let pushed: Vec<i32> = group.get_array("ids")?.iter().filter_map(|v| v.as_i32()).collect();
        assert_eq!(pushed, ids, "$push keeps input order across spilled runs");
    }
    wait_until(Duration::from_secs(10), "spilled runs to be removed", || async {
        (tmp_files(&node) == 0).then_some(())
    })
    .await?;
    Ok(())
}

/// A find or aggregate cursor holds a position, not a copy of the result: a document inserted after the first
/// batch, far beyond the position (past what the scan has read ahead), comes back in a later batch.
#[tokio::test(flavor = "multi_thread")]
async fn cursors_resume_from_a_position() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &[]).await?;
    node.initiate().await?;
    let port = node.port;
    raw_command(
        port,
        doc! {"insert": "c", "$db": "q", "documents": (0..5_000).map(|i| doc! {"_id": i}).collect::<Vec<_>>()},
    )
    .await?;
    for (name, body) in [
        (
            "find sorted by _id",
            doc! {"find": "c", "$db": "q", "sort": {"_id": 1}, "batchSize": 2},
        ),
        (
            "aggregate",
            doc! {"aggregate": "c", "$db": "q", "pipeline": [{"$match": {}}], "cursor": {"batchSize": 2}},
        ),
    ] {
        let first = raw_command(port, body).await?;
        let cursor = first.get_document("cursor")?;
        let mut seen: Vec<i32> = cursor
            .get_array("firstBatch")?
            .iter()
            .filter_map(|d| d.as_document()?.get_i32("_id").ok())
            .collect();
        let mut id = cursor.get_i64("id")?;
        let late = 10_000 + seen.len() as i32;
        raw_command(port, doc! {"insert": "c", "$db": "q", "documents": [{"_id": late}]}).await?;
        while id != 0 {
            let more = raw_command(port, doc! {"getMore": id, "collection": "c", "$db": "q"}).await?;
            let cursor = more.get_document("cursor")?;
            seen.extend(
                cursor
                    .get_array("nextBatch")?
                    .iter()
                    .filter_map(|d| d.as_document()?.get_i32("_id").ok()),
            );
            id = cursor.get_i64("id")?;
        }
        assert!(
            seen.contains(&late),
            "{name}: {} documents, the last {:?}",
            seen.len(),
            seen.last()
        );
    }
    Ok(())
}

/// Idle cursors are closed by a timer after `cursorTimeoutMillis` without another cursor being opened; a
/// getMore then answers 43 CursorNotFound. A `noCursorTimeout` cursor stays open.
#[tokio::test(flavor = "multi_thread")]
async fn idle_cursors_expire_on_a_timer() -> anyhow::Result<()> {
    let node = NodeProcess::start(
        bin(),
        &[
            "--setParameter",
            "cursorTimeoutMillis=300",
            "--setParameter",
            "clientCursorMonitorFrequencySecs=1",
        ],
    )
    .await?;
    node.initiate().await?;
    let port = node.port;
    raw_command(
        port,
        doc! {"insert": "c", "$db": "q", "documents": (0..10).map(|i| doc! {"_id": i}).collect::<Vec<_>>()},
    )
    .await?;
    let open = |extra: Document| async move {
        let mut body = doc! {"find": "c", "$db": "q", "batchSize": 1};
        body.extend(extra);
        let reply = raw_command(port, body).await?;
        anyhow::Ok(reply.get_document("cursor")?.get_i64("id")?)
    };
    let idle = open(doc! {}).await?;
    let pinned = open(doc! {"noCursorTimeout": true}).await?;
    let sorted = open(doc! {"sort": {"_id": -1}}).await?;
    assert!(idle != 0 && pinned != 0 && sorted != 0);
    // Polled through serverStatus: a getMore would make the cursor busy again.
    wait_until(
        Duration::from_secs(20),
        "the idle cursors to be closed",
        || async move {
            let status = raw_command(port, doc! {"serverStatus": 1, "$db": "admin"}).await.ok()?;
            let open = status
                .get_document("metrics")
                .ok()?
                .get_document("cursor")
                .ok()?
                .get_document("open")
                .ok()?;
            (open.get_i64("total").ok()? == 1).then_some(())
        },
    )
    .await?;
    for id in [idle, sorted] {
        let reply = raw_command(
            port,
            doc! {"getMore": id, "collection": "c", "$db": "q", "batchSize": 1},
        )
        .await?;
        assert_eq!(reply.get_i32("code").ok(), Some(43), "CursorNotFound: {reply}");
    }
    let reply = raw_command(
        port,
        doc! {"getMore": pinned, "collection": "c", "$db": "q", "batchSize": 1},
    )
    .await?;
    assert_eq!(
        reply.get_f64("ok")?,
        1.0,
        "the noCursorTimeout cursor is still open: {reply}"
    );
    Ok(())
}

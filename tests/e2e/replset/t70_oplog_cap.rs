//! The oplog is a capped collection (`--oplogSize`): under write load it stays near its maximum size on every
//! member, and a secondary that was away while more than the oplog holds was written comes back RECOVERING,
//! "too stale to catch up", until its data directory is wiped and it initial-syncs.

use std::time::Duration;

use bson::{Bson, Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};

use super::{ELECTION, config, initiate, member, start_members, state_of, wait_same_data};

const MIB: i64 = 1024 * 1024;

/// Members with a 1 MB oplog (mongod accepts any `--oplogSize` above 0).
pub(crate) fn tiny_oplog(_: usize) -> Vec<String> {
    vec!["--oplogSize".into(), "1".into()]
}

/// Inserts `ids` documents of about 2 KB each, 100 per command, acknowledged by a majority.
pub(crate) async fn insert_padded(port: u16, ids: std::ops::Range<i32>) -> anyhow::Result<()> {
    let pad = "x".repeat(2_000);
    let all: Vec<i32> = ids.collect();
    for chunk in all.chunks(100) {
        let docs: Vec<Document> = chunk.iter().map(|i| doc! {"_id": *i, "pad": &pad}).collect();
        let reply = raw_command(
            port,
            doc! {"insert": "c", "documents": docs, "writeConcern": {"w": "majority"}, "$db": "app"},
        )
        .await?;
        anyhow::ensure!(reply.get_i32("n")? == chunk.len() as i32, "insert: {reply}");
    }
    Ok(())
}

/// `storageStats` of `local.oplog.rs` on a member (what `rs.printReplicationInfo()` reads).
async fn oplog_stats(port: u16) -> anyhow::Result<Document> {
    let reply = raw_command(
        port,
        doc! {"aggregate": "oplog.rs", "pipeline": [{"$collStats": {"storageStats": {}}}], "cursor": {},
        "$readPreference": {"mode": "secondaryPreferred"}, "$db": "local"},
    )
    .await?;
    let batch = reply.get_document("cursor")?.get_array("firstBatch")?;
    let first = batch.first().and_then(Bson::as_document).cloned();
    Ok(first
        .ok_or_else(|| anyhow::anyhow!("no $collStats: {reply}"))?
        .get_document("storageStats")?
        .clone())
}

fn number(doc: &Document, key: &str) -> i64 {
    match doc.get(key) {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Double(v)) => *v as i64,
        _ => -1,
    }
}

/// The `ts` of a member's oldest (`1`) or newest (`-1`) oplog entry.
pub(crate) async fn oplog_end(port: u16, order: i32) -> anyhow::Result<bson::Timestamp> {
    let reply = raw_command(
        port,
        doc! {"find": "oplog.rs", "sort": {"$natural": order}, "limit": 1, "singleBatch": true,
        "$readPreference": {"mode": "secondaryPreferred"}, "$db": "local"},
    )
    .await?;
    let batch = reply.get_document("cursor")?.get_array("firstBatch")?;
    let entry = batch
        .first()
        .and_then(Bson::as_document)
        .ok_or_else(|| anyhow::anyhow!("empty oplog: {reply}"))?;
    Ok(entry.get_timestamp("ts")?)
}

pub(crate) fn later(a: bson::Timestamp, b: bson::Timestamp) -> bool {
    (a.time, a.increment) > (b.time, b.increment)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_oplog_stays_near_its_cap_on_every_member() -> anyhow::Result<()> {
    let nodes = start_members(3, tiny_oplog).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let first_entry = oplog_end(nodes[primary].port, 1).await?;
    // About 3 MB of oplog for a 1 MB cap.
    insert_padded(nodes[primary].port, 0..1_500).await?;
    let newest = oplog_end(nodes[primary].port, -1).await?;

    for node in &nodes {
        let port = node.port;
        // A member still in initial sync may hold only the entry it started from: wait until it has the
        // inserts, then until its truncation caught up with them.
        let stats = wait_until(
            ELECTION,
            &format!("member {port} to hold the newest insert and its oplog to shrink back under its 1 MB cap"),
            || async move {
                let theirs = oplog_end(port, -1).await.ok()?;
                if later(newest, theirs) {
                    return None;
                }
                let stats = oplog_stats(port).await.ok()?;
                (number(&stats, "size") <= MIB && number(&stats, "count") > 0).then_some(stats)
            },
        )
        .await?;
        // rs.printReplicationInfo(): "configured oplog size: 1MB", "log length ..." from these.
        assert_eq!(
            number(&stats, "maxSize"),
            MIB,
            "maxSize is the configured size: {stats}"
        );
        assert_eq!(stats.get_bool("capped").ok(), Some(true), "{stats}");
        assert!(
            number(&stats, "size") > MIB / 2,
            "only the oldest entries beyond the cap were removed: {stats}"
        );
        assert!(number(&stats, "count") < 1_500, "{stats}");
        let oldest = oplog_end(port, 1).await?;
        assert!(later(oldest, first_entry), "member {port} truncated its oldest entries");
    }
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    for node in &nodes {
        let reply = raw_command(
            node.port,
            doc! {"count": "c", "$readPreference": {"mode": "secondaryPreferred"}, "$db": "app"},
        )
        .await?;
        assert_eq!(number(&reply, "n"), 1_500, "no acknowledged write was lost: {reply}");
    }
    Ok(())
}

/// `members[]` entry `id` of a member's `replSetGetStatus`.
async fn status_of(port: u16, id: i32) -> Option<Document> {
    let status = raw_command(port, doc! {"replSetGetStatus": 1, "$db": "admin"})
        .await
        .ok()?;
    status
        .get_array("members")
        .ok()?
        .iter()
        .filter_map(Bson::as_document)
        .find(|m| m.get_i32("_id").ok() == Some(id))
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secondary_that_fell_off_the_oplog_is_too_stale_until_resynced() -> anyhow::Result<()> {
    let mut nodes = start_members(3, tiny_oplog).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let stale = (primary + 1) % 3;
    let other = (primary + 2) % 3;
    insert_padded(nodes[primary].port, 0..100).await?;
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;

    // The secondary is away while more than the oplog holds is written.
    nodes[stale].kill();
    let before = oplog_end(nodes[primary].port, -1).await?;
    insert_padded(nodes[primary].port, 100..1_300).await?;
    for port in [nodes[primary].port, nodes[other].port] {
        wait_until(
            ELECTION,
            "the remaining members to truncate past the stopped member's newest entry",
            || async move { oplog_end(port, 1).await.ok().filter(|oldest| later(*oldest, before)) },
        )
        .await?;
    }

    // Back on the same data: neither member still has its newest entry, so it cannot catch up (and must not
    // mistake that for a rollback).
    nodes[stale].restart().await?;
    let stale_port = nodes[stale].port;
    let me = wait_until(
        ELECTION,
        "the returning member to be RECOVERING, too stale",
        || async move {
            let me = status_of(stale_port, stale as i32).await?;
            (me.get_i32("state").ok() == Some(3)).then_some(me)
        },
    )
    .await?;
    assert_eq!(
        me.get_str("infoMessage").ok(),
        Some("error RS102 too stale to catch up"),
        "{me}"
    );
    // The state changes first; the log line follows from the member's action task.
    let stale_node = &nodes[stale];
    let log = wait_until(
        ELECTION,
        "mongod's \"too stale to catch up\" line in the log",
        || async move {
            let log = stale_node.log();
            log.contains("too stale to catch up").then_some(log)
        },
    )
    .await?;
    assert!(
        !log.contains("rolling back"),
        "falling off the oplog is not a rollback:\n{log}"
    );
    let primary_port = nodes[primary].port;
    wait_until(ELECTION, "the primary to report the member's RS102", || async move {
        let seen = status_of(primary_port, stale as i32).await?;
        (seen.get_str("lastHeartbeatMessage").ok()? == "error RS102 too stale to catch up").then_some(())
    })
    .await?;
    // It stays there, and the others are unaffected: still PRIMARY and SECONDARY, majority writes go on.
    insert_padded(nodes[primary].port, 1_300..1_400).await?;
    assert_eq!(state_of(&nodes[stale]).await, Some(3), "still RECOVERING");
    assert_eq!(state_of(&nodes[primary]).await, Some(1));
    assert_eq!(state_of(&nodes[other]).await, Some(2));

    // Resync: wipe its data directory and start it again: it initial-syncs and ends with the same data.
    nodes[stale].kill();
    std::fs::remove_dir_all(nodes[stale].dbpath())?;
    nodes[stale].restart().await?;
    let node = &nodes[stale];
    wait_until(
        Duration::from_secs(60),
        "the resynced member to be SECONDARY",
        || async move { (state_of(node).await == Some(2)).then_some(()) },
    )
    .await?;
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    let reply = raw_command(
        nodes[stale].port,
        doc! {"count": "c", "$readPreference": {"mode": "secondaryPreferred"}, "$db": "app"},
    )
    .await?;
    assert_eq!(number(&reply, "n"), 1_400, "{reply}");
    Ok(())
}

/// Initial sync applies the source's oplog from the newest entry it noted before cloning. If the source's
/// capped oplog drops that entry while the data is being cloned, the attempt must start over rather than apply
/// from a later entry (which would silently miss the writes in between).
#[tokio::test(flavor = "multi_thread")]
async fn initial_sync_starts_over_when_the_source_truncates_its_begin_point() -> anyhow::Result<()> {
    let nodes = start_members(3, |i| {
        let mut args = tiny_oplog(i);
        if i == 2 {
            args.extend([
                "--setParameter".into(),
                "failpoint.initialSyncHangAfterDataCloning=alwaysOn".into(),
            ]);
        }
        args
    })
    .await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let reply = raw_command(nodes[0].port, doc! {"replSetInitiate": config(members), "$db": "admin"}).await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "replSetInitiate: {reply}");
    let primary = super::wait_for_primary(&nodes, &[2]).await?;
    let syncing = &nodes[2];
    wait_until(
        ELECTION,
        "member 2's initial sync to pause after cloning",
        || async move {
            syncing
                .log()
                .contains("initialSyncHangAfterDataCloning fail point enabled")
                .then_some(())
        },
    )
    .await?;
    // Everything the paused initial sync noted as its begin point is at or before this entry.
    let before = oplog_end(nodes[primary].port, -1).await?;
    insert_padded(nodes[primary].port, 0..1_200).await?;
    for node in &nodes[..2] {
        let port = node.port;
        wait_until(ELECTION, "the source's oplog to drop the begin point", || async move {
            oplog_end(port, 1).await.ok().filter(|oldest| later(*oldest, before))
        })
        .await?;
    }
    let reply = raw_command(
        nodes[2].port,
        doc! {"configureFailPoint": "initialSyncHangAfterDataCloning", "mode": "off", "$db": "admin"},
    )
    .await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "configureFailPoint: {reply}");
    wait_until(
        Duration::from_secs(60),
        "member 2 to finish initial sync as SECONDARY",
        || async move { (state_of(syncing).await == Some(2)).then_some(()) },
    )
    .await?;
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    let reply = raw_command(
        nodes[2].port,
        doc! {"count": "c", "$readPreference": {"mode": "secondaryPreferred"}, "$db": "app"},
    )
    .await?;
    assert_eq!(number(&reply, "n"), 1_200, "{reply}");
    let log = nodes[2].log();
    assert!(
        log.contains("OplogStartMissing") || log.contains("no longer holds the initial sync's begin point"),
        "the first attempt noticed the truncated begin point:\n{log}"
    );
    Ok(())
}

/// `replSetResizeOplog` changes the maximum size at run time (990 MB to 1 PB, as mongod); the size is the
/// oplog's, so it survives a restart with the old `--oplogSize`.
#[tokio::test(flavor = "multi_thread")]
async fn resize_oplog_sets_a_lasting_maximum_size() -> anyhow::Result<()> {
    let mut node = NodeProcess::start(super::bin(), &["--oplogSize", "1"]).await?;
    node.initiate().await?;
    let opts = raw_command(node.port, doc! {"getCmdLineOpts": 1, "$db": "admin"}).await?;
    let parsed = opts.get_document("parsed")?.get_document("replication")?;
    assert_eq!(number(parsed, "oplogSizeMB"), 1, "{opts}");
    assert_eq!(number(&oplog_stats(node.port).await?, "maxSize"), MIB);

    let too_small = raw_command(node.port, doc! {"replSetResizeOplog": 1, "size": 5.0, "$db": "admin"}).await?;
    assert_eq!(too_small.get_i32("code").ok(), Some(2), "{too_small}");
    assert!(too_small.get_str("errmsg")?.contains(">= 990"), "{too_small}");
    let retention = raw_command(
        node.port,
        doc! {"replSetResizeOplog": 1, "minRetentionHours": 2.0, "$db": "admin"},
    )
    .await?;
    assert_eq!(
        retention.get_f64("ok").ok(),
        Some(0.0),
        "unsupported, refused: {retention}"
    );

    let reply = raw_command(node.port, doc! {"replSetResizeOplog": 1, "size": 990.0, "$db": "admin"}).await?;
    assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{reply}");
    assert_eq!(number(&oplog_stats(node.port).await?, "maxSize"), 990 * MIB);
    node.restart().await?;
    node.wait_primary().await?;
    assert_eq!(
        number(&oplog_stats(node.port).await?, "maxSize"),
        990 * MIB,
        "the resized oplog keeps its size; --oplogSize only sizes a new oplog"
    );
    Ok(())
}

/// The `collStats` command (older shells' `db.oplog.rs.stats()`) reports the oplog as mongod does: capped, with
/// its maximum size, real size and count.
#[tokio::test(flavor = "multi_thread")]
async fn coll_stats_command_reports_the_capped_oplog() -> anyhow::Result<()> {
    let node = NodeProcess::start(super::bin(), &["--oplogSize", "1"]).await?;
    node.initiate().await?;
    insert_padded(node.port, 0..10).await?;
    let stats = raw_command(node.port, doc! {"collStats": "oplog.rs", "$db": "local"}).await?;
    assert_eq!(stats.get_f64("ok").ok(), Some(1.0), "{stats}");
    assert_eq!(stats.get_bool("capped").ok(), Some(true), "{stats}");
    assert_eq!(number(&stats, "maxSize"), MIB, "{stats}");
    let agg = oplog_stats(node.port).await?;
    assert_eq!(number(&stats, "count"), number(&agg, "count"), "{stats} vs {agg}");
    assert_eq!(number(&stats, "size"), number(&agg, "size"), "{stats} vs {agg}");
    assert!(number(&stats, "size") > 10 * 2_000, "{stats}");
    Ok(())
}

//! Rollback: an old primary cut off from the others keeps taking `w: 1` writes until it notices; the others
//! elect a new primary and take other writes; after healing, the old primary's unreplicated writes are rolled
//! back, saved under `rollback/`, and it rejoins as SECONDARY with the new primary's data.

use anyhow::Context as _;
use bson::{Document, doc};
use faultline_tests::proxy::RoutedMembers;
use faultline_tests::{NodeProcess, raw_command, wait_until};

use crate::*;

/// Three members behind link proxies, initiated, with a majority-committed `base` document in `app.c`;
/// returns them and the primary.
async fn set_with_base() -> anyhow::Result<(RoutedMembers, usize)> {
    let routed = faultline_tests::proxy::start_routed(bin(), 3, &[]).await?;
    let nodes = &routed.nodes;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(nodes, config(members)).await?;
    let reply = raw_command(
        nodes[primary].port,
        doc! {"insert": "c", "documents": [{"_id": "base"}], "writeConcern": {"w": "majority"}, "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");
    Ok((routed, primary))
}

/// Cuts the primary `old` off in both directions and sends it `w: 1` inserts `{prefix}-{i}` until one is
/// refused: it still believes it is primary for a moment, so some are acknowledged but never replicate.
/// Returns the acknowledged ids (at least one).
async fn isolate_and_write(routed: &RoutedMembers, old: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
    isolate_and_write_to(routed, old, prefix, &["c"]).await
}

/// [`isolate_and_write`] into each of `collections` (the id counts as acknowledged when the first took it).
async fn isolate_and_write_to(
    routed: &RoutedMembers,
    old: usize,
    prefix: &str,
    collections: &[&str],
) -> anyhow::Result<Vec<String>> {
    routed.isolate(old);
    let mut acknowledged = Vec::new();
    'writes: for i in 0..20 {
        let id = format!("{prefix}-{i}");
        for (k, collection) in collections.iter().enumerate() {
            let reply = raw_command(
                routed.nodes[old].port,
                doc! {"insert": *collection, "documents": [{"_id": &id}], "writeConcern": {"w": 1}, "$db": "app"},
            )
            .await?;
            if reply.get_i32("n").unwrap_or(0) != 1 {
                break 'writes;
            }
            if k == 0 {
                acknowledged.push(id.clone());
            }
        }
    }
    anyhow::ensure!(
        !acknowledged.is_empty(),
        "the partitioned primary accepted no w:1 write before stepping down"
    );
    Ok(acknowledged)
}

/// Waits until the cut-off old primary has stepped down, then heals every link.
async fn heal_after_step_down(routed: &RoutedMembers, old: usize) -> anyhow::Result<()> {
    let old_node = &routed.nodes[old];
    wait_until(ELECTION, "the old primary to step down", || async move {
        (state_of(old_node).await? != 1).then_some(())
    })
    .await?;
    routed.heal();
    Ok(())
}

/// Waits until a member that rolled back has caught up and is SECONDARY again.
async fn wait_secondary_again(node: &NodeProcess) -> anyhow::Result<()> {
    wait_until(ELECTION, "the old primary to be SECONDARY again", || async move {
        (state_of(node).await? == 2).then_some(())
    })
    .await
}

/// The string `_id`s in `app.c` on a member (read as a secondary).
async fn ids_on(node: &NodeProcess) -> anyhow::Result<Vec<String>> {
    let docs = raw_command(
        node.port,
        doc! {"find": "c", "$db": "app", "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await?;
    Ok(docs
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|d| d.as_document()?.get_str("_id").ok().map(String::from))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_primary_rolls_back_its_unreplicated_writes() -> anyhow::Result<()> {
    let (routed, old) = set_with_base().await?;
    let nodes = &routed.nodes;
    let majority = doc! {"w": "majority"};
    // A collection name that would steer a namespace-built path out of the data directory: rollback must
    // not create anything outside <dbpath>/rollback (mongod names rollback directories by collection UUID).
    let escape_name = format!("escape-{}", std::process::id());
    let hostile = format!("x/../../../{escape_name}");
    let lost = isolate_and_write_to(&routed, old, "lost", &["c", hostile.as_str()]).await?;
    let new = wait_for_primary(nodes, &[old]).await?;
    let reply = raw_command(
        nodes[new].port,
        doc! {"insert": "c", "documents": [{"_id": "kept"}], "writeConcern": majority, "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");
    heal_after_step_down(&routed, old).await?;
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    let old_node = &nodes[old];
    wait_secondary_again(old_node).await?;

    let ids = ids_on(&nodes[old]).await?;
    assert!(
        ids.contains(&"base".to_string()) && ids.contains(&"kept".to_string()),
        "{ids:?}"
    );
    assert!(
        lost.iter().all(|l| !ids.contains(l)),
        "rolled-back writes are gone: {ids:?}"
    );
    let dbpath = nodes[old].dbpath();
    let escaped = dbpath.parent().map(|p| p.join(&escape_name));
    assert!(
        escaped.as_ref().is_some_and(|p| !p.exists()),
        "rollback wrote outside the data directory: {escaped:?}"
    );
    let rollback_root = dbpath.join("rollback");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&rollback_root)?.filter_map(|e| e.ok()) {
        let name = dir.file_name().to_string_lossy().to_string();
        assert!(
            bson::Uuid::parse_str(&name).is_ok(),
            "rollback directories are collection UUIDs, not namespaces: {name}"
        );
        files.extend(std::fs::read_dir(dir.path())?.filter_map(|e| e.ok()));
    }
    assert!(
        !files.is_empty(),
        "rolled-back documents are saved under {}",
        rollback_root.display()
    );
    let mut saved = Vec::new();
    for file in files {
        let bytes = std::fs::read(file.path())?;
        let mut cursor = std::io::Cursor::new(bytes);
        while (cursor.position() as usize) < cursor.get_ref().len() {
            saved.push(Document::from_reader(&mut cursor)?);
        }
    }
    let saved_ids: Vec<String> = saved
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(String::from))
        .collect();
    assert!(
        lost.iter().all(|l| saved_ids.contains(l)),
        "every lost write is in the rollback files: {saved_ids:?} vs {lost:?}"
    );
    let rbid = raw_command(nodes[old].port, doc! {"replSetGetRBID": 1, "$db": "admin"}).await?;
    assert!(rbid.get_i32("rbid")? > 1);
    Ok(())
}

/// A deposed primary whose clock ran ahead wrote entries with later timestamps than anything the new primary
/// writes afterwards. With no newer writes to reveal the divergence through a mismatched entry, it must still
/// see that its newest entries are not in the newer-term source's history, roll them back, and agree with
/// the others.
#[tokio::test(flavor = "multi_thread")]
async fn deposed_primary_with_a_fast_clock_rolls_back_without_newer_writes() -> anyhow::Result<()> {
    let (routed, old) = set_with_base().await?;
    let nodes = &routed.nodes;
    let skew = doc! {"configureFailPoint": "skewClock", "mode": "alwaysOn", "data": {"offsetMillis": 60_000},
    "$db": "admin"};
    let reply = raw_command(nodes[old].port, skew).await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");

    let ahead = isolate_and_write(&routed, old, "ahead").await?;
    wait_for_primary(nodes, &[old]).await?;
    heal_after_step_down(&routed, old).await?;
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await.with_context(|| {
        let logs: Vec<String> = nodes
            .iter()
            .map(|n| format!("--- member on port {}\n{}", n.port, n.log()))
            .collect();
        format!("the members' logs:\n{}", logs.join("\n"))
    })?;
    wait_secondary_again(&nodes[old]).await?;
    let rbid = raw_command(nodes[old].port, doc! {"replSetGetRBID": 1, "$db": "admin"}).await?;
    assert!(rbid.get_i32("rbid")? > 1, "the old primary rolled back: {rbid}");
    let ids = ids_on(&nodes[old]).await?;
    assert!(
        ahead.iter().all(|a| !ids.contains(a)) && ids.contains(&"base".to_string()),
        "the later-stamped writes are gone: {ids:?}"
    );
    Ok(())
}

/// A deposed primary whose common point with the others is gone from their capped oplogs cannot roll back
/// (mongod's RS100): it stops with a resync message instead of retrying forever, and loses nothing silently.
/// Its clock runs ahead, so its diverged entries are newer than the others' oldest: this is a divergence, not
/// a member that is merely too stale.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_whose_common_point_was_truncated_stops_the_member() -> anyhow::Result<()> {
    let routed = faultline_tests::proxy::start_routed(bin(), 3, &["--oplogSize", "1"]).await?;
    let nodes = &routed.nodes;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let old = initiate(nodes, config(members)).await?;
    let skew = doc! {"configureFailPoint": "skewClock", "mode": "alwaysOn", "data": {"offsetMillis": 600_000},
    "$db": "admin"};
    let reply = raw_command(nodes[old].port, skew).await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");
    isolate_and_write(&routed, old, "ahead").await?;
    let new = wait_for_primary(nodes, &[old]).await?;
    // The common point is at or before the new primary's newest entry now; then more than the oplog holds.
    let before = crate::t70_oplog_cap::oplog_end(nodes[new].port, -1).await?;
    crate::t70_oplog_cap::insert_padded(nodes[new].port, 0..1_200).await?;
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != old) {
        let port = node.port;
        wait_until(
            ELECTION,
            &format!("member {i} to truncate past the common point"),
            || async move {
                crate::t70_oplog_cap::oplog_end(port, 1)
                    .await
                    .ok()
                    .filter(|oldest| crate::t70_oplog_cap::later(*oldest, before))
            },
        )
        .await?;
    }
    heal_after_step_down(&routed, old).await?;
    let old_node = &nodes[old];
    wait_until(
        ELECTION,
        "the old primary to stop with a resync message",
        || async move {
            let log = old_node.log();
            let stopped = raw_command(old_node.port, doc! {"hello": 1, "$db": "admin"})
                .await
                .is_err();
            (stopped && log.contains("RS100 reached beginning of remote oplog")).then_some(())
        },
    )
    .await
    .with_context(|| format!("the old primary's log:\n{}", old_node.log()))?;
    assert!(old_node.log().contains("must be resynced"), "{}", old_node.log());
    // The others carry on.
    let others: Vec<&NodeProcess> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != old)
        .map(|(_, n)| n)
        .collect();
    crate::t70_oplog_cap::insert_padded(nodes[new].port, 1_200..1_210).await?;
    wait_same_data(&others, "app").await?;
    Ok(())
}

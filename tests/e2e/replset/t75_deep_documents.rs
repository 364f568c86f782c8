//! Hostile nesting in a replica set: an update that would build a document past the storage limit is refused
//! on the primary, so it never reaches the oplog; no secondary has anything to crash on, and a deposed
//! primary that was sent such a write while cut off rolls back and rejoins as usual.

use bson::{Bson, Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};

use crate::*;

/// `a.a.…a` with `parts` parts.
fn dotted(parts: usize) -> String {
    vec!["a"; parts].join(".")
}

/// MongoDB's depth of a document (top level = 1; empty embedded documents and arrays add nothing).
fn depth(value: &Bson) -> usize {
    match value {
        Bson::Document(d) if !d.is_empty() => 1 + d.values().map(depth).max().unwrap_or(0),
        Bson::Array(a) if !a.is_empty() => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn write_error_code(reply: &Document) -> Option<i32> {
    reply
        .get_array("writeErrors")
        .ok()?
        .first()?
        .as_document()?
        .get_i32("code")
        .ok()
}

/// Every oplog entry about `app.c` on a member.
async fn oplog_entries(node: &NodeProcess) -> anyhow::Result<Vec<Document>> {
    let reply = raw_command(
        node.port,
        doc! {"find": "oplog.rs", "filter": {"ns": "app.c"}, "batchSize": 10_000, "$db": "local",
        "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await?;
    Ok(reply
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_updates_never_reach_the_oplog_or_the_secondaries() -> anyhow::Result<()> {
    let routed = faultline_tests::proxy::start_routed(bin(), 3, &[]).await?;
    let nodes = &routed.nodes;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let old = initiate(nodes, config(members)).await?;
    let majority = doc! {"w": "majority", "wtimeout": 30_000};
    let reply = raw_command(
        nodes[old].port,
        doc! {"insert": "c", "documents": [{"_id": 1, "x": 1}], "writeConcern": majority.clone(), "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");

    for parts in [181, 1_500, 20_000] {
        let reply = raw_command(
            nodes[old].port,
            doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {dotted(parts): 1}}}],
            "writeConcern": majority.clone(), "$db": "app"},
        )
        .await?;
        assert_eq!(write_error_code(&reply), Some(15), "$set with {parts} parts: {reply}");
    }
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    for node in nodes {
        let entries = oplog_entries(node).await?;
        assert_eq!(
            entries.len(),
            1,
            "only the insert is logged on {}: {entries:?}",
            node.port
        );
        for entry in &entries {
            assert!(depth(&Bson::Document(entry.clone())) <= 200, "{entry}");
        }
    }

    // Cut the primary off and send it the deep write again while it still thinks it leads, next to a w:1
    // write that will be rolled back: it must refuse the first, and roll back and rejoin after healing.
    routed.isolate(old);
    let reply = raw_command(
        nodes[old].port,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {dotted(1_500): 1}}}],
        "writeConcern": {"w": 1}, "$db": "app"},
    )
    .await?;
    let refused = write_error_code(&reply);
    assert!(
        refused == Some(15) || reply.get_f64("ok").ok() == Some(0.0),
        "the cut-off primary refuses the deep write (Overflow, or not primary any more): {reply}"
    );
    let _ = raw_command(
        nodes[old].port,
        doc! {"insert": "c", "documents": [{"_id": "lost"}], "writeConcern": {"w": 1}, "$db": "app"},
    )
    .await?;
    let new = wait_for_primary(nodes, &[old]).await?;
    let reply = raw_command(
        nodes[new].port,
        doc! {"insert": "c", "documents": [{"_id": "kept"}], "writeConcern": majority, "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");
    let old_node = &nodes[old];
    wait_until(ELECTION, "the old primary to step down", || async move {
        (state_of(old_node).await? != 1).then_some(())
    })
    .await?;
    routed.heal();
    wait_same_data(&refs, "app").await?;
    wait_until(ELECTION, "the old primary to be SECONDARY again", || async move {
        (state_of(old_node).await? == 2).then_some(())
    })
    .await?;
    for node in nodes {
        let ping = raw_command(node.port, doc! {"ping": 1, "$db": "admin"}).await?;
        assert_eq!(ping.get_f64("ok")?, 1.0);
        for entry in oplog_entries(node).await? {
            assert_ne!(entry.get_str("op")?, "u", "no update of app.c was ever logged: {entry}");
        }
    }
    Ok(())
}

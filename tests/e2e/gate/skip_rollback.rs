//! Fail point `skipRollback`, end to end: an old primary cut off from the others takes `w: 1` writes; the
//! others elect a new primary that takes its own write; after healing, the old primary does not roll back.
//! It keeps the writes nobody else has, applies the new primary's newer entries, and the members' data
//! differ for good (without the fail point, replset's rollback test shows the writes removed and saved).

use std::time::Duration;

use bson::{Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};

use crate::bin;

const ELECTION: Duration = Duration::from_secs(30);

async fn is_writable_primary(port: u16) -> bool {
    raw_command(port, doc! {"hello": 1, "$db": "admin"})
        .await
        .is_ok_and(|h| h.get_bool("isWritablePrimary").unwrap_or(false))
}

async fn primary_among(nodes: &[NodeProcess], except: Option<usize>) -> anyhow::Result<usize> {
    let ports: Vec<(usize, u16)> = nodes.iter().map(|n| n.port).enumerate().collect();
    wait_until(ELECTION, "a writable primary", || {
        let ports = ports.clone();
        async move {
            for (i, port) in ports {
                if Some(i) != except && is_writable_primary(port).await {
                    return Some(i);
                }
            }
            None
        }
    })
    .await
}

async fn ids_on(node: &NodeProcess) -> Vec<String> {
    let Ok(reply) = raw_command(
        node.port,
        doc! {"find": "c", "$db": "app", "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await
    else {
        return Vec::new();
    };
    let batch = reply.get_document("cursor").and_then(|c| c.get_array("firstBatch"));
    batch
        .map(|docs| {
            docs.iter()
                .filter_map(|d| d.as_document()?.get_str("_id").ok().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diverged_member_keeps_its_writes_with_skip_rollback() -> anyhow::Result<()> {
    let routed =
        faultline_tests::proxy::start_routed(bin(), 3, &["--setParameter", "failpoint.skipRollback=alwaysOn"]).await?;
    let nodes = &routed.nodes;
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let members: Vec<Document> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| doc! {"_id": i as i32, "host": format!("127.0.0.1:{p}")})
        .collect();
    let config = doc! {"_id": "rs0", "version": 1, "members": members,
    "settings": {"electionTimeoutMillis": 1000, "heartbeatIntervalMillis": 200}};
    let reply = raw_command(nodes[0].port, doc! {"replSetInitiate": config, "$db": "admin"}).await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "replSetInitiate: {reply}");
    let old = primary_among(nodes, None).await?;
    let majority = doc! {"w": "majority", "wtimeout": 20_000};
    let base = doc! {"insert": "c", "documents": [{"_id": "base"}], "writeConcern": majority.clone(), "$db": "app"};
    let reply = raw_command(nodes[old].port, base).await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");

    routed.isolate(old);
    let mut diverged = Vec::new();
    for i in 0..20 {
        let insert = doc! {"insert": "c", "documents": [{"_id": format!("diverged-{i}")}],
        "writeConcern": {"w": 1}, "$db": "app"};
        match raw_command(nodes[old].port, insert).await {
            Ok(reply) if reply.get_i32("n").unwrap_or(0) == 1 => diverged.push(format!("diverged-{i}")),
            _ => break,
        }
    }
    assert!(!diverged.is_empty(), "the cut-off primary accepted no w:1 write");
    let new = primary_among(nodes, Some(old)).await?;
    let reply = raw_command(
        nodes[new].port,
        doc! {"insert": "c", "documents": [{"_id": "after"}], "writeConcern": majority, "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");
    routed.heal();

    let old_node = &nodes[old];
    let ids = wait_until(
        ELECTION,
        "the old primary to apply the new primary's write",
        || async move {
            let ids = ids_on(old_node).await;
            ids.contains(&"after".to_string()).then_some(ids)
        },
    )
    .await?;
    assert!(
        diverged.iter().all(|d| ids.contains(d)),
        "with skipRollback the diverged writes stay: {ids:?}"
    );
    let on_new = ids_on(&nodes[new]).await;
    assert!(
        diverged.iter().all(|d| !on_new.contains(d)),
        "the new primary never had them: {on_new:?}"
    );
    let rbid = raw_command(nodes[old].port, doc! {"replSetGetRBID": 1, "$db": "admin"}).await?;
    assert_eq!(rbid.get_i32("rbid")?, 1, "no rollback happened");
    let listed = raw_command(nodes[old].port, doc! {"listFailPoints": 1, "$db": "admin"}).await?;
    let hit = listed
        .get_array("failPoints")?
        .iter()
        .filter_map(|p| p.as_document())
        .find(|p| p.get_str("name").ok() == Some("skipRollback"))
        .and_then(|p| p.get_i64("timesEntered").ok());
    assert!(hit.is_some_and(|n| n > 0), "the fail point was hit: {listed}");
    Ok(())
}

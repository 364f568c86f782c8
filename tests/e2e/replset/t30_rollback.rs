//! Rollback: an old primary cut off from the others keeps taking `w: 1` writes until it notices; the others
//! elect a new primary and take other writes; after healing, the old primary's unreplicated writes are rolled
//! back, saved under `rollback/`, and it rejoins as SECONDARY with the new primary's data.

use bson::{Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_primary_rolls_back_its_unreplicated_writes() -> anyhow::Result<()> {
    let routed = faultline_tests::proxy::start_routed(bin(), 3, &[]).await?;
    let nodes = &routed.nodes;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let old = initiate(nodes, config(members)).await?;
    let majority = doc! {"w": "majority"};
    let reply = raw_command(
        nodes[old].port,
        doc! {"insert": "c", "documents": [{"_id": "base"}], "writeConcern": majority.clone(), "$db": "app"},
    )
    .await?;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");

    // Cut the old primary off in both directions.
    routed.isolate(old);
    // It still believes it is primary for a moment: w:1 writes are acknowledged but never replicate.
    let mut lost = Vec::new();
    for i in 0..20 {
        let reply = raw_command(
            nodes[old].port,
            doc! {"insert": "c", "documents": [{"_id": format!("lost-{i}")}], "writeConcern": {"w": 1}, "$db": "app"},
        )
        .await?;
        if reply.get_i32("n").unwrap_or(0) == 1 {
            lost.push(format!("lost-{i}"));
        } else {
            break;
        }
    }
    assert!(
        !lost.is_empty(),
        "the partitioned primary accepted no w:1 write before stepping down"
    );
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
    let refs: Vec<&NodeProcess> = nodes.iter().collect();
    wait_same_data(&refs, "app").await?;
    wait_until(ELECTION, "the old primary to be SECONDARY again", || async move {
        (state_of(old_node).await? == 2).then_some(())
    })
    .await?;

    let docs = raw_command(
        nodes[old].port,
        doc! {"find": "c", "$db": "app", "$readPreference": {"mode": "secondary"}},
    )
    .await?;
    let ids: Vec<String> = docs
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|d| d.as_document()?.get_str("_id").ok().map(String::from))
        .collect();
    assert!(
        ids.contains(&"base".to_string()) && ids.contains(&"kept".to_string()),
        "{ids:?}"
    );
    assert!(
        lost.iter().all(|l| !ids.contains(l)),
        "rolled-back writes are gone: {ids:?}"
    );
    let rollback_dir = nodes[old].dbpath().join("rollback").join("app.c");
    let files: Vec<_> = std::fs::read_dir(&rollback_dir)?.filter_map(|e| e.ok()).collect();
    assert!(
        !files.is_empty(),
        "rolled-back documents are saved under {}",
        rollback_dir.display()
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

//! A planted bug does only what its name says: `skipJournalFsync` acknowledges a `w: "majority"` write
//! without any fsync, but still only once a majority has the write. With both secondaries gone the write
//! must not be acknowledged (it was, which made the fail point a second `ackMajorityBeforeReplication`).

use bson::doc;
use faultline_tests::raw_command;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_journal_fsync_still_waits_for_the_majority() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| Vec::new()).await?;
    let members = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let port = nodes[primary].port;
    let reply = raw_command(
        port,
        doc! {"configureFailPoint": "skipJournalFsync", "mode": "alwaysOn", "$db": "admin"},
    )
    .await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");

    // With the secondaries up, the write is acknowledged (no fsync awaited anywhere).
    let reply = raw_command(
        port,
        doc! {"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": "majority", "wtimeout": 20_000},
        "$db": "app"},
    )
    .await?;
    assert!(
        reply.get("writeConcernError").is_none(),
        "acknowledged while replicated: {reply}"
    );

    for (i, node) in nodes.iter_mut().enumerate() {
        if i != primary {
            node.kill();
        }
    }
    let reply = raw_command(
        port,
        doc! {"insert": "c", "documents": [{"_id": 2}], "writeConcern": {"w": "majority", "wtimeout": 500},
        "$db": "app"},
    )
    .await?;
    assert!(
        reply.get_document("writeConcernError").is_ok() || reply.get_f64("ok")? == 0.0,
        "a majority write with no secondary alive must not be acknowledged, even with skipJournalFsync: {reply}"
    );
    Ok(())
}

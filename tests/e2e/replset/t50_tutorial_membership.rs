//! The replica-set tutorials' membership steps as mongosh types them: `rs.initiate()` on one member, then
//! `rs.add()`, `rs.add()`, `rs.addArb()` one after the other; and the implicit default write concern of a set
//! with an arbiter (MongoDB 5.0+: `{w: 1}` for PSA and PSSA), which keeps writes going when a data member dies.

use bson::{Bson, Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};

use crate::*;

/// `rs.add(host)` / `rs.addArb(host)`: read the config, append the member, bump the version, reconfig.
async fn rs_add(primary: &NodeProcess, id: i32, node: &NodeProcess, arbiter: bool) -> anyhow::Result<Document> {
    let current = raw_command(primary.port, doc! {"replSetGetConfig": 1, "$db": "admin"}).await?;
    let mut config = current.get_document("config")?.clone();
    let mut members = config.get_array("members")?.clone();
    let mut entry = member(id, node);
    if arbiter {
        entry.insert("arbiterOnly", true);
    }
    members.push(Bson::Document(entry));
    config.insert("members", members);
    config.insert("version", config.get_i32("version")? + 1);
    raw_command(primary.port, doc! {"replSetReconfig": config, "$db": "admin"}).await
}

async fn term_and_primary(node: &NodeProcess) -> anyhow::Result<(i64, bool)> {
    let status = raw_command(node.port, doc! {"replSetGetStatus": 1, "$db": "admin"}).await?;
    Ok((status.get_i64("term")?, status.get_i32("myState")? == 1))
}

/// Added voters are `newlyAdded` (not voting, not counted for majorities) until they reach SECONDARY, so
/// adding two members back to back never costs the one-member primary its role. The arbiter, which would
/// change the implicit default write concern, needs a cluster-wide write concern first, as in MongoDB.
#[tokio::test(flavor = "multi_thread")]
async fn initiate_add_add_add_arbiter_keeps_the_primary() -> anyhow::Result<()> {
    let nodes = start_members(4, |_| vec![]).await?;
    let first = &nodes[0];
    let reply = raw_command(first.port, doc! {"replSetInitiate": {}, "$db": "admin"}).await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");
    wait_for_primary(&nodes[..1], &[]).await?;
    let (term, _) = term_and_primary(first).await?;

    for (id, node) in [(1, &nodes[1]), (2, &nodes[2])] {
        let reply = rs_add(first, id, node, false).await?;
        assert_eq!(reply.get_f64("ok")?, 1.0, "rs.add({}): {reply}", host(node));
        assert_eq!(
            term_and_primary(first).await?,
            (term, true),
            "the primary stays after rs.add"
        );
    }
    let conf = raw_command(first.port, doc! {"replSetGetConfig": 1, "$db": "admin"}).await?;
    assert!(
        !conf.to_string().contains("newlyAdded"),
        "rs.conf() hides the server-managed flag: {conf}"
    );
    let with_flags = raw_command(
        first.port,
        doc! {"replSetGetConfig": 1, "includeNewlyAdded": true, "$db": "admin"},
    )
    .await?;
    let _ = with_flags; // the flags may already be cleared if the members synced that fast

    let refused = rs_add(first, 3, &nodes[3], true).await?;
    assert_eq!(
        refused.get_i32("code").ok(),
        Some(103),
        "adding an arbiter changes the implicit default write concern: {refused}"
    );
    let defaults = raw_command(first.port, doc! {"getDefaultRWConcern": 1, "$db": "admin"}).await?;
    assert_eq!(defaults.get_str("defaultWriteConcernSource")?, "implicit", "{defaults}");
    let set = raw_command(
        first.port,
        doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": 1}, "$db": "admin"},
    )
    .await?;
    assert_eq!(set.get_f64("ok")?, 1.0, "{set}");
    assert_eq!(set.get_str("defaultWriteConcernSource")?, "global", "{set}");
    let reply = rs_add(first, 3, &nodes[3], true).await?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "rs.addArb: {reply}");
    assert_eq!(
        term_and_primary(first).await?,
        (term, true),
        "the primary stays after rs.addArb"
    );

    let port = first.port;
    wait_until(
        ELECTION,
        "1 PRIMARY, 2 SECONDARY, 1 ARBITER with every voter voting",
        || async move {
            let status = raw_command(port, doc! {"replSetGetStatus": 1, "$db": "admin"})
                .await
                .ok()?;
            let states: Vec<i32> = status
                .get_array("members")
                .ok()?
                .iter()
                .filter_map(|m| m.as_document()?.get_i32("state").ok())
                .collect();
            let conf = raw_command(
                port,
                doc! {"replSetGetConfig": 1, "includeNewlyAdded": true, "$db": "admin"},
            )
            .await
            .ok()?;
            let settled = states == [1, 2, 2, 7] && !conf.to_string().contains("newlyAdded");
            (settled && status.get_i32("votingMembersCount").ok()? == 4).then_some(())
        },
    )
    .await?;
    assert_eq!(
        term_and_primary(first).await?,
        (term, true),
        "one primary, one term, all along"
    );
    Ok(())
}

/// Two data members and an arbiter: the implicit default write concern is `{w: 1}`, so a write without a
/// write concern succeeds while the secondary is dead (with `majority` it would wait forever).
#[tokio::test(flavor = "multi_thread")]
async fn psa_default_write_concern_survives_a_dead_secondary() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let mut members = vec![member(0, &nodes[0]), member(1, &nodes[1]), member(2, &nodes[2])];
    members[2].insert("arbiterOnly", true);
    let primary = initiate(&nodes, config(members)).await?;
    let defaults = raw_command(nodes[primary].port, doc! {"getDefaultRWConcern": 1, "$db": "admin"}).await?;
    assert_eq!(
        defaults.get_document("defaultWriteConcern")?.get("w"),
        Some(&Bson::Int32(1)),
        "{defaults}"
    );
    assert_eq!(defaults.get_str("defaultWriteConcernSource")?, "implicit");
    let secondary = 1 - primary;
    nodes[secondary].kill();
    let insert = raw_command(
        nodes[primary].port,
        doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "psa"},
    );
    let reply = tokio::time::timeout(std::time::Duration::from_secs(20), insert)
        .await
        .map_err(|_| anyhow::anyhow!("a write with the default write concern hung with the secondary dead"))??;
    assert_eq!(reply.get_i32("n")?, 1, "{reply}");
    assert!(reply.get("writeConcernError").is_none(), "{reply}");
    Ok(())
}

//! `$out` and `$merge` sent to a secondary (the client allows reading there): the secondary reads the
//! pipeline's input and the primary writes the output, as MongoDB 5.0+ does; the result replicates, and a
//! read preference of `primary` on a secondary is still refused (NotPrimaryNoSecondaryOk).

use bson::{Document, doc};
use faultline_tests::{raw_command, wait_until};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_secondary_reads_and_the_primary_writes() -> anyhow::Result<()> {
    let nodes = start_members(2, |_| Vec::new()).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let secondary = 1 - primary;
    let inserted = raw_command(
        nodes[primary].port,
        doc! {"insert": "src", "documents": [{"_id": 1, "x": 1}, {"_id": 2, "x": 2}],
        "writeConcern": {"w": 2}, "$db": "ws"},
    )
    .await?;
    assert_eq!(inserted.get_i32("n")?, 2, "{inserted}");
    let on_secondary = |pipeline: Vec<Document>| {
        doc! {"aggregate": "src", "pipeline": pipeline, "cursor": {}, "writeConcern": {"w": 2},
        "$readPreference": {"mode": "secondaryPreferred"}, "$db": "ws"}
    };
    let out = raw_command(
        nodes[secondary].port,
        on_secondary(vec![doc! {"$match": {"x": {"$gte": 2}}}, doc! {"$out": "copy"}]),
    )
    .await?;
    assert_eq!(out.get_f64("ok")?, 1.0, "{out}");
    let merged = raw_command(
        nodes[secondary].port,
        on_secondary(vec![
            doc! {"$project": {"x": {"$multiply": ["$x", 10]}}},
            doc! {"$merge": {"into": "copy", "whenMatched": "replace"}},
        ]),
    )
    .await?;
    assert_eq!(merged.get_f64("ok")?, 1.0, "{merged}");
    for node in &nodes {
        let port = node.port;
        wait_until(ELECTION, "the merged output on every member", || async move {
            let found = raw_command(
                port,
                doc! {"find": "copy", "sort": {"_id": 1}, "$readPreference": {"mode": "secondaryPreferred"}, "$db": "ws"},
            )
            .await
            .ok()?;
            let batch = found.get_document("cursor").ok()?.get_array("firstBatch").ok()?.clone();
            (batch == vec![doc! {"_id": 1, "x": 10}.into(), doc! {"_id": 2, "x": 20}.into()]).then_some(())
        })
        .await?;
    }
    let refused = raw_command(
        nodes[secondary].port,
        doc! {"aggregate": "src", "pipeline": [{"$out": "copy2"}], "cursor": {}, "$db": "ws"},
    )
    .await?;
    assert_eq!(refused.get_i32("code").ok(), Some(13435), "{refused}");
    Ok(())
}

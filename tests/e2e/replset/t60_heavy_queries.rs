//! Heavy client queries never starve replication: unbounded sorts run on the primary while the set, with
//! one-second election timeouts, keeps its primary and its term (heartbeats and oplog fetches are served on
//! the server's runtime; client queries on a runtime of their own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use faultline_tests::raw_command;
use mongodb::options::{Acknowledgment, WriteConcern};

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_sorts_do_not_depose_the_primary() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let before = raw_command(nodes[primary].port, doc! {"replSetGetStatus": 1, "$db": "admin"}).await?;
    let term = before.get_i64("term")?;

    let client = nodes[primary].client().await?;
    let coll = client.database("heavy").collection::<Document>("c");
    for chunk in (0..60_000).collect::<Vec<i64>>().chunks(10_000) {
        coll.insert_many(
            chunk
                .iter()
                .map(|i| doc! {"_id": *i, "k": (i * 7_919) % 60_013, "pad": "x".repeat(200)}),
        )
        .write_concern(WriteConcern::builder().w(Acknowledgment::Nodes(1)).build())
        .await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut sorters = Vec::new();
    for _ in 0..3 {
        let (coll, stop) = (coll.clone(), stop.clone());
        sorters.push(tokio::spawn(async move {
            let mut sorts = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let mut cursor = coll.find(doc! {}).sort(doc! {"k": -1, "pad": 1}).await?;
                while cursor.advance().await? {}
                sorts += 1;
            }
            anyhow::Ok(sorts)
        }));
    }
    let port = nodes[primary].port;
    let mut pings = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let t = Instant::now();
        raw_command(port, doc! {"ping": 1, "$db": "admin"}).await?;
        pings.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut sorts = 0;
    for sorter in sorters {
        sorts += sorter.await??;
    }
    pings.sort();
    let p99 = pings[pings.len() * 99 / 100];
    println!(
        "{sorts} unbounded sorts of 60,000 documents; ping p50 {:?}, p99 {p99:?}",
        pings[pings.len() / 2]
    );
    assert!(sorts >= 3, "the sorts ran ({sorts})");

    let after = raw_command(port, doc! {"replSetGetStatus": 1, "$db": "admin"}).await?;
    assert_eq!(after.get_i32("myState")?, 1, "still PRIMARY: {after}");
    assert_eq!(after.get_i64("term")?, term, "no election happened: {after}");
    for m in after.get_array("members")?.iter().filter_map(|m| m.as_document()) {
        assert_eq!(m.get_f64("health")?, 1.0, "every member stayed healthy: {m}");
    }
    Ok(())
}

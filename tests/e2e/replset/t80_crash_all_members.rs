//! Durability of the replicated write path: SIGKILL of all three members at once, in the middle of a stream of
//! `w: "majority", j: true` inserts from several clients, loses no acknowledged write and invents none.
//!
//! The primary publishes a group's oplog entries to its secondaries' fetchers before its own fsync, so at the
//! moment of the kill a secondary may hold entries the primary never made durable; those were never
//! acknowledged, and after the restart the set either keeps them or rolls them back. What was acknowledged
//! was durable on a majority (the primary included) and must be on the new primary.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{Acknowledgment, CollectionOptions, ReadConcern, WriteConcern};

use crate::*;

/// Concurrent writers.
const WRITERS: i64 = 8;
/// Kill-all-and-restart rounds.
const ROUNDS: i64 = 2;
/// Kill once at least this many inserts of the round were acknowledged.
const ACKED_BEFORE_KILL: usize = 200;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_every_member_loses_no_acknowledged_majority_journaled_write() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    initiate(&nodes, config(members)).await?;
    let mut acked_total: BTreeSet<i64> = BTreeSet::new();
    let mut attempted_total: BTreeSet<i64> = BTreeSet::new();
    for round in 0..ROUNDS {
        let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
        let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
        let options = CollectionOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .w_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        let coll = client
            .database("crash")
            .collection_with_options::<Document>("c", options);
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let attempted = Arc::new(Mutex::new(BTreeSet::new()));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (coll, acked, attempted) = (coll.clone(), acked.clone(), attempted.clone());
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let id = (round << 40) | (w << 24) | i;
                    attempted.lock().expect("lock").insert(id);
                    match coll.insert_one(doc! {"_id": id, "w": w}).await {
                        Ok(_) => {
                            acked.lock().expect("lock").insert(id);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        let counter = acked.clone();
        faultline_tests::wait_until(Duration::from_secs(60), "enough acknowledged majority inserts", || {
            let n = counter.lock().map(|a| a.len()).unwrap_or(0);
            async move { (n >= ACKED_BEFORE_KILL).then_some(()) }
        })
        .await?;
        // All three at once (every signal sent before any process is reaped): no member outlives another
        // long enough to finish a fsync the others lack.
        for pid in nodes.iter().filter_map(|n| n.pid()) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        for node in nodes.iter_mut() {
            node.kill();
        }
        for writer in writers {
            let _ = writer.await;
        }
        drop(client);
        acked_total.extend(acked.lock().expect("lock").iter().copied());
        attempted_total.extend(attempted.lock().expect("lock").iter().copied());
        for node in nodes.iter_mut() {
            node.restart().await?;
        }
        let primary = wait_for_primary(&nodes, &[]).await?;

        let direct = nodes[primary].client().await?;
        let present: BTreeSet<i64> = direct
            .database("crash")
            .collection::<Document>("c")
            .find(doc! {})
            .read_concern(ReadConcern::majority())
            .await?
            .try_collect::<Vec<Document>>()
            .await?
            .iter()
            .map(|d| d.get_i64("_id").expect("_id is a long"))
            .collect();
        let lost: Vec<&i64> = acked_total.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged majority inserts lost on the new primary (member {primary}), e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        let invented: Vec<&i64> = present.difference(&attempted_total).collect();
        assert!(
            invented.is_empty(),
            "round {round}: documents that were never attempted: {invented:?}"
        );
        // The members converge on one history (a member that held unacknowledged entries rolls them back).
        let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
        wait_same_data(&refs, "crash").await?;
    }
    Ok(())
}

/// The test aid that aborts a member between journaling a fetched batch and applying it (storage/writer.rs).
const CRASH_AFTER_PREJOURNAL: &str = "FAULTLINE_TEST_CRASH_AFTER_PREJOURNAL";

/// A secondary writes each fetched batch to its journal before it applies it. Killed between the two, it has
/// the batch after its restart, replayed from its own journal: restarted alone (the rest of the set stopped,
/// so nothing can be fetched again), its oplog holds the batch's newest entry and its data that entry's
/// document.
#[tokio::test(flavor = "multi_thread")]
async fn a_secondary_killed_between_journal_and_apply_replays_the_batch() -> anyhow::Result<()> {
    let mut nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    let primary = initiate(&nodes, config(members)).await?;
    let crashing = (primary + 1) % nodes.len();
    nodes[crashing].set_env(CRASH_AFTER_PREJOURNAL, Some("20"));
    nodes[crashing].restart().await?;

    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let coll = client.database("prejournal").collection::<Document>("c");
    let writer = tokio::spawn(async move {
        for i in 0i64.. {
            if coll.insert_one(doc! {"_id": i}).await.is_err() {
                return;
            }
        }
    });
    let status = nodes[crashing].wait_exit(Duration::from_secs(60)).await?;
    writer.abort();
    let log = nodes[crashing].log();
    let crashed_at: u64 = log
        .lines()
        .find(|l| l.contains("aborting between a batch's journal record and its apply"))
        .and_then(|l| l.split("ts=").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|ts| ts.parse().ok())
        .with_context(|| format!("the member exited ({status}) without the test aid's line:\n{log}"))?;
    drop(client);
    for (i, node) in nodes.iter_mut().enumerate() {
        if i != crashing {
            node.kill();
        }
    }

    nodes[crashing].set_env(CRASH_AFTER_PREJOURNAL, None);
    nodes[crashing].restart().await?;
    let direct = nodes[crashing].client().await?;
    let ts = bson::Timestamp {
        time: (crashed_at >> 32) as u32,
        increment: crashed_at as u32,
    };
    let oplog = direct.database("local").collection::<Document>("oplog.rs");
    oplog
        .find_one(doc! {"ts": ts})
        .await?
        .with_context(|| format!("the batch's newest entry {ts:?} is not in the restarted member's oplog"))?;
    let logged = oplog.count_documents(doc! {"ns": "prejournal.c", "op": "i"}).await?;
    let present = direct
        .database("prejournal")
        .collection::<Document>("c")
        .count_documents(doc! {})
        .await?;
    assert!(logged > 0, "no inserts reached the member");
    assert_eq!(
        present, logged,
        "the data holds {present} documents while the oplog logs {logged} inserts"
    );
    assert!(
        nodes[crashing].log().contains("replayed the journal's records"),
        "the restarted member did not replay its journal"
    );
    Ok(())
}

//! Durability: SIGKILL in the middle of a stream of `j: true` inserts loses nothing that was acknowledged
//! and invents nothing that was never attempted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{CollectionOptions, WriteConcern};

use crate::primary;

const WRITERS: i32 = 16;
const ROUNDS: i32 = 3;
/// Kill once at least this many inserts of the round were acknowledged.
const ACKED_BEFORE_KILL: usize = 300;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loses_no_acknowledged_journaled_write() -> anyhow::Result<()> {
    let (mut node, _) = primary().await?;
    let mut acked_total: BTreeSet<i64> = BTreeSet::new();
    let mut attempted_total: BTreeSet<i64> = BTreeSet::new();
    for round in 0..ROUNDS {
        let client = node.client().await?;
        let options = CollectionOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .journal(true)
                    .w(mongodb::options::Acknowledgment::Nodes(1))
                    .build(),
            )
            .build();
        let coll = client
            .database("crash")
            .collection_with_options::<Document>("c", options);
        let (acked, attempted, writers) = start_writers(&coll, round);
        let counter = acked.clone();
        faultline_tests::wait_until(
            std::time::Duration::from_secs(60),
            "enough acknowledged inserts",
            || {
                let n = counter.lock().map(|a| a.len()).unwrap_or(0);
                async move { (n >= ACKED_BEFORE_KILL).then_some(()) }
            },
        )
        .await?;
        node.kill();
        for writer in writers {
            let _ = writer.await;
        }
        acked_total.extend(acked.lock().expect("lock").iter().copied());
        attempted_total.extend(attempted.lock().expect("lock").iter().copied());
        node.restart().await?;
        node.wait_primary().await?;

        let present = present_ids(&node, "crash").await?;
        let lost: Vec<&i64> = acked_total.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged inserts lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        let invented: Vec<&i64> = present.difference(&attempted_total).collect();
        assert!(
            invented.is_empty(),
            "round {round}: documents that were never attempted: {invented:?}"
        );
    }
    Ok(())
}

/// SIGTERM is a clean shutdown: the process exits 0 and even writes acknowledged without `j: true` (which
/// SIGKILL may lose) are on disk when the member comes back.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_down_cleanly_and_keeps_every_write() -> anyhow::Result<()> {
    let (mut node, client) = primary().await?;
    let options = CollectionOptions::builder()
        .write_concern(
            WriteConcern::builder()
                .w(mongodb::options::Acknowledgment::Nodes(1))
                .journal(false)
                .build(),
        )
        .build();
    let coll = client
        .database("clean")
        .collection_with_options::<Document>("c", options);
    coll.insert_many((0..100).map(|i| doc! {"_id": i})).await?;
    drop(client);
    let status = node.terminate()?;
    assert!(status.success(), "faultline node exited with {status} on SIGTERM");
    node.restart().await?;
    node.wait_primary().await?;
    let client = node.client().await?;
    assert_eq!(
        client
            .database("clean")
            .collection::<Document>("c")
            .count_documents(doc! {})
            .await?,
        100
    );
    Ok(())
}

/// The test aid that aborts a member in its Nth checkpoint (storage/writer.rs).
const CRASH_IN_CHECKPOINT: &str = "FAULTLINE_TEST_CRASH_IN_CHECKPOINT";

/// A crash in the middle of a checkpoint (the data file's durable commit, which records the newest journal
/// record it covers), on either side of the commit: every acknowledged `j: true` insert is there after the
/// restart, replayed from the journal or read from the data file, and nothing unattempted appears.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_a_checkpoint_loses_no_acknowledged_write() -> anyhow::Result<()> {
    for at in ["before-commit", "after-commit"] {
        let (mut node, _) = primary().await?;
        node.set_env(CRASH_IN_CHECKPOINT, Some(&format!("{at}:3")));
        node.restart().await?;
        node.wait_primary().await?;
        let client = node.client().await?;
        let options = CollectionOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .journal(true)
                    .w(mongodb::options::Acknowledgment::Nodes(1))
                    .build(),
            )
            .build();
        let coll = client
            .database("checkpoint")
            .collection_with_options::<Document>("c", options);
        let (acked, attempted, writers) = start_writers(&coll, 0);
        let status = node.wait_exit(std::time::Duration::from_secs(60)).await?;
        assert!(
            !status.success(),
            "{at}: the member should have aborted, exited {status}"
        );
        assert!(
            node.log().contains("aborting in a checkpoint"),
            "{at}: the member died elsewhere:\n{}",
            node.log()
        );
        for writer in writers {
            let _ = writer.await;
        }
        let acked = acked.lock().expect("lock").clone();
        let attempted = attempted.lock().expect("lock").clone();
        assert!(
            acked.len() >= 50,
            "{at}: only {} inserts acknowledged before the crash",
            acked.len()
        );
        node.set_env(CRASH_IN_CHECKPOINT, None);
        node.restart().await?;
        node.wait_primary().await?;
        let present = present_ids(&node, "checkpoint").await?;
        let lost: Vec<&i64> = acked.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "{at}: {} of {} acknowledged inserts lost, e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)]
        );
        let invented: Vec<&i64> = present.difference(&attempted).collect();
        assert!(invented.is_empty(), "{at}: documents never attempted: {invented:?}");
    }
    Ok(())
}

/// The ids writers record: attempted before each insert, acknowledged after it.
type Ids = Arc<Mutex<BTreeSet<i64>>>;

/// Starts [`WRITERS`] tasks inserting `{_id, w}` into `coll` until an insert fails (the member died); ids
/// carry the round and the writer, so rounds never collide.
fn start_writers(coll: &mongodb::Collection<Document>, round: i32) -> (Ids, Ids, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Ids = Arc::default();
    let attempted: Ids = Arc::default();
    let writers = (0..WRITERS)
        .map(|w| {
            let (coll, acked, attempted) = (coll.clone(), acked.clone(), attempted.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let id = (i64::from(round) << 40) | (i64::from(w) << 24) | i;
                    attempted.lock().expect("lock").insert(id);
                    if coll.insert_one(doc! {"_id": id, "w": w}).await.is_err() {
                        return;
                    }
                    acked.lock().expect("lock").insert(id);
                }
            })
        })
        .collect();
    (acked, attempted, writers)
}

/// The `_id`s in `db.c` on the member.
async fn present_ids(node: &faultline_tests::NodeProcess, db: &str) -> anyhow::Result<BTreeSet<i64>> {
    Ok(node
        .client()
        .await?
        .database(db)
        .collection::<Document>("c")
        .find(doc! {})
        .await?
        .try_collect::<Vec<Document>>()
        .await?
        .iter()
        .map(|d| d.get_i64("_id").expect("_id is a long"))
        .collect())
}

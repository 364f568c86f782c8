//! Chunk migrations (`moveChunk`, `moveRange`): documents move to the recipient, the donor's copy is
//! deleted, `config.changelog` records the steps, bad requests get MongoDB's errors; writes made during the
//! clone reach the recipient (and are lost with `migrationCommitBeforeCatchUp`); a SIGKILL of the donor, the
//! recipient or the config server at each step (the donor held there by `moveChunkHangAtStepN`) while a
//! writer inserts ends committed or aborted with every acknowledged document present exactly once through
//! the router.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use faultline_tests::NodeProcess;
use futures_util::TryStreamExt as _;

use super::{Cluster, documents_on, raw_command, wait_until};

/// A collection `test.<coll>` sharded on `{k: 1}` with `n` documents (`_id` = `k` = 0..n) on shA, split at
/// `n / 2`.
pub(super) async fn two_chunks(cluster: &Cluster, coll: &str, n: i32) -> anyhow::Result<()> {
    let router = &cluster.router;
    let enabled = router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    anyhow::ensure!(enabled.get_f64("ok")? == 1.0, "{enabled}");
    let ns = format!("test.{coll}");
    let sharded = router.admin(doc! {"shardCollection": &ns, "key": {"k": 1}}).await?;
    anyhow::ensure!(sharded.get_f64("ok")? == 1.0, "{sharded}");
    let client = router.client().await?;
    client
        .database("test")
        .collection::<Document>(coll)
        .insert_many((0..n).map(|k| doc! {"_id": k, "k": k}).collect::<Vec<_>>())
        .await?;
    let split = router.admin(doc! {"split": &ns, "middle": {"k": n / 2}}).await?;
    anyhow::ensure!(split.get_f64("ok")? == 1.0, "{split}");
    Ok(())
}

pub(super) async fn fail_point(port: u16, name: &str, mode: Bson) -> anyhow::Result<()> {
    let reply = raw_command(port, doc! {"configureFailPoint": name, "mode": mode, "$db": "admin"}).await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "{reply}");
    Ok(())
}

async fn times_entered(port: u16, name: &str) -> Option<i64> {
    let reply = raw_command(port, doc! {"listFailPoints": 1, "$db": "admin"})
        .await
        .ok()?;
    reply
        .get_array("failPoints")
        .ok()?
        .iter()
        .filter_map(Bson::as_document)
        .find(|p| p.get_str("name").ok() == Some(name))
        .and_then(|p| p.get_i64("timesEntered").ok())
}

/// Waits until the fail point `name` on `port` has been entered more than `before` times.
async fn wait_entered(port: u16, name: &str, before: i64) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(120),
        &format!("{name} to be reached"),
        || async move { times_entered(port, name).await.filter(|n| *n > before).map(|_| ()) },
    )
    .await
}

/// The shard owning the chunk of `ns` holding `k`, from the config server.
async fn owner_of(cluster: &Cluster, ns: &str, k: i32) -> anyhow::Result<String> {
    let chunks = super::chunks_of(cluster, ns).await?;
    let holds = |c: &Document| {
        let low = c.get_document("min").ok().and_then(|m| m.get("k")).cloned();
        let high = c.get_document("max").ok().and_then(|m| m.get("k")).cloned();
        let above = match low {
            Some(Bson::Int32(low)) => k >= low,
            _ => true,
        };
        let below = match high {
            Some(Bson::Int32(high)) => k < high,
            _ => true,
        };
        above && below
    };
    Ok(chunks
        .iter()
        .find(|c| holds(c))
        .and_then(|c| c.get_str("shard").ok())
        .expect("a chunk holds every key")
        .to_string())
}

/// Every `_id` (as i64) of `test.<coll>` read through the router.
async fn ids_through_router(cluster: &Cluster, coll: &str) -> anyhow::Result<Vec<i64>> {
    let client = cluster.router.client().await?;
    let docs: Vec<Document> = client
        .database("test")
        .collection::<Document>(coll)
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    Ok(ids_of(docs))
}

/// The `_id`s (integers) of `docs`, sorted.
fn ids_of(docs: Vec<Document>) -> Vec<i64> {
    let mut ids: Vec<i64> = docs
        .iter()
        .map(|d| match d.get("_id") {
            Some(Bson::Int32(i)) => i64::from(*i),
            Some(Bson::Int64(i)) => *i,
            other => panic!("unexpected _id {other:?}"),
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Waits until no migration is left undecided or unfinished: no coordinator document or range deletion on
/// any shard, no migration lock on the collection.
async fn wait_settled(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    let ports: Vec<u16> = cluster.shards.iter().map(|(_, n)| n.port).collect();
    let config = cluster.config.port;
    let ns = ns.to_string();
    wait_until(Duration::from_secs(90), "migrations to settle", || {
        let ports = ports.clone();
        let ns = ns.clone();
        async move {
            for port in ports {
                for coll in ["migrationCoordinators", "rangeDeletions"] {
                    let reply = raw_command(port, doc! {"count": coll, "$db": "config"}).await.ok()?;
                    if reply
                        .get("n")
                        .and_then(|v| v.as_i32().map(i64::from).or_else(|| v.as_i64()))
                        .unwrap_or(1)
                        != 0
                    {
                        return None;
                    }
                }
            }
            let reply = raw_command(
                config,
                doc! {"find": "collections", "filter": {"_id": &ns}, "$db": "config"},
            )
            .await
            .ok()?;
            let collection = reply
                .get_document("cursor")
                .ok()?
                .get_array("firstBatch")
                .ok()?
                .first()?
                .clone();
            (!collection.as_document()?.contains_key("activeMigration")).then_some(())
        }
    })
    .await
}

#[tokio::test]
async fn move_chunk_moves_documents_records_changelog_and_refuses_bad_requests() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let n = 2000;
    two_chunks(&cluster, "m", n).await?;
    let router = &cluster.router;

    let bad_shard = router
        .admin(doc! {"moveChunk": "test.m", "find": {"k": 1500}, "to": "shZ"})
        .await?;
    assert_eq!(bad_shard.get_i32("code")?, 70, "{bad_shard}");
    let unsharded = router
        .admin(doc! {"moveChunk": "test.none", "find": {"k": 1}, "to": "shB"})
        .await?;
    assert_eq!(unsharded.get_f64("ok")?, 0.0, "{unsharded}");
    let no_bounds = router.admin(doc! {"moveChunk": "test.m", "to": "shB"}).await?;
    assert_eq!(no_bounds.get_i32("code")?, 72, "{no_bounds}");

    let started = Instant::now();
    let moved = router
        .admin(doc! {"moveChunk": "test.m", "find": {"k": 1500}, "to": "shB", "_waitForDelete": true})
        .await?;
    assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}");
    eprintln!(
        "moveChunk of {} documents: {} ms (reported millis {})",
        n / 2,
        started.elapsed().as_millis(),
        moved.get("millis").cloned().unwrap_or(Bson::Null)
    );
    let on_a = documents_on(cluster.shard("shA"), "test", "m").await?;
    let on_b = documents_on(cluster.shard("shB"), "test", "m").await?;
    let key = |d: &Document| d.get_i32("k").expect("k");
    assert_eq!(on_a.len(), 1000, "the donor's copy is deleted");
    assert!(on_a.iter().all(|d| key(d) < 1000));
    assert_eq!(on_b.len(), 1000);
    assert!(on_b.iter().all(|d| key(d) >= 1000));
    assert_eq!(
        ids_through_router(&cluster, "m").await?,
        (0..i64::from(n)).collect::<Vec<_>>()
    );
    assert_eq!(owner_of(&cluster, "test.m", 1500).await?, "shB");

    // moveRange moves part of a chunk (split off first) back.
    let back = router
        .admin(
            doc! {"moveRange": "test.m", "min": {"k": 1000}, "max": {"k": 1200}, "toShard": "shA",
            "waitForDelete": true},
        )
        .await?;
    assert_eq!(back.get_f64("ok")?, 1.0, "{back}");
    assert_eq!(owner_of(&cluster, "test.m", 1100).await?, "shA");
    assert_eq!(owner_of(&cluster, "test.m", 1300).await?, "shB");
    assert_eq!(documents_on(cluster.shard("shA"), "test", "m").await?.len(), 1200);
    assert_eq!(ids_through_router(&cluster, "m").await?.len(), n as usize);

    let changelog: Vec<Document> = cluster
        .config
        .client()
        .await?
        .database("config")
        .collection::<Document>("changelog")
        .find(doc! {"ns": "test.m", "what": {"$regex": "^moveChunk"}})
        .await?
        .try_collect()
        .await?;
    for what in ["moveChunk.start", "moveChunk.commit", "moveChunk.from", "moveChunk.to"] {
        let entries: Vec<&Document> = changelog
            .iter()
            .filter(|e| e.get_str("what").ok() == Some(what))
            .collect();
        assert_eq!(entries.len(), 2, "two {what} entries: {changelog:?}");
        let details = entries[0].get_document("details")?;
        assert!(details.contains_key("min") && details.contains_key("max"), "{details}");
    }
    let commit = changelog
        .iter()
        .find(|e| e.get_str("what").ok() == Some("moveChunk.commit"))
        .expect("commit");
    assert_eq!(
        commit
            .get_document("details")?
            .get_document("counts")?
            .get_i64("cloned")?,
        1000
    );
    Ok(())
}

/// Holds the donor after the clone, writes to the moving range through the router, lets it go; returns how
/// many of the writes made meanwhile the router finds afterwards (of 100).
async fn writes_during_clone(fail: bool) -> anyhow::Result<usize> {
    let cluster = Cluster::start(2).await?;
    two_chunks(&cluster, "c", 1000).await?;
    let donor = cluster.shard("shA").port;
    if fail {
        fail_point(donor, "migrationCommitBeforeCatchUp", "alwaysOn".into()).await?;
    }
    fail_point(donor, "moveChunkHangAtStep2", "alwaysOn".into()).await?;
    let before = times_entered(donor, "moveChunkHangAtStep2").await.unwrap_or(0);
    let port = cluster.router.port;
    let mover = tokio::spawn(async move {
        raw_command(
            port,
            doc! {"moveChunk": "test.c", "find": {"k": 700}, "to": "shB", "$db": "admin"},
        )
        .await
    });
    wait_entered(donor, "moveChunkHangAtStep2", before).await?;
    let client = cluster.router.client().await?;
    let coll = client.database("test").collection::<Document>("c");
    coll.insert_many((2000..2100).map(|k| doc! {"_id": k, "k": k}).collect::<Vec<_>>())
        .await?;
    coll.delete_one(doc! {"k": 600}).await?;
    fail_point(donor, "moveChunkHangAtStep2", "off".into()).await?;
    let moved = mover.await??;
    assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}");
    assert_eq!(owner_of(&cluster, "test.c", 700).await?, "shB");
    let ids = ids_through_router(&cluster, "c").await?;
    if !fail {
        assert!(
            !ids.contains(&600),
            "the delete made during the clone reached the recipient"
        );
    }
    Ok(ids.iter().filter(|id| **id >= 2000).count())
}

#[tokio::test]
async fn writes_during_the_clone_reach_the_recipient() -> anyhow::Result<()> {
    assert_eq!(writes_during_clone(false).await?, 100);
    Ok(())
}

#[tokio::test]
async fn commit_before_catch_up_loses_the_writes_made_during_the_clone() -> anyhow::Result<()> {
    assert_eq!(
        writes_during_clone(true).await?,
        0,
        "migrationCommitBeforeCatchUp loses them"
    );
    Ok(())
}

/// Who is killed while the donor is held at a step.
#[derive(Clone, Copy, Debug)]
enum Victim {
    Donor,
    Recipient,
    Config,
}

fn node_mut<'a>(cluster: &'a mut Cluster, name: &str) -> &'a mut NodeProcess {
    &mut cluster.shards.iter_mut().find(|(n, _)| n == name).expect("shard").1
}

/// For each step 1..=6: the donor is held there, `victim` is SIGKILLed and restarted while a writer inserts
/// through the router; once migrations settle every acknowledged document is read exactly once through the
/// router, and each shard holds only documents of chunks it owns.
async fn kill_at_each_step(victim: Victim) -> anyhow::Result<()> {
    let mut cluster = Cluster::start(2).await?;
    two_chunks(&cluster, "k", 400).await?;
    let acked = Arc::new(Mutex::new((0..400_i64).collect::<Vec<_>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let client = cluster.router.client().await?;
        tokio::spawn(async move {
            let coll = client.database("test").collection::<Document>("k");
            let mut id = 1000_i64;
            while !stop.load(Ordering::Relaxed) {
                let k = (id % 400) as i32;
                if coll.insert_one(doc! {"_id": id, "k": k}).await.is_ok() {
                    acked.lock().expect("acked").push(id);
                }
                id += 1;
            }
        })
    };
    for step in 1..=6 {
        let from = owner_of(&cluster, "test.k", 300).await?;
        let to = if from == "shA" { "shB" } else { "shA" }.to_string();
        let point = format!("moveChunkHangAtStep{step}");
        let donor_port = cluster.shard(&from).port;
        let before = times_entered(donor_port, &point).await.unwrap_or(0);
        fail_point(donor_port, &point, "alwaysOn".into()).await?;
        let port = cluster.router.port;
        let mover = tokio::spawn(async move {
            raw_command(
                port,
                doc! {"moveChunk": "test.k", "find": {"k": 300}, "to": &to, "$db": "admin"},
            )
            .await
        });
        if let Err(err) = wait_entered(donor_port, &point, before).await {
            let outcome = if mover.is_finished() {
                format!("{:?}", mover.await)
            } else {
                "still running".to_string()
            };
            anyhow::bail!("{err}; moveChunk {from} -> {step}: {outcome}");
        }
        match victim {
            Victim::Donor => node_mut(&mut cluster, &from).restart().await?,
            Victim::Recipient => {
                let to = if from == "shA" { "shB" } else { "shA" };
                node_mut(&mut cluster, to).restart().await?;
            }
            Victim::Config => cluster.config.restart().await?,
        }
        if !matches!(victim, Victim::Donor) {
            fail_point(donor_port, &point, "off".into()).await?;
        }
        let outcome = mover.await?;
        eprintln!("{victim:?} killed at step {step}: moveChunk answered {outcome:?}");
        wait_settled(&cluster, "test.k").await?;
        let owner = owner_of(&cluster, "test.k", 300).await?;
        eprintln!("  the upper chunk is now on {owner}");
        // A routed read (safe to retry) also clears the router's pooled connections to a restarted member,
        // which would otherwise fail the next moveChunk (not retried: it may have run) with HostUnreachable.
        let found = ids_through_router(&cluster, "k").await?;
        let mut unique = found.clone();
        unique.dedup();
        assert_eq!(unique.len(), found.len(), "no document read twice after step {step}");
    }
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    wait_settled(&cluster, "test.k").await?;
    let mut expected = acked.lock().expect("acked").clone();
    expected.sort_unstable();
    let found = ids_through_router(&cluster, "k").await?;
    let mut unique = found.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        found.len(),
        "no document is read twice through the router"
    );
    let missing: Vec<&i64> = expected.iter().filter(|id| found.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged documents lost: {missing:?}");
    // No orphans left on the shards: each holds only keys of chunks it owns.
    let upper_owner = owner_of(&cluster, "test.k", 300).await?;
    let lower_owner = owner_of(&cluster, "test.k", 100).await?;
    for (name, node) in &cluster.shards {
        for d in documents_on(node, "test", "k").await? {
            let k = d.get_i32("k")?;
            let owner = if k >= 200 { &upper_owner } else { &lower_owner };
            assert_eq!(owner, name, "{d} on {name} belongs to {owner}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn killing_the_donor_at_each_step_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    kill_at_each_step(Victim::Donor).await
}

#[tokio::test]
async fn killing_the_recipient_at_each_step_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    kill_at_each_step(Victim::Recipient).await
}

#[tokio::test]
async fn killing_the_config_server_at_each_step_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    kill_at_each_step(Victim::Config).await
}

/// A second router loads the table, a migration of the upper chunk commits through the first; the second,
/// whose table is now old, inserts 50 documents into the moved range. Returns how many of them the first
/// router reads afterwards. Fail points: `migrationDonorAcceptsWritesAfterCommit` on the donor,
/// `routerIgnoresStaleConfig` on the second router.
async fn stale_router_writes(donor_bug: bool, router_bug: bool) -> anyhow::Result<usize> {
    let cluster = Cluster::start(2).await?;
    two_chunks(&cluster, "s", 1000).await?;
    let second = super::MongosProcess::start(&cluster.config_seed()).await?;
    let old = second.client().await?;
    let old_coll = old.database("test").collection::<Document>("s");
    old_coll.insert_one(doc! {"_id": 5000, "k": 10}).await?;
    if donor_bug {
        fail_point(
            cluster.shard("shA").port,
            "migrationDonorAcceptsWritesAfterCommit",
            "alwaysOn".into(),
        )
        .await?;
    }
    if router_bug {
        fail_point(second.port, "routerIgnoresStaleConfig", "alwaysOn".into()).await?;
    }
    let moved = cluster
        .router
        .admin(doc! {"moveChunk": "test.s", "find": {"k": 700}, "to": "shB", "_waitForDelete": true})
        .await?;
    assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}");
    old_coll
        .insert_many((2000..2050).map(|k| doc! {"_id": k, "k": 900}).collect::<Vec<_>>())
        .await?;
    let ids = ids_through_router(&cluster, "s").await?;
    Ok(ids.iter().filter(|id| (2000..2050).contains(*id)).count())
}

#[tokio::test]
async fn a_router_with_an_old_table_writes_to_the_new_owner() -> anyhow::Result<()> {
    assert_eq!(stale_router_writes(false, false).await?, 50);
    Ok(())
}

#[tokio::test]
async fn a_donor_accepting_writes_after_the_commit_loses_them() -> anyhow::Result<()> {
    assert_eq!(
        stale_router_writes(true, false).await?,
        0,
        "migrationDonorAcceptsWritesAfterCommit"
    );
    Ok(())
}

#[tokio::test]
async fn a_router_ignoring_stale_config_writes_to_the_wrong_shard() -> anyhow::Result<()> {
    assert_eq!(stale_router_writes(false, true).await?, 0, "routerIgnoresStaleConfig");
    Ok(())
}

/// Three chunks on shA; the middle one moves to shB and shA's range deletion runs. Returns the number of
/// documents the router reads afterwards (of 900).
async fn after_range_deletion(bug: bool) -> anyhow::Result<usize> {
    let cluster = Cluster::start(2).await?;
    two_chunks(&cluster, "d", 600).await?;
    let client = cluster.router.client().await?;
    client
        .database("test")
        .collection::<Document>("d")
        .insert_many((600..900).map(|k| doc! {"_id": k, "k": k}).collect::<Vec<_>>())
        .await?;
    let split = cluster
        .router
        .admin(doc! {"split": "test.d", "middle": {"k": 600}})
        .await?;
    assert_eq!(split.get_f64("ok")?, 1.0, "{split}");
    if bug {
        fail_point(cluster.shard("shA").port, "rangeDeleterDeletesOwned", "alwaysOn".into()).await?;
    }
    let moved = cluster
        .router
        .admin(doc! {"moveChunk": "test.d", "find": {"k": 400}, "to": "shB", "_waitForDelete": true})
        .await?;
    assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}");
    assert_eq!(owner_of(&cluster, "test.d", 700).await?, "shA");
    Ok(ids_through_router(&cluster, "d").await?.len())
}

#[tokio::test]
async fn range_deletion_keeps_the_documents_the_shard_owns() -> anyhow::Result<()> {
    assert_eq!(after_range_deletion(false).await?, 900);
    Ok(())
}

#[tokio::test]
async fn a_range_deleter_deleting_owned_documents_loses_them() -> anyhow::Result<()> {
    assert_eq!(
        after_range_deletion(true).await?,
        600,
        "rangeDeleterDeletesOwned deletes k 600..900"
    );
    Ok(())
}

/// The donor is a three-member set: its primary is killed (not restarted) while held in the critical
/// section and, in a second migration, right after the commit; the new primary finds the coordinator
/// document and finishes the migration, and no acknowledged document is lost or doubled.
#[tokio::test]
async fn a_new_donor_primary_finishes_the_migration_after_a_failover() -> anyhow::Result<()> {
    use super::{MongosProcess, primary_of, seed, seeds, start_set, start_set_of};
    let config = start_set("cfg", "--configsvr").await?;
    let mut donor = start_set_of("shA", "--shardsvr", 3).await?;
    let recipient = start_set("shB", "--shardsvr").await?;
    let router = MongosProcess::start(&seed("cfg", &config)).await?;
    super::add_shards(&router, &[seeds("shA", &donor), seed("shB", &recipient)]).await?;
    router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    router
        .admin(doc! {"shardCollection": "test.f", "key": {"k": 1}})
        .await?;
    let client = router.client().await?;
    let coll = client.database("test").collection::<Document>("f");
    coll.insert_many((0..300).map(|k| doc! {"_id": k, "k": k}).collect::<Vec<_>>())
        .await?;
    for middle in [100, 200] {
        let split = router.admin(doc! {"split": "test.f", "middle": {"k": middle}}).await?;
        assert_eq!(split.get_f64("ok")?, 1.0, "{split}");
    }
    for (step, find) in [(4, 150), (5, 250)] {
        let primary = primary_of(&donor).await?;
        let port = donor[primary].port;
        let point = format!("moveChunkHangAtStep{step}");
        let before = times_entered(port, &point).await.unwrap_or(0);
        fail_point(port, &point, "alwaysOn".into()).await?;
        let router_port = router.port;
        let mover = tokio::spawn(async move {
            raw_command(
                router_port,
                doc! {"moveChunk": "test.f", "find": {"k": find}, "to": "shB", "$db": "admin"},
            )
            .await
        });
        wait_entered(port, &point, before).await?;
        donor[primary].kill();
        let outcome = mover.await?;
        eprintln!("donor primary killed at step {step}: {outcome:?}");
        // The new primary takes writes and finishes the migration.
        for k in 0..20 {
            coll.insert_one(doc! {"_id": 1000 + step * 100 + k, "k": find + k})
                .await?;
        }
        let ports: Vec<u16> = donor.iter().filter(|n| n.pid().is_some()).map(|n| n.port).collect();
        let mut all = ports.clone();
        all.push(recipient.port);
        wait_until(Duration::from_secs(90), "the migration to be finished", || {
            let all = all.clone();
            async move {
                for port in all {
                    let primary = raw_command(port, doc! {"hello": 1, "$db": "admin"}).await.ok()?;
                    if !primary.get_bool("isWritablePrimary").unwrap_or(false) {
                        continue;
                    }
                    for coll in ["migrationCoordinators", "rangeDeletions"] {
                        let reply = raw_command(port, doc! {"count": coll, "$db": "config"}).await.ok()?;
                        let n = reply
                            .get("n")
                            .and_then(|v| v.as_i32().map(i64::from).or_else(|| v.as_i64()));
                        if n != Some(0) {
                            return None;
                        }
                    }
                }
                Some(())
            }
        })
        .await?;
        let mut ids = ids_of(coll.find(doc! {}).await?.try_collect::<Vec<Document>>().await?);
        let total = ids.len();
        ids.dedup();
        assert_eq!(
            total,
            300 + 20 * (if step == 4 { 1 } else { 2 }),
            "every document once: {total}"
        );
        assert_eq!(ids.len(), total);
        // Bring the killed member back for the next round (a majority must remain).
        if step == 4 {
            donor[primary].restart().await?;
        }
    }
    Ok(())
}

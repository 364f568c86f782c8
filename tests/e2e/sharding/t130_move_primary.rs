//! `movePrimary`: a database with two unsharded collections (one with a secondary index) and one sharded
//! collection moves its primary shard; every document is readable exactly once through the router that moved
//! it and through a second router that had cached the old primary (it is told StaleDbVersion and refreshes),
//! new writes land on the new primary, the old copies are gone, the sharded collection stays where its chunks
//! are, `config.changelog` records the move; and MongoDB's errors for bad requests.

use bson::{Document, doc};
use futures_util::TryStreamExt as _;

use super::{Cluster, MongosProcess, documents_on};

const N: i32 = 300;

async fn all_documents(router: &MongosProcess, coll: &str) -> anyhow::Result<Vec<Document>> {
    let client = router.client().await?;
    let cursor = client
        .database("test")
        .collection::<Document>(coll)
        .find(doc! {})
        .await?;
    Ok(cursor.try_collect().await?)
}

/// `_id`s 0..n, each exactly once.
fn assert_exactly_once(documents: &[Document], n: i32, what: &str) {
    let mut ids: Vec<i32> = documents.iter().map(|d| d.get_i32("_id").expect("int _id")).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "{what}");
}

fn code_of(reply: &Document) -> i32 {
    reply.get_i32("code").unwrap_or(0)
}

/// Two shards, two routers, and database `test` with primary shard shA.
async fn two_routers_and_test_on_sh_a() -> anyhow::Result<(Cluster, MongosProcess)> {
    let cluster = Cluster::start(2).await?;
    let second = MongosProcess::start(&cluster.config_seed()).await?;
    let enabled = cluster
        .router
        .admin(doc! {"enableSharding": "test", "primaryShard": "shA"})
        .await?;
    anyhow::ensure!(enabled.get_f64("ok")? == 1.0, "{enabled}");
    Ok((cluster, second))
}

#[tokio::test]
async fn move_primary_moves_unsharded_collections_and_routers_follow() -> anyhow::Result<()> {
    let (cluster, second) = two_routers_and_test_on_sh_a().await?;
    let router = &cluster.router;
    let sharded = router
        .admin(doc! {"shardCollection": "test.big", "key": {"k": 1}})
        .await?;
    assert_eq!(sharded.get_f64("ok")?, 1.0, "{sharded}");
    let client = router.client().await?;
    let db = client.database("test");
    for coll in ["plain", "indexed", "big"] {
        db.collection::<Document>(coll)
            .insert_many((0..N).map(|k| doc! {"_id": k, "k": k, "x": k % 7}).collect::<Vec<_>>())
            .await?;
    }
    db.run_command(doc! {"createIndexes": "indexed", "indexes": [{"key": {"x": 1}, "name": "x_1"}]})
        .await?;
    // The second router caches the old primary.
    assert_exactly_once(&all_documents(&second, "plain").await?, N, "before, second router");

    let moved = router.admin(doc! {"movePrimary": "test", "to": "shB"}).await?;
    assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}\n{}", router.log());

    let config = cluster.config.client().await?.database("config");
    let entry = config
        .collection::<Document>("databases")
        .find_one(doc! {"_id": "test"})
        .await?
        .expect("config.databases entry");
    assert_eq!(entry.get_str("primary")?, "shB", "{entry}");
    assert_eq!(entry.get_document("version")?.get_i32("lastMod")?, 2, "{entry}");

    for (name, through) in [("first", router), ("second", &second)] {
        for coll in ["plain", "indexed", "big"] {
            assert_exactly_once(
                &all_documents(through, coll).await?,
                N,
                &format!("{coll} through the {name} router"),
            );
        }
    }
    let (sh_a, sh_b) = (cluster.shard("shA"), cluster.shard("shB"));
    for coll in ["plain", "indexed"] {
        assert_exactly_once(&documents_on(sh_b, "test", coll).await?, N, &format!("{coll} on shB"));
        assert!(
            documents_on(sh_a, "test", coll).await?.is_empty(),
            "{coll} still on shA"
        );
    }
    // The sharded collection's single chunk stayed on shA.
    assert_exactly_once(&documents_on(sh_a, "test", "big").await?, N, "big on shA");
    assert!(documents_on(sh_b, "test", "big").await?.is_empty(), "big moved to shB");
    // Indexes came along.
    let listed = super::raw_command(sh_b.port, doc! {"listIndexes": "indexed", "$db": "test"}).await?;
    let indexes = listed.get_document("cursor")?.get_array("firstBatch")?;
    assert!(
        indexes
            .iter()
            .filter_map(bson::Bson::as_document)
            .any(|i| i.get_str("name").ok() == Some("x_1")),
        "{listed}"
    );

    // New writes through the router that had the old primary go to shB.
    second
        .client()
        .await?
        .database("test")
        .collection::<Document>("plain")
        .insert_one(doc! {"_id": N, "k": N})
        .await?;
    assert_exactly_once(
        &documents_on(sh_b, "test", "plain").await?,
        N + 1,
        "plain on shB after a write",
    );
    assert!(
        documents_on(sh_a, "test", "plain").await?.is_empty(),
        "a write went to shA"
    );

    let logged: Vec<String> = config
        .collection::<Document>("changelog")
        .find(doc! {"ns": "test", "what": {"$regex": "^movePrimary"}})
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .filter_map(|d| d.get_str("what").ok().map(String::from))
        .collect();
    assert!(logged.contains(&"movePrimary.start".to_string()), "{logged:?}");
    assert!(logged.contains(&"movePrimary.commit".to_string()), "{logged:?}");

    // Errors, as MongoDB answers them.
    let already = router.admin(doc! {"movePrimary": "test", "to": "shB"}).await?;
    assert_eq!(already.get_f64("ok")?, 1.0, "{already}");
    let no_db = router.admin(doc! {"movePrimary": "nosuchdb", "to": "shA"}).await?;
    assert_eq!(code_of(&no_db), 26, "{no_db}");
    let no_shard = router.admin(doc! {"movePrimary": "test", "to": "shZ"}).await?;
    assert_eq!(code_of(&no_shard), 70, "{no_shard}");
    // A move already holding the database: ConflictingOperationInProgress.
    let held = super::raw_command(
        sh_b.port,
        doc! {"_shardsvrMovePrimaryEnterCriticalSection": "test", "$db": "admin"},
    )
    .await?;
    assert_eq!(held.get_f64("ok")?, 1.0, "{held}");
    let conflict = router.admin(doc! {"movePrimary": "test", "to": "shA"}).await?;
    assert_eq!(code_of(&conflict), 117, "{conflict}");
    let released = super::raw_command(sh_b.port, doc! {"_shardsvrMovePrimaryAbort": "test", "$db": "admin"}).await?;
    assert_eq!(released.get_f64("ok")?, 1.0, "{released}");
    // And back.
    let back = second.admin(doc! {"movePrimary": "test", "to": "shA"}).await?;
    assert_eq!(back.get_f64("ok")?, 1.0, "{back}\n{}", second.log());
    for coll in ["indexed", "big"] {
        assert_exactly_once(
            &all_documents(router, coll).await?,
            N,
            &format!("{coll} after moving back"),
        );
    }
    assert_exactly_once(&all_documents(router, "plain").await?, N + 1, "plain after moving back");
    Ok(())
}

/// Inserts into an unsharded collection through a second router throughout a `movePrimary`: every insert
/// acknowledged is found exactly once afterwards, on the new primary only.
#[tokio::test]
async fn writes_during_move_primary_wait_and_are_kept() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (cluster, second) = two_routers_and_test_on_sh_a().await?;
    let router = &cluster.router;
    let coll = second.client().await?.database("test").collection::<Document>("log");
    coll.insert_many(
        (0..2000)
            .map(|k| doc! {"_id": k, "pad": "x".repeat(200)})
            .collect::<Vec<_>>(),
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let coll = coll.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut k = 2000;
            while !stop.load(Ordering::Relaxed) {
                if coll.insert_one(doc! {"_id": k}).await.is_ok() {
                    acknowledged.push(k);
                }
                k += 1;
            }
            acknowledged
        })
    };
    // Some writes before the move starts.
    super::wait_until(std::time::Duration::from_secs(30), "the writer to insert", || {
        let coll = coll.clone();
        async move { (coll.count_documents(doc! {}).await.ok()? > 2010).then_some(()) }
    })
    .await?;
    let moved = router.admin(doc! {"movePrimary": "test", "to": "shB"}).await?;
    assert_eq!(moved.get_f64("ok")?, 1.0, "{moved}\n{}", router.log());
    let written = coll.count_documents(doc! {}).await?;
    super::wait_until(
        std::time::Duration::from_secs(30),
        "the writer to insert after the move",
        || {
            let coll = coll.clone();
            async move { (coll.count_documents(doc! {}).await.ok()? > written + 10).then_some(()) }
        },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await?;
    let found = documents_on(cluster.shard("shB"), "test", "log").await?;
    let mut ids: Vec<i32> = found.iter().map(|d| d.get_i32("_id").expect("int _id")).collect();
    ids.sort_unstable();
    let unique = ids.len();
    ids.dedup();
    assert_eq!(unique, ids.len(), "duplicated documents on shB");
    for k in (0..2000).chain(acknowledged.iter().copied()) {
        assert!(ids.binary_search(&k).is_ok(), "acknowledged insert {k} lost");
    }
    assert!(
        documents_on(cluster.shard("shA"), "test", "log").await?.is_empty(),
        "documents left on shA"
    );
    assert_eq!(all_documents(router, "log").await?.len(), unique, "through the router");
    Ok(())
}

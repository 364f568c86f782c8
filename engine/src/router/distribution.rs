//! `$shardedDataDistribution` through the router (`db.getSiblingDB("admin").aggregate([{$shardedDataDistribution:
//! {}}])`, what `sh.status()` and `sh.getShardedDataDistribution()` print): for each sharded collection, each
//! shard holding its documents with its owned and orphaned counts and sizes.
//!
//! A shard's total comes from `collStats` (count and size, giving the average object size); its owned documents are counted with
//! a versioned find of the shard key fields, which the shard filters to the chunks it owns; the rest are
//! orphans. Shards holding neither chunks nor documents of a collection are left out, as in MongoDB.

use bson::{Bson, Document, doc};

use super::Router;
use super::catalog::ShardEntry;
use super::rs_client::find_all;
use crate::error::{Error, Result, code};
use crate::shard::RoutingTable;

/// `aggregate: 1` on `admin`: only a `$shardedDataDistribution` pipeline is known.
pub async fn admin_aggregate(router: &Router, body: &Document) -> Result<Document> {
    let pipeline = body
        .get_array("pipeline")
        .map_err(|_| Error::type_mismatch("pipeline must be an array"))?;
    let first = pipeline.first().and_then(Bson::as_document);
    if pipeline.len() != 1 || !first.is_some_and(|stage| stage.contains_key("$shardedDataDistribution")) {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            "{aggregate: 1} on admin through the router supports only [{$shardedDataDistribution: {}}]",
        ));
    }
    let collections = find_all(
        router.catalog.config(),
        "config",
        "collections",
        doc! {},
        Some(doc! {"_id": 1}),
    )
    .await?;
    let mut out = Vec::new();
    for collection in collections {
        let Ok(ns) = collection.get_str("_id") else { continue };
        if collection.get_bool("dropped").unwrap_or(false) {
            continue;
        }
        let Some(table) = router.catalog.collection(ns).await? else {
            continue;
        };
        let mut shards = Vec::new();
        for shard in router.catalog.reload_shards().await? {
            if let Some(entry) = shard_distribution(&table, &shard).await? {
                shards.push(entry);
            }
        }
        out.push(doc! {"ns": ns, "shards": shards});
    }
    Ok(doc! {"cursor": {"firstBatch": out, "id": 0_i64, "ns": "admin.$cmd.aggregate"}})
}

/// One shard's entry for `table`'s collection, or `None` when it holds neither chunks nor documents.
async fn shard_distribution(table: &RoutingTable, shard: &ShardEntry) -> Result<Option<Document>> {
    let Some((db, coll)) = table.namespace.split_once('.') else {
        return Ok(None);
    };
    let stats = shard.client.command(&doc! {"collStats": coll, "$db": db}).await;
    let (total, average) = match &stats {
        Ok(stats) => {
            let count = number(stats, "count");
            (count, number(stats, "size").checked_div(count).unwrap_or(0))
        }
        Err(err) if err.code == code::NAMESPACE_NOT_FOUND.0 => (0, 0),
        Err(err) => return Err(err.clone()),
    };
    let owns_chunks = table.chunks().iter().any(|chunk| chunk.shard == shard.id);
    if total == 0 && !owns_chunks {
        return Ok(None);
    }
    let owned = if total == 0 {
        0
    } else {
        owned_documents(table, shard, db, coll, doc! {}, None).await?
    };
    let orphaned = total.saturating_sub(owned);
    Ok(Some(doc! {
        "shardName": &shard.id,
        "numOrphanedDocs": orphaned,
        "numOwnedDocuments": owned,
        "ownedSizeBytes": owned * average,
        "orphanedSizeBytes": orphaned * average,
    }))
}

/// The documents of `coll` on `shard` matching `filter` in chunks it owns: a versioned find of the key fields
/// (with `read_concern`, if any), counted. A shard that finds the router's version stale answers StaleConfig.
pub(super) async fn owned_documents(
    table: &RoutingTable,
    shard: &ShardEntry,
    db: &str,
    coll: &str,
    filter: Document,
    read_concern: Option<&Bson>,
) -> Result<i64> {
    let mut projection = doc! {"_id": 0};
    for name in table.pattern.names() {
        projection.insert(name, 1);
    }
    let mut find = doc! {"find": coll, "filter": filter, "projection": projection, "batchSize": 10_000_i32,
    "shardVersion": table.collection_version().to_document(), "$db": db};
    if let Some(read_concern) = read_concern {
        find.insert("readConcern", read_concern.clone());
    }
    let mut reply = shard.client.command(&find).await?;
    let mut owned = 0_i64;
    loop {
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| Error::internal(format!("find on {db}.{coll} answered without a cursor")))?;
        let batch = cursor
            .get_array("firstBatch")
            .or_else(|_| cursor.get_array("nextBatch"))
            .map_err(|_| Error::internal(format!("find on {db}.{coll} answered without a batch")))?;
        owned += batch.len() as i64;
        let id = cursor.get_i64("id").unwrap_or(0);
        if id == 0 {
            return Ok(owned);
        }
        reply = shard
            .client
            .command(&doc! {"getMore": id, "collection": coll, "batchSize": 10_000_i32, "$db": db})
            .await?;
    }
}

fn number(document: &Document, key: &str) -> i64 {
    document.get(key).and_then(crate::bsonx::as_i64).unwrap_or(0)
}

//! `movePrimary` on the router (`sh.movePrimary(db, to)` sends `{movePrimary: db, to}`): moves a database's
//! unsharded collections (with their options and indexes) from its primary shard to another, and makes that
//! shard the primary. Sharded collections stay where their chunks are.
//!
//! ```text
//! old primary: _shardsvrMovePrimaryEnterCriticalSection   requests on db's unsharded collections wait
//! router:      clone each unsharded collection            old primary ─▶ new primary (w: majority);
//!                                                         leftovers of an earlier attempt dropped first
//! old primary: _shardsvrMovePrimaryCommit                 one majority write on config.databases: primary,
//!                                                         version.lastMod + 1; critical section ends and the
//!                                                         waiting requests get StaleDbVersion (routers refresh)
//! router:      drop the old copies on the old primary     (best effort; see the README)
//! ```
//!
//! A failure before the commit aborts: the critical section ends, the new shard's copies are dropped and the
//! old primary stays authoritative. The old primary's side is `shardsvr/database.rs`.

use bson::{Bson, Document, doc};

use super::Router;
use super::catalog::ShardEntry;
use super::cluster::changelog;
use super::rs_client::{error_of_reply, find_all};
use crate::error::{Error, Result, code};
use crate::shard;
use crate::wire::client::reply_ok;

/// Documents per insert while cloning.
const CLONE_BATCH: usize = 1000;

/// Runs `movePrimary`.
pub async fn move_primary(router: &Router, name: &str, body: &Document) -> Result<Document> {
    let db = body
        .get_str(name)
        .map_err(|_| Error::type_mismatch(format!("{name} takes a database name")))?
        .to_string();
    let to = body
        .get_str("to")
        .map_err(|_| Error::failed_to_parse(format!("BSON field '{name}.to' is missing but a required field")))?
        .to_string();
    if matches!(db.as_str(), "admin" | "config" | "local") {
        return Err(Error::new(
            code::INVALID_OPTIONS,
            format!("Can't move primary for {db} database"),
        ));
    }
    router.catalog.invalidate_database(&db);
    let Some(database) = router.catalog.database(&db).await? else {
        return Err(Error::new(
            code::NAMESPACE_NOT_FOUND,
            format!("Database {db} not found"),
        ));
    };
    let shards = router.catalog.reload_shards().await?;
    let Some(recipient) = shards.iter().find(|s| s.id == to).cloned() else {
        return Err(Error::new(
            shard::code::SHARD_NOT_FOUND,
            format!("Shard {to} not found"),
        ));
    };
    if database.primary == to {
        return Ok(doc! {"primary": &to, "msg": format!("It is already the primary shard of database {db}")});
    }
    let donor = router.catalog.shard(&database.primary).await?;
    let from = donor.id.clone();
    changelog(router, "movePrimary.start", &db, doc! {"from": &from, "to": &to}).await;
    shard_command(
        &donor,
        doc! {"_shardsvrMovePrimaryEnterCriticalSection": &db, "$db": "admin"},
    )
    .await?;
    let cloned = match clone_unsharded(router, &db, &donor, &recipient).await {
        Ok(cloned) => cloned,
        Err(err) => {
            abort(&db, &donor, &recipient, &[]).await;
            return Err(err);
        }
    };
    let committed = shard_command(
        &donor,
        doc! {"_shardsvrMovePrimaryCommit": &db, "to": &to, "$db": "admin"},
    )
    .await;
    router.catalog.invalidate_database(&db);
    if let Err(err) = committed {
        // The commit may have been written even though its answer was lost: the config servers say.
        let primary = router.catalog.database(&db).await.ok().flatten().map(|d| d.primary);
        if primary.as_deref() != Some(to.as_str()) {
            abort(&db, &donor, &recipient, &cloned).await;
            return Err(err);
        }
    }
    if let Err(err) = shard_command(&recipient, doc! {"_flushDatabaseCacheUpdates": &db, "$db": "admin"}).await {
        tracing::debug!(%db, error = %err, "new primary shard did not refresh now; it will on the first request");
    }
    changelog(
        router,
        "movePrimary.commit",
        &db,
        doc! {"from": &from, "to": &to, "collections": cloned.iter().map(|c| Bson::String(c.clone())).collect::<Vec<_>>()},
    )
    .await;
    for coll in &cloned {
        if let Err(err) = donor.client.run(&doc! {"drop": coll, "$db": &db}).await {
            tracing::warn!(%db, %coll, error = %err, "cannot drop the old primary's copy after movePrimary");
        }
    }
    tracing::info!(%db, %from, %to, collections = cloned.len(), "primary shard moved");
    Ok(doc! {"primary": &to})
}

/// A command on a shard's primary; an error reply is an error.
async fn shard_command(shard: &ShardEntry, body: Document) -> Result<Document> {
    let reply = shard.client.run(&body).await?;
    if !reply_ok(&reply) {
        return Err(error_of_reply(&reply));
    }
    Ok(reply)
}

/// Ends the critical section on the old primary and drops what was cloned to the new one.
async fn abort(db: &str, donor: &ShardEntry, recipient: &ShardEntry, cloned: &[String]) {
    if let Err(err) = shard_command(donor, doc! {"_shardsvrMovePrimaryAbort": db, "$db": "admin"}).await {
        tracing::warn!(%db, error = %err, "cannot end the movePrimary critical section (its lease will)");
    }
    for coll in cloned {
        let _ = recipient.client.run(&doc! {"drop": coll, "$db": db}).await;
    }
}

/// Every document of a command's cursor (`listCollections`, `listIndexes`).
async fn cursor_documents(shard: &ShardEntry, db: &str, body: Document) -> Result<Vec<Document>> {
    let coll = body.keys().next().cloned().unwrap_or_default();
    let mut reply = shard_command(shard, body).await?;
    let mut out = Vec::new();
    loop {
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| Error::internal(format!("{coll} on {db} answered without a cursor")))?;
        let batch = cursor
            .get_array("firstBatch")
            .or_else(|_| cursor.get_array("nextBatch"))
            .map_err(|_| Error::internal(format!("{coll} on {db} answered without a batch")))?;
        out.extend(batch.iter().filter_map(|d| d.as_document().cloned()));
        let id = cursor.get_i64("id").unwrap_or(0);
        if id == 0 {
            return Ok(out);
        }
        let ns = cursor.get_str("ns").unwrap_or_default();
        let collection = ns.split_once('.').map(|(_, c)| c).unwrap_or_default().to_string();
        reply = shard_command(shard, doc! {"getMore": id, "collection": collection, "$db": db}).await?;
    }
}

/// Clones each unsharded collection (views too) of `db` from `donor` to `recipient`; returns their names.
async fn clone_unsharded(router: &Router, db: &str, donor: &ShardEntry, recipient: &ShardEntry) -> Result<Vec<String>> {
    let prefix = format!("^{}\\.", regex_escape(db));
    let sharded: Vec<String> = find_all(
        router.catalog.config(),
        "config",
        "collections",
        doc! {"_id": {"$regex": prefix}},
        None,
    )
    .await?
    .iter()
    .filter(|c| !c.get_bool("dropped").unwrap_or(false))
    .filter_map(|c| {
        c.get_str("_id")
            .ok()
            .and_then(|ns| ns.split_once('.'))
            .map(|(_, c)| c.to_string())
    })
    .collect();
    let listed = cursor_documents(donor, db, doc! {"listCollections": 1, "$db": db}).await?;
    let mut cloned = Vec::new();
    for entry in listed {
        let Ok(coll) = entry.get_str("name") else { continue };
        if coll.starts_with("system.") || sharded.iter().any(|s| s == coll) {
            continue;
        }
        let coll = coll.to_string();
        // A leftover of an aborted attempt (never a collection the new shard owns: this one is unsharded).
        let _ = recipient.client.run(&doc! {"drop": &coll, "$db": db}).await;
        cloned.push(coll.clone());
        let mut create = doc! {"create": &coll};
        if let Ok(options) = entry.get_document("options") {
            create.extend(options.clone());
        }
        create.insert("$db", db);
        create.insert("writeConcern", doc! {"w": "majority"});
        shard_command(recipient, create).await?;
        if entry.get_str("type").ok() == Some("view") {
            continue;
        }
        let indexes = cursor_documents(donor, db, doc! {"listIndexes": &coll, "$db": db}).await?;
        let indexes: Vec<Document> = indexes
            .into_iter()
            .filter(|i| i.get_str("name").ok() != Some("_id_"))
            .map(|mut i| {
                i.remove("v");
                i.remove("ns");
                i
            })
            .collect();
        if !indexes.is_empty() {
            shard_command(
                recipient,
                doc! {"createIndexes": &coll, "indexes": indexes, "writeConcern": {"w": "majority"}, "$db": db},
            )
            .await?;
        }
        // Local read concern: the critical section has drained the writes, and a `w: 1` write acknowledged
        // before it is not yet majority-committed but must come along.
        let documents = cursor_documents(donor, db, doc! {"find": &coll, "batchSize": 10_000_i32, "$db": db}).await?;
        for batch in documents.chunks(CLONE_BATCH) {
            super::rs_client::write_majority(
                &recipient.client,
                doc! {"insert": &coll, "documents": batch.to_vec(), "ordered": true, "$db": db},
            )
            .await?;
        }
    }
    Ok(cloned)
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

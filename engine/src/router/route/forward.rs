//! Everything else: commands of unsharded collections and databases to the primary shard, index changes and
//! `drop`/`dropDatabase` of sharded collections on every shard.

use super::*;

/// Other commands on a sharded collection: index changes and `drop` on every shard, index and statistics
/// reads on the shard owning the first chunk; anything else is refused for now.
pub(super) async fn sharded_collection_command(
    router: &Router,
    name: &str,
    db: &str,
    table: &RoutingTable,
    body: &Document,
) -> Result<Document> {
    match name {
        "drop" => drop_sharded(router, table, body).await,
        "createIndexes" | "dropIndexes" | "deleteIndexes" => {
            if name == "createIndexes" {
                check_unique_indexes(table, body)?;
            }
            let mut first = None;
            for shard in router.catalog.reload_shards().await? {
                let reply = shard.client.run(body).await?;
                let missing =
                    reply.get("code").and_then(crate::bsonx::as_i64) == Some(i64::from(code::NAMESPACE_NOT_FOUND.0));
                if !reply_ok(&reply) && !missing {
                    return Ok(reply);
                }
                if first.is_none() && reply_ok(&reply) {
                    first = Some(reply);
                }
            }
            Ok(first.unwrap_or_default())
        }
        "listIndexes" | "collStats" | "validate" => {
            let owner = table.chunks().first().map(|c| c.shard.clone()).unwrap_or_default();
            let shard = router.catalog.shard(&owner).await?;
            let reply = shard.client.run(body).await?;
            Ok(match name {
                "listIndexes" => adopt_remote(router, reply, &shard, db, body.get_str(name).unwrap_or_default()),
                _ => reply,
            })
        }
        _ => Err(Error::new(
            code::ILLEGAL_OPERATION,
            format!(
                "{name} on the sharded collection {} is not supported by the Faultline router yet",
                table.namespace
            ),
        )),
    }
}

/// A unique index on a sharded collection must be prefixed by the shard key's fields (each shard can only
/// enforce uniqueness within its own chunks), as MongoDB requires (67 CannotCreateIndex otherwise).
pub(super) fn check_unique_indexes(table: &RoutingTable, body: &Document) -> Result<()> {
    let names = table.pattern.names();
    for spec in body.get_array("indexes").map(|i| i.to_vec()).unwrap_or_default() {
        let Bson::Document(spec) = spec else { continue };
        if !spec.get("unique").is_some_and(crate::bsonx::truthy) {
            continue;
        }
        let key = spec.get_document("key").cloned().unwrap_or_default();
        let fields: Vec<&str> = key.keys().map(String::as_str).collect();
        let prefixed = fields.len() >= names.len() && fields[..names.len()] == names[..];
        if !prefixed && fields != ["_id"] {
            return Err(Error::new(
                (67, "CannotCreateIndex"),
                format!(
                    "cannot create unique index over {key} with shard key pattern {}",
                    table.pattern.to_document()
                ),
            ));
        }
    }
    Ok(())
}

/// `drop` of a sharded collection: its metadata first (routers stop routing to it), then its data on every
/// shard.
pub(super) async fn drop_sharded(router: &Router, table: &RoutingTable, body: &Document) -> Result<Document> {
    let config = router.catalog.config();
    let ns = &table.namespace;
    crate::router::rs_client::write_majority(
        config,
        doc! {"delete": "collections", "deletes": [{"q": {"_id": ns}, "limit": 1}], "$db": "config"},
    )
    .await?;
    crate::router::rs_client::write_majority(
        config,
        doc! {"delete": "chunks", "deletes": [{"q": {"uuid": Bson::Binary(table.uuid.clone())}, "limit": 0}],
        "$db": "config"},
    )
    .await?;
    router.catalog.invalidate_collection(ns);
    crate::router::cluster::changelog(router, "dropCollection", ns, Document::new()).await;
    for shard in router.catalog.reload_shards().await? {
        let reply = shard.client.run(body).await?;
        let missing = reply.get("code").and_then(crate::bsonx::as_i64) == Some(i64::from(code::NAMESPACE_NOT_FOUND.0));
        if !reply_ok(&reply) && !missing {
            return Ok(reply);
        }
    }
    Ok(doc! {"ns": ns})
}

/// `dropDatabase` through the router: its sharded collections, then the database on every shard, then its
/// entry in `config.databases`.
pub(super) async fn drop_database(router: &Router, db: &str, body: &Document) -> Result<Document> {
    if router.catalog.database(db).await?.is_none() {
        return Ok(Document::new());
    }
    let config = router.catalog.config();
    let prefix = format!("^{}\\.", db.replace('.', "\\."));
    let sharded =
        crate::router::rs_client::find_all(config, "config", "collections", doc! {"_id": {"$regex": prefix}}, None)
            .await?;
    for collection in sharded {
        let Ok(ns) = collection.get_str("_id") else { continue };
        if let Some(table) = router.catalog.collection(ns).await? {
            let coll = ns.split_once('.').map(|(_, c)| c).unwrap_or_default();
            drop_sharded(router, &table, &doc! {"drop": coll, "$db": db}).await?;
        }
    }
    for shard in router.catalog.reload_shards().await? {
        let reply = shard.client.run(body).await?;
        if !reply_ok(&reply) {
            return Ok(reply);
        }
    }
    crate::router::rs_client::write_majority(
        config,
        doc! {"delete": "databases", "deletes": [{"q": {"_id": db}, "limit": 1}], "$db": "config"},
    )
    .await?;
    router.catalog.invalidate_database(db);
    crate::router::cluster::changelog(router, "dropDatabase", db, Document::new()).await;
    Ok(doc! {"dropped": db})
}

/// Commands that create a database when it does not exist yet.
pub(super) fn creates_database(name: &str) -> bool {
    matches!(
        name,
        "create" | "createIndexes" | "update" | "findAndModify" | "findandmodify" | "delete"
    )
}

/// Any other command: to the database's primary shard (versioned when it names an unsharded collection).
pub(super) async fn forward(router: &Router, name: &str, db: &str, body: &Document) -> Result<Document> {
    if name == "dropDatabase" {
        return drop_database(router, db, body).await;
    }
    let coll = body.get_str(name).ok().map(String::from);
    for _ in 0..=MAX_STALE_RETRIES {
        let database = if creates_database(name) {
            Some(ensure_database(router, db, None).await?)
        } else {
            router.catalog.database(db).await?
        };
        let Some(database) = database else {
            // No such database in the cluster: any shard answers as for an empty database.
            let shards = router.catalog.reload_shards().await?;
            let shard = shards
                .first()
                .ok_or_else(|| Error::new(shard::code::SHARD_NOT_FOUND, "the cluster has no shards yet"))?;
            return shard.client.run(body).await;
        };
        let ns = coll.as_ref().map(|c| format!("{db}.{c}"));
        if let Some(ns) = &ns
            && let Some(table) = router.catalog.collection(ns).await?
        {
            return sharded_collection_command(router, name, db, &table, body).await;
        }
        let shard = router.catalog.shard(&database.primary).await?;
        let request = match &ns {
            Some(_) => versioned(body, &ChunkVersion::unsharded(), Some(&database)),
            None => body.clone(),
        };
        let reply = shard.client.run(&request).await?;
        if is_stale(&reply) {
            note_stale(router, db, ns.as_deref().unwrap_or(db), &reply);
            continue;
        }
        return Ok(reply);
    }
    Err(still_stale(db))
}

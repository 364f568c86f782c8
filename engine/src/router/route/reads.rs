//! Reads through the router: `find` and `count` targeted or merged, `getMore`/`killCursors` on router
//! cursors, `aggregate` and `distinct` on sharded collections.

use super::*;

pub(super) fn empty_cursor(ns: &str) -> Document {
    doc! {"cursor": {"firstBatch": [], "id": 0_i64, "ns": ns}}
}

/// A shard's cursor reply with the shard's cursor id swapped for a router cursor id.
pub(super) fn adopt_remote(
    router: &Router,
    mut reply: Document,
    shard: &Arc<ShardEntry>,
    db: &str,
    coll: &str,
) -> Document {
    if !reply_ok(&reply) {
        return reply;
    }
    if let Ok(cursor) = reply.get_document_mut("cursor") {
        let remote = cursor.get_i64("id").unwrap_or(0);
        if remote != 0 {
            let id = router.cursors.open(RouterCursor::Remote {
                shard: shard.clone(),
                db: db.to_string(),
                collection: coll.to_string(),
                id: remote,
            });
            cursor.insert("id", id);
        }
    }
    reply
}

pub(super) async fn find(router: &Router, db: &str, body: &Document) -> Result<Document> {
    let coll = collection(body, "find")?;
    let ns = format!("{db}.{coll}");
    for _ in 0..=MAX_STALE_RETRIES {
        let (shard, request) = match placement(router, db, coll, false).await? {
            Placement::Missing => return Ok(empty_cursor(&ns)),
            Placement::Unsharded(database, shard) => {
                let request = versioned(body, &ChunkVersion::unsharded(), Some(&database));
                (shard, request)
            }
            Placement::Sharded(table) => {
                let filter = body.get_document("filter").cloned().unwrap_or_default();
                let shards = shards_for(&table, &filter);
                if shards.len() != 1 {
                    match merged_find(router, &table, &shards, db, body).await? {
                        Some(reply) => return Ok(reply),
                        None => {
                            note_stale(router, db, &ns, body);
                            continue;
                        }
                    }
                }
                let shard = router.catalog.shard(&shards[0]).await?;
                let request = versioned(body, &table.collection_version(), None);
                (shard, request)
            }
        };
        let reply = shard.client.run(&request).await?;
        if is_stale(&reply) {
            note_stale(router, db, &ns, &reply);
            continue;
        }
        return Ok(adopt_remote(router, reply, &shard, db, coll));
    }
    Err(still_stale(&ns))
}

/// Every document a shard returns for `request`, following its cursor to the end. `None`: StaleConfig.
pub(super) async fn drain(
    shard: &ShardEntry,
    db: &str,
    coll: &str,
    request: &Document,
) -> Result<Option<Vec<Document>>> {
    let mut reply = shard.client.run(request).await?;
    if is_stale(&reply) {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        if !reply_ok(&reply) {
            return Err(error_of_reply(&reply));
        }
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| Error::internal(format!("shard {} answered find without a cursor", shard.id)))?;
        let batch = cursor
            .get_array("firstBatch")
            .or_else(|_| cursor.get_array("nextBatch"))
            .map_err(|_| Error::internal(format!("shard {} answered find without a batch", shard.id)))?;
        out.extend(batch.iter().filter_map(|d| d.as_document().cloned()));
        let id = cursor.get_i64("id").unwrap_or(0);
        if id == 0 {
            return Ok(Some(out));
        }
        reply = shard
            .client
            .run(&doc! {"getMore": id, "collection": coll, "$db": db})
            .await?;
    }
}

/// A find over several shards, merged here. `None`: a shard answered StaleConfig.
pub(super) async fn merged_find(
    router: &Router,
    table: &RoutingTable,
    shards: &[String],
    db: &str,
    body: &Document,
) -> Result<Option<Document>> {
    let coll = collection(body, "find")?;
    let ns = format!("{db}.{coll}");
    let sort = body.get_document("sort").ok().filter(|s| !s.is_empty()).cloned();
    let projection = body.get_document("projection").ok().filter(|p| !p.is_empty()).cloned();
    let skip = body.get("skip").and_then(crate::bsonx::as_i64).unwrap_or(0).max(0) as usize;
    let limit_arg = body.get("limit").and_then(crate::bsonx::as_i64).unwrap_or(0);
    let limit = limit_arg.unsigned_abs() as usize;
    let single_batch = body.get_bool("singleBatch").unwrap_or(false) || limit_arg < 0;
    let batch_size = body
        .get("batchSize")
        .and_then(crate::bsonx::as_i64)
        .map(|b| b.max(0) as usize);
    let mut request = body.clone();
    for key in ["skip", "limit", "batchSize", "singleBatch"] {
        request.remove(key);
    }
    if limit > 0 {
        request.insert("limit", (skip + limit) as i64);
    }
    if sort.is_some() && projection.is_some() {
        // Sort on the full documents; project after.
        request.remove("projection");
    }
    let mut docs = Vec::new();
    for shard_id in shards {
        let shard = router.catalog.shard(shard_id).await?;
        match drain(
            &shard,
            db,
            coll,
            &versioned(&request, &table.collection_version(), None),
        )
        .await?
        {
            Some(part) => docs.extend(part),
            None => return Ok(None),
        }
    }
    if let Some(sort) = &sort {
        SortSpec::parse(sort)?.sort(&mut docs);
        if let Some(projection) = &projection {
            let projection = Projection::parse(projection)?;
            docs = docs
                .iter()
                .map(|d| projection.apply(d))
                .collect::<std::result::Result<_, _>>()?;
        }
    }
    let mut rest: VecDeque<Document> = docs.into_iter().skip(skip).collect();
    if limit > 0 {
        rest.truncate(limit);
    }
    let first: Vec<Document> = rest.drain(..batch_size.unwrap_or(101).min(rest.len())).collect();
    let id = if rest.is_empty() || single_batch {
        0
    } else {
        router.cursors.open(RouterCursor::Merged { ns: ns.clone(), rest })
    };
    Ok(Some(doc! {"cursor": {"firstBatch": first, "id": id, "ns": ns}}))
}

pub(super) async fn count(router: &Router, db: &str, body: &Document) -> Result<Document> {
    let coll = collection(body, "count")?;
    let ns = format!("{db}.{coll}");
    'attempt: for _ in 0..=MAX_STALE_RETRIES {
        let table = match placement(router, db, coll, false).await? {
            Placement::Missing => return Ok(doc! {"n": 0_i64}),
            Placement::Unsharded(database, shard) => {
                let reply = shard
                    .client
                    .run(&versioned(body, &ChunkVersion::unsharded(), Some(&database)))
                    .await?;
                if is_stale(&reply) {
                    note_stale(router, db, &ns, &reply);
                    continue;
                }
                return Ok(reply);
            }
            Placement::Sharded(table) => table,
        };
        let query = body.get_document("query").cloned().unwrap_or_default();
        let skip = body.get("skip").and_then(crate::bsonx::as_i64).unwrap_or(0).max(0);
        let limit = body.get("limit").and_then(crate::bsonx::as_i64).unwrap_or(0).abs();
        let mut request = body.clone();
        request.remove("skip");
        request.remove("limit");
        let mut total = 0;
        for shard_id in shards_for(&table, &query) {
            let shard = router.catalog.shard(&shard_id).await?;
            if !query.is_empty() {
                // With a predicate, as in MongoDB, orphans are not counted: the shard filters a versioned find.
                let read_concern = body.get("readConcern");
                match owned_documents(&table, &shard, db, coll, query.clone(), read_concern).await {
                    Ok(n) => total += n,
                    Err(err) if err.code == shard::code::STALE_CONFIG.0 => {
                        router.catalog.invalidate_collection(&ns);
                        continue 'attempt;
                    }
                    Err(err) => return Err(err),
                }
                continue;
            }
            let reply = shard
                .client
                .run(&versioned(&request, &table.collection_version(), None))
                .await?;
            if is_stale(&reply) {
                note_stale(router, db, &ns, &reply);
                continue 'attempt;
            }
            if !reply_ok(&reply) {
                return Ok(reply);
            }
            total += reply.get("n").and_then(crate::bsonx::as_i64).unwrap_or(0);
        }
        let mut n = (total - skip).max(0);
        if limit > 0 {
            n = n.min(limit);
        }
        return Ok(doc! {"n": n});
    }
    Err(still_stale(&ns))
}

pub(super) async fn get_more(router: &Router, body: &Document) -> Result<Document> {
    let id = body
        .get("getMore")
        .and_then(crate::bsonx::as_i64)
        .ok_or_else(|| Error::type_mismatch("getMore takes a cursor id"))?;
    let not_found = || Error::new(code::CURSOR_NOT_FOUND, format!("cursor id {id} not found"));
    let cursor = router.cursors.take(id).ok_or_else(not_found)?;
    match cursor {
        RouterCursor::Remote {
            shard,
            db,
            collection,
            id: remote,
        } => {
            let mut request = body.clone();
            request.insert("getMore", remote);
            request.insert("$db", db.clone());
            let mut reply = shard.client.run(&request).await?;
            if !reply_ok(&reply) {
                return Ok(reply);
            }
            if let Ok(cursor) = reply.get_document_mut("cursor") {
                let next = cursor.get_i64("id").unwrap_or(0);
                if next != 0 {
                    router.cursors.put_back(
                        id,
                        RouterCursor::Remote {
                            shard: shard.clone(),
                            db,
                            collection,
                            id: next,
                        },
                    );
                    cursor.insert("id", id);
                }
            }
            Ok(reply)
        }
        RouterCursor::Merged { ns, mut rest } => {
            let size = body
                .get("batchSize")
                .and_then(crate::bsonx::as_i64)
                .filter(|b| *b > 0)
                .map(|b| b as usize)
                .unwrap_or(rest.len());
            let batch: Vec<Document> = rest.drain(..size.min(rest.len())).collect();
            let next = if rest.is_empty() {
                0
            } else {
                router
                    .cursors
                    .put_back(id, RouterCursor::Merged { ns: ns.clone(), rest });
                id
            };
            Ok(doc! {"cursor": {"nextBatch": batch, "id": next, "ns": ns}})
        }
    }
}

pub(super) async fn kill_cursors(router: &Router, body: &Document) -> Result<Document> {
    let ids = body
        .get_array("cursors")
        .map_err(|_| Error::failed_to_parse("BSON field 'killCursors.cursors' is missing but a required field"))?;
    let mut killed = Vec::new();
    let mut not_found = Vec::new();
    for id in ids.iter().filter_map(crate::bsonx::as_i64) {
        match router.cursors.take(id) {
            Some(RouterCursor::Remote {
                shard,
                db,
                collection,
                id: remote,
            }) => {
                let kill = doc! {"killCursors": collection, "cursors": [remote], "$db": db};
                if let Err(err) = shard.client.run(&kill).await {
                    tracing::debug!(error = %err, "cannot kill a shard's cursor");
                }
                killed.push(id);
            }
            Some(RouterCursor::Merged { .. }) => killed.push(id),
            None => not_found.push(id),
        }
    }
    Ok(doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []})
}

/// The stages a shard can run on its own documents before the merge: per-document stages only.
pub(super) fn per_document(stage: &Document) -> bool {
    stage.keys().next().is_some_and(|name| {
        matches!(
            name.as_str(),
            "$match" | "$project" | "$addFields" | "$set" | "$unset" | "$unwind" | "$replaceRoot" | "$replaceWith"
        )
    })
}

/// `aggregate` on a sharded collection: the leading per-document stages run on every owning shard (targeted
/// by a leading `$match`), the rest of the pipeline on the router over what they return.
pub(super) async fn aggregate(router: &Router, db: &str, coll: &str, body: &Document) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let stages: Vec<Document> = body
        .get_array("pipeline")
        .map_err(|_| Error::type_mismatch("aggregate.pipeline must be an array"))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch("each stage must be an object"))
        })
        .collect::<Result<_>>()?;
    let split = stages.iter().take_while(|s| per_document(s)).count();
    let (on_shards, on_router) = stages.split_at(split);
    let filter = on_shards
        .first()
        .and_then(|s| s.get_document("$match").ok())
        .cloned()
        .unwrap_or_default();
    let batch_size = body
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get("batchSize").and_then(crate::bsonx::as_i64))
        .map(|b| b.max(0) as usize)
        .unwrap_or(101);
    'attempt: for _ in 0..=MAX_STALE_RETRIES {
        let Some(table) = router.catalog.collection(&ns).await? else {
            return forward(router, "aggregate", db, body).await;
        };
        let mut request = body.clone();
        request.insert(
            "pipeline",
            on_shards.iter().cloned().map(Bson::Document).collect::<Vec<_>>(),
        );
        request.insert("cursor", doc! {});
        let mut docs = Vec::new();
        for shard_id in shards_for(&table, &filter) {
            let shard = router.catalog.shard(&shard_id).await?;
            match drain(
                &shard,
                db,
                coll,
                &versioned(&request, &table.collection_version(), None),
            )
            .await?
            {
                Some(part) => docs.extend(part),
                None => {
                    note_stale(router, db, &ns, &request);
                    continue 'attempt;
                }
            }
        }
        let mut rest: VecDeque<Document> = crate::query::pipeline::run(on_router, docs, bson::DateTime::now())?.into();
        let first: Vec<Document> = rest.drain(..batch_size.min(rest.len())).collect();
        let id = if rest.is_empty() {
            0
        } else {
            router.cursors.open(RouterCursor::Merged { ns: ns.clone(), rest })
        };
        return Ok(doc! {"cursor": {"firstBatch": first, "id": id, "ns": ns}});
    }
    Err(still_stale(&ns))
}

/// `distinct` on a sharded collection: each owning shard's values, merged without duplicates.
pub(super) async fn distinct(router: &Router, db: &str, coll: &str, body: &Document) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let query = body.get_document("query").cloned().unwrap_or_default();
    'attempt: for _ in 0..=MAX_STALE_RETRIES {
        let Some(table) = router.catalog.collection(&ns).await? else {
            return forward(router, "distinct", db, body).await;
        };
        let mut values: Vec<Bson> = Vec::new();
        for shard_id in shards_for(&table, &query) {
            let shard = router.catalog.shard(&shard_id).await?;
            let reply = shard
                .client
                .run(&versioned(body, &table.collection_version(), None))
                .await?;
            if is_stale(&reply) {
                note_stale(router, db, &ns, &reply);
                continue 'attempt;
            }
            if !reply_ok(&reply) {
                return Ok(reply);
            }
            for value in reply.get_array("values").map(|v| v.to_vec()).unwrap_or_default() {
                if !values.iter().any(|v| crate::query::compare::bson_equal(v, &value)) {
                    values.push(value);
                }
            }
        }
        values.sort_by(crate::query::compare::compare_bson);
        return Ok(doc! {"values": values});
    }
    Err(still_stale(&ns))
}

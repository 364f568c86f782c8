//! `update`, `delete` and `findAndModify` on sharded collections, with MongoDB 7.0's targeting rules.

use super::*;

/// Whether `filter` pins `_id` to one value.
pub(super) fn has_id_equality(filter: &Document) -> bool {
    match filter.get("_id") {
        Some(Bson::Document(ops)) => ops.len() == 1 && ops.contains_key("$eq"),
        Some(Bson::Array(_) | Bson::RegularExpression(_)) | None => false,
        Some(_) => true,
    }
}

/// Refuses an update that could change a document's shard key (66 ImmutableField): an operator on a key
/// field (or on its parent or child), or a replacement whose key differs from the one the query pins.
pub(super) fn check_key_unchanged(table: &RoutingTable, target: &shard::Target, update: &Bson) -> Result<()> {
    let immutable = |path: &str| {
        Error::new(
            (66, "ImmutableField"),
            format!(
                "Performing an update on the path '{path}' would modify the shard key {} of {}; changing a \
                 document's shard key is not supported by the Faultline router yet",
                table.pattern.to_document(),
                table.namespace
            ),
        )
    };
    let names = table.pattern.names();
    match update {
        Bson::Document(u) if u.keys().next().is_some_and(|k| k.starts_with('$')) => {
            for fields in u.values().filter_map(Bson::as_document) {
                for field in fields.keys() {
                    let touched = names.iter().find(|key| {
                        **key == field || key.starts_with(&format!("{field}.")) || field.starts_with(&format!("{key}."))
                    });
                    if let Some(key) = touched {
                        return Err(immutable(key));
                    }
                }
            }
            Ok(())
        }
        Bson::Document(replacement) => match target {
            shard::Target::Key(key) if table.pattern.extract(replacement)? == *key => Ok(()),
            _ => Err(immutable(names.first().copied().unwrap_or("?"))),
        },
        _ => Err(Error::new(
            code::ILLEGAL_OPERATION,
            "pipeline updates on a sharded collection are not supported by the Faultline router yet",
        )),
    }
}

/// The shards one update or delete statement goes to, by MongoDB 7.0's rules.
pub(super) fn statement_shards(table: &RoutingTable, name: &str, statement: &Document) -> Result<Vec<String>> {
    let filter = statement.get_document("q").cloned().unwrap_or_default();
    let target = target_filter(&table.pattern, &filter);
    let single = if name == "update" {
        let update = statement.get("u").cloned().unwrap_or(Bson::Null);
        check_key_unchanged(table, &target, &update)?;
        if statement.get_bool("upsert").unwrap_or(false) && !matches!(target, shard::Target::Key(_)) {
            return Err(Error::new(
                shard::code::SHARD_KEY_NOT_FOUND,
                format!(
                    "Failed to target upsert by query :: could not extract exact shard key {} from {filter}",
                    table.pattern.to_document()
                ),
            ));
        }
        !statement.get_bool("multi").unwrap_or(false)
    } else {
        statement.get("limit").and_then(crate::bsonx::as_i64).unwrap_or(0) == 1
    };
    if single && !matches!(target, shard::Target::Key(_)) {
        if !has_id_equality(&filter) {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                format!(
                    "A single {name} on a sharded collection must contain an exact match on _id or the full shard key \
                     {}: {filter}",
                    table.pattern.to_document()
                ),
            ));
        }
        return Ok(table.shards().into_iter().collect());
    }
    Ok(shards_for(table, &filter))
}

/// `update` / `delete` on a sharded collection, one statement at a time (ordered: stop at the first error).
pub(super) async fn write_statements(
    router: &Router,
    db: &str,
    coll: &str,
    name: &str,
    body: &Document,
) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let field = if name == "update" { "updates" } else { "deletes" };
    let statements: Vec<Document> = body
        .get_array(field)
        .map_err(|_| Error::failed_to_parse(format!("BSON field '{name}.{field}' is missing but a required field")))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch(format!("{field} must be documents")))
        })
        .collect::<Result<_>>()?;
    let ordered = body.get_bool("ordered").unwrap_or(true);
    let statement_ids = statement_ids(body, statements.len());
    let (mut n, mut modified) = (0_i64, 0_i64);
    let mut upserted = Vec::new();
    let mut write_errors = Vec::new();
    let mut write_concern_error = None;
    for (i, statement) in statements.iter().enumerate() {
        let mut part = Document::new();
        for (key, value) in body {
            if !matches!(key.as_str(), "updates" | "deletes" | "stmtIds" | "stmtId") {
                part.insert(key.clone(), value.clone());
            }
        }
        part.insert(field, vec![Bson::Document(statement.clone())]);
        if body.contains_key("txnNumber") {
            part.insert("stmtIds", vec![Bson::Int32(statement_ids[i])]);
        }
        let mut done: Vec<String> = Vec::new();
        let mut failure = None;
        'attempt: for attempt in 0..=MAX_STALE_RETRIES {
            let table =
                router.catalog.collection(&ns).await?.ok_or_else(|| {
                    Error::new(shard::code::NAMESPACE_NOT_SHARDED, format!("{ns} is no longer sharded"))
                })?;
            let shards = match statement_shards(&table, name, statement) {
                Ok(shards) => shards,
                Err(err) => {
                    failure = Some(err.to_write_error(i));
                    break;
                }
            };
            let pending: Vec<&String> = shards.iter().filter(|s| !done.contains(s)).collect();
            for shard_id in pending {
                let shard = router.catalog.shard(shard_id).await?;
                let reply = shard
                    .client
                    .run(&versioned(&part, &table.collection_version(), None))
                    .await?;
                if is_stale(&reply) {
                    note_stale(router, db, &ns, &reply);
                    if attempt == MAX_STALE_RETRIES {
                        failure = Some(still_stale(&ns).to_write_error(i));
                    }
                    continue 'attempt;
                }
                if !reply_ok(&reply) {
                    failure = Some(error_of_reply(&reply).to_write_error(i));
                    break 'attempt;
                }
                done.push(shard_id.clone());
                n += reply.get("n").and_then(crate::bsonx::as_i64).unwrap_or(0);
                modified += reply.get("nModified").and_then(crate::bsonx::as_i64).unwrap_or(0);
                for up in reply.get_array("upserted").map(|u| u.to_vec()).unwrap_or_default() {
                    if let Bson::Document(mut up) = up {
                        up.insert("index", i as i32);
                        upserted.push(up);
                    }
                }
                if let Some(Bson::Document(error)) = reply.get_array("writeErrors").ok().and_then(|e| e.first()) {
                    let mut error = error.clone();
                    error.insert("index", i as i32);
                    failure = Some(error);
                }
                if write_concern_error.is_none()
                    && let Ok(error) = reply.get_document("writeConcernError")
                {
                    write_concern_error = Some(error.clone());
                }
            }
            break;
        }
        if let Some(error) = failure {
            write_errors.push(error);
            if ordered {
                break;
            }
        }
    }
    let mut reply = doc! {"n": super::write_count(n)};
    if name == "update" {
        reply.insert("nModified", super::write_count(modified));
        if !upserted.is_empty() {
            reply.insert("upserted", upserted);
        }
    }
    if !write_errors.is_empty() {
        reply.insert("writeErrors", write_errors);
    }
    if let Some(error) = write_concern_error {
        reply.insert("writeConcernError", error);
    }
    Ok(reply)
}

/// `findAndModify` on a sharded collection: the query must pin the whole shard key.
pub(super) async fn find_and_modify(
    router: &Router,
    db: &str,
    coll: &str,
    name: &str,
    body: &Document,
) -> Result<Document> {
    let ns = format!("{db}.{coll}");
    let filter = body.get_document("query").cloned().unwrap_or_default();
    for _ in 0..=MAX_STALE_RETRIES {
        let Some(table) = router.catalog.collection(&ns).await? else {
            return forward(router, name, db, body).await;
        };
        let target = target_filter(&table.pattern, &filter);
        let shard::Target::Key(key) = &target else {
            return Err(Error::new(
                shard::code::SHARD_KEY_NOT_FOUND,
                format!(
                    "Query for sharded findAndModify must contain the shard key {}: {filter}",
                    table.pattern.to_document()
                ),
            ));
        };
        if let Some(update) = body.get("update") {
            check_key_unchanged(&table, &target, update)?;
        }
        let shard_id = table.chunk_for(key).shard.clone();
        let shard = router.catalog.shard(&shard_id).await?;
        let reply = shard
            .client
            .run(&versioned(body, &table.collection_version(), None))
            .await?;
        if is_stale(&reply) {
            note_stale(router, db, &ns, &reply);
            continue;
        }
        return Ok(reply);
    }
    Err(still_stale(&ns))
}

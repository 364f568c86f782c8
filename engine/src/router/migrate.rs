//! `moveChunk` and `moveRange` on the router (`sh.moveChunk` sends `moveChunk`): which chunk, which donor;
//! the donor's primary runs the migration (`_shardsvrMoveRange`, `migration/`).
//!
//! ```text
//! {moveChunk: "db.c", find: {k: 5} | bounds: [{k: 0}, {k: 10}], to: "sh2", _waitForDelete?, secondaryThrottle?,
//!  writeConcern?}
//! {moveRange: "db.c", min: {k: 0}, max?: {k: 10}, toShard: "sh2", waitForDelete?}
//! ```
//!
//! A range inside one chunk is split off first (as `moveRange` does); a range over several chunks is refused.

use bson::{Bson, Document, doc};

use super::Router;
use super::rs_client::error_of_reply;
use crate::error::{Error, Result, code};
use crate::shard::{self, ShardKeyValue, Target, target_filter};

/// Runs `moveChunk` or `moveRange`.
pub async fn move_chunk(router: &Router, name: &str, body: &Document) -> Result<Document> {
    let ns = body
        .get_str(name)
        .map_err(|_| Error::type_mismatch(format!("{name} takes a namespace \"db.collection\"")))?
        .to_string();
    let to_field = if name == "moveChunk" { "to" } else { "toShard" };
    let to = body
        .get_str(to_field)
        .map_err(|_| {
            Error::failed_to_parse(format!(
                "BSON field '{name}.{to_field}' is missing but a required field"
            ))
        })?
        .to_string();
    router.catalog.invalidate_collection(&ns);
    let table = router
        .catalog
        .collection(&ns)
        .await?
        .ok_or_else(|| Error::new(shard::code::NAMESPACE_NOT_SHARDED, format!("ns {ns} is not sharded")))?;
    let shards = router.catalog.reload_shards().await?;
    if !shards.iter().any(|s| s.id == to) {
        return Err(Error::new(
            shard::code::SHARD_NOT_FOUND,
            format!("Shard {to} not found"),
        ));
    }
    let names = table.pattern.names();
    let bound = |d: &Document| {
        ShardKeyValue::from_document(d, &names).ok_or_else(|| {
            Error::bad_value(format!(
                "{d} does not match the shard key {}",
                table.pattern.to_document()
            ))
        })
    };
    let (min, max) = if name == "moveChunk" {
        match (body.get_document("find"), body.get_array("bounds")) {
            (Ok(find), Err(_)) => {
                let Target::Key(key) = target_filter(&table.pattern, find) else {
                    return Err(Error::bad_value(format!(
                        "find {find} must pin the whole shard key {}",
                        table.pattern.to_document()
                    )));
                };
                let chunk = table.chunk_for(&key);
                (chunk.min.clone(), Some(chunk.max.clone()))
            }
            (Err(_), Ok(bounds)) => match bounds.as_slice() {
                [Bson::Document(low), Bson::Document(high)] => (bound(low)?, Some(bound(high)?)),
                _ => return Err(Error::bad_value("bounds must be [min, max]")),
            },
            _ => {
                return Err(Error::new(
                    code::INVALID_OPTIONS,
                    "need to specify either a find query, or both lower and upper bounds.",
                ));
            }
        }
    } else {
        let min = body
            .get_document("min")
            .map_err(|_| Error::failed_to_parse("BSON field 'moveRange.min' is missing but a required field"))?;
        let max = body.get_document("max").ok().map(bound).transpose()?;
        (bound(min)?, max)
    };
    let chunk = table.chunk_for(&min).clone();
    let max = max.unwrap_or_else(|| chunk.max.clone());
    if max <= min || max > chunk.max {
        return Err(Error::new(
            code::INVALID_OPTIONS,
            format!(
                "the range [{}, {}) is empty or spans more than one chunk of {ns}",
                min.to_document(&names),
                max.to_document(&names)
            ),
        ));
    }
    // A part of a chunk is split off first.
    for point in [&min, &max] {
        if *point != chunk.min && *point != chunk.max {
            super::cluster::split(router, &doc! {"split": &ns, "middle": point.to_document(&names)}).await?;
        }
    }
    let donor = router.catalog.shard(&chunk.shard).await?;
    let wait_for_delete = ["_waitForDelete", "waitForDelete"]
        .iter()
        .any(|k| body.get(*k).is_some_and(crate::bsonx::truthy));
    let reply = donor
        .client
        .run(&doc! {
            "_shardsvrMoveRange": &ns, "min": min.to_document(&names), "max": max.to_document(&names),
            "toShard": &to, "fromShard": &chunk.shard, "waitForDelete": wait_for_delete, "$db": "admin",
        })
        .await;
    router.catalog.invalidate_collection(&ns);
    let reply = reply?;
    if !crate::wire::client::reply_ok(&reply) {
        return Err(error_of_reply(&reply));
    }
    Ok(doc! {"millis": reply.get("millis").cloned().unwrap_or(Bson::Int64(0))})
}

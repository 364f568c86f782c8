//! `dataSize` and `splitVector` on a data-bearing member: how many bytes and documents a shard key range
//! holds, and the keys that cut it into pieces of at most half the maximum chunk size — what the balancer
//! asks a chunk's owning shard before splitting it by size.
//!
//! [`split_points`] is the pure policy; the commands scan the collection around it.

use std::ops::ControlFlow;

use bson::{Bson, Document, doc};

use crate::command::Context;
use crate::error::{Error, Result, code};
use crate::migration::range::KeyRange;
use crate::shard::{ShardKeyPattern, ShardKeyValue};
use crate::storage::Namespace;

/// The keys at which a range holding `keys` (sorted, one entry per document, with its BSON size) splits into
/// pieces of about half `max_bytes` each (MongoDB's splitVector): none when the range holds less than
/// `max_bytes`; a run of equal keys is never cut, and no point equals the range's first key.
pub fn split_points(keys: &[(ShardKeyValue, u64)], max_bytes: u64) -> Vec<ShardKeyValue> {
    let total: u64 = keys.iter().map(|(_, size)| size).sum();
    if keys.is_empty() || total < max_bytes {
        return Vec::new();
    }
    let average = (total / keys.len() as u64).max(1);
    let per_piece = (max_bytes / (2 * average)).max(1);
    let mut points: Vec<ShardKeyValue> = Vec::new();
    let mut since_last = 0_u64;
    for (key, _) in keys {
        let floor = points.last().unwrap_or(&keys[0].0);
        if since_last >= per_piece && key > floor {
            points.push(key.clone());
            since_last = 0;
        }
        since_last += 1;
    }
    points
}

/// The documents of `ns` whose shard key lies in `range`: (key, BSON size) sorted by key.
fn keys_in_range(
    ctx: &Context<'_>,
    ns: &Namespace,
    pattern: &ShardKeyPattern,
    range: &KeyRange,
) -> Result<Vec<(ShardKeyValue, u64)>> {
    let snapshot = ctx.node.storage.snapshot()?;
    let Some(meta) = snapshot.collection(ns)? else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    snapshot.scan(&meta, None, |d| {
        if let Ok(key) = pattern.extract(&d)
            && range.contains(&key)
        {
            keys.push((key, d.to_vec().map(|v| v.len() as u64).unwrap_or(0)));
        }
        ControlFlow::Continue(())
    })?;
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keys)
}

/// The namespace, key pattern and range of a `dataSize`/`splitVector` command.
fn parse(ctx: &Context<'_>) -> Result<(Namespace, ShardKeyPattern, KeyRange)> {
    let name = ctx.name.as_str();
    let text = ctx
        .body
        .get_str(name)
        .map_err(|_| Error::type_mismatch(format!("{name} takes a namespace \"db.collection\"")))?;
    let ns = Namespace::parse(text)
        .ok_or_else(|| Error::new(code::INVALID_NAMESPACE, format!("Invalid namespace specified '{text}'")))?;
    let pattern = ctx
        .body
        .get_document("keyPattern")
        .map_err(|_| Error::failed_to_parse(format!("{name} needs a keyPattern")))?;
    let pattern = ShardKeyPattern::parse(pattern)?;
    let names = pattern.names();
    let bound = |field: &str, fill: Bson| -> Document {
        match ctx.body.get_document(field) {
            Ok(d) if !d.is_empty() => d.clone(),
            _ => names.iter().map(|n| (n.to_string(), fill.clone())).collect(),
        }
    };
    let range = KeyRange::from_documents(&pattern, &bound("min", Bson::MinKey), &bound("max", Bson::MaxKey))?;
    Ok((ns, pattern, range))
}

/// `dataSize: "db.c", keyPattern, min, max`: `{size, numObjects, millis}` of the range.
pub fn data_size(ctx: &Context<'_>) -> Result<Document> {
    let started = std::time::Instant::now();
    let (ns, pattern, range) = parse(ctx)?;
    let keys = keys_in_range(ctx, &ns, &pattern, &range)?;
    let size: u64 = keys.iter().map(|(_, s)| s).sum();
    Ok(
        doc! {"estimate": false, "size": size as i64, "numObjects": keys.len() as i64,
        "millis": started.elapsed().as_millis() as i64},
    )
}

/// `splitVector: "db.c", keyPattern, min, max, maxChunkSizeBytes` (or `maxChunkSize` in MB):
/// `{timeMillis, splitKeys}`.
pub fn split_vector(ctx: &Context<'_>) -> Result<Document> {
    let started = std::time::Instant::now();
    let (ns, pattern, range) = parse(ctx)?;
    let max_bytes = match (ctx.body.get("maxChunkSizeBytes"), ctx.body.get("maxChunkSize")) {
        (Some(bytes), _) => bytes
            .as_i64()
            .or_else(|| bytes.as_i32().map(i64::from))
            .or_else(|| bytes.as_f64().map(|f| f as i64)),
        (None, Some(mb)) => mb
            .as_i64()
            .or_else(|| mb.as_i32().map(i64::from))
            .or_else(|| mb.as_f64().map(|f| f as i64))
            .map(|mb| mb << 20),
        (None, None) => None,
    }
    .filter(|bytes| *bytes > 0)
    .ok_or_else(|| {
        Error::bad_value("need to specify the desired max chunk size (maxChunkSize or maxChunkSizeBytes)")
    })?;
    let keys = keys_in_range(ctx, &ns, &pattern, &range)?;
    let names = pattern.names();
    let split_keys: Vec<Bson> = split_points(&keys, max_bytes as u64)
        .iter()
        .map(|k| Bson::Document(k.to_document(&names)))
        .collect();
    Ok(doc! {"timeMillis": started.elapsed().as_millis() as i64, "splitKeys": split_keys})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(values: &[i32], size: u64) -> Vec<(ShardKeyValue, u64)> {
        let pattern = ShardKeyPattern::parse(&doc! {"k": 1}).unwrap();
        values
            .iter()
            .map(|v| (pattern.extract(&doc! {"k": *v}).unwrap(), size))
            .collect()
    }

    fn ints(points: &[ShardKeyValue]) -> Vec<i32> {
        points
            .iter()
            .map(|p| p.to_document(&["k"]).get_i32("k").unwrap())
            .collect()
    }

    #[test]
    fn a_range_under_the_size_is_not_split() {
        assert!(split_points(&keys(&[1, 2, 3], 100), 1000).is_empty());
        assert!(split_points(&[], 1).is_empty());
    }

    #[test]
    fn a_range_over_the_size_splits_into_half_size_pieces() {
        let all: Vec<i32> = (0..100).collect();
        // 100 documents of 100 bytes, 2000 bytes max: pieces of 10 documents.
        assert_eq!(
            ints(&split_points(&keys(&all, 100), 2000)),
            (1..10).map(|i| i * 10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn equal_keys_are_never_cut_and_one_key_cannot_split() {
        assert!(split_points(&keys(&[7; 50], 100), 1000).is_empty());
        let mut values = vec![1; 30];
        values.extend([2, 3, 4, 5, 6]);
        assert_eq!(ints(&split_points(&keys(&values, 100), 1000)), vec![2]);
    }
}

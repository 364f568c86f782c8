//! The initial chunks of `shardCollection` on an empty collection.
//!
//! A range key gets one chunk, MinKey..MaxKey, on the database's primary shard. A key whose first field is
//! hashed is pre-split as MongoDB does: `2 × shards` chunks (or `numInitialChunks`) at evenly spaced hash
//! values, symmetric around 0 (an even count has a split at 0), contiguous runs of chunks per shard, every
//! chunk at version 1.i (one major version, consecutive minors).

use bson::Bson;
use bson::oid::ObjectId;

use super::chunk::{Chunk, Lastmod};
use super::key::{KeyKind, ShardKeyPattern};
use super::value::ShardKeyValue;

/// The split points of `count` chunks over the i64 hash space, ascending.
pub fn hashed_split_points(count: u32) -> Vec<i64> {
    if count <= 1 {
        return Vec::new();
    }
    let count = i64::from(count);
    let interval = (i64::MAX / count) * 2;
    let mut points = Vec::with_capacity(count as usize);
    let mut current = if count % 2 == 0 {
        points.push(0);
        interval
    } else {
        interval / 2
    };
    for _ in 0..(count - 1) / 2 {
        points.push(current);
        points.push(-current);
        current = current.saturating_add(interval);
    }
    points.sort_unstable();
    points
}

/// The initial chunks of an empty collection sharded on `pattern` over `shards` (the primary first).
/// `requested` is `numInitialChunks` (0: MongoDB's default of two per shard); ignored for range keys.
pub fn initial_chunks(pattern: &ShardKeyPattern, shards: &[String], requested: u32) -> Vec<Chunk> {
    let fields = pattern.fields().len();
    let primary = shards.first().cloned().unwrap_or_default();
    let hashed_prefix = pattern.fields().first().is_some_and(|f| f.kind == KeyKind::Hashed);
    if !hashed_prefix || shards.is_empty() {
        return vec![Chunk {
            id: ObjectId::new(),
            min: pattern.global_min(),
            max: pattern.global_max(),
            shard: primary,
            lastmod: Lastmod { major: 1, minor: 0 },
        }];
    }
    let count = if requested == 0 {
        2 * shards.len() as u32
    } else {
        requested
    };
    let mut bounds = vec![pattern.global_min()];
    for point in hashed_split_points(count) {
        let mut values = vec![Bson::Int64(point)];
        values.extend(std::iter::repeat_n(Bson::MinKey, fields - 1));
        bounds.push(ShardKeyValue(values));
    }
    bounds.push(pattern.global_max());
    let chunk_count = bounds.len() - 1;
    let per_shard = chunk_count.div_ceil(shards.len());
    bounds
        .windows(2)
        .enumerate()
        .map(|(i, pair)| Chunk {
            id: ObjectId::new(),
            min: pair[0].clone(),
            max: pair[1].clone(),
            shard: shards[(i / per_shard).min(shards.len() - 1)].clone(),
            lastmod: Lastmod {
                major: 1,
                minor: i as u32,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn split_points_are_symmetric_and_sorted() {
        assert_eq!(hashed_split_points(1), Vec::<i64>::new());
        let four = hashed_split_points(4);
        assert_eq!(four.len(), 3);
        assert_eq!(four[1], 0);
        assert_eq!(four[0], -four[2]);
        let three = hashed_split_points(3);
        assert_eq!(three.len(), 2);
        assert_eq!(three[0], -three[1]);
        assert!(hashed_split_points(7).windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hashed_keys_spread_over_every_shard_and_range_keys_stay_on_the_primary() {
        let shards = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let hashed = ShardKeyPattern::parse(&doc! {"k": "hashed"}).expect("valid");
        let chunks = initial_chunks(&hashed, &shards, 0);
        assert_eq!(chunks.len(), 6);
        for shard in &shards {
            assert_eq!(chunks.iter().filter(|c| &c.shard == shard).count(), 2, "{shard}");
        }
        let range = ShardKeyPattern::parse(&doc! {"k": 1}).expect("valid");
        let one = initial_chunks(&range, &shards, 0);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].shard, "a");
    }
}

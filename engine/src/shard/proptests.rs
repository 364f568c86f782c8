//! Property tests of chunk lookup: over range, compound and hashed keys, every key lands in exactly the one
//! chunk whose [min, max) holds it (boundary keys in the chunk they start, MinKey in the first chunk, MaxKey
//! in the last), and a range finds exactly the chunks that intersect it.

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Timestamp, doc};
use proptest::prelude::*;

use super::*;

fn uuid() -> Binary {
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![7; 16],
    }
}

/// A table over `pattern` split at `points` (sorted, distinct), chunk i on shard `s{i % shards}`.
fn table(pattern: &ShardKeyPattern, points: Vec<ShardKeyValue>, shards: usize) -> RoutingTable {
    let mut bounds = vec![pattern.global_min()];
    bounds.extend(points);
    bounds.push(pattern.global_max());
    let chunks = bounds
        .windows(2)
        .enumerate()
        .map(|(i, pair)| Chunk {
            id: ObjectId::new(),
            min: pair[0].clone(),
            max: pair[1].clone(),
            shard: format!("s{}", i % shards),
            lastmod: Lastmod {
                major: 1,
                minor: i as u32,
            },
        })
        .collect();
    RoutingTable::new(
        "db.c".into(),
        pattern.clone(),
        uuid(),
        ObjectId::new(),
        Timestamp { time: 1, increment: 1 },
        chunks,
    )
    .expect("a tiling")
}

/// Values of several BSON types, so keys cross type boundaries.
fn value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        (-50i32..50).prop_map(Bson::Int32),
        (-50i64..50).prop_map(Bson::Int64),
        (-50.0f64..50.0).prop_map(Bson::Double),
        "[a-e]{0,3}".prop_map(Bson::String),
        Just(Bson::Null),
        any::<bool>().prop_map(Bson::Boolean),
    ]
}

/// Sorted distinct split points of `fields` fields.
fn points(fields: usize) -> impl Strategy<Value = Vec<ShardKeyValue>> {
    prop::collection::vec(prop::collection::vec(value(), fields), 0..12).prop_map(|raw| {
        let mut points: Vec<ShardKeyValue> = raw.into_iter().map(ShardKeyValue).collect();
        points.sort();
        points.dedup();
        points
    })
}

/// The one chunk holding `key`, by a linear scan.
fn owner<'a>(table: &'a RoutingTable, key: &ShardKeyValue) -> Vec<&'a Chunk> {
    table.chunks().iter().filter(|c| c.contains(key)).collect()
}

proptest! {
    #[test]
    fn a_range_key_lands_in_the_one_chunk_that_holds_it(points in points(1), key in value(), shards in 1usize..4) {
        let pattern = ShardKeyPattern::parse(&doc! {"k": 1}).expect("valid");
        let table = table(&pattern, points.clone(), shards);
        let key = pattern.extract(&doc! {"k": key}).expect("a key");
        let owners = owner(&table, &key);
        prop_assert_eq!(owners.len(), 1);
        prop_assert_eq!(table.chunk_for(&key), owners[0]);
        // Each split point is the first key of the chunk it starts.
        for point in &points {
            let chunk = table.chunk_for(point);
            prop_assert_eq!(&chunk.min, point);
        }
    }

    #[test]
    fn compound_keys_and_ranges_find_exactly_the_intersecting_chunks(
        points in points(2),
        a in value(), b in value(), c in value(), d in value(),
    ) {
        let pattern = ShardKeyPattern::parse(&doc! {"x": 1, "y": 1}).expect("valid");
        let table = table(&pattern, points, 3);
        let key = pattern.extract(&doc! {"x": a.clone(), "y": b.clone()}).expect("a key");
        prop_assert_eq!(owner(&table, &key).len(), 1);
        prop_assert!(table.chunk_for(&key).contains(&key));
        let (mut low, mut high) = (ShardKeyValue(vec![a, b]), ShardKeyValue(vec![c, d]));
        if high < low {
            std::mem::swap(&mut low, &mut high);
        }
        let found: Vec<ObjectId> = table.chunks_overlapping(&low, &high).iter().map(|c| c.id).collect();
        let expected: Vec<ObjectId> = table
            .chunks()
            .iter()
            .filter(|c| c.min <= high && low < c.max)
            .map(|c| c.id)
            .collect();
        prop_assert_eq!(found, expected);
    }

    #[test]
    fn hashed_keys_land_in_the_chunk_of_their_hash(value in value(), shards in 1usize..5, requested in 0u32..9) {
        let pattern = ShardKeyPattern::parse(&doc! {"h": "hashed"}).expect("valid");
        let names: Vec<String> = (0..shards).map(|i| format!("s{i}")).collect();
        let chunks = initial_chunks(&pattern, &names, requested);
        let table = RoutingTable::new(
            "db.h".into(), pattern.clone(), uuid(), ObjectId::new(), Timestamp { time: 1, increment: 1 }, chunks,
        ).expect("the initial chunks tile the key space");
        let key = pattern.extract(&doc! {"h": value.clone()}).expect("a key");
        prop_assert_eq!(&key.0[0], &Bson::Int64(hash64(&value, 0)));
        prop_assert_eq!(owner(&table, &key).len(), 1);
        prop_assert!(table.chunk_for(&key).contains(&key));
        // Equality on the raw value targets that same chunk.
        let target = target_filter(&pattern, &doc! {"h": value});
        let targeted = table.chunks_for(&target);
        prop_assert_eq!(targeted.len(), 1);
        prop_assert_eq!(&targeted[0], table.chunk_for(&key));
    }
}

#[test]
fn min_key_and_max_key_go_to_the_first_and_last_chunks() {
    let pattern = ShardKeyPattern::parse(&doc! {"k": 1}).expect("valid");
    let points = vec![
        ShardKeyValue(vec![Bson::Int32(0)]),
        ShardKeyValue(vec![Bson::Int32(10)]),
    ];
    let table = table(&pattern, points, 2);
    let first = &table.chunks()[0];
    let last = &table.chunks()[2];
    assert_eq!(table.chunk_for(&pattern.global_min()), first);
    assert_eq!(
        table.chunk_for(&pattern.extract(&doc! {"k": Bson::MinKey}).expect("key")),
        first
    );
    assert_eq!(
        table.chunk_for(&pattern.extract(&doc! {"k": Bson::MaxKey}).expect("key")),
        last
    );
    assert_eq!(table.chunk_for(&ShardKeyValue(vec![Bson::Int32(10)])), last);
    assert_eq!(
        table.chunk_for(&ShardKeyValue(vec![Bson::Double(9.999)])),
        &table.chunks()[1]
    );
    assert_eq!(table.shard_version("s0").minor, 2);
    assert_eq!(table.collection_version().minor, 2);
}

#[test]
fn tables_with_gaps_or_overlaps_are_refused() {
    let pattern = ShardKeyPattern::parse(&doc! {"k": 1}).expect("valid");
    let chunk = |min: Bson, max: Bson| Chunk {
        id: ObjectId::new(),
        min: ShardKeyValue(vec![min]),
        max: ShardKeyValue(vec![max]),
        shard: "s0".into(),
        lastmod: Lastmod { major: 1, minor: 0 },
    };
    let build = |chunks| {
        RoutingTable::new(
            "db.c".into(),
            pattern.clone(),
            uuid(),
            ObjectId::new(),
            Timestamp { time: 1, increment: 1 },
            chunks,
        )
    };
    assert!(
        build(vec![
            chunk(Bson::MinKey, Bson::Int32(0)),
            chunk(Bson::Int32(1), Bson::MaxKey)
        ])
        .is_err()
    );
    assert!(
        build(vec![
            chunk(Bson::MinKey, Bson::Int32(5)),
            chunk(Bson::Int32(1), Bson::MaxKey)
        ])
        .is_err()
    );
    assert!(build(vec![chunk(Bson::Int32(0), Bson::MaxKey)]).is_err());
    assert!(build(vec![]).is_err());
    build(vec![
        chunk(Bson::MinKey, Bson::Int32(0)),
        chunk(Bson::Int32(0), Bson::MaxKey),
    ])
    .expect("a tiling");
}

//! Tests for the depth limits and their iterative walks.
use bson::{Bson, Document, RawDocument, doc};
use proptest::prelude::*;

use super::*;
use crate::query::test_support::document as any_document;

/// `{a: {a: ... {a: 1}}}`, `levels` deep.
fn nested(levels: usize) -> Document {
    let mut doc = doc! {"a": 1};
    for _ in 1..levels {
        doc = doc! {"a": doc};
    }
    doc
}

/// The BSON bytes of `{a: {a: ... {}}}` with `containers` embedded documents, built without recursion.
fn nested_bytes(containers: usize) -> Vec<u8> {
    // Each level is: int32 length, type 0x03, "a\0", <inner>, 0x00.
    let mut inner: Vec<u8> = vec![5, 0, 0, 0, 0];
    for _ in 0..containers {
        let len = (4 + 1 + 2 + inner.len() + 1) as i32;
        let mut outer = len.to_le_bytes().to_vec();
        outer.extend_from_slice(&[0x03, b'a', 0]);
        outer.extend_from_slice(&inner);
        outer.push(0);
        inner = outer;
    }
    inner
}

fn on_small_stack<T: Send>(stack_bytes: usize, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(stack_bytes)
            .spawn_scoped(scope, f)
            .expect("spawn")
            .join()
            .expect("the small-stack thread finished")
    })
}

/// A straightforward recursive definition to check the iterative walk against (small inputs only).
fn reference_depth(value: &Bson) -> usize {
    match value {
        Bson::Document(d) if !d.is_empty() => 1 + d.values().map(reference_depth).max().unwrap_or(0),
        Bson::Array(a) if !a.is_empty() => 1 + a.iter().map(reference_depth).max().unwrap_or(0),
        Bson::JavaScriptCodeWithScope(c) if !c.scope.is_empty() => {
            1 + c.scope.values().map(reference_depth).max().unwrap_or(0)
        }
        _ => 0,
    }
}

#[test]
fn the_limits_are_mongodbs() {
    assert_eq!(MAX_BSON_DEPTH, 200, "BSONDepth::kDefaultMaxAllowableDepth");
    assert_eq!(MAX_DOCUMENT_DEPTH, 180, "BSONDepth::getMaxDepthForUserStorage()");
}

#[test]
fn depth_is_counted_as_mongodb_counts_it() {
    assert_eq!(document_depth(&doc! {}), 0);
    assert_eq!(document_depth(&doc! {"a": 1}), 1);
    assert_eq!(document_depth(&doc! {"a": {}}), 1);
    assert_eq!(document_depth(&doc! {"a": []}), 1);
    assert_eq!(document_depth(&doc! {"a": {"b": 1}}), 2);
    assert_eq!(document_depth(&doc! {"a": [1]}), 2);
    assert_eq!(document_depth(&doc! {"a": [[]]}), 2);
    assert_eq!(document_depth(&doc! {"a": 1, "b": [{"c": [1]}], "d": {"e": 2}}), 4);
    assert_eq!(document_depth(&nested(MAX_DOCUMENT_DEPTH)), MAX_DOCUMENT_DEPTH);
    assert!(document_within(&nested(MAX_DOCUMENT_DEPTH), MAX_DOCUMENT_DEPTH));
    assert!(!document_within(&nested(MAX_DOCUMENT_DEPTH + 1), MAX_DOCUMENT_DEPTH));
}

#[test]
fn path_parts_count_dots() {
    assert_eq!(path_parts("a"), 1);
    assert_eq!(path_parts("a.b.c"), 3);
    assert_eq!(path_parts("a..b"), 3);
}

#[test]
fn raw_nesting_counts_every_container() {
    let check = |doc: Document, limit: usize| {
        let bytes = doc.to_vec().expect("encodes");
        raw_nesting_within(RawDocument::from_bytes(&bytes).expect("valid"), limit).expect("well-formed")
    };
    assert!(check(doc! {"a": 1}, 0));
    assert!(!check(doc! {"a": {}}, 0));
    assert!(check(doc! {"a": {}}, 1));
    assert!(check(doc! {"a": [{"b": []}]}, 3));
    assert!(!check(doc! {"a": [{"b": []}]}, 2));

    let bytes = nested_bytes(MAX_BSON_DEPTH);
    let raw = RawDocument::from_bytes(&bytes).expect("valid");
    assert_eq!(raw_nesting_within(raw, MAX_BSON_DEPTH).ok(), Some(true));
    assert_eq!(raw_nesting_within(raw, MAX_BSON_DEPTH - 1).ok(), Some(false));
}

#[test]
fn raw_nesting_reports_malformed_elements() {
    // {a: <document whose length runs past its parent>}
    let mut bytes = doc! {"a": {"b": 1}}.to_vec().expect("encodes");
    bytes[7] = 0x7f;
    let raw = RawDocument::from_bytes(&bytes).expect("the outer frame is fine");
    assert!(raw_nesting_within(raw, MAX_BSON_DEPTH).is_err());
}

#[test]
fn the_walks_use_constant_stack() {
    let deep = nested(50_000);
    let bytes = nested_bytes(50_000);
    let (depth, within, raw) = on_small_stack(64 * 1024, || {
        let raw = RawDocument::from_bytes(&bytes).expect("valid");
        (
            document_depth(&deep),
            document_within(&deep, MAX_DOCUMENT_DEPTH),
            raw_nesting_within(raw, MAX_BSON_DEPTH).ok(),
        )
    });
    assert_eq!((depth, within, raw), (50_000, false, Some(false)));
    // Dropping it recurses in the bson crate: keep that off the test thread.
    std::mem::forget(deep);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_iterative_depth_matches_the_definition(doc in any_document()) {
        let expected = reference_depth(&Bson::Document(doc.clone()));
        prop_assert_eq!(document_depth(&doc), expected);
        for limit in 0..6 {
            prop_assert_eq!(document_within(&doc, limit), expected <= limit);
        }
        let bytes = doc.to_vec().expect("encodes");
        let raw = RawDocument::from_bytes(&bytes).expect("valid");
        // Raw nesting counts empty containers too, so it lies between depth − 1 and depth.
        for limit in 0..6 {
            let within = raw_nesting_within(raw, limit).expect("well-formed");
            if expected <= limit {
                prop_assert!(within, "depth {} within {}", expected, limit);
            }
            if expected > limit + 1 {
                prop_assert!(!within, "depth {} not within {}", expected, limit);
            }
        }
    }
}

/// The recursive walks that remain (the bson crate's encoding, decoding, cloning, formatting and dropping,
/// the query language's recursion along a path or an expression, both bounded by the limits) are only ever
/// given values within the limits. At those limits the worst of them (a projection building a 200-part path
/// over a document at the storage limit) fits in 1 MiB even unoptimised; the member's runtime workers and
/// its storage writer run on 8 MiB stacks.
#[test]
fn bounded_work_fits_a_small_stack() {
    use crate::query::compare::compare_bson;
    use crate::query::filter::Filter;
    use crate::query::projection::Projection;
    use crate::query::update::Update;
    use crate::storage::keystring;

    let dotted = |parts: usize| vec!["a"; parts].join(".");
    let now = bson::DateTime::from_millis(0);
    on_small_stack(1024 * 1024, || {
        // The deepest document the wire decoder or storage accepts: 200 embedded levels.
        let deepest = nested(MAX_BSON_DEPTH + 1);
        let bytes = deepest.to_vec().expect("encodes");
        let decoded = crate::storage::decode(&bytes).expect("decodes");
        assert_eq!(decoded, deepest);
        assert!(!format!("{deepest}").is_empty());
        let copy = deepest.clone();
        let value = Bson::Document(copy);
        assert_eq!(
            compare_bson(&value, &Bson::Document(decoded)),
            std::cmp::Ordering::Equal
        );
        assert!(!keystring::encode(&value).is_empty());

        // A filter path at its limit over a document at the storage limit.
        let stored = nested(MAX_DOCUMENT_DEPTH);
        let filter = Filter::parse(&doc! {dotted(MAX_DOCUMENT_DEPTH): 1}).expect("parses");
        assert!(filter.matches(&stored));

        // The deepest transient an update can build before it is refused: a 180-part path holding a value
        // 201 levels deep.
        let update = Update::parse(&doc! {"$set": {dotted(MAX_DOCUMENT_DEPTH): deepest.clone()}}).expect("parses");
        let mut target = doc! {"_id": 1};
        assert_eq!(update.apply(&mut target, false, now).map_err(|e| e.code), Err(15));

        // The deepest transient a projection can build: a 200-part path holding a 200-level literal, over a
        // document at the storage limit.
        let literal = nested(MAX_BSON_DEPTH - 2);
        let projection = Projection::parse(&doc! {dotted(MAX_BSON_DEPTH - 1): {"$literal": literal}}).expect("parses");
        assert_eq!(projection.try_apply(&stored).map_err(|e| e.code), Err(15));

        // An expression and a filter tree at their nesting limits, evaluated over a document at the limit.
        let mut expression = Bson::String(format!("${}", dotted(MAX_DOCUMENT_DEPTH)));
        for _ in 0..(MAX_BSON_DEPTH / 2 - 1) {
            expression = Bson::Document(doc! {"$ifNull": [expression, 0]});
        }
        let expression = crate::query::expr::Expr::parse(&expression).expect("at the expression limit");
        assert_eq!(expression.evaluate(&stored).ok().flatten(), Some(Bson::Int32(1)));
        let mut tree = doc! {dotted(MAX_DOCUMENT_DEPTH): 1};
        for _ in 0..crate::query::filter::MAX_DEPTH - 1 {
            tree = doc! {"$and": [tree]};
        }
        assert!(Filter::parse(&tree).expect("at the query tree limit").matches(&stored));

        // A pipeline stage building on a document at the limit.
        let stages = vec![doc! {"$addFields": {dotted(MAX_BSON_DEPTH): "$$ROOT"}}];
        let out = crate::query::pipeline::run(&stages, vec![stored.clone()], now);
        assert_eq!(out.map_err(|e| e.code), Err(15));
    });
}

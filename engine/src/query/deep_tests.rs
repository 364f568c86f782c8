//! Regression tests for hostile nesting: dotted paths and expressions that would build documents deeper than
//! the storage limit, and walks over deep values that must not exhaust the stack or run for exponential time.
//!
//! Depth is counted as MongoDB counts it: the top-level document is level 1 and every non-empty embedded
//! document or array adds a level, so `{a: 1}` is 1 deep and `{a: {b: 1}}` is 2 deep.
use std::time::Duration;

use bson::{Bson, DateTime, Document, doc};

use super::compare::compare_bson;
use super::expr::Expr;
use super::filter::Filter;
use super::projection::Projection;
use super::update::Update;

const NOW: DateTime = DateTime::from_millis(1_700_000_000_000);

/// MongoDB's storage limit (`BSONDepth::getMaxDepthForUserStorage()`): 200 − 20.
const STORAGE_LIMIT: usize = 180;

/// `{a: {a: ... {a: 1}}}`, `levels` deep.
fn nested(levels: usize) -> Document {
    let mut doc = doc! {"a": 1};
    for _ in 1..levels {
        doc = doc! {"a": doc};
    }
    doc
}

/// `a.a.…a` with `parts` parts.
fn dotted(parts: usize) -> String {
    vec!["a"; parts].join(".")
}

/// Runs `f` on a thread with a small stack, so a walk whose stack use grows with the depth of its input
/// overflows here long before it would on a server thread.
fn on_small_stack<T: Send>(stack_bytes: usize, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("small-stack".into())
            .stack_size(stack_bytes)
            .spawn_scoped(scope, f)
            .expect("spawn a small-stack thread")
            .join()
            .expect("the small-stack thread finished")
    })
}

fn apply(update: Document, doc: &mut Document) -> Result<bool, super::QueryError> {
    Update::parse(&update)?.apply(doc, false, NOW)
}

#[test]
fn deep_set_with_1500_segments_is_overflow_and_changes_nothing() {
    let mut doc = doc! {"_id": 1, "x": 1};
    let err = apply(doc! {"$set": {dotted(1500): 1}}, &mut doc).expect_err("a 1,500-part path builds 1,500 levels");
    assert_eq!(err.code, 15, "{err:?}");
    assert_eq!(err.code_name, "Overflow");
    assert_eq!(doc, doc! {"_id": 1, "x": 1});
}

#[test]
fn deep_update_may_reach_the_storage_limit_but_not_pass_it() {
    let mut doc = doc! {"_id": 1};
    apply(doc! {"$set": {dotted(STORAGE_LIMIT): 1}}, &mut doc).expect("exactly at the limit is storable");

    let mut doc = doc! {"_id": 1};
    let err = apply(doc! {"$set": {dotted(STORAGE_LIMIT): {"b": 1}}}, &mut doc).expect_err("one level too deep");
    assert_eq!(err.code, 15, "{err:?}");
    assert_eq!(
        err.message,
        format!("Document exceeds maximum nesting depth of {STORAGE_LIMIT}")
    );
    assert_eq!(doc, doc! {"_id": 1});

    // Empty embedded documents and arrays do not count, as in MongoDB.
    let mut doc = doc! {"_id": 1};
    apply(doc! {"$set": {dotted(STORAGE_LIMIT): {}}}, &mut doc).expect("an empty document adds no level");
    let mut doc = doc! {"_id": 1};
    apply(doc! {"$push": {dotted(STORAGE_LIMIT - 1): 1}}, &mut doc).expect("an array at the last level");
    let mut doc = doc! {"_id": 1};
    let err = apply(doc! {"$push": {dotted(STORAGE_LIMIT): 1}}, &mut doc).expect_err("its element is too deep");
    assert_eq!(err.code, 15);
}

#[test]
fn deep_replacement_and_nested_values_are_checked_too() {
    let mut doc = doc! {"_id": 1};
    let mut replacement = nested(STORAGE_LIMIT);
    replacement.insert("_id", 1);
    apply(replacement, &mut doc).expect("a replacement at the limit");

    let mut doc = doc! {"_id": 1};
    let err = apply(nested(STORAGE_LIMIT + 1), &mut doc).expect_err("a replacement past the limit");
    assert_eq!(err.code, 15);

    // A shallow path with a deep value.
    let mut doc = doc! {"_id": 1};
    let err = apply(doc! {"$set": {"x.y": nested(STORAGE_LIMIT - 1)}}, &mut doc).expect_err("2 + 179 levels");
    assert_eq!(err.code, 15);
}

#[test]
fn deep_projection_paths_past_the_field_path_limit_are_overflow() {
    let err = Projection::parse(&doc! {dotted(1500): 1}).expect_err("a 1,500-part projection path");
    assert_eq!(err.code, 15, "{err:?}");
    assert_eq!(err.message, "FieldPath is too long");
    Projection::parse(&doc! {dotted(200): 1}).expect("200 parts is FieldPath's limit");
    // Nested specifications and dotted names add up.
    let mut spec = doc! {dotted(150): 1};
    for _ in 0..60 {
        spec = doc! {"a": spec};
    }
    assert_eq!(Projection::parse(&spec).map_err(|e| e.code).err(), Some(15));
}

#[test]
fn deep_projection_that_builds_past_the_limit_fails() {
    let projection = Projection::parse(&doc! {dotted(150): {"$literal": nested(100)}}).expect("parses");
    let err = projection.try_apply(&doc! {"_id": 1}).expect_err("150 + 100 levels");
    assert_eq!(err.code, 15, "{err:?}");
}

#[test]
fn deep_filter_paths_past_the_storage_limit_are_refused() {
    let err = Filter::parse(&doc! {dotted(STORAGE_LIMIT + 1): 1}).expect_err("181 parts");
    assert_eq!(err.code, 5729100, "{err:?}");
    assert_eq!(err.message, "FieldPath is too long");
    let filter = Filter::parse(&doc! {dotted(STORAGE_LIMIT): 1}).expect("180 parts");
    assert!(filter.matches(&nested(STORAGE_LIMIT)));
}

#[test]
fn deep_expression_field_paths_past_the_limit_are_overflow() {
    let err = Expr::parse(&Bson::String(format!("${}", dotted(201)))).expect_err("201 parts");
    assert_eq!(err.code, 15, "{err:?}");
    assert_eq!(err.message, "FieldPath is too long");
    Expr::parse(&Bson::String(format!("${}", dotted(200)))).expect("200 parts");
}

#[test]
fn deep_pipeline_paths_and_outputs_are_bounded() {
    let run = |stages: Vec<Document>| super::pipeline::run(&stages, vec![doc! {"_id": 1}], NOW);
    let err = run(vec![doc! {"$addFields": {dotted(1500): 1}}]).expect_err("a 1,500-part $addFields path");
    assert_eq!(err.code, 15, "{err:?}");
    let err = run(vec![doc! {"$project": {dotted(1500): 1}}]).expect_err("a 1,500-part $project path");
    assert_eq!(err.code, 15, "{err:?}");

    // Each stage nests the whole document one level deeper: stopped once a stage's output passes the limit.
    let stages = vec![doc! {"$addFields": {"x": "$$ROOT"}}; STORAGE_LIMIT + 20];
    let err = run(stages).expect_err("190 levels of $$ROOT");
    assert_eq!(err.code, 15, "{err:?}");
    let stages = vec![doc! {"$replaceRoot": {"newRoot": {"x": "$$ROOT"}}}; STORAGE_LIMIT + 20];
    assert_eq!(run(stages).map_err(|e| e.code).err(), Some(15));
    let stages = vec![doc! {"$group": {"_id": "$$ROOT", "n": {"$sum": 1}}}; STORAGE_LIMIT + 20];
    assert_eq!(run(stages).map_err(|e| e.code).err(), Some(15));

    let stages = vec![doc! {"$addFields": {"x": "$$ROOT"}}; STORAGE_LIMIT - 1];
    let out = run(stages).expect("179 stages stay within the limit");
    assert_eq!(out.len(), 1);
}

#[test]
fn deep_comparison_uses_constant_stack() {
    let (a, b) = (Bson::Document(nested(20_000)), Bson::Document(nested(20_000)));
    let ordering = on_small_stack(64 * 1024, || compare_bson(&a, &b));
    assert_eq!(ordering, std::cmp::Ordering::Equal);
    // Dropping a value this deep recurses in the bson crate; keep it out of the test thread's stack.
    std::mem::forget((a, b));
}

/// `{"0": [{"0": [ ... ]}]}`: every array's element 0 is also a document with a field named "0", so a path
/// of "0"s can take either meaning at every array.
fn zero_chain(pairs: usize) -> Document {
    let mut doc = doc! {"0": 1};
    for _ in 0..pairs {
        doc = doc! {"0": [doc]};
    }
    doc
}

#[test]
fn deep_path_traversal_is_not_exponential() {
    let doc = zero_chain(80);
    let path = vec!["0"; 90].join(".");
    let filter = Filter::parse(&doc! {path: 1}).expect("90 parts is a valid path");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(filter.matches(&doc));
    });
    let matched = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("matching a 90-part path against a 160-level document finishes within 30 s");
    assert!(matched);
}

/// Property tests: random deep update paths, projections, pipelines and documents never panic, never exhaust
/// the stack, and every document they produce (to store or to return) is within the storage limit.
mod properties {
    use bson::{Bson, Document, doc};
    use proptest::prelude::*;

    use super::{NOW, STORAGE_LIMIT};
    use crate::depth::{MAX_BSON_DEPTH, document_depth};
    use crate::query::filter::Filter;
    use crate::query::projection::Projection;
    use crate::query::sort::SortSpec;
    use crate::query::test_support::{scalar, value};
    use crate::query::update::Update;

    /// A path of 1 to `max` parts over names that collide with each other and with array indexes.
    fn deep_path(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("0"), Just("1")], 1..max)
            .prop_map(|parts| parts.join("."))
    }

    /// Around the interesting lengths: short, near the storage limit, near the FieldPath limit, far past both.
    fn any_path() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => deep_path(6),
            2 => deep_path(STORAGE_LIMIT + 3).prop_filter("near the limits", |p| p.len() > 300),
            1 => deep_path(MAX_BSON_DEPTH + 5),
            1 => deep_path(1_600),
        ]
    }

    /// A value nested up to `max` levels: a chain of documents and arrays (each level's kind and field name
    /// chosen at random) around a small random value, with random scalar siblings along the way.
    fn deep_value(max: usize) -> impl Strategy<Value = Bson> {
        (
            value(),
            prop::collection::vec((any::<u8>(), prop::option::of(scalar())), 0..max),
        )
            .prop_map(|(leaf, levels)| {
                let mut current = leaf;
                for (kind, sibling) in levels {
                    let name = ["a", "b", "0", "1"][usize::from(kind % 4)];
                    current = if kind & 0x10 == 0 {
                        let mut doc = Document::new();
                        doc.insert(name, current);
                        if let Some(sibling) = sibling {
                            doc.insert("s", sibling);
                        }
                        Bson::Document(doc)
                    } else {
                        let mut items = vec![current];
                        items.extend(sibling);
                        Bson::Array(items)
                    };
                }
                current
            })
    }

    /// A document as a member may hold it: within the storage limit.
    fn stored_document() -> impl Strategy<Value = Document> {
        deep_value(STORAGE_LIMIT - 1).prop_map(|v| {
            let mut doc = doc! {"_id": 1};
            doc.insert("a", v);
            doc
        })
    }

    fn update_document() -> impl Strategy<Value = Document> {
        let operator = prop_oneof![
            Just("$set"),
            Just("$setOnInsert"),
            Just("$unset"),
            Just("$inc"),
            Just("$mul"),
            Just("$min"),
            Just("$max"),
            Just("$push"),
            Just("$addToSet"),
            Just("$pop"),
            Just("$pull"),
            Just("$rename"),
            Just("$currentDate"),
        ];
        let argument = prop_oneof![
            deep_value(40),
            deep_value(MAX_BSON_DEPTH - 2),
            (-3i32..3).prop_map(Bson::Int32),
            any_path().prop_map(Bson::String),
        ];
        prop::collection::vec((operator, any_path(), argument), 1..3).prop_map(|ops| {
            let mut update = Document::new();
            for (operator, path, argument) in ops {
                let mut fields = Document::new();
                fields.insert(path, argument);
                update.insert(operator, fields);
            }
            update
        })
    }

    fn projection_document() -> impl Strategy<Value = Document> {
        let item = prop_oneof![
            Just(Bson::Int32(1)),
            Just(Bson::Int32(0)),
            deep_value(MAX_BSON_DEPTH - 3).prop_map(|v| Bson::Document(doc! {"$literal": v})),
            any_path().prop_map(|p| Bson::String(format!("${p}"))),
            (-3i32..3).prop_map(|n| Bson::Document(doc! {"$slice": n})),
        ];
        prop::collection::vec((any_path(), item), 1..3).prop_map(|fields| fields.into_iter().collect())
    }

    fn pipeline() -> impl Strategy<Value = Vec<Document>> {
        let stage = prop_oneof![
            (
                any_path(),
                prop_oneof![Just("$$ROOT".to_string()), any_path().prop_map(|p| format!("${p}"))]
            )
                .prop_map(|(path, expr)| doc! {"$addFields": {path: expr}}),
            Just(doc! {"$replaceRoot": {"newRoot": {"x": "$$ROOT", "y": "$$ROOT"}}}),
            Just(doc! {"$group": {"_id": "$$ROOT", "all": {"$push": "$$ROOT"}}}),
            any_path().prop_map(|p| doc! {"$unwind": format!("${p}")}),
            any_path().prop_map(|p| doc! {"$sort": {p: 1}}),
            (any_path(), scalar()).prop_map(|(p, v)| doc! {"$match": {p: v}}),
            projection_document().prop_map(|p| doc! {"$project": p}),
        ];
        prop::collection::vec(stage, 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn updates_never_store_a_document_past_the_limit(
            update in update_document(),
            stored in stored_document(),
            upsert in any::<bool>(),
        ) {
            if let Ok(parsed) = Update::parse(&update) {
                let mut doc = stored.clone();
                match parsed.apply(&mut doc, upsert, NOW) {
                    Ok(_) => prop_assert!(document_depth(&doc) <= STORAGE_LIMIT, "{} levels", document_depth(&doc)),
                    // Byte equality: NaN is unequal to itself under `==`.
                    Err(_) => prop_assert_eq!(doc.to_vec().ok(), stored.to_vec().ok()),
                }
            }
        }

        #[test]
        fn projections_never_return_a_document_past_the_limit(
            spec in projection_document(),
            stored in stored_document(),
        ) {
            if let Ok(projection) = Projection::parse(&spec) {
                for doc in [projection.apply(&stored), projection.try_apply(&stored)].into_iter().flatten() {
                    prop_assert!(document_depth(&doc) <= STORAGE_LIMIT, "{} levels", document_depth(&doc));
                }
            }
        }

        #[test]
        fn pipelines_never_produce_a_document_past_the_limit(
            stages in pipeline(),
            input in prop::collection::vec(stored_document(), 1..3),
        ) {
            if let Ok(out) = crate::query::pipeline::run(&stages, input, NOW) {
                for doc in out {
                    prop_assert!(document_depth(&doc) <= STORAGE_LIMIT, "{} levels", document_depth(&doc));
                }
            }
        }

        #[test]
        fn filters_and_sorts_on_deep_documents_never_panic(
            path in any_path(),
            operand in deep_value(20),
            a in stored_document(),
            b in stored_document(),
        ) {
            if let Ok(filter) = Filter::parse(&doc! {path.clone(): operand.clone()}) {
                let _ = filter.matches(&a);
            }
            if let Ok(filter) = Filter::parse(&doc! {path.clone(): {"$elemMatch": {"$eq": operand}}}) {
                let _ = filter.matches(&b);
            }
            if let Ok(sort) = SortSpec::parse(&doc! {path: -1}) {
                let mut docs = vec![a, b];
                sort.sort(&mut docs);
            }
        }
    }
}

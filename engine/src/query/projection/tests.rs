//! Tests for projections.
use bson::{Document, doc};
use proptest::prelude::*;

use super::*;
use crate::query::test_support::document;

fn project(spec: Document, doc: Document) -> Document {
    Projection::parse(&spec)
        .expect("valid projection")
        .apply(&doc)
        .expect("projects")
}

fn code(spec: Document) -> i32 {
    Projection::parse(&spec).map(|_| 0).unwrap_or_else(|e| e.code)
}

#[test]
fn empty_projection_keeps_everything() {
    assert_eq!(project(doc! {}, doc! {"_id": 1, "a": 2}), doc! {"_id": 1, "a": 2});
}

#[test]
fn inclusion_keeps_id_and_listed_fields_in_document_order() {
    let d = doc! {"_id": 1, "a": 1, "b": 2, "c": 3};
    assert_eq!(
        project(doc! {"c": 1, "a": true}, d.clone()),
        doc! {"_id": 1, "a": 1, "c": 3}
    );
    assert_eq!(project(doc! {"a": 1, "_id": 0}, d.clone()), doc! {"a": 1});
    assert_eq!(project(doc! {"_id": 1}, d.clone()), doc! {"_id": 1});
    assert_eq!(project(doc! {"missing": 1}, d), doc! {"_id": 1});
}

#[test]
fn exclusion_removes_listed_fields() {
    let d = doc! {"_id": 1, "a": 1, "b": 2};
    assert_eq!(project(doc! {"a": 0}, d.clone()), doc! {"_id": 1, "b": 2});
    assert_eq!(project(doc! {"_id": 0}, d.clone()), doc! {"a": 1, "b": 2});
    assert_eq!(project(doc! {"_id": 0, "b": false}, d), doc! {"a": 1});
}

#[test]
fn dotted_paths_reach_into_documents_and_arrays() {
    let d = doc! {"_id": 1, "a": {"b": 1, "c": 2}, "l": [{"x": 1, "y": 2}, 5, {"y": 3}]};
    assert_eq!(project(doc! {"a.b": 1, "_id": 0}, d.clone()), doc! {"a": {"b": 1}});
    assert_eq!(project(doc! {"a": {"c": 1}, "_id": 0}, d.clone()), doc! {"a": {"c": 2}});
    assert_eq!(
        project(doc! {"l.x": 1, "_id": 0}, d.clone()),
        doc! {"l": [{"x": 1}, {}]}
    );
    assert_eq!(
        project(doc! {"l.y": 0, "a.b": 0}, d),
        doc! {"_id": 1, "a": {"c": 2}, "l": [{"x": 1}, 5, {}]}
    );
}

#[test]
fn mixing_inclusion_and_exclusion_is_an_error() {
    assert_eq!(code(doc! {"a": 1, "b": 0}), 31254);
    assert_eq!(code(doc! {"a": 0, "b": 1}), 31253);
    assert_eq!(code(doc! {"a": 1, "_id": 0}), 0);
    assert_eq!(code(doc! {"a": 1, "a.b": 1}), 31250);
    assert_eq!(code(doc! {"$a": 1}), 16410);
}

#[test]
fn computed_fields() {
    let d = doc! {"_id": 1, "a": 2, "b": {"c": 3}};
    assert_eq!(project(doc! {"x": "$b.c", "_id": 0}, d.clone()), doc! {"x": 3});
    assert_eq!(
        project(doc! {"a": 1, "lit": {"$literal": 1}}, d.clone()),
        doc! {"_id": 1, "a": 2, "lit": 1}
    );
    assert_eq!(project(doc! {"s": {"$add": ["$a", 1]}, "_id": 0}, d), doc! {"s": 3});
    assert_eq!(code(doc! {"a": 0, "x": "$b"}), 31252);
}

#[test]
fn slice_and_elem_match() {
    let d = doc! {"_id": 1, "a": [1, 2, 3, 4], "b": 1, "l": [{"k": 1}, {"k": 2}, {"k": 2}]};
    assert_eq!(
        project(doc! {"a": {"$slice": 2}}, d.clone()),
        doc! {"_id": 1, "a": [1, 2], "b": 1, "l": [{"k": 1}, {"k": 2}, {"k": 2}]}
    );
    assert_eq!(
        project(doc! {"a": {"$slice": -1}, "b": 0, "l": 0}, d.clone()),
        doc! {"_id": 1, "a": [4]}
    );
    assert_eq!(
        project(doc! {"a": {"$slice": [1, 2]}, "b": 1}, d.clone()),
        doc! {"_id": 1, "a": [2, 3], "b": 1}
    );
    assert_eq!(
        project(doc! {"l": {"$elemMatch": {"k": 2}}}, d.clone()),
        doc! {"_id": 1, "l": [{"k": 2}]}
    );
    assert_eq!(project(doc! {"l": {"$elemMatch": {"k": 9}}}, d), doc! {"_id": 1});
    assert_eq!(code(doc! {"a": {"$slice": [1, 0]}}), 2);
}

proptest! {
    #[test]
    fn projections_never_panic(spec in document(), doc in document()) {
        if let Ok(projection) = Projection::parse(&spec) {
            let _ = projection.apply(&doc);
            let _ = projection.try_apply(&doc);
        }
    }

    #[test]
    fn excluding_then_including_partitions_fields(doc in document()) {
        let kept = project(doc! {"a": 1, "_id": 0}, doc.clone());
        let rest = project(doc! {"a": 0, "_id": 0}, doc.clone());
        prop_assert_eq!(kept.len() + rest.len() + usize::from(doc.contains_key("_id")), doc.len());
    }
}

#[test]
fn deeply_nested_specs_are_rejected() {
    let mut spec = doc! {"z": 1};
    for _ in 0..1000 {
        spec = doc! {"a": spec};
    }
    assert_eq!(code(spec), 2);
}

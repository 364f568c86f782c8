//! Tests for aggregation pipelines.
use bson::{Bson, DateTime, Document, doc};
use proptest::prelude::*;

use super::*;
use crate::query::test_support::document;

const NOW: DateTime = DateTime::from_millis(0);

fn docs() -> Vec<Document> {
    vec![
        doc! {"_id": 1, "k": "a", "n": 1, "tags": ["x", "y"]},
        doc! {"_id": 2, "k": "b", "n": 2, "tags": []},
        doc! {"_id": 3, "k": "a", "n": 3.5},
    ]
}

fn run_ok(stages: Vec<Document>) -> Vec<Document> {
    run(&stages, docs(), NOW).expect("pipeline runs")
}

fn code(stages: Vec<Document>) -> i32 {
    run(&stages, docs(), NOW).map(|_| 0).unwrap_or_else(|e| e.code)
}

#[test]
fn count_documents_shape() {
    let out = run_ok(vec![
        doc! {"$match": {"k": "a"}},
        doc! {"$skip": 0},
        doc! {"$limit": 5},
        doc! {"$group": {"_id": 1, "n": {"$sum": 1}}},
    ]);
    assert_eq!(out, vec![doc! {"_id": 1, "n": 2}]);
    let none = run_ok(vec![
        doc! {"$match": {"k": "zzz"}},
        doc! {"$group": {"_id": 1, "n": {"$sum": 1}}},
    ]);
    assert!(none.is_empty());
}

#[test]
fn match_sort_skip_limit() {
    let out = run_ok(vec![doc! {"$sort": {"n": -1}}, doc! {"$skip": 1}, doc! {"$limit": 1}]);
    assert_eq!(out, vec![docs()[1].clone()]);
}

#[test]
fn group_accumulators() {
    let out = run_ok(vec![
        doc! {"$group": {
            "_id": "$k", "total": {"$sum": "$n"}, "avg": {"$avg": "$n"}, "min": {"$min": "$n"}, "max": {"$max": "$n"},
            "first": {"$first": "$_id"}, "last": {"$last": "$_id"}, "ids": {"$push": "$_id"}, "keys": {"$addToSet": "$k"},
            "count": {"$count": {}},
        }},
        doc! {"$sort": {"_id": 1}},
    ]);
    assert_eq!(
        out[0],
        doc! {"_id": "a", "total": 4.5, "avg": 2.25, "min": 1, "max": 3.5, "first": 1, "last": 3, "ids": [1, 3], "keys": ["a"], "count": 2}
    );
    assert_eq!(out[1].get("total"), Some(&Bson::Int32(2)));
}

#[test]
fn group_by_document_key_and_null() {
    let out = run_ok(vec![
        doc! {"$group": {"_id": {"k": "$k"}, "c": {"$sum": 1}}},
        doc! {"$sort": {"_id.k": 1}},
    ]);
    assert_eq!(
        out,
        vec![doc! {"_id": {"k": "a"}, "c": 2}, doc! {"_id": {"k": "b"}, "c": 1}]
    );
    let out = run_ok(vec![doc! {"$group": {"_id": null, "s": {"$sum": "$n"}}}]);
    assert_eq!(out, vec![doc! {"_id": null, "s": 6.5}]);
}

#[test]
fn project_add_fields_unset() {
    let out = run_ok(vec![
        doc! {"$project": {"k": 1, "double": {"$multiply": ["$n", 2]}}},
        doc! {"$limit": 1},
    ]);
    assert_eq!(out, vec![doc! {"_id": 1, "k": "a", "double": 2}]);
    let out = run_ok(vec![
        doc! {"$addFields": {"m.x": "$n"}},
        doc! {"$unset": ["tags", "k"]},
        doc! {"$limit": 1},
    ]);
    assert_eq!(out, vec![doc! {"_id": 1, "n": 1, "m": {"x": 1}}]);
    let out = run_ok(vec![
        doc! {"$set": {"n": "$$REMOVE"}},
        doc! {"$project": {"_id": 0, "tags": 0}},
        doc! {"$limit": 1},
    ]);
    assert_eq!(out, vec![doc! {"k": "a"}]);
}

#[test]
fn unwind_forms() {
    let out = run_ok(vec![doc! {"$unwind": "$tags"}, doc! {"$project": {"tags": 1}}]);
    assert_eq!(out, vec![doc! {"_id": 1, "tags": "x"}, doc! {"_id": 1, "tags": "y"}]);
    let out = run_ok(vec![
        doc! {"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}},
        doc! {"$project": {"tags": 1, "i": 1}},
    ]);
    assert_eq!(
        out,
        vec![
            doc! {"_id": 1, "tags": "x", "i": 0i64},
            doc! {"_id": 1, "tags": "y", "i": 1i64},
            doc! {"_id": 2, "i": Bson::Null},
            doc! {"_id": 3, "i": Bson::Null},
        ]
    );
    assert_eq!(code(vec![doc! {"$unwind": "tags"}]), 28818);
}

#[test]
fn count_and_replace_root() {
    assert_eq!(run_ok(vec![doc! {"$count": "total"}]), vec![doc! {"total": 3}]);
    assert!(run_ok(vec![doc! {"$match": {"k": "none"}}, doc! {"$count": "total"}]).is_empty());
    let out = run_ok(vec![
        doc! {"$replaceRoot": {"newRoot": {"key": "$k"}}},
        doc! {"$limit": 1},
    ]);
    assert_eq!(out, vec![doc! {"key": "a"}]);
    assert_eq!(code(vec![doc! {"$replaceRoot": {"newRoot": "$n"}}]), 40228);
    assert_eq!(code(vec![doc! {"$count": "$x"}]), 40158);
}

#[test]
fn stage_errors() {
    let err = run(&[doc! {"$bogus": {}}], docs(), NOW).expect_err("unknown stage");
    assert_eq!(
        (err.code, err.message.as_str()),
        (40324, "Unrecognized pipeline stage name: '$bogus'")
    );
    assert_eq!(code(vec![doc! {"$match": {}, "$limit": 1}]), 40323);
    assert_eq!(code(vec![doc! {"$limit": 0}]), 15958);
    assert_eq!(code(vec![doc! {"$skip": -1}]), 15956);
    assert_eq!(code(vec![doc! {"$sort": {}}]), 15976);
    assert_eq!(code(vec![doc! {"$group": {"n": {"$sum": 1}}}]), 15955);
    assert_eq!(code(vec![doc! {"$group": {"_id": 1, "n": {"$bogus": 1}}}]), 15952);
    assert_eq!(code(vec![doc! {"$group": {"_id": 1, "a.b": {"$sum": 1}}}]), 40235);
    assert_eq!(code(vec![doc! {"$project": {}}]), 51272);
}

proptest! {
    #[test]
    fn sort_stage_output_is_ordered(input in prop::collection::vec(document(), 0..6)) {
        let out = run(&[doc! {"$sort": {"a": 1, "b": -1}}], input.clone(), NOW).expect("sort runs");
        let spec = crate::query::sort::SortSpec::parse(&doc! {"a": 1, "b": -1}).expect("valid");
        prop_assert_eq!(out.len(), input.len());
        for pair in out.windows(2) {
            prop_assert_ne!(spec.compare(&pair[0], &pair[1]), std::cmp::Ordering::Greater);
        }
    }

    #[test]
    fn random_stages_never_panic(stage in document(), input in prop::collection::vec(document(), 0..4)) {
        let _ = run(&[stage], input, NOW);
    }
}

fn grouped_input() -> Vec<Document> {
    (0..3_000)
        .map(|i: i32| doc! {"_id": i, "g": (i * 7) % 100, "v": i, "pad": "x".repeat(50)})
        .collect()
}

fn drain(mut stream: Box<dyn DocStream>) -> Result<Vec<Document>, QueryError> {
    let mut out = Vec::new();
    while let Some(doc) = stream.next_doc()? {
        out.push(doc);
    }
    Ok(out)
}

fn by_id(mut docs: Vec<Document>) -> Vec<Document> {
    docs.sort_by(|a, b| {
        crate::query::compare::compare_bson(a.get("_id").unwrap_or(&Bson::Null), b.get("_id").unwrap_or(&Bson::Null))
    });
    docs
}

/// A `$group` over its memory limit is 292 without disk use, and with it spills and merges to the same
/// groups, every accumulator included, `$push` in input order; a parked result waits on disk.
#[test]
fn group_spills_and_merges_like_in_memory() {
    let stages = vec![
        doc! {"$group": {"_id": "$g", "n": {"$sum": 1}, "avg": {"$avg": "$v"}, "min": {"$min": "$v"},
        "max": {"$max": "$v"}, "first": {"$first": "$v"}, "last": {"$last": "$v"}, "all": {"$push": "$v"},
        "set": {"$addToSet": {"$mod": ["$v", 3]}}, "c": {"$count": {}}}},
    ];
    let expected = by_id(run(&stages, grouped_input(), NOW).expect("in memory"));
    assert_eq!(expected.len(), 100);
    let small = Limits {
        group_bytes: 50_000,
        ..Limits::default()
    };
    let err = drain(build(&stages, Box::new(VecStream::new(grouped_input())), NOW, &small).expect("parses"))
        .expect_err("over the limit");
    assert_eq!(
        (err.code, err.code_name),
        (292, "QueryExceededMemoryLimitNoDiskUseAllowed")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let spilling = Limits {
        allow_disk_use: true,
        spill_dir: Some(dir.path().to_path_buf()),
        ..small
    };
    let out = drain(build(&stages, Box::new(VecStream::new(grouped_input())), NOW, &spilling).expect("parses"))
        .expect("spilled");
    assert_eq!(by_id(out), expected);

    let roomy = Limits {
        spill_dir: Some(dir.path().to_path_buf()),
        ..Limits::default()
    };
    let stages = vec![doc! {"$group": {"_id": "$g", "docs": {"$push": "$$ROOT"}}}];
    let expected = by_id(run(&stages, grouped_input(), NOW).expect("in memory"));
    let mut parked = build(&stages, Box::new(VecStream::new(grouped_input())), NOW, &roomy).expect("parses");
    let mut out = vec![parked.next_doc().expect("first").expect("a group")];
    parked.park();
    assert_eq!(
        std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0),
        1,
        "parked on disk"
    );
    out.extend(drain(parked).expect("the rest"));
    assert_eq!(by_id(out), expected);
    assert_eq!(
        std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0),
        0,
        "runs removed"
    );
}

/// One `$push` array over `internalQueryMaxPushBytes` is 146 ExceededMemoryLimit, spilling or not.
#[test]
fn push_arrays_have_their_own_limit() {
    let stages = vec![doc! {"$group": {"_id": null, "all": {"$push": "$$ROOT"}}}];
    let limits = Limits {
        push_bytes: 10_000,
        allow_disk_use: true,
        ..Limits::default()
    };
    let err = drain(build(&stages, Box::new(VecStream::new(grouped_input())), NOW, &limits).expect("parses"))
        .expect_err("over the $push limit");
    assert_eq!((err.code, err.code_name), (146, "ExceededMemoryLimit"));
    assert!(err.message.starts_with("$push used too much memory"), "{}", err.message);

    // One group over both limits: the stage's 292 without disk use; with it the spilled parts of the group
    // cannot be merged into one array, 146.
    let both = Limits {
        push_bytes: 50_000,
        group_bytes: 50_000,
        ..Limits::default()
    };
    let err = drain(build(&stages, Box::new(VecStream::new(grouped_input())), NOW, &both).expect("parses"))
        .expect_err("over the $group limit");
    assert_eq!(err.code, 292, "{}", err.message);
    let dir = tempfile::tempdir().expect("tempdir");
    let spilling = Limits {
        allow_disk_use: true,
        spill_dir: Some(dir.path().to_path_buf()),
        ..both
    };
    let err = drain(build(&stages, Box::new(VecStream::new(grouped_input())), NOW, &spilling).expect("parses"))
        .expect_err("over the $push limit once merged");
    assert_eq!(err.code, 146, "{}", err.message);
    assert_eq!(
        std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0),
        0,
        "runs removed"
    );
}

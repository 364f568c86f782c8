//! Tests for update parsing and application.
use bson::{Bson, DateTime, Document, doc};
use proptest::prelude::*;

use super::*;
use crate::query::test_support::{document, update_document};

const NOW: DateTime = DateTime::from_millis(1_700_000_000_000);

fn apply(update: Document, mut doc: Document) -> Result<Document, QueryError> {
    Update::parse(&update)?.apply(&mut doc, false, NOW)?;
    Ok(doc)
}

fn applied(update: Document, doc: Document) -> Document {
    apply(update, doc).expect("update applies")
}

fn code(update: Document, doc: Document) -> i32 {
    apply(update, doc).map(|_| 0).unwrap_or_else(|e| e.code)
}

#[test]
fn set_and_unset() {
    assert_eq!(
        applied(doc! {"$set": {"a.b": 1}}, doc! {"_id": 1}),
        doc! {"_id": 1, "a": {"b": 1}}
    );
    assert_eq!(
        applied(doc! {"$unset": {"a": ""}}, doc! {"_id": 1, "a": 1, "b": 2}),
        doc! {"_id": 1, "b": 2}
    );
    assert_eq!(
        applied(doc! {"$set": {"a.1": 9}}, doc! {"_id": 1, "a": [1, 2]}),
        doc! {"_id": 1, "a": [1, 9]}
    );
    assert_eq!(code(doc! {"$set": {"a.b": 1}}, doc! {"_id": 1, "a": 5}), 28);
    assert_eq!(code(doc! {"$set": {"a..b": 1}}, doc! {"_id": 1}), 56);
}

#[test]
fn new_fields_are_added_in_lexicographic_order() {
    let out = applied(doc! {"$set": {"b": 1, "a": 1}, "$inc": {"c": 1}}, doc! {"_id": 1});
    assert_eq!(out.keys().collect::<Vec<_>>(), vec!["_id", "a", "b", "c"]);
}

#[test]
fn apply_reports_whether_the_document_changed() {
    let update = Update::parse(&doc! {"$set": {"a": 1}}).expect("valid");
    let mut d = doc! {"_id": 1, "a": 1};
    assert!(!update.apply(&mut d, false, NOW).expect("applies"));
    let mut d = doc! {"_id": 1, "a": 2};
    assert!(update.apply(&mut d, false, NOW).expect("applies"));
}

#[test]
fn inc_follows_type_promotion() {
    assert_eq!(
        applied(doc! {"$inc": {"a": 1}}, doc! {"a": i32::MAX}),
        doc! {"a": i64::from(i32::MAX) + 1}
    );
    assert_eq!(applied(doc! {"$inc": {"a": 1.5}}, doc! {"a": 1}), doc! {"a": 2.5});
    assert_eq!(applied(doc! {"$inc": {"a": 1i64}}, doc! {"a": 1}), doc! {"a": 2i64});
    assert_eq!(applied(doc! {"$inc": {"a": 5}}, doc! {}), doc! {"a": 5});
    assert_eq!(code(doc! {"$inc": {"a": 1}}, doc! {"a": "x"}), 14);
    assert_eq!(code(doc! {"$inc": {"a": "x"}}, doc! {"a": 1}), 14);
    assert_eq!(code(doc! {"$inc": {"a": 1}}, doc! {"a": i64::MAX}), 2);
}

#[test]
fn mul_min_max() {
    assert_eq!(applied(doc! {"$mul": {"a": 3}}, doc! {"a": 2}), doc! {"a": 6});
    assert_eq!(applied(doc! {"$mul": {"a": 3i64}}, doc! {}), doc! {"a": 0i64});
    assert_eq!(applied(doc! {"$min": {"a": 1}}, doc! {"a": 2}), doc! {"a": 1});
    assert_eq!(applied(doc! {"$min": {"a": 3}}, doc! {"a": 2}), doc! {"a": 2});
    assert_eq!(applied(doc! {"$max": {"a": "s"}}, doc! {"a": 2}), doc! {"a": "s"});
    assert_eq!(applied(doc! {"$max": {"a": 1}}, doc! {}), doc! {"a": 1});
}

#[test]
fn modifying_id_is_immutable_field() {
    assert_eq!(code(doc! {"$set": {"_id": 2}}, doc! {"_id": 1}), 66);
    assert_eq!(code(doc! {"$unset": {"_id": 1}}, doc! {"_id": 1}), 66);
    assert_eq!(code(doc! {"$set": {"_id": 1}}, doc! {"_id": 1}), 0);
    assert_eq!(code(doc! {"_id": 2, "a": 1}, doc! {"_id": 1}), 66);
}

#[test]
fn conflicting_paths_are_rejected() {
    assert_eq!(code(doc! {"$set": {"a": 1}, "$inc": {"a": 1}}, doc! {}), 40);
    assert_eq!(code(doc! {"$set": {"a.b": 1, "a": 1}}, doc! {}), 40);
    assert_eq!(code(doc! {"$set": {"a.b": 1}, "$unset": {"a.c": 1}}, doc! {}), 0);
    assert_eq!(code(doc! {"$set": {"ab": 1}, "$unset": {"a": 1}}, doc! {}), 0);
    assert_eq!(code(doc! {"$rename": {"a": "b"}, "$set": {"b": 1}}, doc! {}), 40);
}

#[test]
fn malformed_updates() {
    assert_eq!(code(doc! {"$foo": {"a": 1}}, doc! {}), 9);
    assert_eq!(code(doc! {"$set": 1}, doc! {}), 9);
    assert_eq!(code(doc! {"$set": {"a": 1}, "b": 1}, doc! {}), 9);
    assert_eq!(code(doc! {"a": 1, "$set": {"b": 1}}, doc! {}), 52);
    assert_eq!(code(doc! {"$set": {"$a": 1}}, doc! {}), 52);
}

#[test]
fn replacement_keeps_id_first() {
    let out = applied(doc! {"x": 1}, doc! {"a": 1, "_id": 7});
    assert_eq!(out, doc! {"_id": 7, "x": 1});
    assert!(Update::parse(&doc! {"x": 1}).expect("valid").is_replacement());
    assert_eq!(applied(doc! {}, doc! {"_id": 1, "a": 2}), doc! {"_id": 1});
}

#[test]
fn set_on_insert_only_on_upsert_inserts() {
    let update = Update::parse(&doc! {"$setOnInsert": {"a": 1}, "$set": {"b": 2}}).expect("valid");
    let mut existing = doc! {"_id": 1};
    update.apply(&mut existing, false, NOW).expect("applies");
    assert_eq!(existing, doc! {"_id": 1, "b": 2});
    let mut inserted = doc! {"_id": 1};
    update.apply(&mut inserted, true, NOW).expect("applies");
    assert_eq!(inserted, doc! {"_id": 1, "a": 1, "b": 2});
}

#[test]
fn current_date() {
    assert_eq!(applied(doc! {"$currentDate": {"a": true}}, doc! {}), doc! {"a": NOW});
    let out = applied(doc! {"$currentDate": {"a": {"$type": "timestamp"}}}, doc! {});
    assert!(matches!(out.get("a"), Some(Bson::Timestamp(ts)) if ts.time == 1_700_000_000));
    assert_eq!(code(doc! {"$currentDate": {"a": {"$type": "x"}}}, doc! {}), 2);
}

#[test]
fn push_with_modifiers() {
    assert_eq!(applied(doc! {"$push": {"a": 1}}, doc! {}), doc! {"a": [1]});
    assert_eq!(
        applied(doc! {"$push": {"a": [1]}}, doc! {"a": [0]}),
        doc! {"a": [0, [1]]}
    );
    assert_eq!(
        applied(
            doc! {"$push": {"a": {"$each": [3, 1, 2], "$sort": 1, "$slice": 2}}},
            doc! {"a": [5]}
        ),
        doc! {"a": [1, 2]}
    );
    assert_eq!(
        applied(
            doc! {"$push": {"a": {"$each": [9], "$position": 0}}},
            doc! {"a": [1, 2]}
        ),
        doc! {"a": [9, 1, 2]}
    );
    assert_eq!(
        applied(doc! {"$push": {"a": {"$each": [1, 2, 3], "$slice": -2}}}, doc! {}),
        doc! {"a": [2, 3]}
    );
    assert_eq!(
        applied(
            doc! {"$push": {"a": {"$each": [{"k": 2}, {"k": 1}], "$sort": {"k": -1}}}},
            doc! {}
        ),
        doc! {"a": [{"k": 2}, {"k": 1}]}
    );
    assert_eq!(code(doc! {"$push": {"a": 1}}, doc! {"a": 1}), 2);
    assert_eq!(code(doc! {"$push": {"a": {"$each": 1}}}, doc! {}), 2);
    assert_eq!(code(doc! {"$push": {"a": {"$each": [1], "$bad": 1}}}, doc! {}), 2);
}

#[test]
fn add_to_set_skips_equal_values() {
    assert_eq!(
        applied(doc! {"$addToSet": {"a": 1.0}}, doc! {"a": [1]}),
        doc! {"a": [1]}
    );
    assert_eq!(
        applied(doc! {"$addToSet": {"a": {"$each": [1, 2, 2]}}}, doc! {"a": [1]}),
        doc! {"a": [1, 2]}
    );
    assert_eq!(code(doc! {"$addToSet": {"a": 1}}, doc! {"a": "x"}), 2);
}

#[test]
fn pop_pull_pull_all() {
    assert_eq!(
        applied(doc! {"$pop": {"a": 1}}, doc! {"a": [1, 2, 3]}),
        doc! {"a": [1, 2]}
    );
    assert_eq!(
        applied(doc! {"$pop": {"a": -1}}, doc! {"a": [1, 2, 3]}),
        doc! {"a": [2, 3]}
    );
    assert_eq!(applied(doc! {"$pop": {"a": 1}}, doc! {}), doc! {});
    assert_eq!(code(doc! {"$pop": {"a": 2}}, doc! {"a": []}), 9);
    assert_eq!(code(doc! {"$pop": {"a": 1}}, doc! {"a": 3}), 14);
    assert_eq!(
        applied(doc! {"$pull": {"a": 2}}, doc! {"a": [1, 2, 2.0, 3]}),
        doc! {"a": [1, 3]}
    );
    assert_eq!(
        applied(doc! {"$pull": {"a": {"$gte": 2}}}, doc! {"a": [1, 2, 3]}),
        doc! {"a": [1]}
    );
    assert_eq!(
        applied(
            doc! {"$pull": {"a": {"k": 1}}},
            doc! {"a": [{"k": 1, "x": 0}, {"k": 2}, 1]}
        ),
        doc! {"a": [{"k": 2}, 1]}
    );
    assert_eq!(
        applied(doc! {"$pullAll": {"a": [1, 3]}}, doc! {"a": [1, 2, 3, 1]}),
        doc! {"a": [2]}
    );
    assert_eq!(code(doc! {"$pull": {"a": 1}}, doc! {"a": 1}), 2);
}

#[test]
fn rename_moves_values() {
    assert_eq!(
        applied(doc! {"$rename": {"a": "b.c"}}, doc! {"a": 1}),
        doc! {"b": {"c": 1}}
    );
    assert_eq!(applied(doc! {"$rename": {"a": "b"}}, doc! {"x": 1}), doc! {"x": 1});
    assert_eq!(code(doc! {"$rename": {"a": "a"}}, doc! {}), 2);
    assert_eq!(code(doc! {"$rename": {"a": "a.b"}}, doc! {}), 2);
    assert_eq!(code(doc! {"$rename": {"a.0": "b"}}, doc! {"a": [1]}), 2);
}

#[test]
fn bit_operations() {
    assert_eq!(
        applied(doc! {"$bit": {"a": {"and": 6, "or": 1}}}, doc! {"a": 5}),
        doc! {"a": 5}
    );
    assert_eq!(
        applied(doc! {"$bit": {"a": {"xor": 3i64}}}, doc! {"a": 5}),
        doc! {"a": 6i64}
    );
    assert_eq!(code(doc! {"$bit": {"a": {"and": 1.0}}}, doc! {"a": 5}), 2);
}

#[test]
fn failed_updates_leave_the_document_untouched() {
    let update = Update::parse(&doc! {"$set": {"a": 1}, "$inc": {"b": 1}}).expect("valid");
    let mut d = doc! {"_id": 1, "b": "x"};
    assert!(update.apply(&mut d, false, NOW).is_err());
    assert_eq!(d, doc! {"_id": 1, "b": "x"});
}

proptest! {
    #[test]
    fn parse_and_apply_never_panic(update in update_document(), mut doc in document(), insert in any::<bool>()) {
        if let Ok(parsed) = Update::parse(&update) {
            let _ = parsed.apply(&mut doc, insert, NOW);
        }
    }

    #[test]
    fn inc_then_negated_inc_restores_the_value(start in -1_000_000i64..1_000_000, by in -1_000_000i32..1_000_000, as_double in any::<bool>()) {
        let original = doc! {"_id": 1, "n": start};
        let amount = if as_double { Bson::Double(f64::from(by)) } else { Bson::Int32(by) };
        let negated = if as_double { Bson::Double(-f64::from(by)) } else { Bson::Int32(-by) };
        let once = applied(doc! {"$inc": {"n": amount}}, original.clone());
        let back = applied(doc! {"$inc": {"n": negated}}, once);
        let value = back.get("n").cloned().unwrap_or(Bson::Null);
        prop_assert!(crate::query::compare::bson_equal(&value, &Bson::Int64(start)));
    }
}

//! Tests for filter parsing and matching.
use bson::{Bson, Document, doc};
use proptest::prelude::*;

use super::*;
use crate::query::test_support::{document, filter_document};

fn matches(filter: Document, doc: Document) -> bool {
    Filter::parse(&filter).expect("valid filter").matches(&doc)
}

fn error_code(filter: Document) -> i32 {
    Filter::parse(&filter).map(|_| 0).unwrap_or_else(|e| e.code)
}

#[test]
fn empty_filter_matches_everything() {
    assert!(matches(doc! {}, doc! {"a": 1}));
}

#[test]
fn implicit_equality_reaches_into_arrays() {
    assert!(matches(doc! {"a": 1}, doc! {"a": [1, 2]}));
    assert!(matches(doc! {"a": 1.0}, doc! {"a": 1i64}));
    assert!(!matches(doc! {"a": 3}, doc! {"a": [1, 2]}));
    assert!(matches(doc! {"a": [1, 2]}, doc! {"a": [1, 2]}));
    assert!(matches(doc! {"a": [1, 2]}, doc! {"a": [[1, 2], 3]}));
    assert!(!matches(doc! {"a": [1, 2]}, doc! {"a": [2, 1]}));
}

#[test]
fn dotted_paths_descend_arrays_of_documents() {
    let d = doc! {"a": [{"b": 1}, {"b": 2}]};
    assert!(matches(doc! {"a.b": 2}, d.clone()));
    assert!(matches(doc! {"a.1.b": 2}, d.clone()));
    assert!(!matches(doc! {"a.0.b": 2}, d.clone()));
    assert!(matches(doc! {"a.0": {"b": 1}}, d));
}

#[test]
fn embedded_document_equality_is_exact() {
    assert!(matches(doc! {"a": {"b": 1, "c": 2}}, doc! {"a": {"b": 1, "c": 2}}));
    assert!(!matches(doc! {"a": {"b": 1}}, doc! {"a": {"b": 1, "c": 2}}));
    assert!(!matches(doc! {"a": {"c": 2, "b": 1}}, doc! {"a": {"b": 1, "c": 2}}));
}

#[test]
fn null_matches_missing_and_null() {
    assert!(matches(doc! {"a": null}, doc! {}));
    assert!(matches(doc! {"a": null}, doc! {"a": null}));
    assert!(matches(doc! {"a": null}, doc! {"a": [1, null]}));
    assert!(!matches(doc! {"a": null}, doc! {"a": 0}));
    assert!(matches(doc! {"a.b": null}, doc! {"a": 5}));
    assert!(matches(doc! {"a": {"$ne": null}}, doc! {"a": 0}));
    assert!(!matches(doc! {"a": {"$ne": null}}, doc! {}));
    assert!(matches(doc! {"a": {"$gte": null}}, doc! {}));
    assert!(!matches(doc! {"a": {"$gt": null}}, doc! {"a": null}));
    assert!(matches(doc! {"a": {"$in": [null, 5]}}, doc! {"b": 1}));
}

#[test]
fn comparisons_are_type_bracketed() {
    assert!(matches(doc! {"a": {"$gt": 1}}, doc! {"a": 2.5}));
    assert!(!matches(doc! {"a": {"$gt": 1}}, doc! {"a": "zzz"}));
    assert!(!matches(doc! {"a": {"$lt": "a"}}, doc! {"a": 5}));
    assert!(matches(doc! {"a": {"$lt": "b"}}, doc! {"a": "a"}));
    assert!(matches(doc! {"a": {"$gt": 1, "$lt": 3}}, doc! {"a": [0, 5, 2]}));
    // Each bound may be satisfied by a different element.
    assert!(matches(doc! {"a": {"$gt": 1, "$lt": 3}}, doc! {"a": [0, 5]}));
    assert!(matches(doc! {"a": {"$gt": Bson::MinKey}}, doc! {"a": "x"}));
    assert!(!matches(doc! {"a": {"$lte": 5}}, doc! {"a": f64::NAN}));
    assert!(matches(doc! {"a": {"$gte": f64::NAN}}, doc! {"a": f64::NAN}));
}

#[test]
fn negations_hold_when_no_element_matches() {
    assert!(!matches(doc! {"a": {"$ne": 1}}, doc! {"a": [1, 2]}));
    assert!(matches(doc! {"a": {"$ne": 3}}, doc! {"a": [1, 2]}));
    assert!(matches(doc! {"a": {"$ne": 3}}, doc! {}));
    assert!(matches(doc! {"a": {"$nin": [3, 4]}}, doc! {"a": [1, 2]}));
    assert!(!matches(doc! {"a": {"$nin": [2, 4]}}, doc! {"a": [1, 2]}));
    assert!(matches(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": 3}));
    assert!(matches(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": "x"}));
    assert!(matches(doc! {"a": {"$not": {"$gt": 5}}}, doc! {}));
}

#[test]
fn in_supports_values_and_regexes() {
    assert!(matches(doc! {"a": {"$in": [1, 2]}}, doc! {"a": 2i64}));
    assert!(matches(
        doc! {"a": {"$in": [Bson::RegularExpression(bson::Regex { pattern: "^x".try_into().expect("cstr"), options: "".try_into().expect("cstr") })]}},
        doc! {"a": "xy"}
    ));
    assert!(!matches(doc! {"a": {"$in": []}}, doc! {"a": 1}));
    assert_eq!(error_code(doc! {"a": {"$in": 1}}), 2);
    assert_eq!(error_code(doc! {"a": {"$in": [{"$gt": 1}]}}), 2);
}

#[test]
fn exists() {
    assert!(matches(doc! {"a": {"$exists": true}}, doc! {"a": null}));
    assert!(!matches(doc! {"a": {"$exists": true}}, doc! {}));
    assert!(matches(doc! {"a": {"$exists": false}}, doc! {"b": 1}));
    assert!(matches(
        doc! {"a.b": {"$exists": true}},
        doc! {"a": [{"c": 1}, {"b": 2}]}
    ));
    assert!(matches(doc! {"a": {"$exists": 0}}, doc! {}));
}

#[test]
fn type_accepts_numbers_aliases_and_number() {
    assert!(matches(doc! {"a": {"$type": "string"}}, doc! {"a": "x"}));
    assert!(matches(doc! {"a": {"$type": 2}}, doc! {"a": "x"}));
    assert!(matches(doc! {"a": {"$type": "number"}}, doc! {"a": 1i64}));
    assert!(matches(doc! {"a": {"$type": ["bool", "int"]}}, doc! {"a": 1}));
    assert!(matches(doc! {"a": {"$type": "array"}}, doc! {"a": []}));
    assert!(matches(doc! {"a": {"$type": "int"}}, doc! {"a": ["x", 1]}));
    assert!(matches(doc! {"a": {"$type": "null"}}, doc! {"a": null}));
    assert!(!matches(doc! {"a": {"$type": "null"}}, doc! {}));
    assert_eq!(error_code(doc! {"a": {"$type": "nope"}}), 2);
    assert_eq!(error_code(doc! {"a": {"$type": 99}}), 2);
}

#[test]
fn size_counts_the_array_itself() {
    assert!(matches(doc! {"a": {"$size": 2}}, doc! {"a": [1, [2, 3]]}));
    assert!(!matches(doc! {"a": {"$size": 2}}, doc! {"a": [[1, 2]]}));
    assert!(matches(doc! {"a": {"$size": 0}}, doc! {"a": []}));
    assert!(!matches(doc! {"a": {"$size": 0}}, doc! {}));
    assert_eq!(error_code(doc! {"a": {"$size": -1}}), 2);
    assert_eq!(error_code(doc! {"a": {"$size": 1.5}}), 2);
    assert_eq!(error_code(doc! {"a": {"$size": "1"}}), 2);
}

#[test]
fn all_requires_every_value() {
    assert!(matches(doc! {"a": {"$all": [1, 2]}}, doc! {"a": [2, 3, 1]}));
    assert!(!matches(doc! {"a": {"$all": [1, 4]}}, doc! {"a": [2, 3, 1]}));
    assert!(matches(doc! {"a": {"$all": [1]}}, doc! {"a": 1}));
    assert!(!matches(doc! {"a": {"$all": []}}, doc! {"a": [1]}));
    assert!(matches(
        doc! {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 2}}]}},
        doc! {"a": [{"b": 1}, {"b": 2}]}
    ));
}

#[test]
fn mod_truncates_and_validates() {
    assert!(matches(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5}));
    assert!(matches(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5.9}));
    assert!(matches(doc! {"a": {"$mod": [4, -1]}}, doc! {"a": -5}));
    assert!(!matches(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": "5"}));
    assert_eq!(error_code(doc! {"a": {"$mod": [0, 1]}}), 2);
    assert_eq!(error_code(doc! {"a": {"$mod": [4]}}), 2);
    assert_eq!(error_code(doc! {"a": {"$mod": [4, 1, 2]}}), 2);
    assert_eq!(error_code(doc! {"a": {"$mod": 4}}), 2);
}

#[test]
fn elem_match_document_and_value_forms() {
    let d = doc! {"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]};
    assert!(matches(doc! {"a": {"$elemMatch": {"b": 1, "c": 2}}}, d.clone()));
    assert!(!matches(doc! {"a": {"$elemMatch": {"b": 1, "c": 1}}}, d.clone()));
    // Without $elemMatch the conditions may hold on different elements.
    assert!(matches(doc! {"a.b": 1, "a.c": 1}, d));
    assert!(matches(
        doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}},
        doc! {"a": [0, 2, 5]}
    ));
    assert!(!matches(
        doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}},
        doc! {"a": [0, 5]}
    ));
    assert!(!matches(doc! {"a": {"$elemMatch": {"$gt": 1}}}, doc! {"a": 5}));
    assert_eq!(error_code(doc! {"a": {"$elemMatch": 1}}), 2);
}

#[test]
fn logical_operators() {
    let d = doc! {"a": 1, "b": 2};
    assert!(matches(doc! {"$or": [{"a": 2}, {"b": 2}]}, d.clone()));
    assert!(!matches(doc! {"$and": [{"a": 1}, {"b": 1}]}, d.clone()));
    assert!(matches(doc! {"$nor": [{"a": 2}, {"b": 3}]}, d.clone()));
    assert!(!matches(doc! {"$nor": [{"a": 1}]}, d));
    assert_eq!(error_code(doc! {"$or": []}), 2);
    assert_eq!(error_code(doc! {"$and": {"a": 1}}), 2);
    assert_eq!(error_code(doc! {"$or": [1]}), 2);
}

#[test]
fn regex_operator_and_literal() {
    assert!(matches(
        doc! {"a": {"$regex": "^ab", "$options": "i"}},
        doc! {"a": "ABC"}
    ));
    assert!(matches(doc! {"a": {"$regex": "b"}}, doc! {"a": ["x", "abc"]}));
    assert!(!matches(doc! {"a": {"$regex": "b"}}, doc! {"a": 1}));
    assert!(matches(doc! {"a": {"$not": {"$regex": "b"}}}, doc! {"a": "x"}));
    assert_eq!(error_code(doc! {"a": {"$options": "i"}}), 2);
    assert_eq!(error_code(doc! {"a": {"$regex": 5}}), 2);
}

#[test]
fn unknown_operators_are_bad_value() {
    let err = Filter::parse(&doc! {"a": {"$foo": 1}}).expect_err("unknown operator");
    assert_eq!((err.code, err.code_name), (2, "BadValue"));
    assert_eq!(err.message, "unknown operator: $foo");
    assert_eq!(error_code(doc! {"$foo": 1}), 2);
    assert_eq!(error_code(doc! {"a": {"$not": 5}}), 2);
    assert_eq!(error_code(doc! {"a": {"$not": {}}}), 2);
}

#[test]
fn expr_evaluates_aggregation_expressions() {
    assert!(matches(doc! {"$expr": {"$gt": ["$a", "$b"]}}, doc! {"a": 3, "b": 2}));
    assert!(!matches(doc! {"$expr": {"$gt": ["$a", "$b"]}}, doc! {"a": 1, "b": 2}));
    assert!(matches(doc! {"$comment": "hi", "a": 1}, doc! {"a": 1}));
}

#[test]
fn id_equality_finds_point_lookups() {
    let id = |f: Document| Filter::parse(&f).expect("valid").id_equality().cloned();
    assert_eq!(id(doc! {"_id": 5}), Some(Bson::Int32(5)));
    assert_eq!(id(doc! {"_id": {"$eq": "k"}, "x": 1}), Some(Bson::String("k".into())));
    assert_eq!(id(doc! {"$and": [{"x": 1}, {"_id": 7}]}), Some(Bson::Int32(7)));
    assert_eq!(id(doc! {"_id": {"$gt": 5}}), None);
    assert_eq!(id(doc! {"$or": [{"_id": 1}]}), None);
    assert_eq!(id(doc! {"_id": {"$in": [1]}}), None);
}

#[test]
fn upsert_seed_collects_equalities() {
    let seed = |f: Document| Filter::parse(&f).expect("valid").upsert_seed();
    assert_eq!(
        seed(doc! {"_id": 1, "a.b": 2, "c": {"$gt": 1}}),
        doc! {"_id": 1, "a": {"b": 2}}
    );
    assert_eq!(
        seed(doc! {"$and": [{"x": {"$eq": 3}}, {"y": "z"}]}),
        doc! {"x": 3, "y": "z"}
    );
    assert_eq!(seed(doc! {"$or": [{"x": 1}]}), doc! {});
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let mut filter = doc! {"a": 1};
    for _ in 0..500 {
        filter = doc! {"$and": [filter]};
    }
    assert_eq!(error_code(filter), 2);
}

proptest! {
    #[test]
    fn parse_and_match_never_panic(filter in filter_document(), doc in document()) {
        if let Ok(parsed) = Filter::parse(&filter) {
            let _ = parsed.matches(&doc);
            let _ = parsed.id_equality();
            let _ = parsed.upsert_seed();
        }
    }

    #[test]
    fn ne_is_the_negation_of_eq(value in crate::query::test_support::value(), doc in document()) {
        let eq = Filter::parse(&doc! {"a": {"$eq": value.clone()}});
        let ne = Filter::parse(&doc! {"a": {"$ne": value}});
        if let (Ok(eq), Ok(ne)) = (eq, ne) {
            prop_assert_ne!(eq.matches(&doc), ne.matches(&doc));
        }
    }

    #[test]
    fn a_document_matches_its_own_fields(doc in document()) {
        for (key, value) in &doc {
            if matches!(value, Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$'))) {
                continue;
            }
            let filter = Filter::parse(&doc! {key.clone(): value.clone()});
            if let Ok(filter) = filter {
                prop_assert!(filter.matches(&doc), "{} should match {}", key, doc);
            }
        }
    }
}

#[test]
fn a_collation_makes_comparisons_case_insensitive() {
    use std::sync::Arc;

    use crate::query::collation::Collation;

    let strength2 = Arc::new(
        Collation::parse(&doc! {"locale": "en_US", "strength": 2})
            .unwrap()
            .unwrap(),
    );
    let collated = |filter: Document| Filter::parse_collated(&filter, Some(&strength2));
    let ping = doc! {"_id": 1, "x": "ping", "l": ["Pong"]};
    assert!(collated(doc! {"x": "PING"}).unwrap().matches(&ping));
    assert!(collated(doc! {"x": {"$in": ["PING", "z"]}}).unwrap().matches(&ping));
    assert!(collated(doc! {"l": "pong"}).unwrap().matches(&ping));
    assert!(
        collated(doc! {"$or": [{"x": "nope"}, {"x": {"$gte": "PING", "$lt": "pingz"}}]})
            .unwrap()
            .matches(&ping)
    );
    assert!(!collated(doc! {"x": {"$ne": "PinG"}}).unwrap().matches(&ping));
    assert!(!collated(doc! {"x": "pïng"}).unwrap().matches(&ping));
    assert!(!Filter::parse(&doc! {"x": "PING"}).unwrap().matches(&ping));
    // The _id lookup is off (other _ids may match); the upsert seed keeps the value as given.
    let by_id = collated(doc! {"_id": "A", "x": "PING"}).unwrap();
    assert!(by_id.id_equality().is_none());
    assert_eq!(by_id.upsert_seed(), doc! {"_id": "A", "x": "PING"});
    let code = |filter: Document| collated(filter).err().map(|e| e.code);
    assert_eq!(code(doc! {"x": {"$regex": "^p"}}), Some(238));
    assert_eq!(code(doc! {"$expr": {"$eq": ["$x", "PING"]}}), Some(238));
}

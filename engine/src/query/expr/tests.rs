//! Tests for aggregation expressions.
use bson::{Bson, Document, doc};

use super::*;

fn eval(expr: Bson, doc: Document) -> Option<Bson> {
    Expr::parse(&expr)
        .expect("valid expression")
        .evaluate(&doc)
        .expect("evaluates")
}

fn eval_code(expr: Bson, doc: Document) -> i32 {
    match Expr::parse(&expr) {
        Err(e) => e.code,
        Ok(parsed) => parsed.evaluate(&doc).map(|_| 0).unwrap_or_else(|e| e.code),
    }
}

#[test]
fn field_paths_and_variables() {
    let d = doc! {"a": {"b": 1}, "l": [{"x": 1}, {"y": 2}, {"x": 3}, 4]};
    assert_eq!(eval(Bson::String("$a.b".into()), d.clone()), Some(Bson::Int32(1)));
    assert_eq!(eval(Bson::String("$nope".into()), d.clone()), None);
    assert_eq!(
        eval(Bson::String("$l.x".into()), d.clone()),
        Some(Bson::Array(vec![1.into(), 3.into()]))
    );
    assert_eq!(
        eval(Bson::String("$$ROOT.a".into()), d.clone()),
        Some(Bson::Document(doc! {"b": 1}))
    );
    assert_eq!(eval(Bson::String("$$REMOVE".into()), d.clone()), None);
    assert_eq!(
        eval(Bson::String("plain".into()), d),
        Some(Bson::String("plain".into()))
    );
    assert_eq!(eval_code(Bson::String("$$nope".into()), doc! {}), 17276);
    assert_eq!(eval_code(Bson::String("$".into()), doc! {}), 16872);
}

#[test]
fn arithmetic() {
    let d = doc! {"a": 2, "b": 2.5, "big": i32::MAX};
    assert_eq!(
        eval(Bson::Document(doc! {"$add": ["$a", "$b"]}), d.clone()),
        Some(Bson::Double(4.5))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$add": ["$big", 1]}), d.clone()),
        Some(Bson::Int64(i64::from(i32::MAX) + 1))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$add": ["$a", "$missing"]}), d.clone()),
        Some(Bson::Null)
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$multiply": ["$a", 3]}), d.clone()),
        Some(Bson::Int32(6))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$subtract": ["$a", 3]}), d.clone()),
        Some(Bson::Int32(-1))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$divide": ["$a", 4]}), d.clone()),
        Some(Bson::Double(0.5))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$mod": [7, 3]}), d.clone()),
        Some(Bson::Int32(1))
    );
    assert_eq!(eval_code(Bson::Document(doc! {"$divide": [1, 0]}), d.clone()), 16608);
    assert_eq!(eval_code(Bson::Document(doc! {"$add": ["x", 1]}), d), 16554);
}

#[test]
fn comparison_and_logic() {
    let d = doc! {"a": 1};
    assert_eq!(
        eval(Bson::Document(doc! {"$eq": ["$a", 1.0]}), d.clone()),
        Some(Bson::Boolean(true))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$eq": ["$missing", null]}), d.clone()),
        Some(Bson::Boolean(false))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$cmp": ["$a", 2]}), d.clone()),
        Some(Bson::Int32(-1))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$and": [1, "$a", true]}), d.clone()),
        Some(Bson::Boolean(true))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$or": [0, null]}), d.clone()),
        Some(Bson::Boolean(false))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$not": [0]}), d.clone()),
        Some(Bson::Boolean(true))
    );
    assert_eq!(
        eval(
            Bson::Document(doc! {"$cond": {"if": {"$gt": ["$a", 0]}, "then": "pos", "else": "neg"}}),
            d.clone()
        ),
        Some(Bson::String("pos".into()))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$cond": [false, 1, 2]}), d.clone()),
        Some(Bson::Int32(2))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$ifNull": ["$missing", "d"]}), d.clone()),
        Some(Bson::String("d".into()))
    );
    assert_eq!(eval_code(Bson::Document(doc! {"$eq": [1]}), d), 16020);
}

#[test]
fn strings_arrays_and_types() {
    let d = doc! {"s": "Ab", "l": [1, 2, 3]};
    assert_eq!(
        eval(Bson::Document(doc! {"$concat": ["$s", "-", "x"]}), d.clone()),
        Some(Bson::String("Ab-x".into()))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$toUpper": "$s"}), d.clone()),
        Some(Bson::String("AB".into()))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$size": "$l"}), d.clone()),
        Some(Bson::Int32(3))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$arrayElemAt": ["$l", -1]}), d.clone()),
        Some(Bson::Int32(3))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$in": [2, "$l"]}), d.clone()),
        Some(Bson::Boolean(true))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$type": "$nope"}), d.clone()),
        Some(Bson::String("missing".into()))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$sum": "$l"}), d.clone()),
        Some(Bson::Int32(6))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$max": "$l"}), d.clone()),
        Some(Bson::Int32(3))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$avg": "$l"}), d.clone()),
        Some(Bson::Double(2.0))
    );
    assert_eq!(eval_code(Bson::Document(doc! {"$size": "$s"}), d.clone()), 17124);
    assert_eq!(eval_code(Bson::Document(doc! {"$concat": ["$s", 1]}), d), 16702);
}

#[test]
fn objects_drop_missing_fields_and_unknown_operators_fail() {
    assert_eq!(
        eval(Bson::Document(doc! {"x": "$a", "y": "$nope"}), doc! {"a": 1}),
        Some(Bson::Document(doc! {"x": 1}))
    );
    assert_eq!(eval_code(Bson::Document(doc! {"$bogus": 1}), doc! {}), 168);
    assert_eq!(eval_code(Bson::Document(doc! {"$add": [1], "$sub": 1}), doc! {}), 15983);
}

#[test]
fn set_field_sets_names_field_paths_cannot_reach() {
    let d = doc! {"_id": 1, "foo": {}};
    let set = |field: &str, input: &str| {
        doc! {"$setField": {"field": {"$literal": field}, "value": 1, "input": input}}
    };
    assert_eq!(
        eval(Bson::Document(set("$a", "$$ROOT")), d.clone()),
        Some(Bson::Document(doc! {"_id": 1, "foo": {}, "$a": 1}))
    );
    assert_eq!(
        eval(Bson::Document(set("a.b", "$foo")), d.clone()),
        Some(Bson::Document(doc! {"a.b": 1}))
    );
    // An existing field keeps its place; $$REMOVE as the value removes it.
    let e = doc! {"a": 1, "b": 2};
    let replaced = doc! {"$setField": {"field": "a", "value": 5, "input": "$$ROOT"}};
    assert_eq!(
        eval(Bson::Document(replaced), e.clone()),
        Some(Bson::Document(doc! {"a": 5, "b": 2}))
    );
    let removed = doc! {"$setField": {"field": "a", "value": "$$REMOVE", "input": "$$ROOT"}};
    assert_eq!(
        eval(Bson::Document(removed), e.clone()),
        Some(Bson::Document(doc! {"b": 2}))
    );
    let unset = doc! {"$unsetField": {"field": "b", "input": "$$ROOT"}};
    assert_eq!(
        eval(Bson::Document(unset), e.clone()),
        Some(Bson::Document(doc! {"a": 1}))
    );
    // A null or missing input gives null.
    let on_missing = doc! {"$setField": {"field": "a", "value": 1, "input": "$nope"}};
    assert_eq!(eval(Bson::Document(on_missing), e), Some(Bson::Null));
}

#[test]
fn get_field_reads_any_name() {
    let d = doc! {"a.b": 1, "$c": 2, "x": {"y.z": 3}};
    assert_eq!(
        eval(Bson::Document(doc! {"$getField": "a.b"}), d.clone()),
        Some(Bson::Int32(1))
    );
    assert_eq!(
        eval(
            Bson::Document(doc! {"$getField": {"field": {"$literal": "$c"}}}),
            d.clone()
        ),
        Some(Bson::Int32(2))
    );
    assert_eq!(
        eval(
            Bson::Document(doc! {"$getField": {"field": "y.z", "input": "$x"}}),
            d.clone()
        ),
        Some(Bson::Int32(3))
    );
    assert_eq!(
        eval(Bson::Document(doc! {"$getField": {"$literal": "$c"}}), d.clone()),
        Some(Bson::Int32(2))
    );
    assert_eq!(eval(Bson::Document(doc! {"$getField": "nope"}), d.clone()), None);
    let concatenated = doc! {"$getField": {"field": {"$concat": ["a", ".b"]}}};
    assert_eq!(eval(Bson::Document(concatenated), d), Some(Bson::Int32(1)));
}

#[test]
fn field_operators_check_their_arguments_as_mongod_does() {
    let code = |e: Document| eval_code(Bson::Document(e), doc! {"a": 1});
    assert_eq!(code(doc! {"$setField": 1}), 4161100);
    assert_eq!(
        code(doc! {"$setField": {"field": "a", "value": 1, "input": {}, "x": 1}}),
        4161101
    );
    assert_eq!(code(doc! {"$setField": {"value": 1, "input": {}}}), 4161102);
    assert_eq!(code(doc! {"$setField": {"field": "a", "input": {}}}), 4161103);
    assert_eq!(code(doc! {"$setField": {"field": "a", "value": 1}}), 4161109);
    assert_eq!(
        code(doc! {"$setField": {"field": "a", "value": 1, "input": true}}),
        4161105
    );
    assert_eq!(
        code(doc! {"$setField": {"field": {"$toLower": "$a"}, "value": 1, "input": {}}}),
        4161106
    );
    assert_eq!(
        code(doc! {"$setField": {"field": 33, "value": 1, "input": {}}}),
        4161107
    );
    assert_eq!(
        code(doc! {"$setField": {"field": "$a", "value": 1, "input": {}}}),
        4161108
    );
    assert_eq!(code(doc! {"$unsetField": {"field": true, "input": {}}}), 4161107);
    assert_eq!(
        code(doc! {"$unsetField": {"field": "a", "input": {}, "value": 1}}),
        4161101
    );
    assert_eq!(code(doc! {"$getField": 5}), 3041700);
    assert_eq!(code(doc! {"$getField": {"field": "$a"}}), 5654600);
    assert_eq!(code(doc! {"$getField": {"field": "$$ROOT"}}), 5654600);
    assert_eq!(code(doc! {"$getField": {"field": 5}}), 5654602);
}

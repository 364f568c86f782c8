//! Tests for the BSON total order.
use std::cmp::Ordering;

use bson::oid::ObjectId;
use bson::{Bson, DateTime, Timestamp, doc};
use proptest::prelude::*;

use super::*;
use crate::query::test_support::value;

#[test]
fn canonical_type_order() {
    let ascending = [
        Bson::MinKey,
        Bson::Null,
        Bson::Int32(-5),
        Bson::String("a".into()),
        Bson::Document(doc! {}),
        Bson::Array(vec![]),
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![],
        }),
        Bson::ObjectId(ObjectId::from_bytes([0; 12])),
        Bson::Boolean(false),
        Bson::DateTime(DateTime::from_millis(0)),
        Bson::Timestamp(Timestamp { time: 0, increment: 0 }),
        Bson::MaxKey,
    ];
    for pair in ascending.windows(2) {
        assert_eq!(
            compare_bson(&pair[0], &pair[1]),
            Ordering::Less,
            "{} < {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn numbers_compare_by_value_across_types() {
    assert!(bson_equal(&Bson::Int32(1), &Bson::Double(1.0)));
    assert!(bson_equal(&Bson::Int32(1), &Bson::Int64(1)));
    let decimal: bson::Decimal128 = "1.0".parse().expect("decimal");
    assert!(bson_equal(&Bson::Decimal128(decimal), &Bson::Int64(1)));
    assert_eq!(compare_bson(&Bson::Double(1.5), &Bson::Int64(2)), Ordering::Less);
    assert_eq!(
        compare_bson(&Bson::Double(f64::NAN), &Bson::Double(f64::NEG_INFINITY)),
        Ordering::Less
    );
    assert!(bson_equal(&Bson::Double(f64::NAN), &Bson::Double(f64::NAN)));
    assert!(bson_equal(&Bson::Double(0.0), &Bson::Double(-0.0)));
}

#[test]
fn strings_and_symbols_share_a_bracket() {
    assert!(bson_equal(&Bson::String("x".into()), &Bson::Symbol("x".into())));
    assert_eq!(
        compare_bson(&Bson::String("B".into()), &Bson::String("a".into())),
        Ordering::Less
    );
}

#[test]
fn null_equals_undefined() {
    assert!(bson_equal(&Bson::Null, &Bson::Undefined));
}

#[test]
fn documents_compare_field_by_field() {
    let a = Bson::Document(doc! {"a": 1, "b": 2});
    let b = Bson::Document(doc! {"a": 1.0, "b": 2i64});
    assert!(bson_equal(&a, &b));
    let reordered = Bson::Document(doc! {"b": 2, "a": 1});
    assert!(!bson_equal(&a, &reordered));
    assert_eq!(compare_bson(&Bson::Document(doc! {"a": 1}), &a), Ordering::Less);
    // A numeric field sorts before a string field, whatever the names.
    assert_eq!(
        compare_bson(&Bson::Document(doc! {"z": 1}), &Bson::Document(doc! {"a": "x"})),
        Ordering::Less
    );
}

#[test]
fn arrays_compare_element_by_element() {
    let short = Bson::Array(vec![1.into()]);
    let long = Bson::Array(vec![1.into(), 0.into()]);
    let bigger = Bson::Array(vec![2.into()]);
    assert_eq!(compare_bson(&short, &long), Ordering::Less);
    assert_eq!(compare_bson(&long, &bigger), Ordering::Less);
}

#[test]
fn ordered_bson_keys_merge_equal_numbers() {
    let mut map = std::collections::BTreeMap::new();
    map.insert(OrderedBson(Bson::Int32(1)), "int");
    map.insert(OrderedBson(Bson::Double(1.0)), "double");
    assert_eq!(map.len(), 1);
}

/// The recursive definition the iterative comparison replaced, kept as its specification (small inputs).
fn reference(a: &Bson, b: &Bson) -> Ordering {
    let by_rank = type_rank(a).cmp(&type_rank(b));
    if by_rank != Ordering::Equal {
        return by_rank;
    }
    match (a, b) {
        (Bson::Document(x), Bson::Document(y)) => reference_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let ordering = reference(l, r);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .cmp(&y.code)
            .then_with(|| reference_documents(&x.scope, &y.scope)),
        _ => compare_bson(a, b),
    }
}

fn reference_documents(a: &bson::Document, b: &bson::Document) -> Ordering {
    let mut left = a.iter();
    let mut right = b.iter();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let ordering = type_rank(va)
                    .cmp(&type_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| reference(va, vb));
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

#[test]
fn deep_values_compare_like_shallow_ones() {
    let nest = |levels: usize, leaf: i32| {
        let mut value = Bson::Int32(leaf);
        for i in 0..levels {
            value = if i % 2 == 0 {
                Bson::Array(vec![value])
            } else {
                Bson::Document(doc! {"k": value})
            };
        }
        value
    };
    assert_eq!(compare_bson(&nest(190, 1), &nest(190, 2)), Ordering::Less);
    assert_eq!(compare_bson(&nest(190, 2), &nest(190, 2)), Ordering::Equal);
    assert_eq!(compare_bson(&nest(190, 2), &nest(188, 2)), Ordering::Greater);
}

proptest! {
    #[test]
    fn the_iterative_order_is_the_recursive_definition(a in value(), b in value()) {
        prop_assert_eq!(compare_bson(&a, &b), reference(&a, &b));
        if let (Bson::Document(x), Bson::Document(y)) = (&a, &b) {
            prop_assert_eq!(compare_documents(x, y), reference_documents(x, y));
        }
    }

    #[test]
    fn order_is_reflexive_and_antisymmetric(a in value(), b in value()) {
        prop_assert_eq!(compare_bson(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare_bson(&a, &b), compare_bson(&b, &a).reverse());
        prop_assert_eq!(bson_equal(&a, &b), compare_bson(&a, &b) == Ordering::Equal);
    }

    #[test]
    fn order_is_transitive(a in value(), b in value(), c in value()) {
        let items = [a, b, c];
        let not_greater = |x: &Bson, y: &Bson| compare_bson(x, y) != Ordering::Greater;
        for (i, j, k) in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)] {
            if not_greater(&items[i], &items[j]) && not_greater(&items[j], &items[k]) {
                prop_assert!(not_greater(&items[i], &items[k]));
            }
        }
    }

    #[test]
    fn equality_is_consistent_with_order_against_a_third(a in value(), b in value(), c in value()) {
        if bson_equal(&a, &b) {
            prop_assert_eq!(compare_bson(&a, &c), compare_bson(&b, &c));
        }
    }
}

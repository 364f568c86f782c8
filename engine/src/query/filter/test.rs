//! Tests on the values a path reaches: equality, comparisons, `$in`, `$type`, `$size`, `$elemMatch`, ...
use std::cmp::Ordering;

use bson::Bson;

use super::Clause;
use crate::query::compare::{bson_equal, compare_bson, type_rank};
use crate::query::numeric::Number;
use crate::query::regex::Pattern;
use crate::query::traverse::Reached;

/// Which comparison a `$gt`-family operator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A `$type` argument: a BSON type number, or the `"number"` alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeSelector {
    Code(i32),
    AnyNumber,
}

/// One element of a `$in` list.
#[derive(Debug, Clone)]
pub(crate) enum InItem {
    Value(Bson),
    Regex(Pattern),
}

/// A predicate on the values reached by a path.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    Eq(Bson),
    Regex(Pattern),
    Compare(Comparison, Bson),
    In(Vec<InItem>),
    Exists(bool),
    Type(Vec<TypeSelector>),
    Size(usize),
    Mod {
        divisor: i64,
        remainder: i64,
    },
    /// `$elemMatch` with operators: some array element satisfies every test.
    ElemMatchValue(Vec<Test>),
    /// `$elemMatch` with a query: some embedded-document element matches it.
    ElemMatchDocument(Box<Clause>),
    /// All of the tests (several operators on one field, `$all`).
    All(Vec<Test>),
    /// None of the reached values satisfy the conjunction (`$ne`, `$nin`, `$not`).
    Not(Vec<Test>),
    /// Matches nothing (`$all: []`, `$in: []`).
    Never,
}

impl Test {
    /// Whether the test holds for a path that reached `reached` values.
    pub(crate) fn matches_reached(&self, reached: &[Reached<'_>]) -> bool {
        match self {
            Test::Exists(wanted) => reached.iter().any(Option::is_some) == *wanted,
            Test::Size(len) => reached
                .iter()
                .any(|v| matches!(v, Some(Bson::Array(items)) if items.len() == *len)),
            Test::ElemMatchValue(_) | Test::ElemMatchDocument(_) => reached
                .iter()
                .any(|v| matches!(v, Some(Bson::Array(items)) if items.iter().any(|i| self.element_matches(i)))),
            Test::All(tests) => tests.iter().all(|t| t.matches_reached(reached)),
            Test::Not(tests) => !tests.iter().all(|t| t.matches_reached(reached)),
            Test::Never => false,
            _ => reached.iter().any(|value| self.matches_expanded(*value)),
        }
    }

    /// A leaf test on one reached value: the value itself, or (for arrays) any of its elements.
    fn matches_expanded(&self, value: Reached<'_>) -> bool {
        if self.matches_single(value) {
            return true;
        }
        match value {
            Some(Bson::Array(items)) => items.iter().any(|item| self.matches_single(Some(item))),
            _ => false,
        }
    }

    fn matches_single(&self, value: Reached<'_>) -> bool {
        match self {
            Test::Eq(operand) => equals(value, operand),
            Test::Regex(pattern) => value.is_some_and(|v| pattern.matches(v)),
            Test::Compare(comparison, operand) => compare_matches(*comparison, value, operand),
            Test::In(items) => items.iter().any(|item| match item {
                InItem::Value(operand) => equals(value, operand),
                InItem::Regex(pattern) => value.is_some_and(|v| pattern.matches(v)),
            }),
            Test::Type(selectors) => value.is_some_and(|v| selectors.iter().any(|s| s.accepts(v))),
            Test::Mod { divisor, remainder } => value
                .and_then(Number::from_bson)
                .and_then(Number::truncated_i64)
                .is_some_and(|n| n.wrapping_rem(*divisor) == *remainder),
            other => other.matches_reached(&[value]),
        }
    }

    /// Whether one element of an array the path ends at satisfies the test (which element the positional
    /// `$` stands for).
    pub(crate) fn matches_element(&self, element: &Bson) -> bool {
        match self {
            Test::ElemMatchValue(_) | Test::ElemMatchDocument(_) => self.element_matches(element),
            Test::All(tests) => tests.iter().all(|t| t.matches_element(element)),
            Test::Not(_) | Test::Exists(_) | Test::Size(_) | Test::Never => false,
            _ => self.matches_single(Some(element)),
        }
    }

    fn element_matches(&self, element: &Bson) -> bool {
        match self {
            Test::ElemMatchValue(tests) => tests.iter().all(|t| t.matches_reached(&[Some(element)])),
            Test::ElemMatchDocument(clause) => matches!(element, Bson::Document(doc) if clause.matches(doc)),
            _ => false,
        }
    }

    /// The value this test pins the field to by equality, if it does.
    pub(crate) fn equality_operand(&self) -> Option<&Bson> {
        match self {
            Test::Eq(value) => Some(value),
            Test::All(tests) => tests.iter().find_map(|t| match t {
                Test::Eq(value) => Some(value),
                _ => None,
            }),
            _ => None,
        }
    }
}

fn is_nullish(value: Reached<'_>) -> bool {
    matches!(value, None | Some(Bson::Null) | Some(Bson::Undefined))
}

fn equals(value: Reached<'_>, operand: &Bson) -> bool {
    if matches!(operand, Bson::Null) {
        return is_nullish(value);
    }
    value.is_some_and(|v| bson_equal(v, operand))
}

fn is_nan(value: &Bson) -> bool {
    match Number::from_bson(value) {
        Some(Number::Double(d)) | Some(Number::Decimal(d)) => d.is_nan(),
        _ => false,
    }
}

fn compare_matches(comparison: Comparison, value: Reached<'_>, operand: &Bson) -> bool {
    let inclusive = matches!(comparison, Comparison::Lte | Comparison::Gte);
    if matches!(operand, Bson::Null) {
        // null == missing: only $gte/$lte null match, and only null/missing values.
        return inclusive && is_nullish(value);
    }
    let value = value.unwrap_or(&Bson::Null);
    let crosses_types = matches!(operand, Bson::MinKey | Bson::MaxKey);
    if !crosses_types && type_rank(value) != type_rank(operand) {
        return false;
    }
    if is_nan(value) || is_nan(operand) {
        // NaN equals NaN but is neither less nor greater than any number.
        return inclusive && is_nan(value) && is_nan(operand);
    }
    let ordering = compare_bson(value, operand);
    match comparison {
        Comparison::Lt => ordering == Ordering::Less,
        Comparison::Lte => ordering != Ordering::Greater,
        Comparison::Gt => ordering == Ordering::Greater,
        Comparison::Gte => ordering != Ordering::Less,
    }
}

impl TypeSelector {
    fn accepts(self, value: &Bson) -> bool {
        match self {
            TypeSelector::AnyNumber => Number::from_bson(value).is_some(),
            TypeSelector::Code(code) => bson_type_code(value) == code,
        }
    }
}

/// The BSON element type byte of a value (as `$type` numbers it; MinKey is -1, MaxKey 127).
pub(crate) fn bson_type_code(value: &Bson) -> i32 {
    match value {
        Bson::Double(_) => 1,
        Bson::String(_) => 2,
        Bson::Document(_) => 3,
        Bson::Array(_) => 4,
        Bson::Binary(_) => 5,
        Bson::Undefined => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Null => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::Symbol(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::Int32(_) => 16,
        Bson::Timestamp(_) => 17,
        Bson::Int64(_) => 18,
        Bson::Decimal128(_) => 19,
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
    }
}

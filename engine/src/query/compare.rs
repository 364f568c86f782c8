//! MongoDB's total order over BSON values, across types.
//!
//! Types sort by canonical rank first:
//!
//! ```text
//! MinKey < Null = Undefined (= missing) < numbers < Symbol = String < Object < Array < BinData < ObjectId
//!        < Boolean < Date < Timestamp < Regex < DBPointer < JavaScript < JavaScript-with-scope < MaxKey
//! ```
//!
//! Within a rank, numbers compare by value whatever their BSON type (NaN below all, equal to itself), strings
//! by bytes, documents field by field (rank, then name, then value), arrays element by element.
use std::cmp::Ordering;

use bson::{Bson, Document};

use super::numeric::{Number, compare_numbers};

/// Canonical type rank; values of different ranks never compare equal.
pub fn type_rank(value: &Bson) -> u8 {
    match value {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::JavaScriptCodeWithScope(_) => 14,
        Bson::MaxKey => 15,
    }
}

/// Total order over BSON values (MongoDB's comparison order, binary string collation).
///
/// Iterative: nested documents and arrays are compared with an explicit stack of pending pairs, so the stack
/// this uses does not grow with the depth of the values.
pub fn compare_bson(a: &Bson, b: &Bson) -> Ordering {
    let mut pending = Vec::new();
    let ordering = compare_shallow(a, b, &mut pending);
    if ordering != Ordering::Equal {
        return ordering;
    }
    finish(pending)
}

/// Value equality under [`compare_bson`]: `1 == 1.0 == 1i64`, `null == undefined`, NaN equals NaN.
pub fn bson_equal(a: &Bson, b: &Bson) -> bool {
    compare_bson(a, b) == Ordering::Equal
}

/// Compares documents field by field: type rank, then field name, then value; a prefix sorts first.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    finish(vec![Pending::Documents(a.iter(), b.iter())])
}

/// Two containers whose elements are still to be compared, pair by pair.
enum Pending<'a> {
    Documents(bson::document::Iter<'a>, bson::document::Iter<'a>),
    Arrays(std::slice::Iter<'a, Bson>, std::slice::Iter<'a, Bson>),
}

/// What the next step of the comparison at the top of the stack found.
enum Step<'a> {
    /// Both containers ended together: equal so far, go back to the enclosing pair.
    Exhausted,
    /// The comparison is decided (or, for `Equal`, this pair of elements was equal).
    Decided(Ordering),
    /// Two elements of the same rank to compare next.
    SameRank(&'a Bson, &'a Bson),
    /// Two array elements of any rank to compare next.
    Any(&'a Bson, &'a Bson),
}

/// Runs the pending pairs to the first difference.
fn finish(mut pending: Vec<Pending<'_>>) -> Ordering {
    while let Some(top) = pending.last_mut() {
        let step = match top {
            Pending::Documents(left, right) => match (left.next(), right.next()) {
                (None, None) => Step::Exhausted,
                (None, Some(_)) => Step::Decided(Ordering::Less),
                (Some(_), None) => Step::Decided(Ordering::Greater),
                (Some((ka, va)), Some((kb, vb))) => {
                    let ordering = type_rank(va)
                        .cmp(&type_rank(vb))
                        .then_with(|| ka.as_bytes().cmp(kb.as_bytes()));
                    if ordering == Ordering::Equal {
                        Step::SameRank(va, vb)
                    } else {
                        Step::Decided(ordering)
                    }
                }
            },
            Pending::Arrays(left, right) => match (left.next(), right.next()) {
                (None, None) => Step::Exhausted,
                (None, Some(_)) => Step::Decided(Ordering::Less),
                (Some(_), None) => Step::Decided(Ordering::Greater),
                (Some(x), Some(y)) => Step::Any(x, y),
            },
        };
        let ordering = match step {
            Step::Exhausted => {
                pending.pop();
                Ordering::Equal
            }
            Step::Decided(ordering) => ordering,
            Step::SameRank(x, y) => compare_same_rank(x, y, &mut pending),
            Step::Any(x, y) => compare_shallow(x, y, &mut pending),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Compares by rank, then within the rank; containers are pushed onto `pending` (and count as equal here).
fn compare_shallow<'a>(a: &'a Bson, b: &'a Bson, pending: &mut Vec<Pending<'a>>) -> Ordering {
    let by_rank = type_rank(a).cmp(&type_rank(b));
    if by_rank != Ordering::Equal {
        return by_rank;
    }
    compare_same_rank(a, b, pending)
}

fn string_bytes(value: &Bson) -> &[u8] {
    match value {
        Bson::String(s) | Bson::Symbol(s) => s.as_bytes(),
        _ => &[],
    }
}

fn compare_same_rank<'a>(a: &'a Bson, b: &'a Bson, pending: &mut Vec<Pending<'a>>) -> Ordering {
    if let (Some(x), Some(y)) = (Number::from_bson(a), Number::from_bson(b)) {
        return compare_numbers(x, y);
    }
    match (a, b) {
        (Bson::String(_) | Bson::Symbol(_), _) => string_bytes(a).cmp(string_bytes(b)),
        (Bson::Document(x), Bson::Document(y)) => {
            pending.push(Pending::Documents(x.iter(), y.iter()));
            Ordering::Equal
        }
        (Bson::Array(x), Bson::Array(y)) => {
            pending.push(Pending::Arrays(x.iter(), y.iter()));
            Ordering::Equal
        }
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => (x.time, x.increment).cmp(&(y.time, y.increment)),
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .cmp(y.pattern.as_str())
            .then_with(|| x.options.as_str().cmp(y.options.as_str())),
        (Bson::DbPointer(x), Bson::DbPointer(y)) => compare_db_pointers(x, y),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            let by_code = x.code.cmp(&y.code);
            if by_code == Ordering::Equal {
                pending.push(Pending::Documents(x.scope.iter(), y.scope.iter()));
            }
            by_code
        }
        // MinKey, MaxKey, Null and Undefined are all equal within their rank.
        _ => Ordering::Equal,
    }
}

/// DBPointer's fields are private in bson 3; its Debug form (namespace, then id) gives a stable total order.
fn compare_db_pointers(a: &bson::DbPointer, b: &bson::DbPointer) -> Ordering {
    format!("{a:?}").cmp(&format!("{b:?}"))
}

/// A `Bson` ordered by [`compare_bson`], usable as a `BTreeMap` key.
#[derive(Debug, Clone)]
pub struct OrderedBson(pub Bson);

impl PartialEq for OrderedBson {
    fn eq(&self, other: &Self) -> bool {
        bson_equal(&self.0, &other.0)
    }
}

impl Eq for OrderedBson {}

impl PartialOrd for OrderedBson {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBson {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_bson(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests;

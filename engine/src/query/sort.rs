//! Sort specifications (`{a: 1, "b.c": -1}`) and the document order they define.
//!
//! A missing field sorts as null. When a path reaches an array, an ascending key uses its smallest element and
//! a descending key its largest (an empty array sorts below null, as `undefined`).
use std::cmp::Ordering;
use std::sync::Arc;

use bson::{Bson, Document};

use super::QueryError;
use super::collation::Collation;
use super::compare::compare_bson;
use super::numeric::Number;
use super::traverse::{reach, split_path};

/// One sort key: a path and its direction.
#[derive(Debug, Clone)]
struct SortKey {
    path: Vec<String>,
    descending: bool,
}

/// A parsed sort specification.
#[derive(Debug, Clone, Default)]
pub struct SortSpec {
    keys: Vec<SortKey>,
    natural: Option<i32>,
    /// A non-simple collation: strings sort by their collation keys.
    collation: Option<Arc<Collation>>,
}

impl SortSpec {
    /// Parses `{field: 1 | -1, ...}` or `{$natural: 1 | -1}`. Other directions are code 15975.
    pub fn parse(spec: &Document) -> Result<SortSpec, QueryError> {
        let mut parsed = SortSpec::default();
        for (field, direction) in spec {
            let descending = parse_direction(direction)?;
            if field == "$natural" {
                parsed.natural = Some(if descending { -1 } else { 1 });
                continue;
            }
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(QueryError::location(
                    15998,
                    "FieldPath field names may not be empty strings.",
                ));
            }
            if field.starts_with('$') {
                return Err(QueryError::location(
                    16410,
                    format!("FieldPath field names may not start with '$'. Got {field}"),
                ));
            }
            super::path::check_length(field)?;
            parsed.keys.push(SortKey {
                path: split_path(field),
                descending,
            });
        }
        if parsed.natural.is_some() && !parsed.keys.is_empty() {
            return Err(QueryError::bad_value(
                "$natural sort cannot be combined with other sort keys",
            ));
        }
        Ok(parsed)
    }

    /// The same spec, sorting strings under `collation` (`None`: binary order).
    pub fn with_collation(mut self, collation: Option<&Arc<Collation>>) -> SortSpec {
        self.collation = collation.cloned();
        self
    }

    /// The value a document sorts by for one key (under the collation, its key).
    fn value(&self, doc: &Document, key: &SortKey) -> Bson {
        let value = sort_value(doc, key);
        match &self.collation {
            Some(collation) => collation.key_value(&value),
            None => value,
        }
    }

    /// Some(1 | -1) when the spec is exactly `{$natural: ±1}`: natural order is the caller's to produce.
    pub fn natural(&self) -> Option<i32> {
        self.natural
    }

    /// Whether there are no field keys (an empty spec, or `$natural`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Compares two documents under the spec; ties are `Equal` (callers sort stably).
    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        for key in &self.keys {
            let left = self.value(a, key);
            let right = self.value(b, key);
            let ordering = compare_bson(&left, &right);
            let ordering = if key.descending { ordering.reverse() } else { ordering };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// The values a document sorts by, one per key, for [`SortSpec::compare_keys`] (blocking sorts keep
    /// these beside the document's bytes instead of the decoded document).
    pub fn key_of(&self, doc: &Document) -> Vec<Bson> {
        self.keys.iter().map(|key| self.value(doc, key)).collect()
    }

    /// Compares two [`SortSpec::key_of`] results; the same order as [`SortSpec::compare`].
    pub fn compare_keys(&self, a: &[Bson], b: &[Bson]) -> Ordering {
        for ((key, left), right) in self.keys.iter().zip(a).zip(b) {
            let ordering = compare_bson(left, right);
            let ordering = if key.descending { ordering.reverse() } else { ordering };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// `Some(ascending)` when the spec is exactly one key on `_id`: the order of the storage's `_id` keys.
    pub fn id_only(&self) -> Option<bool> {
        if self.collation.is_some() {
            return None;
        }
        match self.keys.as_slice() {
            [key] if key.path.len() == 1 && key.path[0] == "_id" => Some(!key.descending),
            _ => None,
        }
    }

    /// Sorts documents in place, stably.
    pub fn sort(&self, docs: &mut [Document]) {
        if !self.keys.is_empty() {
            docs.sort_by(|a, b| self.compare(a, b));
        }
    }
}

fn parse_direction(direction: &Bson) -> Result<bool, QueryError> {
    let bad = || {
        QueryError::location(
            15975,
            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
        )
    };
    if let Bson::Document(meta) = direction
        && meta.contains_key("$meta")
    {
        return Err(QueryError::bad_value("$meta sort is not supported by this server"));
    }
    let number = Number::from_bson(direction).ok_or_else(bad)?;
    match number.as_exact_i64() {
        Some(1) => Ok(false),
        Some(-1) => Ok(true),
        _ => Err(bad()),
    }
}

/// The value a document sorts by for one key: the extreme element over everything the path reaches.
fn sort_value(doc: &Document, key: &SortKey) -> Bson {
    let wanted = if key.descending {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    let mut best: Option<Bson> = None;
    let mut consider = |candidate: &Bson| {
        let better = match &best {
            None => true,
            Some(current) => compare_bson(candidate, current) == wanted,
        };
        if better {
            best = Some(candidate.clone());
        }
    };
    for reached in reach(doc, &key.path) {
        match reached {
            None => consider(&Bson::Null),
            Some(Bson::Array(items)) if items.is_empty() => consider(&Bson::Undefined),
            Some(Bson::Array(items)) => items.iter().for_each(&mut consider),
            Some(value) => consider(value),
        }
    }
    best.unwrap_or(Bson::Null)
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    fn spec(d: Document) -> SortSpec {
        SortSpec::parse(&d).expect("valid sort")
    }

    #[test]
    fn sorts_across_types_in_canonical_order() {
        let mut docs = vec![
            doc! {"a": "x"},
            doc! {"a": 2},
            doc! {},
            doc! {"a": 1.5},
            doc! {"a": true},
        ];
        spec(doc! {"a": 1}).sort(&mut docs);
        assert_eq!(
            docs,
            vec![
                doc! {},
                doc! {"a": 1.5},
                doc! {"a": 2},
                doc! {"a": "x"},
                doc! {"a": true}
            ]
        );
    }

    #[test]
    fn arrays_use_min_ascending_and_max_descending() {
        let a = doc! {"a": [1, 10]};
        let b = doc! {"a": 5};
        assert_eq!(spec(doc! {"a": 1}).compare(&a, &b), Ordering::Less);
        assert_eq!(spec(doc! {"a": -1}).compare(&a, &b), Ordering::Less);
    }

    #[test]
    fn later_keys_break_ties() {
        let a = doc! {"a": 1, "b": 2};
        let b = doc! {"a": 1, "b": 1};
        assert_eq!(spec(doc! {"a": 1, "b": 1}).compare(&a, &b), Ordering::Greater);
        assert_eq!(spec(doc! {"a": 1, "b": -1}).compare(&a, &b), Ordering::Less);
    }

    #[test]
    fn missing_equals_null() {
        assert_eq!(
            spec(doc! {"a": 1}).compare(&doc! {}, &doc! {"a": null}),
            Ordering::Equal
        );
    }

    #[test]
    fn natural_is_reported() {
        assert_eq!(spec(doc! {"$natural": -1}).natural(), Some(-1));
        assert_eq!(spec(doc! {"a": 1}).natural(), None);
    }

    #[test]
    fn bad_directions_are_rejected() {
        assert_eq!(SortSpec::parse(&doc! {"a": 2}).map_err(|e| e.code).err(), Some(15975));
        assert_eq!(
            SortSpec::parse(&doc! {"a": "up"}).map_err(|e| e.code).err(),
            Some(15975)
        );
        assert!(SortSpec::parse(&doc! {"a": 1.0, "b": -1i64}).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn compare_is_antisymmetric_and_transitive(
            a in crate::query::test_support::document(),
            b in crate::query::test_support::document(),
            c in crate::query::test_support::document(),
        ) {
            let sort = spec(doc! {"a": 1, "b.c": -1});
            proptest::prop_assert_eq!(sort.compare(&a, &b), sort.compare(&b, &a).reverse());
            if sort.compare(&a, &b) != Ordering::Greater && sort.compare(&b, &c) != Ordering::Greater {
                proptest::prop_assert_ne!(sort.compare(&a, &c), Ordering::Greater);
            }
        }
    }
}

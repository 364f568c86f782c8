//! `min`/`max` index bounds (find with a `hint`): the documents whose key in the hinted index lies in
//! `[min, max)`, keys compared field by field in the index's directions, as the index orders them (across
//! types too, unlike `$gte`/`$lt`). A document's key for a field is the value the path reaches (null when
//! missing); for an array, its smallest element in the field's direction, as a sort takes it.
use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::query::compare::compare_bson;
use crate::query::traverse::{reach, split_path};

/// Bounds on the keys of one index.
#[derive(Debug, Clone)]
pub struct KeyRange {
    /// The index's fields and whether each is descending.
    fields: Vec<(Vec<String>, bool)>,
    min: Option<Vec<Bson>>,
    max: Option<Vec<Bson>>,
}

impl KeyRange {
    /// Bounds for an index with key pattern `pattern`; `min` and `max` give one value per field, in order
    /// (the caller checks that they name the pattern's fields).
    pub fn new(pattern: &Document, min: Option<&Document>, max: Option<&Document>) -> KeyRange {
        let descending = |v: &Bson| match v {
            Bson::Int32(n) => *n < 0,
            Bson::Int64(n) => *n < 0,
            Bson::Double(d) => *d < 0.0,
            _ => false,
        };
        KeyRange {
            fields: pattern.iter().map(|(k, v)| (split_path(k), descending(v))).collect(),
            min: min.map(|d| d.values().cloned().collect()),
            max: max.map(|d| d.values().cloned().collect()),
        }
    }

    /// Whether `doc`'s key lies within the bounds (min inclusive, max exclusive).
    pub fn contains(&self, doc: &Document) -> bool {
        let key: Vec<Bson> = self
            .fields
            .iter()
            .map(|(path, desc)| key_value(doc, path, *desc))
            .collect();
        let above_min = self
            .min
            .as_ref()
            .is_none_or(|min| self.compare(&key, min) != Ordering::Less);
        let below_max = self
            .max
            .as_ref()
            .is_none_or(|max| self.compare(&key, max) == Ordering::Less);
        above_min && below_max
    }

    fn compare(&self, key: &[Bson], bound: &[Bson]) -> Ordering {
        for (((_, descending), k), b) in self.fields.iter().zip(key).zip(bound) {
            let ordering = compare_bson(k, b);
            let ordering = if *descending { ordering.reverse() } else { ordering };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }
}

fn key_value(doc: &Document, path: &[String], descending: bool) -> Bson {
    let wanted = if descending { Ordering::Greater } else { Ordering::Less };
    let mut best: Option<Bson> = None;
    let mut consider = |candidate: &Bson| {
        if best.as_ref().is_none_or(|b| compare_bson(candidate, b) == wanted) {
            best = Some(candidate.clone());
        }
    };
    for reached in reach(doc, path) {
        match reached {
            None => consider(&Bson::Null),
            Some(Bson::Array(items)) if !items.is_empty() => items.iter().for_each(&mut consider),
            Some(value) => consider(value),
        }
    }
    best.unwrap_or(Bson::Null)
}

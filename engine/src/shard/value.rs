//! A shard key value or chunk bound: the values of the pattern's fields in pattern order, ordered as
//! MongoDB orders BSON values (MinKey below everything, MaxKey above, numbers by value across types), field
//! by field.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::query::compare::compare_bson;

/// The values of a shard key's fields, in the pattern's order (a hashed field holds its hash, an Int64).
#[derive(Debug, Clone)]
pub struct ShardKeyValue(pub Vec<Bson>);

impl ShardKeyValue {
    /// Every field MinKey: the lowest bound of a key with `fields` fields.
    pub fn min(fields: usize) -> ShardKeyValue {
        ShardKeyValue(vec![Bson::MinKey; fields])
    }

    /// Every field MaxKey: the highest bound (exclusive: no key reaches it).
    pub fn max(fields: usize) -> ShardKeyValue {
        ShardKeyValue(vec![Bson::MaxKey; fields])
    }

    /// The document form (`{a: 5, b: MinKey}`), with the pattern's field names.
    pub fn to_document(&self, names: &[&str]) -> Document {
        names
            .iter()
            .zip(&self.0)
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    /// Reads a bound stored as a document with exactly `names`' fields, in order.
    pub fn from_document(doc: &Document, names: &[&str]) -> Option<ShardKeyValue> {
        if doc.len() != names.len() {
            return None;
        }
        let mut values = Vec::with_capacity(names.len());
        for ((name, value), expected) in doc.iter().zip(names) {
            if name != expected {
                return None;
            }
            values.push(value.clone());
        }
        Some(ShardKeyValue(values))
    }
}

impl Ord for ShardKeyValue {
    fn cmp(&self, other: &ShardKeyValue) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            match compare_bson(a, b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for ShardKeyValue {
    fn partial_cmp(&self, other: &ShardKeyValue) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ShardKeyValue {
    fn eq(&self, other: &ShardKeyValue) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ShardKeyValue {}

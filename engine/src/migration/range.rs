//! A migrated key range [min, max) of a collection's shard key, and which documents fall in it (pure).

use bson::{Document, doc};

use crate::error::{Error, Result};
use crate::shard::{ShardKeyPattern, ShardKeyValue};

/// The shard key range [min, max).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub min: ShardKeyValue,
    pub max: ShardKeyValue,
}

impl KeyRange {
    /// Reads `{min, max}` bound documents for the pattern's fields (`{k: 5}`, `{k: MinKey}`).
    pub fn from_documents(pattern: &ShardKeyPattern, min: &Document, max: &Document) -> Result<KeyRange> {
        let names = pattern.names();
        let bound = |d: &Document| {
            ShardKeyValue::from_document(d, &names).ok_or_else(|| {
                Error::bad_value(format!(
                    "the bound {d} does not match the shard key {}",
                    pattern.to_document()
                ))
            })
        };
        let range = KeyRange {
            min: bound(min)?,
            max: bound(max)?,
        };
        if range.min >= range.max {
            return Err(Error::bad_value(format!("the range [{min}, {max}) is empty")));
        }
        Ok(range)
    }

    /// `{min, max}` as documents.
    pub fn to_document(&self, pattern: &ShardKeyPattern) -> Document {
        let names = pattern.names();
        doc! {"min": self.min.to_document(&names), "max": self.max.to_document(&names)}
    }

    pub fn contains(&self, key: &ShardKeyValue) -> bool {
        self.min <= *key && *key < self.max
    }

    pub fn overlaps(&self, other: &KeyRange) -> bool {
        self.min < other.max && other.min < self.max
    }

    /// Whether `document`'s shard key lies in the range (a document whose key cannot be read does not).
    pub fn holds(&self, pattern: &ShardKeyPattern, document: &Document) -> bool {
        pattern.extract(document).is_ok_and(|key| self.contains(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_holds_its_lower_bound_and_not_its_upper() {
        let pattern = ShardKeyPattern::parse(&doc! {"k": 1}).unwrap();
        let range = KeyRange::from_documents(&pattern, &doc! {"k": 10}, &doc! {"k": 20}).unwrap();
        assert!(range.holds(&pattern, &doc! {"_id": 1, "k": 10}));
        assert!(range.holds(&pattern, &doc! {"_id": 1, "k": 19}));
        assert!(!range.holds(&pattern, &doc! {"_id": 1, "k": 20}));
        assert!(!range.holds(&pattern, &doc! {"_id": 1, "k": 9}));
        let upper = KeyRange::from_documents(&pattern, &doc! {"k": 20}, &doc! {"k": bson::Bson::MaxKey}).unwrap();
        assert!(!range.overlaps(&upper));
        assert!(KeyRange::from_documents(&pattern, &doc! {"k": 20}, &doc! {"k": 10}).is_err());
        assert!(KeyRange::from_documents(&pattern, &doc! {"x": 1}, &doc! {"k": 10}).is_err());
    }
}

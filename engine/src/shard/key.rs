//! Shard key patterns: parsing `{a: 1}`, `{a: 1, b: 1}` and `{a: "hashed"}` with MongoDB's rules, and
//! extracting a document's shard key.
//!
//! Rules (MongoDB 7): every field is `1` (ascending range) or `"hashed"`, at most one field is hashed, field
//! names are non-empty dotted paths without `$`-prefixed parts. A document's key takes each field by its
//! dotted path; a missing field counts as null (MongoDB 4.4+ stores such documents in the null chunk); an
//! array on the path is refused, since a key must be one value.

use bson::{Bson, Document};

use super::code;
use super::hash::hash64;
use super::value::ShardKeyValue;
use crate::error::{Error, Result};

/// How one field of the key orders documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `1`: by the field's value.
    Range,
    /// `"hashed"`: by [`hash64`] of the field's value.
    Hashed,
}

/// One field of a shard key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyField {
    pub path: String,
    pub kind: KeyKind,
}

/// A collection's shard key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardKeyPattern {
    fields: Vec<KeyField>,
}

impl ShardKeyPattern {
    /// Parses a `key` argument (`{k: 1}`, `{k: "hashed"}`, ...) with MongoDB's rules.
    pub fn parse(key: &Document) -> Result<ShardKeyPattern> {
        let unsupported = || {
            Error::bad_value(format!(
                "Unsupported shard key pattern {key}. Pattern must either be a single hashed field, or a list of \
                 ascending fields"
            ))
        };
        if key.is_empty() {
            return Err(unsupported());
        }
        let mut fields = Vec::with_capacity(key.len());
        for (path, value) in key {
            if path.is_empty() || path.split('.').any(|part| part.is_empty() || part.starts_with('$')) {
                return Err(unsupported());
            }
            let kind = match value {
                Bson::String(s) if s == "hashed" => KeyKind::Hashed,
                Bson::Int32(1) | Bson::Int64(1) => KeyKind::Range,
                Bson::Double(d) if *d == 1.0 => KeyKind::Range,
                _ => return Err(unsupported()),
            };
            if fields.iter().any(|f: &KeyField| f.path == *path) {
                return Err(unsupported());
            }
            fields.push(KeyField {
                path: path.clone(),
                kind,
            });
        }
        if fields.iter().filter(|f| f.kind == KeyKind::Hashed).count() > 1 {
            return Err(unsupported());
        }
        Ok(ShardKeyPattern { fields })
    }

    pub fn fields(&self) -> &[KeyField] {
        &self.fields
    }

    /// The field paths, in order (the names chunk bounds use).
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.path.as_str()).collect()
    }

    /// Whether some field is hashed.
    pub fn is_hashed(&self) -> bool {
        self.fields.iter().any(|f| f.kind == KeyKind::Hashed)
    }

    /// The pattern as MongoDB stores it (`{k: 1}` / `{k: "hashed"}`).
    pub fn to_document(&self) -> Document {
        self.fields
            .iter()
            .map(|f| {
                let value = match f.kind {
                    KeyKind::Range => Bson::Int32(1),
                    KeyKind::Hashed => Bson::String("hashed".into()),
                };
                (f.path.clone(), value)
            })
            .collect()
    }

    /// The lowest bound, `{k: MinKey, ...}`.
    pub fn global_min(&self) -> ShardKeyValue {
        ShardKeyValue::min(self.fields.len())
    }

    /// The highest bound, `{k: MaxKey, ...}`.
    pub fn global_max(&self) -> ShardKeyValue {
        ShardKeyValue::max(self.fields.len())
    }

    /// The shard key of `doc`: each field's value (null when missing), hashed fields as their hash.
    pub fn extract(&self, doc: &Document) -> Result<ShardKeyValue> {
        let mut values = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let value = lookup_single(doc, &field.path)?;
            values.push(self.key_part(field, value));
        }
        Ok(ShardKeyValue(values))
    }

    /// The key of the raw field values `raw` (one per field, in order), hashing where the pattern hashes.
    pub fn key_of_values(&self, raw: &[Bson]) -> ShardKeyValue {
        ShardKeyValue(
            self.fields
                .iter()
                .zip(raw)
                .map(|(field, value)| self.key_part(field, value.clone()))
                .collect(),
        )
    }

    fn key_part(&self, field: &KeyField, value: Bson) -> Bson {
        match field.kind {
            KeyKind::Range => value,
            KeyKind::Hashed => Bson::Int64(hash64(&value, 0)),
        }
    }
}

/// The value at a dotted path: null when missing, an error when an array lies on the path.
fn lookup_single(doc: &Document, path: &str) -> Result<Bson> {
    let mut current = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(value) = current.get(part) else {
            return Ok(Bson::Null);
        };
        if let Bson::Array(_) = value {
            return Err(Error::new(
                code::SHARD_KEY_NOT_FOUND,
                format!("Shard key cannot contain array values or array descendants; field '{path}' is an array"),
            ));
        }
        if parts.peek().is_none() {
            return Ok(value.clone());
        }
        match value {
            Bson::Document(inner) => current = inner,
            _ => return Ok(Bson::Null),
        }
    }
    Ok(Bson::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn parses_range_compound_and_hashed_patterns() {
        let range = ShardKeyPattern::parse(&doc! {"a": 1}).expect("range");
        assert!(!range.is_hashed());
        assert_eq!(range.to_document(), doc! {"a": 1});
        let compound = ShardKeyPattern::parse(&doc! {"a": 1, "b.c": 1.0}).expect("compound");
        assert_eq!(compound.names(), vec!["a", "b.c"]);
        let hashed = ShardKeyPattern::parse(&doc! {"a": "hashed"}).expect("hashed");
        assert!(hashed.is_hashed());
        ShardKeyPattern::parse(&doc! {"a": "hashed", "b": 1}).expect("compound hashed");
    }

    #[test]
    fn refuses_what_mongodb_refuses() {
        for bad in [
            doc! {},
            doc! {"a": -1},
            doc! {"a": 2},
            doc! {"a": "text"},
            doc! {"a": "hashed", "b": "hashed"},
            doc! {"$a": 1},
            doc! {"a..b": 1},
        ] {
            let err = ShardKeyPattern::parse(&bad).expect_err("refused");
            assert_eq!(err.code, 2, "{bad}");
            assert!(err.message.contains("Unsupported shard key pattern"), "{}", err.message);
        }
    }

    #[test]
    fn extracts_keys_with_missing_fields_as_null() {
        let pattern = ShardKeyPattern::parse(&doc! {"a": 1, "b.c": 1}).expect("valid");
        let key = pattern.extract(&doc! {"a": 5, "b": {"c": "x"}}).expect("key");
        assert_eq!(key.0, vec![Bson::Int32(5), Bson::String("x".into())]);
        let missing = pattern.extract(&doc! {"z": 1}).expect("missing is null");
        assert_eq!(missing.0, vec![Bson::Null, Bson::Null]);
        let err = pattern.extract(&doc! {"a": [1, 2]}).expect_err("array");
        assert_eq!(err.code, 61);
        let hashed = ShardKeyPattern::parse(&doc! {"a": "hashed"}).expect("valid");
        assert_eq!(
            hashed.extract(&doc! {"a": 42}).expect("key").0,
            vec![Bson::Int64(-944_302_157_085_130_861)]
        );
    }
}

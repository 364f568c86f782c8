//! Which part of the key space a query filter can touch, so the router asks only the shards that own it.
//!
//! Equality on every field of the key (`{k: 5}`, `{k: {$eq: 5}}`; for a hashed field, on its raw value)
//! targets one key, hence one chunk. Equality on a prefix, or bounds on a range first field (`$gt`, `$gte`,
//! `$lt`, `$lte`), target the keys between the bounds. Anything else (`$in`, `$or`, no condition on the
//! first field, array or regex values) may match anywhere: [`Target::Everything`], a scatter-gather.

use bson::{Bson, Document};

use super::hash::hash64;
use super::key::{KeyKind, ShardKeyPattern};
use super::value::ShardKeyValue;
use crate::query::compare::compare_bson;

/// The keys a filter may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Exactly one key.
    Key(ShardKeyValue),
    /// Keys in [low, high], both inclusive.
    Range { low: ShardKeyValue, high: ShardKeyValue },
    /// Any key.
    Everything,
}

/// The target of `filter` under `pattern`.
pub fn target_filter(pattern: &ShardKeyPattern, filter: &Document) -> Target {
    let fields = pattern.fields();
    let equalities: Vec<Option<Bson>> = fields.iter().map(|f| equality(filter, &f.path)).collect();
    if equalities.iter().all(Option::is_some) {
        let raw: Vec<Bson> = equalities.into_iter().flatten().collect();
        return Target::Key(pattern.key_of_values(&raw));
    }
    // A prefix of equalities, then (for a range field) bounds on the next field.
    let mut low = Vec::new();
    let mut high = Vec::new();
    for (field, value) in fields.iter().zip(&equalities) {
        match value {
            Some(value) => {
                let part = match field.kind {
                    KeyKind::Range => value.clone(),
                    KeyKind::Hashed => Bson::Int64(hash64(value, 0)),
                };
                low.push(part.clone());
                high.push(part);
            }
            None => {
                if field.kind == KeyKind::Range
                    && let Some((lo, hi)) = bounds(filter, &field.path)
                {
                    low.push(lo);
                    high.push(hi);
                }
                break;
            }
        }
    }
    if low.is_empty() {
        return Target::Everything;
    }
    low.resize(fields.len(), Bson::MinKey);
    high.resize(fields.len(), Bson::MaxKey);
    Target::Range {
        low: ShardKeyValue(low),
        high: ShardKeyValue(high),
    }
}

/// The value `path` must equal, when the filter says so plainly.
fn equality(filter: &Document, path: &str) -> Option<Bson> {
    let value = filter.get(path)?;
    let value = match value {
        Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
            if ops.len() == 1 {
                ops.get("$eq")?
            } else {
                return None;
            }
        }
        other => other,
    };
    match value {
        Bson::Array(_) | Bson::RegularExpression(_) | Bson::Document(_) => None,
        plain => Some(plain.clone()),
    }
}

/// Inclusive bounds on `path` from `$gt`/`$gte`/`$lt`/`$lte` (open ends are MinKey/MaxKey).
fn bounds(filter: &Document, path: &str) -> Option<(Bson, Bson)> {
    let Bson::Document(ops) = filter.get(path)? else {
        return None;
    };
    let mut low = Bson::MinKey;
    let mut high = Bson::MaxKey;
    let mut any = false;
    for (op, value) in ops {
        if matches!(value, Bson::Array(_) | Bson::Document(_) | Bson::RegularExpression(_)) {
            return None;
        }
        match op.as_str() {
            "$gt" | "$gte" => {
                if compare_bson(value, &low).is_gt() {
                    low = value.clone();
                }
                any = true;
            }
            "$lt" | "$lte" => {
                if compare_bson(value, &high).is_lt() {
                    high = value.clone();
                }
                any = true;
            }
            _ => return None,
        }
    }
    any.then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn equality_on_the_whole_key_is_one_key() {
        let pattern = ShardKeyPattern::parse(&doc! {"a": 1, "b": 1}).expect("valid");
        assert_eq!(
            target_filter(&pattern, &doc! {"a": 1, "b": {"$eq": "x"}, "c": 3}),
            Target::Key(ShardKeyValue(vec![Bson::Int32(1), Bson::String("x".into())]))
        );
        assert_eq!(
            target_filter(&pattern, &doc! {"a": 1}),
            Target::Range {
                low: ShardKeyValue(vec![Bson::Int32(1), Bson::MinKey]),
                high: ShardKeyValue(vec![Bson::Int32(1), Bson::MaxKey]),
            }
        );
        assert_eq!(target_filter(&pattern, &doc! {"b": 1}), Target::Everything);
        assert_eq!(
            target_filter(&pattern, &doc! {"a": {"$in": [1, 2]}}),
            Target::Everything
        );
    }

    #[test]
    fn bounds_on_a_range_field_are_a_range_and_hashed_equality_is_hashed() {
        let pattern = ShardKeyPattern::parse(&doc! {"a": 1}).expect("valid");
        assert_eq!(
            target_filter(&pattern, &doc! {"a": {"$gte": 5, "$lt": 10}}),
            Target::Range {
                low: ShardKeyValue(vec![Bson::Int32(5)]),
                high: ShardKeyValue(vec![Bson::Int32(10)]),
            }
        );
        let hashed = ShardKeyPattern::parse(&doc! {"a": "hashed"}).expect("valid");
        assert_eq!(
            target_filter(&hashed, &doc! {"a": 42}),
            Target::Key(ShardKeyValue(vec![Bson::Int64(-944_302_157_085_130_861)]))
        );
        assert_eq!(target_filter(&hashed, &doc! {"a": {"$gt": 5}}), Target::Everything);
    }
}

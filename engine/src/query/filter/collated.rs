//! A filter's operands as collation keys: the values compared by equality and order (`{a: v}`, `$eq`, `$ne`,
//! `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$all`, through `$and`/`$or`/`$nor`, `$not` and `$elemMatch`)
//! are replaced by their keys, so matching the keyed filter against a keyed document compares as the
//! collation does. Operators whose meaning the keys would change (`$regex`, `$expr`, `$where`, ...) are
//! refused rather than answered in binary order.
use bson::{Bson, Document};

use crate::query::QueryError;
use crate::query::collation::Collation;

/// The filter with its compared operands turned into keys.
pub(super) fn key_filter(collation: &Collation, filter: &Document) -> Result<Document, QueryError> {
    let mut out = Document::new();
    for (name, value) in filter {
        let keyed = match name.as_str() {
            "$and" | "$or" | "$nor" => match value {
                Bson::Array(items) => Bson::Array(
                    items
                        .iter()
                        .map(|item| match item {
                            Bson::Document(clause) => key_filter(collation, clause).map(Bson::Document),
                            other => Ok(other.clone()),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other => other.clone(),
            },
            "$comment" | "$alwaysTrue" | "$alwaysFalse" => value.clone(),
            other if other.starts_with('$') => return Err(unsupported(other)),
            _ => key_condition(collation, value)?,
        };
        out.insert(name.clone(), keyed);
    }
    Ok(out)
}

/// A field's condition: an operator document, or a value compared by equality.
fn key_condition(collation: &Collation, value: &Bson) -> Result<Bson, QueryError> {
    match value {
        Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
            key_operators(collation, ops).map(Bson::Document)
        }
        other => key_operand(collation, other),
    }
}

fn key_operators(collation: &Collation, ops: &Document) -> Result<Document, QueryError> {
    let mut out = Document::new();
    for (op, arg) in ops {
        let keyed = match op.as_str() {
            "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" | "$in" | "$nin" | "$all" => key_operand(collation, arg)?,
            "$not" => match arg {
                Bson::Document(inner) => Bson::Document(key_operators(collation, inner)?),
                _ => return Err(unsupported("$regex")),
            },
            "$elemMatch" => match arg {
                Bson::Document(inner)
                    if inner
                        .keys()
                        .next()
                        .is_some_and(|k| k.starts_with('$') && !matches!(k.as_str(), "$and" | "$or" | "$nor")) =>
                {
                    Bson::Document(key_operators(collation, inner)?)
                }
                Bson::Document(inner) => Bson::Document(key_filter(collation, inner)?),
                other => other.clone(),
            },
            "$regex" | "$options" => return Err(unsupported("$regex")),
            _ => arg.clone(),
        };
        out.insert(op.clone(), keyed);
    }
    Ok(out)
}

/// A compared value as a key; a regular expression among them cannot be (regexes ignore collations).
fn key_operand(collation: &Collation, value: &Bson) -> Result<Bson, QueryError> {
    if contains_regex(value) {
        return Err(unsupported("$regex"));
    }
    Ok(collation.key_value(value))
}

fn contains_regex(value: &Bson) -> bool {
    match value {
        Bson::RegularExpression(_) => true,
        Bson::Array(items) => items.iter().any(contains_regex),
        _ => false,
    }
}

fn unsupported(operator: &str) -> QueryError {
    QueryError::new(
        238,
        "NotImplemented",
        format!("{operator} under a non-simple collation is not supported by the Faultline engine"),
    )
}

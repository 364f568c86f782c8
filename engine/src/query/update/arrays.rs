//! Array operators: `$push` (with `$each`, `$position`, `$sort`, `$slice`), `$addToSet`, `$pop`, `$pull`,
//! `$pullAll`. Each returns the new array, or `None` when the document is left as it is.
use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::query::QueryError;
use crate::query::compare::{bson_equal, compare_bson};
use crate::query::expr::type_name;
use crate::query::filter::Filter;
use crate::query::regex::Pattern;
use crate::query::sort::SortSpec;

/// How `$push`'s `$sort` orders the array.
#[derive(Debug, Clone)]
pub(super) enum PushSort {
    /// `$sort: 1 | -1`: whole elements.
    Elements { descending: bool },
    /// `$sort: {field: ±1}`: embedded documents by fields.
    Fields(SortSpec),
}

/// A parsed `$push` argument.
#[derive(Debug, Clone)]
pub(super) struct PushSpec {
    pub(super) values: Vec<Bson>,
    pub(super) position: Option<i64>,
    pub(super) slice: Option<i64>,
    pub(super) sort: Option<PushSort>,
}

/// What `$pull` removes.
#[derive(Debug, Clone)]
pub(super) enum PullCondition {
    /// Elements equal to a value.
    Equal(Bson),
    /// Strings matching a regex.
    Regex(Pattern),
    /// Elements satisfying operators (`{$gte: 6}`), matched as a filter on a wrapper `{"": element}`.
    Operators(Filter),
    /// Embedded documents matching a query (`{score: 8}`).
    Query(Filter),
}

fn require_array(current: Option<Bson>, operator: &str, path: &str) -> Result<Vec<Bson>, QueryError> {
    match current {
        None => Ok(Vec::new()),
        Some(Bson::Array(items)) => Ok(items),
        Some(other) => Err(QueryError::bad_value(format!(
            "The field '{path}' must be an array but is of type {} in document, so {operator} cannot apply",
            type_name(Some(&other))
        ))),
    }
}

pub(super) fn push(current: Option<Bson>, spec: &PushSpec, path: &str) -> Result<Option<Vec<Bson>>, QueryError> {
    let mut items = require_array(current, "$push", path)?;
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let at = match spec.position {
        None => items.len(),
        Some(p) if p < 0 => usize::try_from((len + p).max(0)).unwrap_or(0),
        Some(p) => usize::try_from(p.min(len)).unwrap_or(items.len()),
    };
    items.splice(at..at, spec.values.iter().cloned());
    match &spec.sort {
        Some(PushSort::Elements { descending }) => {
            items.sort_by(|a, b| directed(compare_bson(a, b), *descending));
        }
        Some(PushSort::Fields(sort)) => items.sort_by(|a, b| sort.compare(&as_document(a), &as_document(b))),
        None => {}
    }
    if let Some(slice) = spec.slice {
        let keep = usize::try_from(slice.unsigned_abs()).unwrap_or(usize::MAX);
        if slice >= 0 {
            items.truncate(keep);
        } else if items.len() > keep {
            items.drain(..items.len() - keep);
        }
    }
    Ok(Some(items))
}

fn directed(ordering: Ordering, descending: bool) -> Ordering {
    if descending { ordering.reverse() } else { ordering }
}

fn as_document(value: &Bson) -> Document {
    match value {
        Bson::Document(doc) => doc.clone(),
        _ => Document::new(),
    }
}

pub(super) fn add_to_set(current: Option<Bson>, values: &[Bson], path: &str) -> Result<Option<Vec<Bson>>, QueryError> {
    let mut items = match current {
        None => Vec::new(),
        Some(Bson::Array(items)) => items,
        Some(other) => {
            return Err(QueryError::bad_value(format!(
                "Cannot apply $addToSet to non-array field. Field named '{path}' has non-array type {}",
                type_name(Some(&other))
            )));
        }
    };
    for value in values {
        if !items.iter().any(|existing| bson_equal(existing, value)) {
            items.push(value.clone());
        }
    }
    Ok(Some(items))
}

pub(super) fn pop(current: Option<Bson>, first: bool, path: &str) -> Result<Option<Vec<Bson>>, QueryError> {
    match current {
        None => Ok(None),
        Some(Bson::Array(mut items)) => {
            if first && !items.is_empty() {
                items.remove(0);
            } else {
                items.pop();
            }
            Ok(Some(items))
        }
        Some(other) => Err(QueryError::type_mismatch(format!(
            "Path '{path}' contains an element of non-array type '{}'",
            type_name(Some(&other))
        ))),
    }
}

pub(super) fn pull(current: Option<Bson>, condition: &PullCondition) -> Result<Option<Vec<Bson>>, QueryError> {
    match current {
        None => Ok(None),
        Some(Bson::Array(mut items)) => {
            items.retain(|item| !condition.removes(item));
            Ok(Some(items))
        }
        Some(_) => Err(QueryError::bad_value("Cannot apply $pull to a non-array value")),
    }
}

pub(super) fn pull_all(current: Option<Bson>, values: &[Bson]) -> Result<Option<Vec<Bson>>, QueryError> {
    match current {
        None => Ok(None),
        Some(Bson::Array(mut items)) => {
            items.retain(|item| !values.iter().any(|v| bson_equal(item, v)));
            Ok(Some(items))
        }
        Some(_) => Err(QueryError::bad_value("Cannot apply $pullAll to a non-array value")),
    }
}

impl PullCondition {
    fn removes(&self, item: &Bson) -> bool {
        match self {
            PullCondition::Equal(value) => bson_equal(item, value),
            PullCondition::Regex(pattern) => pattern.matches(item),
            PullCondition::Operators(filter) => {
                let mut wrapper = Document::new();
                wrapper.insert("", item.clone());
                filter.matches(&wrapper)
            }
            PullCondition::Query(filter) => matches!(item, Bson::Document(doc) if filter.matches(doc)),
        }
    }
}

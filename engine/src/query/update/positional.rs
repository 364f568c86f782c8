//! Positional update paths: `$` (the array element the query matched), `$[]` (every element) and
//! `$[<identifier>]` (the elements its array filter accepts), expanded into concrete paths against the
//! document before each action applies.
use std::collections::HashSet;

use bson::{Bson, Document};

use crate::query::QueryError;
use crate::query::filter::Filter;
use crate::query::path;

/// One segment of an update path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment<'a> {
    Field(&'a str),
    /// `$`
    Matched,
    /// `$[]`
    All,
    /// `$[identifier]`
    Filtered(&'a str),
}

pub(super) fn segment(text: &str) -> Segment<'_> {
    if text == "$" {
        return Segment::Matched;
    }
    match text.strip_prefix("$[").and_then(|rest| rest.strip_suffix(']')) {
        Some("") => Segment::All,
        Some(id) => Segment::Filtered(id),
        None => Segment::Field(text),
    }
}

/// Whether a path has any positional segment.
pub(super) fn is_positional(dotted: &str) -> bool {
    dotted.split('.').any(|s| !matches!(segment(s), Segment::Field(_)))
}

/// The identifiers a path's `$[<identifier>]` segments name.
pub(super) fn identifiers(dotted: &str) -> impl Iterator<Item = &str> {
    dotted.split('.').filter_map(|s| match segment(s) {
        Segment::Filtered(id) => Some(id),
        _ => None,
    })
}

/// Checks where positional segments may appear: never first, and `$` at most once.
pub(super) fn validate(dotted: &str) -> Result<(), QueryError> {
    let mut segments = dotted.split('.');
    if segments
        .next()
        .is_some_and(|first| segment(first) != Segment::Field(first))
    {
        return Err(QueryError::bad_value(format!(
            "Cannot have positional (i.e. '$') element in the first position in path '{dotted}'"
        )));
    }
    if dotted.split('.').filter(|s| segment(s) == Segment::Matched).count() > 1 {
        return Err(QueryError::bad_value(format!(
            "Too many positional (i.e. '$') elements found in path '{dotted}'"
        )));
    }
    Ok(())
}

/// A parsed `arrayFilters` entry: the identifier it defines and the filter an element must match (applied
/// to `{identifier: element}`).
#[derive(Debug, Clone)]
pub(super) struct ArrayFilter {
    pub(super) id: String,
    filter: Filter,
}

impl ArrayFilter {
    fn accepts(&self, element: &Bson) -> bool {
        let mut wrapper = Document::new();
        wrapper.insert(self.id.clone(), element.clone());
        self.filter.matches(&wrapper)
    }
}

/// Parses `arrayFilters`: one identifier per filter (the first segment of every top-level field), an
/// alphanumeric name starting with a lowercase letter, each defined once.
pub(super) fn parse_array_filters(filters: &[Document]) -> Result<Vec<ArrayFilter>, QueryError> {
    let mut parsed: Vec<ArrayFilter> = Vec::with_capacity(filters.len());
    for filter in filters {
        let id = filter_identifier(filter)?;
        if parsed.iter().any(|f| f.id == id) {
            return Err(QueryError::failed_to_parse(format!(
                "Found multiple array filters with the same top-level field name {id}"
            )));
        }
        parsed.push(ArrayFilter {
            filter: Filter::parse(filter)?,
            id,
        });
    }
    Ok(parsed)
}

fn filter_identifier(filter: &Document) -> Result<String, QueryError> {
    let mut id: Option<&str> = None;
    for key in filter.keys() {
        let first = key.split('.').next().unwrap_or("");
        match id {
            None => id = Some(first),
            Some(seen) if seen != first => {
                return Err(QueryError::failed_to_parse(format!(
                    "Error parsing array filter :: caused by :: Expected a single top-level field name, found '{seen}' and '{first}'"
                )));
            }
            Some(_) => {}
        }
    }
    let Some(id) = id else {
        return Err(QueryError::failed_to_parse(
            "Cannot use an expression without a top-level field name in arrayFilters",
        ));
    };
    let well_formed =
        id.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !well_formed {
        return Err(QueryError::bad_value(format!(
            "Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '{id}'"
        )));
    }
    Ok(id.to_string())
}

/// Checks every identifier used has a filter and every filter is used (mongod's two errors).
pub(super) fn check_identifiers<'a>(
    paths: impl Iterator<Item = &'a str>,
    filters: &[ArrayFilter],
    update: &Document,
) -> Result<(), QueryError> {
    let mut used = HashSet::new();
    for dotted in paths {
        for id in identifiers(dotted) {
            if !filters.iter().any(|f| f.id == id) {
                return Err(QueryError::bad_value(format!(
                    "No array filter found for identifier '{id}' in path '{dotted}'"
                )));
            }
            used.insert(id.to_string());
        }
    }
    unused_filter(filters, &used, update)
}

/// Fails for the first filter not in `used`.
pub(super) fn unused_filter(
    filters: &[ArrayFilter],
    used: &HashSet<String>,
    update: &Document,
) -> Result<(), QueryError> {
    match filters.iter().find(|f| !used.contains(&f.id)) {
        Some(unused) => Err(QueryError::failed_to_parse(format!(
            "The array filter for identifier '{}' was not used in the update {update}",
            unused.id
        ))),
        None => Ok(()),
    }
}

/// The concrete paths a positional path stands for in `doc`: `$` becomes `matched`, `$[]` every index of
/// the array there, `$[id]` the indexes whose elements the filter accepts.
pub(super) fn expand(
    doc: &Document,
    dotted: &str,
    matched: Option<usize>,
    filters: &[ArrayFilter],
) -> Result<Vec<String>, QueryError> {
    let mut prefixes = vec![String::new()];
    for text in dotted.split('.') {
        let mut next = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            match segment(text) {
                Segment::Field(name) => next.push(join(&prefix, name)),
                Segment::Matched => {
                    let index = matched.ok_or_else(|| {
                        QueryError::bad_value("The positional operator did not find the match needed from the query.")
                    })?;
                    next.push(join(&prefix, &index.to_string()));
                }
                Segment::All | Segment::Filtered(_) => {
                    let items = array_at(doc, &prefix)?;
                    let filter = match segment(text) {
                        Segment::Filtered(id) => filters.iter().find(|f| f.id == id),
                        _ => None,
                    };
                    for (i, item) in items.iter().enumerate() {
                        if filter.is_none_or(|f| f.accepts(item)) {
                            next.push(join(&prefix, &i.to_string()));
                        }
                    }
                }
            }
        }
        prefixes = next;
    }
    Ok(prefixes)
}

fn join(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// The array an all-elements or filtered segment applies to.
fn array_at<'a>(doc: &'a Document, prefix: &str) -> Result<&'a Vec<Bson>, QueryError> {
    match path::lookup(doc, prefix) {
        Some(Bson::Array(items)) => Ok(items),
        Some(other) => Err(QueryError::bad_value(format!(
            "Cannot apply array updates to non-array element {}: {other}",
            prefix.rsplit('.').next().unwrap_or(prefix)
        ))),
        None => Err(QueryError::bad_value(format!(
            "The path '{prefix}' must exist in the document in order to apply array updates."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    #[test]
    fn segments_are_recognised() {
        assert_eq!(segment("$"), Segment::Matched);
        assert_eq!(segment("$[]"), Segment::All);
        assert_eq!(segment("$[elem]"), Segment::Filtered("elem"));
        assert_eq!(segment("a"), Segment::Field("a"));
        assert!(is_positional("a.$[].b") && !is_positional("a.b"));
    }

    #[test]
    fn expansion_follows_the_document() -> Result<(), QueryError> {
        let filters = parse_array_filters(&[doc! {"x": {"$gt": 1}}])?;
        let doc = doc! {"a": [[1, 2], [3]], "b": [5, 6]};
        assert_eq!(expand(&doc, "a.$[].$[x]", None, &filters)?, vec!["a.0.1", "a.1.0"]);
        assert_eq!(expand(&doc, "b.$", Some(1), &filters)?, vec!["b.1"]);
        assert_eq!(expand(&doc, "b.$", None, &filters).map_err(|e| e.code), Err(2));
        assert_eq!(expand(&doc, "c.$[]", None, &filters).map_err(|e| e.code), Err(2));
        Ok(())
    }

    #[test]
    fn expanded_paths_that_meet_conflict() {
        let conflict = |update: Document| {
            let mut doc = doc! {"_id": 1, "a": [1, 2]};
            super::super::Update::parse(&update)
                .and_then(|u| u.apply(&mut doc, false, bson::DateTime::from_millis(0)))
                .err()
                .map(|e| e.code)
        };
        assert_eq!(conflict(doc! {"$set": {"a.$[]": 0, "a.1": 5}}), Some(40));
        assert_eq!(conflict(doc! {"$inc": {"a.$[]": 1}}), None);
    }
}

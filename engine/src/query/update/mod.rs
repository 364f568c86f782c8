//! Update documents: a replacement, or update operators (`$set`, `$inc`, `$push`, ...).
//!
//! Operator updates are parsed into field actions sorted by path (MongoDB 5.0+ applies them in that order, so new
//! fields appear in lexicographic order), with conflicting paths rejected (code 40). Applying works on a copy of
//! the document and only commits when every action succeeded and `_id` is unchanged (code 66). Positional paths
//! (`$`, `$[]`, `$[<identifier>]` with `arrayFilters`) are expanded against the document before their action
//! applies (`positional`).
mod actions;
mod arrays;
mod parse;
mod positional;

use std::borrow::Cow;

use bson::{Bson, DateTime, Document};

use super::QueryError;
use super::compare::bson_equal;
use actions::Action;

/// A parsed update.
#[derive(Debug, Clone)]
pub enum Update {
    /// A whole new document (keeps the existing `_id`).
    Replacement(Document),
    /// Update operators applied field by field.
    Operators(OperatorUpdate),
    /// A pipeline-style update: aggregation stages (`$set`, `$unset`, `$project`, `$replaceWith`, ...) whose
    /// one output document replaces the document (keeping its `_id`).
    Pipeline(Vec<Document>),
}

/// The field actions of an operator update, in application order.
#[derive(Debug, Clone)]
pub struct OperatorUpdate {
    actions: Vec<Action>,
    array_filters: Vec<positional::ArrayFilter>,
}

impl Update {
    /// Parses an update document. A document whose first field starts with `$` is an operator update; anything
    /// else (including `{}`) is a replacement. Pipeline updates (arrays) are the caller's to handle.
    pub fn parse(update: &Document) -> Result<Update, QueryError> {
        Update::parse_with_array_filters(update, &[])
    }

    /// [`Update::parse`] with the statement's `arrayFilters`, each of which must define an identifier a
    /// `$[<identifier>]` path uses (and every identifier used must have one).
    pub fn parse_with_array_filters(update: &Document, array_filters: &[Document]) -> Result<Update, QueryError> {
        let filters = positional::parse_array_filters(array_filters)?;
        let is_operators = update.keys().next().is_some_and(|k| k.starts_with('$'));
        if is_operators {
            let actions = parse::parse_operators(update)?;
            positional::check_identifiers(actions.iter().map(|a| a.path.as_str()), &filters, update)?;
            return Ok(Update::Operators(OperatorUpdate {
                actions,
                array_filters: filters,
            }));
        }
        if let Some(key) = update.keys().find(|k| k.starts_with('$')) {
            return Err(QueryError::dollar_prefixed(format!(
                "The dollar ($) prefixed field '{key}' in '{key}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
            )));
        }
        positional::unused_filter(&filters, &Default::default(), update)?;
        Ok(Update::Replacement(update.clone()))
    }

    /// Parses a pipeline-style update (the stages an update may run; no `arrayFilters`).
    pub fn parse_pipeline(stages: &[Document], array_filters: &[Document]) -> Result<Update, QueryError> {
        if !array_filters.is_empty() {
            return Err(QueryError::failed_to_parse(
                "arrayFilters may not be specified for pipeline-syle updates",
            ));
        }
        super::pipeline::check_update_pipeline(stages)?;
        Ok(Update::Pipeline(stages.to_vec()))
    }

    /// Whether a path uses the positional `$` (so the caller must say which array element the query matched).
    pub fn uses_matched_position(&self) -> bool {
        match self {
            Update::Operators(update) => update.actions.iter().any(|a| a.path.split('.').any(|s| s == "$")),
            _ => false,
        }
    }

    /// Whether this is a replacement.
    pub fn is_replacement(&self) -> bool {
        matches!(self, Update::Replacement(_))
    }

    /// Applies the update to `doc` in place and returns whether the document changed. On error `doc` is left
    /// untouched, including when the result would be nested deeper than
    /// [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH) (Overflow, code 15). `is_upsert_insert` enables
    /// `$setOnInsert`; `now` feeds `$currentDate`.
    pub fn apply(&self, doc: &mut Document, is_upsert_insert: bool, now: DateTime) -> Result<bool, QueryError> {
        self.apply_matched(doc, is_upsert_insert, now, None)
    }

    /// [`Update::apply`] where the query matched `doc` through the array element at `matched` (what the
    /// positional `$` stands for; see [`Filter::matched_array_index`](crate::query::filter::Filter)).
    pub fn apply_matched(
        &self,
        doc: &mut Document,
        is_upsert_insert: bool,
        now: DateTime,
        matched: Option<usize>,
    ) -> Result<bool, QueryError> {
        let updated = match self {
            Update::Replacement(replacement) => replace(doc, replacement)?,
            Update::Pipeline(stages) => {
                let mut out = super::pipeline::run(stages, vec![doc.clone()], now)?;
                match (out.pop(), out.is_empty()) {
                    (Some(result), true) => replace(doc, &result)?,
                    _ => {
                        return Err(QueryError::new(
                            1,
                            "InternalError",
                            "a pipeline-style update must yield exactly one document",
                        ));
                    }
                }
            }
            Update::Operators(update) => {
                let mut working = doc.clone();
                for action in update.concrete_actions(doc, matched)?.iter() {
                    action.apply(&mut working, is_upsert_insert, now)?;
                }
                check_id_unchanged(doc, &working)?;
                working
            }
        };
        check_id_valid(&updated)?;
        // MongoDB's storage validation: an update may not leave a document deeper than it may be stored.
        if !crate::depth::document_within(&updated, crate::depth::MAX_DOCUMENT_DEPTH) {
            return Err(QueryError::document_too_deep());
        }
        let changed = updated != *doc;
        *doc = updated;
        Ok(changed)
    }
}

impl OperatorUpdate {
    /// The actions with their positional paths expanded against `doc` (as it was before the update), checked
    /// for conflicts between the concrete paths (code 40). Without positional paths, the parsed actions.
    fn concrete_actions(&self, doc: &Document, matched: Option<usize>) -> Result<Cow<'_, [Action]>, QueryError> {
        if !self.actions.iter().any(|a| positional::is_positional(&a.path)) {
            return Ok(Cow::Borrowed(&self.actions));
        }
        let mut concrete = Vec::with_capacity(self.actions.len());
        for action in &self.actions {
            if !positional::is_positional(&action.path) {
                concrete.push(action.clone());
                continue;
            }
            for path in positional::expand(doc, &action.path, matched, &self.array_filters)? {
                concrete.push(Action {
                    operator: action.operator,
                    path,
                    op: action.op.clone(),
                });
            }
        }
        parse::check_path_conflicts(concrete.iter().map(|a| a.path.as_str()).collect())?;
        Ok(Cow::Owned(concrete))
    }
}

fn replace(doc: &Document, replacement: &Document) -> Result<Document, QueryError> {
    let id = match (doc.get("_id"), replacement.get("_id")) {
        (Some(old), Some(new)) if !bson_equal(old, new) => {
            return Err(QueryError::immutable_field(format!(
                "After applying the update, the (immutable) field '_id' was found to have been altered to _id: {new}"
            )));
        }
        (Some(old), _) => Some(old.clone()),
        (None, new) => new.cloned(),
    };
    let mut out = Document::new();
    if let Some(id) = id {
        out.insert("_id", id);
    }
    for (key, value) in replacement {
        if key != "_id" {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

fn check_id_unchanged(before: &Document, after: &Document) -> Result<(), QueryError> {
    let Some(old) = before.get("_id") else {
        return Ok(());
    };
    match after.get("_id") {
        Some(new) if bson_equal(old, new) => Ok(()),
        _ => Err(QueryError::immutable_field(
            "Performing an update on the path '_id' would modify the immutable field '_id'",
        )),
    }
}

fn check_id_valid(doc: &Document) -> Result<(), QueryError> {
    let kind = match doc.get("_id") {
        Some(Bson::Array(_)) => "array",
        Some(Bson::RegularExpression(_)) => "regex",
        Some(Bson::Undefined) => "undefined",
        _ => return Ok(()),
    };
    Err(QueryError::new(
        53,
        "InvalidIdField",
        format!("The '_id' value cannot be of type {kind}"),
    ))
}

#[cfg(test)]
mod tests;

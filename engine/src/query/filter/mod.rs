//! Query filters (`find`, `update`, `delete`, `$match`): parsed once into a [`Filter`], matched many times.
//!
//! A filter is a tree of [`Clause`]s: logical operators over field clauses, each a path plus a [`Test`] on the
//! values the path reaches (see `traverse`). Matching follows MongoDB: `{a: 1}` matches `{a: [1, 2]}`;
//! `{a: [1, 2]}` matches the whole array; `{a: null}` matches a missing `a`; comparisons are type-bracketed;
//! negations (`$ne`, `$nin`, `$not`, `$nor`) hold when no reached value matches.
mod collated;
mod key_range;
mod parse;
mod test;

use std::sync::Arc;

use bson::{Bson, Document};

use super::collation::Collation;

use super::QueryError;
use super::expr::{Expr, is_truthy};
use super::path;
use super::traverse::reach;
pub use key_range::KeyRange;
pub(crate) use test::Test;

/// The maximum nesting of logical operators, `$elemMatch` and `$not` (mongod's limit is 100 too).
pub(crate) const MAX_DEPTH: usize = 100;

/// A node of a parsed filter.
#[derive(Debug, Clone)]
pub(crate) enum Clause {
    And(Vec<Clause>),
    Or(Vec<Clause>),
    Nor(Vec<Clause>),
    Field { path: Vec<String>, test: Test },
    Expr(Expr),
}

/// A compiled query filter.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Clause,
    /// Under a non-simple collation: the collation, and the filter with its operands turned into collation
    /// keys, matched against documents whose strings are keys too. `root` stays as given, for what needs the
    /// operands themselves (the `_id` lookup is not used, the upsert seed is built from it).
    collated: Option<(Arc<Collation>, Clause)>,
    /// `min`/`max` bounds on the hinted index's keys, which matching documents must also satisfy.
    key_range: Option<Arc<KeyRange>>,
}

impl Filter {
    /// Parses a filter document; unknown operators and malformed arguments are errors with MongoDB's codes.
    pub fn parse(filter: &Document) -> Result<Filter, QueryError> {
        if super::traverse::deeper_than(filter, 2 * MAX_DEPTH) {
            return Err(QueryError::bad_value(format!(
                "exceeded maximum query tree depth of {MAX_DEPTH}"
            )));
        }
        Ok(Filter {
            root: parse::parse_document(filter, 0)?,
            collated: None,
            key_range: None,
        })
    }

    /// Parses a filter to be matched under `collation` (`None`: the simple, binary one). Operators the
    /// collation cannot be applied to here (`$regex`, `$expr`, `$where`, ...) are NotImplemented (238).
    pub fn parse_collated(filter: &Document, collation: Option<&Arc<Collation>>) -> Result<Filter, QueryError> {
        let mut parsed = Filter::parse(filter)?;
        if let Some(collation) = collation {
            let keyed = collated::key_filter(collation, filter)?;
            parsed.collated = Some((collation.clone(), parse::parse_document(&keyed, 0)?));
        }
        Ok(parsed)
    }

    /// A filter that matches every document (`{}`).
    pub fn match_all() -> Filter {
        Filter {
            root: Clause::And(Vec::new()),
            collated: None,
            key_range: None,
        }
    }

    /// Whether `doc` satisfies the filter.
    /// The same filter, also requiring an index key within `range` (find's `min`/`max`).
    pub fn with_key_range(mut self, range: KeyRange) -> Filter {
        self.key_range = Some(Arc::new(range));
        self
    }

    pub fn matches(&self, doc: &Document) -> bool {
        if self.key_range.as_ref().is_some_and(|range| !range.contains(doc)) {
            return false;
        }
        match &self.collated {
            None => self.root.matches(doc),
            Some((collation, clause)) => clause.matches(&collation.key_document(doc)),
        }
    }

    /// The `_id` value when the filter pins `_id` by equality (`{_id: v}`, `{_id: {$eq: v}}`, or either inside
    /// a top-level `$and`).
    pub fn id_equality(&self) -> Option<&Bson> {
        if self.collated.is_some() {
            // Under a collation other `_id`s can match too (`"a"` and `"A"`): no lookup by key.
            return None;
        }
        self.root.id_equality()
    }

    /// The index of the array element through which `doc` matched: what the positional `$` update operator
    /// stands for. For a field clause whose path reaches an array, the first element that satisfies the
    /// clause; of several such clauses, the last (as mongod records it); `None` when no clause matched
    /// through an array.
    pub fn matched_array_index(&self, doc: &Document) -> Option<usize> {
        match &self.collated {
            None => self.root.matched_array_index(doc),
            Some((collation, clause)) => clause.matched_array_index(&collation.key_document(doc)),
        }
    }

    /// The document an upsert starts from: the filter's equality conditions on fields (including dotted paths
    /// and those inside `$and`). Conditions that cannot be laid out together are skipped.
    pub fn upsert_seed(&self) -> Document {
        let mut seed = Document::new();
        self.root.collect_equalities(&mut seed);
        seed
    }
}

impl Clause {
    pub(crate) fn matches(&self, doc: &Document) -> bool {
        match self {
            Clause::And(clauses) => clauses.iter().all(|c| c.matches(doc)),
            Clause::Or(clauses) => clauses.iter().any(|c| c.matches(doc)),
            Clause::Nor(clauses) => !clauses.iter().any(|c| c.matches(doc)),
            Clause::Field { path, test } => test.matches_reached(&reach(doc, path)),
            // A runtime error in $expr (e.g. $divide by zero) makes the document not match.
            Clause::Expr(expr) => expr.evaluate(doc).map(|v| is_truthy(v.as_ref())).unwrap_or(false),
        }
    }

    fn matched_array_index(&self, doc: &Document) -> Option<usize> {
        match self {
            Clause::And(clauses) => clauses.iter().rev().find_map(|c| c.matched_array_index(doc)),
            Clause::Or(clauses) => clauses
                .iter()
                .find(|c| c.matches(doc))
                .and_then(|c| c.matched_array_index(doc)),
            Clause::Field { path, test } => field_array_index(doc, path, test),
            Clause::Nor(_) | Clause::Expr(_) => None,
        }
    }

    fn id_equality(&self) -> Option<&Bson> {
        match self {
            Clause::Field { path, test } if path.len() == 1 && path[0] == "_id" => test.equality_operand(),
            Clause::And(clauses) => clauses.iter().find_map(Clause::id_equality),
            _ => None,
        }
    }

    fn collect_equalities(&self, seed: &mut Document) {
        match self {
            Clause::Field { path: segments, test } => {
                if let Some(value) = test.equality_operand() {
                    let dotted = segments.join(".");
                    if !seed_conflicts(seed, &dotted) {
                        // A path blocked by an earlier equality (e.g. `a: 1` then `a.b: 2`) is skipped.
                        let _ = path::set(seed, &dotted, value.clone());
                    }
                }
            }
            Clause::And(clauses) => clauses.iter().for_each(|c| c.collect_equalities(seed)),
            _ => {}
        }
    }
}

/// The first element of the first array on `path` in `doc` through which `test` holds: at the end of the
/// path, an element that satisfies the test itself; inside it, an embedded document whose rest of the path
/// satisfies it. A numeric segment right after the array indexes it and records no position.
fn field_array_index(doc: &Document, path: &[String], test: &Test) -> Option<usize> {
    let mut current = doc;
    for (at, segment) in path.iter().enumerate() {
        let rest = &path[at + 1..];
        match current.get(segment)? {
            Bson::Array(items) if rest.is_empty() => return items.iter().position(|item| test.matches_element(item)),
            Bson::Array(_) if super::traverse::array_index(&rest[0]).is_some() => return None,
            Bson::Array(items) => {
                return items
                    .iter()
                    .position(|item| matches!(item, Bson::Document(d) if test.matches_reached(&reach(d, rest))));
            }
            Bson::Document(inner) if !rest.is_empty() => current = inner,
            _ => return None,
        }
    }
    None
}

/// Whether `dotted` is already set in the seed or is a prefix of a field already set.
fn seed_conflicts(seed: &Document, dotted: &str) -> bool {
    path::lookup(seed, dotted).is_some()
}

#[cfg(test)]
mod tests;

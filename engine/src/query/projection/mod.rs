//! Projections: `find`'s `projection` and the `$project` / `$unset` stages.
//!
//! A projection is either an *inclusion* (listed fields, plus computed fields, plus `_id` unless excluded) or
//! an *exclusion* (everything but the listed fields); mixing is error 31254 / 31253 as in MongoDB. Dotted paths
//! and nested specs build one tree; `{a: 1, "a.b": 1}` is a path collision (31250). In `find`, `$slice` keeps
//! the mode it finds and `$elemMatch` counts as an inclusion.
mod apply;
mod parse;

use bson::Document;

use super::QueryError;
use super::expr::Expr;
use super::filter::Filter;

/// Where a projection comes from: `find` allows `$slice` / `$elemMatch`; `$project` treats every operator as
/// an aggregation expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionContext {
    Find,
    Aggregate,
}

/// What a projection does to one field.
#[derive(Debug, Clone)]
enum Item {
    Include,
    Exclude,
    Computed(Expr),
    Child(Node),
    Slice { skip: Option<i64>, limit: i64 },
    ElemMatch(Filter),
}

/// One level of the projection tree, in specification order.
#[derive(Debug, Clone, Default)]
struct Node {
    fields: Vec<(String, Item)>,
}

impl Node {
    fn get(&self, name: &str) -> Option<&Item> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, item)| item)
    }
}

/// A parsed projection.
#[derive(Debug, Clone)]
pub struct Projection {
    inclusion: bool,
    include_id: bool,
    root: Node,
}

impl Projection {
    /// Parses a `find` projection.
    pub fn parse(spec: &Document) -> Result<Projection, QueryError> {
        parse::parse(spec, ProjectionContext::Find)
    }

    /// Parses a projection in the given context.
    pub fn parse_in(spec: &Document, context: ProjectionContext) -> Result<Projection, QueryError> {
        parse::parse(spec, context)
    }

    /// An exclusion of the given dotted paths (the `$unset` stage).
    pub fn exclusion_of(paths: &[String]) -> Result<Projection, QueryError> {
        let spec: Document = paths.iter().map(|p| (p.clone(), bson::Bson::Int32(0))).collect();
        parse::parse(&spec, ProjectionContext::Aggregate)
    }

    /// Projects `doc` (`find`). A computed field whose expression fails at run time is left out; a result
    /// nested deeper than [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH) is Overflow (15).
    pub fn apply(&self, doc: &Document) -> Result<Document, QueryError> {
        within_depth(apply::project(self, doc, false)?)
    }

    /// Projects `doc`, failing if a computed field's expression fails (what `$project` does) or if the result
    /// is nested deeper than [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH).
    pub fn try_apply(&self, doc: &Document) -> Result<Document, QueryError> {
        within_depth(apply::project(self, doc, true)?)
    }

    /// Whether this is an inclusion projection.
    pub fn is_inclusion(&self) -> bool {
        self.inclusion
    }
}

/// Computed fields can build a document deeper than any input (a long path holding a deep literal): what a
/// projection returns is held to the same limit as what is stored.
fn within_depth(doc: Document) -> Result<Document, QueryError> {
    if crate::depth::document_within(&doc, crate::depth::MAX_DOCUMENT_DEPTH) {
        Ok(doc)
    } else {
        Err(QueryError::document_too_deep())
    }
}

#[cfg(test)]
mod tests;

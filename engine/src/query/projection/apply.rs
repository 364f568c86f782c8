//! Applying a projection tree to a document.
use bson::{Bson, Document};

use super::{Item, Node, Projection};
use crate::query::QueryError;

pub(super) fn project(projection: &Projection, doc: &Document, strict: bool) -> Result<Document, QueryError> {
    let context = Context { root: doc, strict };
    if projection.inclusion {
        let mut out = Document::new();
        if projection.include_id
            && let Some(id) = doc.get("_id")
        {
            out.insert("_id", id.clone());
        }
        include_into(&projection.root, doc, &mut out, &context, true)?;
        Ok(out)
    } else {
        exclude(&projection.root, doc)
    }
}

struct Context<'a> {
    root: &'a Document,
    strict: bool,
}

impl Context<'_> {
    fn evaluate(&self, expr: &crate::query::expr::Expr) -> Result<Option<Bson>, QueryError> {
        match expr.evaluate(self.root) {
            Ok(value) => Ok(value),
            Err(error) if self.strict => Err(error),
            Err(_) => Ok(None),
        }
    }
}

fn include_into(node: &Node, doc: &Document, out: &mut Document, cx: &Context, top: bool) -> Result<(), QueryError> {
    for (name, value) in doc {
        if top && name == "_id" {
            continue;
        }
        let projected = match node.get(name) {
            Some(Item::Include) => Some(value.clone()),
            Some(Item::Child(child)) => include_value(child, value, cx)?,
            Some(Item::Slice { skip, limit }) => Some(slice(value, *skip, *limit)),
            Some(Item::ElemMatch(filter)) => first_matching(filter, value),
            _ => None,
        };
        if let Some(projected) = projected {
            out.insert(name.clone(), projected);
        }
    }
    add_computed(node, out, cx)
}

/// Computed fields (and subtrees containing them that the document lacks) go after the included fields.
fn add_computed(node: &Node, out: &mut Document, cx: &Context) -> Result<(), QueryError> {
    for (name, item) in &node.fields {
        match item {
            Item::Computed(expr) => {
                if let Some(value) = cx.evaluate(expr)? {
                    out.insert(name.clone(), value);
                }
            }
            Item::Child(child) if !out.contains_key(name) && has_computed(child) => {
                let mut sub = Document::new();
                add_computed(child, &mut sub, cx)?;
                out.insert(name.clone(), sub);
            }
            _ => {}
        }
    }
    Ok(())
}

fn has_computed(node: &Node) -> bool {
    node.fields.iter().any(|(_, item)| match item {
        Item::Computed(_) => true,
        Item::Child(child) => has_computed(child),
        _ => false,
    })
}

fn include_value(node: &Node, value: &Bson, cx: &Context) -> Result<Option<Bson>, QueryError> {
    match value {
        Bson::Document(inner) => {
            let mut out = Document::new();
            include_into(node, inner, &mut out, cx, false)?;
            Ok(Some(Bson::Document(out)))
        }
        Bson::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(projected) = include_value(node, item, cx)? {
                    out.push(projected);
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        _ if has_computed(node) => {
            let mut out = Document::new();
            add_computed(node, &mut out, cx)?;
            Ok(Some(Bson::Document(out)))
        }
        _ => Ok(None),
    }
}

fn exclude(node: &Node, doc: &Document) -> Result<Document, QueryError> {
    let mut out = Document::new();
    for (name, value) in doc {
        let kept = match node.get(name) {
            Some(Item::Exclude) => None,
            Some(Item::Child(child)) => Some(exclude_value(child, value)?),
            Some(Item::Slice { skip, limit }) => Some(slice(value, *skip, *limit)),
            _ => Some(value.clone()),
        };
        if let Some(kept) = kept {
            out.insert(name.clone(), kept);
        }
    }
    Ok(out)
}

fn exclude_value(node: &Node, value: &Bson) -> Result<Bson, QueryError> {
    Ok(match value {
        Bson::Document(inner) => Bson::Document(exclude(node, inner)?),
        Bson::Array(items) => Bson::Array(
            items
                .iter()
                .map(|item| exclude_value(node, item))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// `$slice: n` (first n, or last -n) or `$slice: [skip, limit]` on arrays; other values pass through.
fn slice(value: &Bson, skip: Option<i64>, limit: i64) -> Bson {
    let Bson::Array(items) = value else {
        return value.clone();
    };
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let (start, count) = match skip {
        None if limit >= 0 => (0, limit),
        None => ((len + limit).max(0), len),
        Some(skip) if skip >= 0 => (skip.min(len), limit),
        Some(skip) => ((len + skip).max(0), limit),
    };
    let start = usize::try_from(start).unwrap_or(items.len());
    let count = usize::try_from(count).unwrap_or(0);
    Bson::Array(items.iter().skip(start).take(count).cloned().collect())
}

fn first_matching(filter: &crate::query::filter::Filter, value: &Bson) -> Option<Bson> {
    let Bson::Array(items) = value else {
        return None;
    };
    items
        .iter()
        .find(|item| match item {
            Bson::Document(element) => filter.matches(element),
            _ => false,
        })
        .map(|found| Bson::Array(vec![found.clone()]))
}

//! Building the projection tree from a specification document.
use bson::{Bson, Document};

use super::{Item, Node, Projection, ProjectionContext};
use crate::query::QueryError;
use crate::query::expr::{Expr, is_truthy};
use crate::query::filter::Filter;
use crate::query::numeric::Number;

/// Which mode the fields seen so far have fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Undecided,
    Inclusion,
    Exclusion,
}

/// The deepest nesting a projection specification may have.
const MAX_SPEC_DEPTH: usize = 200;

pub(super) fn parse(spec: &Document, context: ProjectionContext) -> Result<Projection, QueryError> {
    if crate::query::traverse::deeper_than(spec, MAX_SPEC_DEPTH) {
        return Err(QueryError::bad_value(format!(
            "projection nesting exceeds the maximum depth of {MAX_SPEC_DEPTH}"
        )));
    }
    let mut root = Node::default();
    let mut mode = Mode::Undecided;
    let mut include_id = true;
    let mut leaves = Vec::new();
    flatten(spec, "", context, &mut leaves)?;
    for (path, item) in leaves {
        if path == "_id" && matches!(item, Item::Include | Item::Exclude) {
            include_id = matches!(item, Item::Include);
            if !include_id {
                insert(&mut root, &path, Item::Exclude)?;
            }
            continue;
        }
        mode = next_mode(mode, &path, &item)?;
        insert(&mut root, &path, item)?;
    }
    // `{_id: 1}` alone is an inclusion of just `_id`.
    let only_id_included = mode == Mode::Undecided && include_id && spec.contains_key("_id");
    Ok(Projection {
        inclusion: mode == Mode::Inclusion || only_id_included,
        include_id,
        root,
    })
}

fn next_mode(mode: Mode, path: &str, item: &Item) -> Result<Mode, QueryError> {
    match (mode, item) {
        (Mode::Exclusion, Item::Include | Item::ElemMatch(_)) => Err(QueryError::location(
            31253,
            format!("Cannot do inclusion on field {path} in exclusion projection"),
        )),
        (Mode::Exclusion, Item::Computed(_)) => Err(QueryError::location(
            31252,
            format!("Cannot use expression for field {path} in exclusion projection"),
        )),
        (Mode::Inclusion, Item::Exclude) => Err(QueryError::location(
            31254,
            format!("Cannot do exclusion on field {path} in inclusion projection"),
        )),
        (_, Item::Include | Item::Computed(_) | Item::ElemMatch(_)) => Ok(Mode::Inclusion),
        (_, Item::Exclude) => Ok(Mode::Exclusion),
        (current, _) => Ok(current),
    }
}

/// Turns nested specs (`{a: {b: 1}}`) into dotted leaves (`a.b: 1`).
fn flatten(
    spec: &Document,
    prefix: &str,
    context: ProjectionContext,
    out: &mut Vec<(String, Item)>,
) -> Result<(), QueryError> {
    for (field, value) in spec {
        if field.is_empty() || field.split('.').any(str::is_empty) {
            return Err(QueryError::location(
                15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if field.starts_with('$') {
            return Err(QueryError::location(
                16410,
                format!("FieldPath field names may not start with '$'. Got {field}"),
            ));
        }
        let path = if prefix.is_empty() {
            field.clone()
        } else {
            format!("{prefix}.{field}")
        };
        // Dotted names and nested specifications add up to one path; MongoDB's FieldPath bounds it.
        crate::query::path::check_length(&path)?;
        match value {
            Bson::Document(inner) if inner.is_empty() => {
                return Err(QueryError::location(
                    51270,
                    "An empty sub-projection is not a valid value.",
                ));
            }
            Bson::Document(inner) if !inner.keys().any(|k| k.starts_with('$')) => {
                flatten(inner, &path, context, out)?;
            }
            other => {
                let item = parse_item(&path, other, context)?;
                out.push((path, item));
            }
        }
    }
    Ok(())
}

fn parse_item(path: &str, value: &Bson, context: ProjectionContext) -> Result<Item, QueryError> {
    match value {
        Bson::Boolean(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            Ok(if is_truthy(Some(value)) {
                Item::Include
            } else {
                Item::Exclude
            })
        }
        Bson::Document(op) if context == ProjectionContext::Find && op.contains_key("$slice") => parse_slice(op),
        Bson::Document(op) if context == ProjectionContext::Find && op.contains_key("$elemMatch") => {
            if path.contains('.') {
                return Err(QueryError::bad_value(
                    "Cannot use $elemMatch projection on a nested field.",
                ));
            }
            match op.get("$elemMatch") {
                Some(Bson::Document(filter)) => Ok(Item::ElemMatch(Filter::parse(filter)?)),
                _ => Err(QueryError::bad_value("elemMatch: Invalid argument, object required.")),
            }
        }
        other => Ok(Item::Computed(Expr::parse(other)?)),
    }
}

fn parse_slice(op: &Document) -> Result<Item, QueryError> {
    let integer = |value: &Bson| Number::from_bson(value).and_then(Number::truncated_i64);
    match op.get("$slice") {
        Some(Bson::Array(args)) if args.len() == 2 => {
            let skip = integer(&args[0]).ok_or_else(|| QueryError::bad_value("$slice skip must be a number"))?;
            let limit = integer(&args[1]).ok_or_else(|| QueryError::bad_value("$slice limit must be a number"))?;
            if limit <= 0 {
                return Err(QueryError::bad_value("$slice limit must be positive"));
            }
            Ok(Item::Slice {
                skip: Some(skip),
                limit,
            })
        }
        Some(value) => match integer(value) {
            Some(limit) => Ok(Item::Slice { skip: None, limit }),
            None => Err(QueryError::bad_value(
                "$slice only supports numbers and [skip, limit] arrays",
            )),
        },
        None => Err(QueryError::bad_value(
            "$slice only supports numbers and [skip, limit] arrays",
        )),
    }
}

fn collision(path: &str) -> QueryError {
    QueryError::location(31250, format!("Path collision at {path}"))
}

/// Inserts `item` at the dotted `path`, creating child nodes; a leaf and a subtree at one path collide.
fn insert(root: &mut Node, path: &str, item: Item) -> Result<(), QueryError> {
    let segments: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segments.split_last() else {
        return Ok(());
    };
    let mut node = root;
    for segment in parents {
        let position = match node.fields.iter().position(|(name, _)| name == segment) {
            Some(position) => position,
            None => {
                node.fields.push((segment.to_string(), Item::Child(Node::default())));
                node.fields.len() - 1
            }
        };
        node = match &mut node.fields[position].1 {
            Item::Child(child) => child,
            _ => return Err(collision(path)),
        };
    }
    if node.fields.iter().any(|(name, _)| name == last) {
        return Err(collision(path));
    }
    node.fields.push((last.to_string(), item));
    Ok(())
}

//! Parsing the individual pipeline stages, and what the per-document ones do to one document.
use bson::{Bson, Document};

use super::group::GroupSpec;
use crate::query::expr::{Expr, type_name};
use crate::query::filter::Filter;
use crate::query::numeric::Number;
use crate::query::projection::{Projection, ProjectionContext};
use crate::query::sort::SortSpec;
use crate::query::{QueryError, path};

/// `$unwind`'s options.
#[derive(Debug, Clone)]
pub(super) struct UnwindSpec {
    path: String,
    include_array_index: Option<String>,
    preserve_null_and_empty: bool,
}

/// A parsed stage.
#[derive(Debug, Clone)]
pub(super) enum Stage {
    Match(Filter),
    Project(Projection),
    AddFields(Vec<(Vec<String>, Expr)>),
    Sort(SortSpec),
    Skip(u64),
    Limit(u64),
    Count(String),
    Unwind(UnwindSpec),
    ReplaceRoot(Expr),
    Group(GroupSpec),
}

impl Stage {
    pub(super) fn parse(spec: &Document) -> Result<Stage, QueryError> {
        let mut entries = spec.iter();
        let (Some((name, argument)), None) = (entries.next(), entries.next()) else {
            return Err(QueryError::location(
                40323,
                "A pipeline stage specification object must contain exactly one field.",
            ));
        };
        Ok(match name.as_str() {
            "$match" => Stage::Match(Filter::parse(object(
                argument,
                15959,
                "the match filter must be an expression in an object",
            )?)?),
            "$project" => Stage::Project(parse_project(argument)?),
            "$addFields" | "$set" => Stage::AddFields(parse_add_fields(argument, name)?),
            "$unset" => Stage::Project(parse_unset(argument)?),
            "$sort" => Stage::Sort(parse_sort(argument)?),
            "$skip" => Stage::Skip(parse_count_argument(argument, "$skip", 15956, false)?),
            "$limit" => Stage::Limit(parse_count_argument(argument, "$limit", 15958, true)?),
            "$count" => Stage::Count(parse_count_name(argument)?),
            "$unwind" => Stage::Unwind(parse_unwind(argument)?),
            "$replaceRoot" => Stage::ReplaceRoot(parse_replace_root(argument)?),
            "$replaceWith" => Stage::ReplaceRoot(Expr::parse(argument)?),
            "$group" => Stage::Group(GroupSpec::parse(object(
                argument,
                15947,
                "a group's fields must be specified in an object",
            )?)?),
            other => {
                return Err(QueryError::location(
                    40324,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                ));
            }
        })
    }

    /// Whether the stage can make a document deeper than its input (its output then needs a depth check).
    /// `$project` checks its own output.
    pub(super) fn builds_documents(&self) -> bool {
        matches!(
            self,
            Stage::AddFields(_) | Stage::Unwind(_) | Stage::ReplaceRoot(_) | Stage::Group(_)
        )
    }
}

fn object<'a>(argument: &'a Bson, code: i32, message: &str) -> Result<&'a Document, QueryError> {
    match argument {
        Bson::Document(doc) => Ok(doc),
        _ => Err(QueryError::location(code, message)),
    }
}

fn parse_project(argument: &Bson) -> Result<Projection, QueryError> {
    let spec = object(argument, 15969, "$project specification must be an object")?;
    if spec.is_empty() {
        return Err(QueryError::location(
            51272,
            "projection specification must have at least one field",
        ));
    }
    Projection::parse_in(spec, ProjectionContext::Aggregate)
}

fn parse_unset(argument: &Bson) -> Result<Projection, QueryError> {
    let error = || {
        QueryError::location(
            31002,
            "$unset specification must be a string or an array containing only string values",
        )
    };
    let paths: Vec<String> = match argument {
        Bson::String(field) => vec![field.clone()],
        Bson::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Bson::String(field) => Ok(field.clone()),
                _ => Err(error()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(error()),
    };
    Projection::exclusion_of(&paths)
}

fn parse_add_fields(argument: &Bson, name: &str) -> Result<Vec<(Vec<String>, Expr)>, QueryError> {
    let spec = object(
        argument,
        40272,
        &format!("{name} specification stage must be an object"),
    )?;
    let mut fields = Vec::with_capacity(spec.len());
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
        path::check_length(field)?;
        fields.push((field.split('.').map(str::to_string).collect(), Expr::parse(value)?));
    }
    Ok(fields)
}

fn parse_sort(argument: &Bson) -> Result<SortSpec, QueryError> {
    let spec = object(argument, 15973, "the $sort key specification must be an object")?;
    if spec.is_empty() {
        return Err(QueryError::location(
            15976,
            "$sort stage must have at least one sort key",
        ));
    }
    SortSpec::parse(spec)
}

fn parse_count_argument(argument: &Bson, stage: &str, code: i32, positive: bool) -> Result<u64, QueryError> {
    let value = Number::from_bson(argument)
        .and_then(Number::as_exact_i64)
        .ok_or_else(|| {
            QueryError::location(
                code,
                format!(
                    "invalid argument to {stage} stage: Expected an integer, got {}",
                    type_name(Some(argument))
                ),
            )
        })?;
    match u64::try_from(value) {
        Ok(0) if positive => Err(QueryError::location(code, "the limit must be positive")),
        Ok(n) => Ok(n),
        Err(_) => Err(QueryError::location(
            code,
            format!("invalid argument to {stage} stage: Expected a non-negative number, got {value}"),
        )),
    }
}

fn parse_count_name(argument: &Bson) -> Result<String, QueryError> {
    let Bson::String(name) = argument else {
        return Err(QueryError::location(
            40156,
            "the count field must be a non-empty string",
        ));
    };
    if name.is_empty() {
        return Err(QueryError::location(
            40157,
            "the count field must be a non-empty string",
        ));
    }
    if name.starts_with('$') {
        return Err(QueryError::location(
            40158,
            "the count field cannot be a $-prefixed path",
        ));
    }
    if name.contains('.') {
        return Err(QueryError::location(40160, "the count field cannot contain '.'"));
    }
    Ok(name.clone())
}

pub(super) fn count(total: usize, name: &str) -> Vec<Document> {
    if total == 0 {
        return Vec::new();
    }
    let value = i32::try_from(total)
        .map(Bson::Int32)
        .unwrap_or(Bson::Int64(i64::try_from(total).unwrap_or(i64::MAX)));
    let mut doc = Document::new();
    doc.insert(name, value);
    vec![doc]
}

fn unwind_path(text: &str) -> Result<String, QueryError> {
    match text.strip_prefix('$') {
        Some(rest) if !rest.is_empty() && !rest.starts_with('$') => {
            path::check_length(rest)?;
            Ok(rest.to_string())
        }
        _ => Err(QueryError::location(
            28818,
            "path option to $unwind stage should be prefixed with a '$'",
        )),
    }
}

fn parse_unwind(argument: &Bson) -> Result<UnwindSpec, QueryError> {
    let spec = match argument {
        Bson::String(text) => {
            return Ok(UnwindSpec {
                path: unwind_path(text)?,
                include_array_index: None,
                preserve_null_and_empty: false,
            });
        }
        Bson::Document(spec) => spec,
        _ => {
            return Err(QueryError::location(
                15981,
                "expected either a string or an object as specification for $unwind stage",
            ));
        }
    };
    let mut unwind = UnwindSpec {
        path: String::new(),
        include_array_index: None,
        preserve_null_and_empty: false,
    };
    for (key, value) in spec {
        match (key.as_str(), value) {
            ("path", Bson::String(text)) => unwind.path = unwind_path(text)?,
            ("includeArrayIndex", Bson::String(name)) if !name.is_empty() && !name.starts_with('$') => {
                path::check_length(name)?;
                unwind.include_array_index = Some(name.clone());
            }
            ("preserveNullAndEmptyArrays", Bson::Boolean(flag)) => unwind.preserve_null_and_empty = *flag,
            (other, _) => {
                return Err(QueryError::location(
                    28811,
                    format!("unrecognized option to $unwind stage: {other}"),
                ));
            }
        }
    }
    if unwind.path.is_empty() {
        return Err(QueryError::location(28812, "no path specified to $unwind stage"));
    }
    Ok(unwind)
}

impl UnwindSpec {
    /// The document `$unwind` yields for one array element.
    pub(super) fn element(&self, doc: &Document, item: Bson, index: usize) -> Document {
        let mut out = doc.clone();
        let _ = path::set(&mut out, &self.path, item);
        self.with_index(out, Bson::Int64(i64::try_from(index).unwrap_or(i64::MAX)))
    }

    fn with_index(&self, mut doc: Document, index: Bson) -> Document {
        if let Some(name) = &self.include_array_index {
            let _ = path::set(&mut doc, name, index);
        }
        doc
    }
}

/// What `$unwind` makes of one document: at most one document (`Ok`), or a non-empty array to yield element
/// by element with [`UnwindSpec::element`] (`Err`, with the document).
pub(super) fn unwind_one(doc: Document, spec: &UnwindSpec) -> Result<Option<Document>, (Document, Vec<Bson>)> {
    match path::lookup(&doc, &spec.path).cloned() {
        Some(Bson::Array(items)) if !items.is_empty() => Err((doc, items)),
        Some(Bson::Array(_)) if spec.preserve_null_and_empty => {
            // An empty array unwinds to a document without the field.
            let mut out = doc;
            path::unset(&mut out, &spec.path);
            Ok(Some(spec.with_index(out, Bson::Null)))
        }
        None | Some(Bson::Null) | Some(Bson::Undefined) | Some(Bson::Array(_)) => {
            if spec.preserve_null_and_empty {
                Ok(Some(spec.with_index(doc, Bson::Null)))
            } else {
                Ok(None)
            }
        }
        Some(_) => Ok(Some(spec.with_index(doc, Bson::Null))),
    }
}

fn parse_replace_root(argument: &Bson) -> Result<Expr, QueryError> {
    let spec = object(
        argument,
        40229,
        "expected an object as specification for $replaceRoot stage",
    )?;
    match (spec.len(), spec.get("newRoot")) {
        (1, Some(root)) => Expr::parse(root),
        _ => Err(QueryError::location(
            40231,
            "no newRoot specified for the $replaceRoot stage",
        )),
    }
}

pub(super) fn replace_root(doc: &Document, expr: &Expr) -> Result<Document, QueryError> {
    match expr.evaluate(doc)? {
        Some(Bson::Document(root)) => Ok(root),
        other => Err(QueryError::location(
            40228,
            format!(
                "'newRoot' expression must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'.",
                other
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "MISSING".to_string()),
                type_name(other.as_ref())
            ),
        )),
    }
}

pub(super) fn add_fields(doc: &Document, fields: &[(Vec<String>, Expr)]) -> Result<Document, QueryError> {
    let mut out = doc.clone();
    for (segments, expr) in fields {
        match expr.evaluate(doc)? {
            Some(value) => set_computed(&mut out, segments, value),
            None => remove_computed(&mut out, segments),
        }
    }
    Ok(out)
}

/// `$addFields` assignment: creates or replaces parents as documents, and assigns into every document of an
/// array parent.
fn set_computed(doc: &mut Document, segments: &[String], value: Bson) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        doc.insert(first.clone(), value);
        return;
    }
    match doc.get_mut(first) {
        Some(Bson::Document(child)) => set_computed(child, rest, value),
        Some(Bson::Array(items)) => {
            for item in items.iter_mut() {
                if !matches!(item, Bson::Document(_)) {
                    *item = Bson::Document(Document::new());
                }
                if let Bson::Document(child) = item {
                    set_computed(child, rest, value.clone());
                }
            }
        }
        _ => {
            let mut child = Document::new();
            set_computed(&mut child, rest, value);
            doc.insert(first.clone(), child);
        }
    }
}

fn remove_computed(doc: &mut Document, segments: &[String]) {
    path::unset(doc, &segments.join("."));
}

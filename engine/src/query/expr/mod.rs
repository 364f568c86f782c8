//! Aggregation expressions: `"$field.path"`, `"$$ROOT"`, literals, object and array expressions, and a core set
//! of operators (`$add`, `$eq`, `$cond`, `$concat`, `$size`, ...). Used by `$project`, `$addFields`, `$group`,
//! `$replaceRoot` and the `$expr` filter operator.
//!
//! Evaluation yields `Option<Bson>`, where `None` is a *missing* value (a field path that reaches nothing, or
//! `$$REMOVE`): object expressions drop fields whose value is missing.
mod fields;
mod operators;

use bson::{Bson, Document};

use super::QueryError;
use fields::{FieldOperation, FieldOperator};
pub use operators::{Operator, type_name};

/// The deepest nesting of documents and arrays an expression may have.
const MAX_EXPRESSION_DEPTH: usize = 200;

/// A parsed aggregation expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Literal(Bson),
    /// `"$a.b"`, or `"$$ROOT.a.b"` / `"$$CURRENT.a.b"` (segments after the variable).
    FieldPath(Vec<String>),
    /// `"$$REMOVE"`: evaluates to missing.
    Remove,
    Object(Vec<(String, Expr)>),
    Array(Vec<Expr>),
    Operation(Operator, Vec<Expr>),
    /// `$getField`, `$setField` or `$unsetField`.
    Field(Box<FieldOperation>),
}

impl Expr {
    /// Parses an expression from its BSON form.
    pub fn parse(value: &Bson) -> Result<Expr, QueryError> {
        if super::traverse::value_deeper_than(value, MAX_EXPRESSION_DEPTH) {
            return Err(QueryError::bad_value(format!(
                "expression nesting exceeds the maximum depth of {MAX_EXPRESSION_DEPTH}"
            )));
        }
        Expr::parse_unchecked(value)
    }

    fn parse_unchecked(value: &Bson) -> Result<Expr, QueryError> {
        match value {
            Bson::String(s) if s.starts_with("$$") => parse_variable(&s[2..]),
            Bson::String(s) if s.starts_with('$') => parse_field_path(&s[1..]).map(Expr::FieldPath),
            Bson::Document(doc) => parse_document(doc),
            Bson::Array(items) => items
                .iter()
                .map(Expr::parse_unchecked)
                .collect::<Result<_, _>>()
                .map(Expr::Array),
            other => Ok(Expr::Literal(other.clone())),
        }
    }

    /// Evaluates against the current document; `Ok(None)` is a missing value.
    pub fn evaluate(&self, root: &Document) -> Result<Option<Bson>, QueryError> {
        match self {
            Expr::Literal(value) => Ok(Some(value.clone())),
            Expr::FieldPath(segments) => Ok(field_path_value(root, segments)),
            Expr::Remove => Ok(None),
            Expr::Object(fields) => evaluate_object(fields, root).map(|doc| Some(Bson::Document(doc))),
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(item.evaluate(root)?.unwrap_or(Bson::Null));
                }
                Ok(Some(Bson::Array(out)))
            }
            Expr::Operation(operator, args) => operator.evaluate(args, root),
            Expr::Field(operation) => operation.evaluate(root),
        }
    }

    /// Whether this is a plain field path (used to recognise `$group` keys that are simple references).
    pub fn is_field_path(&self) -> bool {
        matches!(self, Expr::FieldPath(_))
    }
}

fn evaluate_object(fields: &[(String, Expr)], root: &Document) -> Result<Document, QueryError> {
    let mut out = Document::new();
    for (name, expr) in fields {
        if let Some(value) = expr.evaluate(root)? {
            out.insert(name.clone(), value);
        }
    }
    Ok(out)
}

/// Truthiness as aggregation defines it: false, null, missing, undefined and numeric zeros are false.
pub fn is_truthy(value: Option<&Bson>) -> bool {
    match value {
        None | Some(Bson::Null) | Some(Bson::Undefined) | Some(Bson::Boolean(false)) => false,
        Some(Bson::Int32(0)) | Some(Bson::Int64(0)) => false,
        Some(Bson::Double(d)) => *d != 0.0,
        Some(Bson::Decimal128(d)) => super::numeric::decimal_to_f64(d) != 0.0,
        Some(_) => true,
    }
}

fn parse_variable(text: &str) -> Result<Expr, QueryError> {
    let (name, rest) = match text.split_once('.') {
        Some((name, rest)) => (name, Some(rest)),
        None => (text, None),
    };
    match (name, rest) {
        ("ROOT" | "CURRENT", None) => Ok(Expr::FieldPath(Vec::new())),
        ("ROOT" | "CURRENT", Some(rest)) => parse_field_path(rest).map(Expr::FieldPath),
        ("REMOVE", None) => Ok(Expr::Remove),
        _ => Err(QueryError::location(
            17276,
            format!("Use of undefined variable: {name}"),
        )),
    }
}

fn parse_field_path(text: &str) -> Result<Vec<String>, QueryError> {
    if text.is_empty() {
        return Err(QueryError::location(16872, "'$' by itself is not a valid FieldPath"));
    }
    super::path::check_length(text)?;
    let segments: Vec<String> = text.split('.').map(str::to_string).collect();
    if segments.iter().any(String::is_empty) {
        return Err(QueryError::location(
            15998,
            "FieldPath field names may not be empty strings.",
        ));
    }
    if segments.iter().any(|s| s.starts_with('$')) {
        return Err(QueryError::location(
            16410,
            "FieldPath field names may not start with '$'.",
        ));
    }
    Ok(segments)
}

fn parse_document(doc: &Document) -> Result<Expr, QueryError> {
    let Some(first) = doc.keys().next() else {
        return Ok(Expr::Object(Vec::new()));
    };
    if first.starts_with('$') {
        if doc.len() != 1 {
            return Err(QueryError::location(
                15983,
                format!(
                    "an expression specification must contain exactly one field, the name of the expression. Found {} fields in {doc}",
                    doc.len()
                ),
            ));
        }
        let value = doc.get(first).unwrap_or(&Bson::Null);
        if let Some(operator) = FieldOperator::from_name(first) {
            return FieldOperation::parse(operator, value).map(|op| Expr::Field(Box::new(op)));
        }
        return Operator::parse(first, value);
    }
    let mut fields = Vec::with_capacity(doc.len());
    for (name, value) in doc {
        if name.starts_with('$') {
            return Err(QueryError::location(
                16410,
                format!("FieldPath field names may not start with '$'. Got {name}"),
            ));
        }
        fields.push((name.clone(), Expr::parse_unchecked(value)?));
    }
    Ok(Expr::Object(fields))
}

/// Aggregation field-path semantics: arrays along the path map to arrays of the values found in them.
pub fn field_path_value(root: &Document, segments: &[String]) -> Option<Bson> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(Bson::Document(root.clone()));
    };
    root.get(first).and_then(|value| descend(value, rest))
}

fn descend(value: &Bson, segments: &[String]) -> Option<Bson> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(value.clone());
    };
    match value {
        Bson::Document(doc) => doc.get(first).and_then(|child| descend(child, rest)),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter(|item| matches!(item, Bson::Document(_) | Bson::Array(_)))
                .filter_map(|item| descend(item, segments))
                .collect(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

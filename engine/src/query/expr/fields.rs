//! The field operators `$getField`, `$setField` and `$unsetField` (MongoDB 5.0): they read, set or remove a
//! field whose name is any string — one with dots or a leading `$` included — which field paths cannot reach.
//! The field name must be a constant string, as in MongoDB 5.0–7.1 (codes 4161106/4161107/4161108 for
//! `$setField` and `$unsetField`, 5654600/5654601/5654602 for `$getField`).
use bson::{Bson, Document};

use super::{Expr, operators::type_name};
use crate::query::QueryError;

/// Which field operator an expression is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Get,
    Set,
    Unset,
}

/// A parsed field operator: the constant field name, the input document and (for `$setField`) the value;
/// `$unsetField` is `$setField` with `$$REMOVE` as its value.
#[derive(Debug, Clone)]
pub struct FieldOperation {
    operator: FieldOperator,
    field: String,
    input: Box<Expr>,
    value: Box<Expr>,
}

impl FieldOperator {
    pub fn from_name(name: &str) -> Option<FieldOperator> {
        match name {
            "$getField" => Some(FieldOperator::Get),
            "$setField" => Some(FieldOperator::Set),
            "$unsetField" => Some(FieldOperator::Unset),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldOperator::Get => "$getField",
            FieldOperator::Set => "$setField",
            FieldOperator::Unset => "$unsetField",
        }
    }

    /// The codes for: not an object, unknown argument, no field, no value, no input, non-constant field,
    /// non-string field, field path given as the field.
    fn codes(self) -> [i32; 8] {
        match self {
            FieldOperator::Get => [3041700, 3041701, 3041702, 0, 3041703, 5654601, 5654602, 5654600],
            _ => [4161100, 4161101, 4161102, 4161103, 4161109, 4161106, 4161107, 4161108],
        }
    }
}

impl FieldOperation {
    /// Parses the operator's argument: `{field, input, value}` (`$getField` also takes a bare field name, and
    /// its `input` defaults to the current document).
    pub fn parse(operator: FieldOperator, argument: &Bson) -> Result<FieldOperation, QueryError> {
        let name = operator.name();
        let [
            not_object,
            unknown,
            no_field,
            no_value,
            no_input,
            not_constant,
            not_string,
            is_path,
        ] = operator.codes();
        let shorthand = |argument: &Bson| match argument {
            Bson::String(_) => true,
            // `{$getField: {$literal: "a.b"}}`: an expression for the field.
            Bson::Document(spec) => spec.keys().next().is_some_and(|k| k.starts_with('$')),
            _ => false,
        };
        let spec = match argument {
            _ if operator == FieldOperator::Get && shorthand(argument) => {
                let mut spec = Document::new();
                spec.insert("field", argument.clone());
                spec
            }
            Bson::Document(spec) => spec.clone(),
            _ => {
                return Err(QueryError::location(
                    not_object,
                    format!("{name} only supports an object as its argument"),
                ));
            }
        };
        let allowed: &[&str] = match operator {
            FieldOperator::Set => &["field", "input", "value"],
            _ => &["field", "input"],
        };
        if let Some(extra) = spec.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(QueryError::location(
                unknown,
                format!("{name} found an unknown argument: {extra}"),
            ));
        }
        let Some(field) = spec.get("field") else {
            return Err(QueryError::location(
                no_field,
                format!("{name} requires 'field' to be specified"),
            ));
        };
        let field = match field {
            Bson::String(s) if s.starts_with('$') => {
                return Err(QueryError::location(
                    is_path,
                    format!(
                        "A field path reference which is not allowed in this context. Did you mean {{$literal: '{s}'}}?"
                    ),
                ));
            }
            other => constant_value(&Expr::parse_unchecked(other)?).ok_or_else(|| {
                QueryError::location(
                    not_constant,
                    format!("{name} requires 'field' to evaluate to a constant, but got a non-constant argument"),
                )
            })?,
        };
        let Bson::String(field) = field else {
            return Err(QueryError::location(
                not_string,
                format!(
                    "{name} requires 'field' to evaluate to type String, but got {}",
                    type_name(Some(&field))
                ),
            ));
        };
        let value = match operator {
            FieldOperator::Set => match spec.get("value") {
                Some(value) => Expr::parse_unchecked(value)?,
                None => {
                    return Err(QueryError::location(
                        no_value,
                        format!("{name} requires 'value' to be specified"),
                    ));
                }
            },
            _ => Expr::Remove,
        };
        let input = match (spec.get("input"), operator) {
            (Some(input), _) => Expr::parse_unchecked(input)?,
            (None, FieldOperator::Get) => Expr::FieldPath(Vec::new()),
            (None, _) => {
                return Err(QueryError::location(
                    no_input,
                    format!("{name} requires 'input' to be specified"),
                ));
            }
        };
        Ok(FieldOperation {
            operator,
            field,
            input: Box::new(input),
            value: Box::new(value),
        })
    }

    pub fn evaluate(&self, root: &Document) -> Result<Option<Bson>, QueryError> {
        let input = self.input.evaluate(root)?;
        if self.operator == FieldOperator::Get {
            return Ok(match input {
                Some(Bson::Document(doc)) => doc.get(&self.field).cloned(),
                None => None,
                Some(_) => Some(Bson::Null),
            });
        }
        let mut doc = match input {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
            Some(Bson::Document(doc)) => doc,
            Some(_) => {
                return Err(QueryError::location(
                    4161105,
                    format!("{} requires 'input' to evaluate to type Object", self.operator.name()),
                ));
            }
        };
        match self.value.evaluate(root)? {
            Some(value) => {
                doc.insert(self.field.clone(), value);
            }
            None => {
                doc.remove(&self.field);
            }
        }
        Ok(Some(Bson::Document(doc)))
    }
}

/// The value of an expression that reads no document (a literal, or operators over literals), if it is one.
fn constant_value(expr: &Expr) -> Option<Bson> {
    if !is_constant(expr) {
        return None;
    }
    expr.evaluate(&Document::new()).ok().flatten()
}

fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(_) => true,
        Expr::FieldPath(_) | Expr::Remove | Expr::Field(_) => false,
        Expr::Object(fields) => fields.iter().all(|(_, e)| is_constant(e)),
        Expr::Array(items) => items.iter().all(is_constant),
        Expr::Operation(operator, args) => *operator != super::Operator::Rand && args.iter().all(is_constant),
    }
}

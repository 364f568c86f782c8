//! Parsing operator updates into sorted, conflict-free field actions.
use std::cmp::Ordering;

use bson::{Bson, Document};

use super::actions::{Action, BitOp, Op};
use super::arrays::{PullCondition, PushSort, PushSpec};
use super::positional;
use crate::query::expr::type_name;
use crate::query::filter::Filter;
use crate::query::numeric::Number;
use crate::query::regex::Pattern;
use crate::query::sort::SortSpec;
use crate::query::traverse::array_index;
use crate::query::{QueryError, path};

const OPERATORS: [&str; 15] = [
    "$set",
    "$setOnInsert",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$currentDate",
    "$rename",
    "$push",
    "$addToSet",
    "$pop",
    "$pull",
    "$pullAll",
    "$bit",
];

pub(super) fn parse_operators(update: &Document) -> Result<Vec<Action>, QueryError> {
    let mut actions = Vec::new();
    for (name, fields) in update {
        let Some(operator) = OPERATORS.iter().copied().find(|o| o == name) else {
            return Err(QueryError::failed_to_parse(format!(
                "Unknown modifier: {name}. Expected a valid update modifier or pipeline-style update specified as an array"
            )));
        };
        let Bson::Document(fields) = fields else {
            return Err(QueryError::failed_to_parse(format!(
                "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{name}: {fields}}}",
                type_name(Some(fields))
            )));
        };
        for (field, argument) in fields {
            validate_update_path(field)?;
            check_path_depth(field, writes_at_path(operator))?;
            let op = parse_op(operator, field, argument)?;
            actions.push(Action {
                operator,
                path: field.clone(),
                op,
            });
        }
    }
    actions.sort_by(|a, b| compare_paths(&a.path, &b.path));
    check_conflicts(&actions)?;
    Ok(actions)
}

/// Whether an operator can create its path (rather than only change or remove what is already there).
fn writes_at_path(operator: &str) -> bool {
    !matches!(operator, "$unset" | "$pop" | "$pull" | "$pullAll" | "$rename")
}

/// A path that writes more parts than a stored document may have levels can only build a document MongoDB
/// would refuse to store (Overflow, its storage-validation wording); any path longer than a `FieldPath` may
/// be is refused as MongoDB's `FieldPath` refuses it. Checked at parse time, so no document is ever built
/// from such a path.
fn check_path_depth(field: &str, writes: bool) -> Result<(), QueryError> {
    if writes && crate::depth::path_parts(field) > crate::depth::MAX_DOCUMENT_DEPTH {
        return Err(QueryError::document_too_deep());
    }
    path::check_length(field)
}

fn validate_update_path(field: &str) -> Result<(), QueryError> {
    path::validate(field)?;
    positional::validate(field)?;
    for segment in field.split('.') {
        if segment.starts_with('$') && positional::segment(segment) == positional::Segment::Field(segment) {
            return Err(QueryError::dollar_prefixed(format!(
                "The dollar ($) prefixed field '{segment}' in '{field}' is not valid for storage."
            )));
        }
    }
    Ok(())
}

/// Path order used to apply actions: segment by segment, numeric segments numerically.
fn compare_paths(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ordering = match (array_index(x), array_index(y)) {
                    (Some(i), Some(j)) => i.cmp(&j).then_with(|| x.cmp(y)),
                    _ => x.cmp(y),
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

/// Whether `prefix` equals `path` or is a whole-segment prefix of it.
fn is_path_prefix(prefix: &str, path: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'.'))
}

fn check_conflicts(actions: &[Action]) -> Result<(), QueryError> {
    let mut targets: Vec<&str> = Vec::with_capacity(actions.len() + 1);
    for action in actions {
        targets.push(&action.path);
        if let Op::Rename { to } = &action.op {
            targets.push(to);
        }
    }
    check_path_conflicts(targets)
}

/// Fails when one of `targets` equals another or lies under it (code 40): the conflict check of parsing,
/// and of the concrete paths positional operators expand to in a document (`$[]` and `a.0` both writing
/// `a.0`).
pub(super) fn check_path_conflicts(mut targets: Vec<&str>) -> Result<(), QueryError> {
    targets.sort_by(|a, b| compare_paths(a, b));
    for pair in targets.windows(2) {
        if let [shorter, longer] = pair
            && is_path_prefix(shorter, longer)
        {
            return Err(QueryError::conflicting_update(format!(
                "Updating the path '{longer}' would create a conflict at '{shorter}'"
            )));
        }
    }
    Ok(())
}

fn numeric_operand(operator: &str, field: &str, argument: &Bson) -> Result<Number, QueryError> {
    Number::from_bson(argument).ok_or_else(|| {
        let verb = if operator == "$inc" { "increment" } else { "multiply" };
        QueryError::type_mismatch(format!(
            "Cannot {verb} with non-numeric argument: {{{field}: {argument}}}"
        ))
    })
}

fn parse_op(operator: &str, field: &str, argument: &Bson) -> Result<Op, QueryError> {
    Ok(match operator {
        "$set" => Op::Set(argument.clone()),
        "$setOnInsert" => Op::SetOnInsert(argument.clone()),
        "$unset" => Op::Unset,
        "$inc" | "$mul" => {
            let number = numeric_operand(operator, field, argument)?;
            if operator == "$inc" {
                Op::Inc(number)
            } else {
                Op::Mul(number)
            }
        }
        "$min" => Op::Min(argument.clone()),
        "$max" => Op::Max(argument.clone()),
        "$currentDate" => parse_current_date(argument)?,
        "$rename" => parse_rename(field, argument)?,
        "$push" => Op::Push(parse_push(argument)?),
        "$addToSet" => Op::AddToSet(parse_each(argument, "$addToSet")?),
        "$pop" => parse_pop(argument)?,
        "$pull" => Op::Pull(parse_pull(argument)?),
        "$pullAll" => match argument {
            Bson::Array(items) => Op::PullAll(items.clone()),
            other => {
                return Err(QueryError::bad_value(format!(
                    "$pullAll requires an array argument but was given a {}",
                    type_name(Some(other))
                )));
            }
        },
        _ => Op::Bit(parse_bit(argument)?),
    })
}

fn parse_current_date(argument: &Bson) -> Result<Op, QueryError> {
    match argument {
        Bson::Boolean(_) => Ok(Op::CurrentDate { timestamp: false }),
        Bson::Document(spec) => match (spec.len(), spec.get("$type")) {
            (1, Some(Bson::String(kind))) if kind == "date" => Ok(Op::CurrentDate { timestamp: false }),
            (1, Some(Bson::String(kind))) if kind == "timestamp" => Ok(Op::CurrentDate { timestamp: true }),
            _ => Err(QueryError::bad_value(
                "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}",
            )),
        },
        other => Err(QueryError::bad_value(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}}).",
            type_name(Some(other))
        ))),
    }
}

fn parse_rename(field: &str, argument: &Bson) -> Result<Op, QueryError> {
    let Bson::String(to) = argument else {
        return Err(QueryError::bad_value(format!(
            "The 'to' field for $rename must be a string: {field}: {argument}"
        )));
    };
    validate_update_path(to)?;
    check_path_depth(to, true)?;
    if positional::is_positional(field) {
        return Err(QueryError::bad_value(format!(
            "The source field for $rename may not be dynamic: {field}"
        )));
    }
    if positional::is_positional(to) {
        return Err(QueryError::bad_value(format!(
            "The destination field for $rename may not be dynamic: {to}"
        )));
    }
    if to == field {
        return Err(QueryError::bad_value(format!(
            "The source and target field for $rename must differ: {field}: \"{to}\""
        )));
    }
    if is_path_prefix(field, to) || is_path_prefix(to, field) {
        return Err(QueryError::bad_value(format!(
            "The source and target field for $rename must not be on the same path: {field}: \"{to}\""
        )));
    }
    Ok(Op::Rename { to: to.clone() })
}

/// `$addToSet`'s argument: a value, or `{$each: [...]}`.
fn parse_each(argument: &Bson, operator: &str) -> Result<Vec<Bson>, QueryError> {
    match argument {
        Bson::Document(spec) if spec.contains_key("$each") => match spec.get("$each") {
            Some(Bson::Array(items)) if spec.len() == 1 || operator == "$push" => Ok(items.clone()),
            Some(Bson::Array(_)) => Err(QueryError::bad_value(format!(
                "Found unexpected fields after $each in $addToSet: {spec}"
            ))),
            Some(other) => Err(QueryError::bad_value(format!(
                "The argument to $each in {operator} must be an array but it was of type: {}",
                type_name(Some(other))
            ))),
            None => Ok(Vec::new()),
        },
        other => Ok(vec![other.clone()]),
    }
}

fn parse_push(argument: &Bson) -> Result<PushSpec, QueryError> {
    let mut spec = PushSpec {
        values: parse_each(argument, "$push")?,
        position: None,
        slice: None,
        sort: None,
    };
    let Bson::Document(modifiers) = argument else {
        return Ok(spec);
    };
    if !modifiers.contains_key("$each") {
        return Ok(spec);
    }
    for (name, value) in modifiers {
        match name.as_str() {
            "$each" => {}
            "$slice" => spec.slice = Some(integer_modifier(value, "$slice")?),
            "$position" => spec.position = Some(integer_modifier(value, "$position")?),
            "$sort" => spec.sort = Some(parse_push_sort(value)?),
            other => return Err(QueryError::bad_value(format!("Unrecognized clause in $push: {other}"))),
        }
    }
    Ok(spec)
}

fn integer_modifier(value: &Bson, name: &str) -> Result<i64, QueryError> {
    Number::from_bson(value).and_then(Number::as_exact_i64).ok_or_else(|| {
        QueryError::bad_value(format!(
            "The value for {name} must be an integer value but was given type: {}",
            type_name(Some(value))
        ))
    })
}

fn parse_push_sort(value: &Bson) -> Result<PushSort, QueryError> {
    let invalid = || {
        QueryError::bad_value(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields",
        )
    };
    match value {
        Bson::Document(spec) if !spec.is_empty() => SortSpec::parse(spec).map(PushSort::Fields).map_err(|_| invalid()),
        other => match Number::from_bson(other).and_then(Number::as_exact_i64) {
            Some(1) => Ok(PushSort::Elements { descending: false }),
            Some(-1) => Ok(PushSort::Elements { descending: true }),
            _ => Err(invalid()),
        },
    }
}

fn parse_pop(argument: &Bson) -> Result<Op, QueryError> {
    match Number::from_bson(argument).and_then(Number::as_exact_i64) {
        Some(1) => Ok(Op::Pop { first: false }),
        Some(-1) => Ok(Op::Pop { first: true }),
        _ => Err(QueryError::failed_to_parse(format!(
            "Expected a number in: {argument}, $pop expects 1 or -1"
        ))),
    }
}

fn parse_pull(argument: &Bson) -> Result<PullCondition, QueryError> {
    match argument {
        Bson::RegularExpression(regex) => Ok(PullCondition::Regex(Pattern::from_bson_regex(regex)?)),
        Bson::Document(spec) => {
            let first = spec.keys().next().map(String::as_str).unwrap_or("");
            let is_value_operators =
                first.starts_with('$') && !matches!(first, "$and" | "$or" | "$nor" | "$expr" | "$comment");
            if is_value_operators {
                let mut wrapper = Document::new();
                wrapper.insert("", Bson::Document(spec.clone()));
                Ok(PullCondition::Operators(Filter::parse(&wrapper)?))
            } else {
                Ok(PullCondition::Query(Filter::parse(spec)?))
            }
        }
        other => Ok(PullCondition::Equal(other.clone())),
    }
}

fn parse_bit(argument: &Bson) -> Result<Vec<(BitOp, Bson)>, QueryError> {
    let Bson::Document(spec) = argument else {
        return Err(QueryError::bad_value(format!(
            "The $bit modifier is not compatible with a {}. You must pass in an embedded document: {{$bit: {{field: {{and/or/xor: #}}}}",
            type_name(Some(argument))
        )));
    };
    let mut operations = Vec::with_capacity(spec.len());
    for (name, operand) in spec {
        let op = match name.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            other => {
                return Err(QueryError::bad_value(format!(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not '{other}'"
                )));
            }
        };
        if !matches!(operand, Bson::Int32(_) | Bson::Int64(_)) {
            return Err(QueryError::bad_value(format!(
                "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported here",
                type_name(Some(operand))
            )));
        }
        operations.push((op, operand.clone()));
    }
    Ok(operations)
}

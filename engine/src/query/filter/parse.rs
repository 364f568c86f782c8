//! Parsing filter documents into clauses and field tests, with MongoDB's error codes and messages.
use bson::{Bson, Document};

use super::test::{Comparison, InItem, Test, TypeSelector};
use super::{Clause, MAX_DEPTH};
use crate::query::QueryError;
use crate::query::expr::Expr;
use crate::query::numeric::Number;
use crate::query::regex::Pattern;
use crate::query::traverse::split_path;

pub(super) fn parse_document(filter: &Document, depth: usize) -> Result<Clause, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::bad_value(format!(
            "exceeded maximum query tree depth of {MAX_DEPTH}"
        )));
    }
    let mut clauses = Vec::with_capacity(filter.len());
    for (key, value) in filter {
        if let Some(operator) = key.strip_prefix('$') {
            if let Some(clause) = parse_top_level(operator, value, depth)? {
                clauses.push(clause);
            }
        } else {
            // MongoDB's match expression parser refuses paths deeper than a stored document can be.
            if crate::depth::path_parts(key) > crate::depth::MAX_DOCUMENT_DEPTH {
                return Err(QueryError::match_path_too_long());
            }
            clauses.push(Clause::Field {
                path: split_path(key),
                test: parse_field_value(value, depth)?,
            });
        }
    }
    Ok(if clauses.len() == 1 {
        clauses.remove(0)
    } else {
        Clause::And(clauses)
    })
}

fn parse_top_level(operator: &str, value: &Bson, depth: usize) -> Result<Option<Clause>, QueryError> {
    let clause = match operator {
        "and" => Clause::And(parse_clause_list(value, depth)?),
        "or" => Clause::Or(parse_clause_list(value, depth)?),
        "nor" => Clause::Nor(parse_clause_list(value, depth)?),
        "expr" => Clause::Expr(Expr::parse(value)?),
        "comment" => return Ok(None),
        "where" | "text" | "jsonSchema" | "sampleRate" | "alwaysTrue" | "alwaysFalse" => {
            return Err(QueryError::bad_value(format!(
                "${operator} is not supported by this server"
            )));
        }
        other => {
            return Err(QueryError::bad_value(format!(
                "unknown top level operator: ${other}. If you have a field name that starts with a '$' symbol, consider using $getField or $setField."
            )));
        }
    };
    Ok(Some(clause))
}

fn parse_clause_list(value: &Bson, depth: usize) -> Result<Vec<Clause>, QueryError> {
    let Bson::Array(items) = value else {
        return Err(QueryError::bad_value("$and/$or/$nor must be a nonempty array"));
    };
    if items.is_empty() {
        return Err(QueryError::bad_value("$and/$or/$nor must be a nonempty array"));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(doc) => parse_document(doc, depth + 1),
            _ => Err(QueryError::bad_value("$or/$and/$nor entries need to be full objects")),
        })
        .collect()
}

/// Whether a field's value is an operator document (`{$gt: 1}`) rather than a literal to compare with.
fn is_operator_document(doc: &Document) -> bool {
    doc.keys()
        .next()
        .is_some_and(|k| k.starts_with('$') && !matches!(k.as_str(), "$ref" | "$id" | "$db"))
}

fn parse_field_value(value: &Bson, depth: usize) -> Result<Test, QueryError> {
    match value {
        Bson::Document(doc) if is_operator_document(doc) => parse_operator_document(doc, depth),
        Bson::RegularExpression(regex) => Ok(Test::Regex(Pattern::from_bson_regex(regex)?)),
        other => Ok(Test::Eq(other.clone())),
    }
}

fn parse_operator_document(doc: &Document, depth: usize) -> Result<Test, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::bad_value(format!(
            "exceeded maximum query tree depth of {MAX_DEPTH}"
        )));
    }
    let mut tests = Vec::with_capacity(doc.len());
    for (name, argument) in doc {
        match name.as_str() {
            "$options" => {
                if !doc.contains_key("$regex") {
                    return Err(QueryError::bad_value("$options needs a $regex"));
                }
            }
            "$regex" => tests.push(parse_regex(argument, doc.get("$options"))?),
            _ => tests.push(parse_operator(name, argument, depth)?),
        }
    }
    Ok(if tests.len() == 1 {
        tests.remove(0)
    } else {
        Test::All(tests)
    })
}

fn parse_operator(name: &str, argument: &Bson, depth: usize) -> Result<Test, QueryError> {
    Ok(match name {
        "$eq" => Test::Eq(argument.clone()),
        "$ne" => Test::Not(vec![Test::Eq(argument.clone())]),
        "$gt" => Test::Compare(Comparison::Gt, argument.clone()),
        "$gte" => Test::Compare(Comparison::Gte, argument.clone()),
        "$lt" => Test::Compare(Comparison::Lt, argument.clone()),
        "$lte" => Test::Compare(Comparison::Lte, argument.clone()),
        "$in" => parse_in(argument, "$in")?,
        "$nin" => Test::Not(vec![parse_in(argument, "$nin")?]),
        "$exists" => Test::Exists(crate::query::expr::is_truthy(Some(argument))),
        "$type" => Test::Type(parse_types(argument)?),
        "$size" => Test::Size(parse_size(argument)?),
        "$mod" => parse_mod(argument)?,
        "$all" => parse_all(argument, depth)?,
        "$elemMatch" => parse_elem_match(argument, depth)?,
        "$not" => parse_not(argument, depth)?,
        other => return Err(QueryError::bad_value(format!("unknown operator: {other}"))),
    })
}

fn parse_regex(argument: &Bson, options: Option<&Bson>) -> Result<Test, QueryError> {
    let options = match options {
        None => None,
        Some(Bson::String(s)) => Some(s.as_str()),
        Some(_) => return Err(QueryError::bad_value("$options has to be a string")),
    };
    let pattern = match argument {
        Bson::String(source) => Pattern::new(source, options.unwrap_or(""))?,
        Bson::RegularExpression(regex) => {
            if options.is_some() && !regex.options.as_str().is_empty() {
                return Err(QueryError::bad_value("options set in both $regex and $options"));
            }
            Pattern::new(regex.pattern.as_str(), options.unwrap_or(regex.options.as_str()))?
        }
        _ => return Err(QueryError::bad_value("$regex has to be a string")),
    };
    Ok(Test::Regex(pattern))
}

fn parse_in(argument: &Bson, name: &str) -> Result<Test, QueryError> {
    let Bson::Array(items) = argument else {
        return Err(QueryError::bad_value(format!("{name} needs an array")));
    };
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        parsed.push(match item {
            Bson::RegularExpression(regex) => InItem::Regex(Pattern::from_bson_regex(regex)?),
            Bson::Document(doc) if is_operator_document(doc) => {
                return Err(QueryError::bad_value("cannot nest $ under $in"));
            }
            other => InItem::Value(other.clone()),
        });
    }
    Ok(if parsed.is_empty() {
        Test::Never
    } else {
        Test::In(parsed)
    })
}

fn parse_types(argument: &Bson) -> Result<Vec<TypeSelector>, QueryError> {
    match argument {
        Bson::Array(items) => items.iter().map(parse_type).collect(),
        single => Ok(vec![parse_type(single)?]),
    }
}

fn parse_type(value: &Bson) -> Result<TypeSelector, QueryError> {
    if let Some(number) = Number::from_bson(value) {
        let code = number
            .as_exact_i64()
            .and_then(|c| i32::try_from(c).ok())
            .filter(|c| matches!(c, -1 | 1..=19 | 127))
            .ok_or_else(|| QueryError::bad_value(format!("Invalid numerical type code: {value}")))?;
        return Ok(TypeSelector::Code(code));
    }
    let Bson::String(alias) = value else {
        return Err(QueryError::type_mismatch(
            "type must be represented as a number or a string",
        ));
    };
    let code = match alias.as_str() {
        "number" => return Ok(TypeSelector::AnyNumber),
        "double" => 1,
        "string" => 2,
        "object" => 3,
        "array" => 4,
        "binData" => 5,
        "undefined" => 6,
        "objectId" => 7,
        "bool" => 8,
        "date" => 9,
        "null" => 10,
        "regex" => 11,
        "dbPointer" => 12,
        "javascript" => 13,
        "symbol" => 14,
        "javascriptWithScope" => 15,
        "int" => 16,
        "timestamp" => 17,
        "long" => 18,
        "decimal" => 19,
        "minKey" => -1,
        "maxKey" => 127,
        other => return Err(QueryError::bad_value(format!("Unknown type name alias: {other}"))),
    };
    Ok(TypeSelector::Code(code))
}

fn parse_size(argument: &Bson) -> Result<usize, QueryError> {
    let Some(number) = Number::from_bson(argument) else {
        return Err(QueryError::bad_value("$size needs a number"));
    };
    let whole = number
        .as_exact_i64()
        .ok_or_else(|| QueryError::bad_value("$size must be a whole number"))?;
    usize::try_from(whole).map_err(|_| QueryError::bad_value("$size may not be negative"))
}

fn parse_mod(argument: &Bson) -> Result<Test, QueryError> {
    let Bson::Array(items) = argument else {
        return Err(QueryError::bad_value("malformed mod, needs to be an array"));
    };
    match items.len() {
        0 | 1 => return Err(QueryError::bad_value("malformed mod, not enough elements")),
        2 => {}
        _ => return Err(QueryError::bad_value("malformed mod, too many elements")),
    }
    let number = |value: &Bson, what: &str| -> Result<i64, QueryError> {
        Number::from_bson(value)
            .ok_or_else(|| QueryError::bad_value(format!("malformed mod, {what} not a number")))?
            .truncated_i64()
            .ok_or_else(|| QueryError::bad_value(format!("malformed mod, {what} value is invalid")))
    };
    let divisor = number(&items[0], "divisor")?;
    let remainder = number(&items[1], "remainder")?;
    if divisor == 0 {
        return Err(QueryError::bad_value("divisor cannot be 0"));
    }
    Ok(Test::Mod { divisor, remainder })
}

fn parse_all(argument: &Bson, depth: usize) -> Result<Test, QueryError> {
    let Bson::Array(items) = argument else {
        return Err(QueryError::bad_value("$all needs an array"));
    };
    if items.is_empty() {
        return Ok(Test::Never);
    }
    let mut tests = Vec::with_capacity(items.len());
    for item in items {
        tests.push(match item {
            Bson::Document(doc) if doc.keys().next().is_some_and(|k| k == "$elemMatch") => {
                parse_operator_document(doc, depth + 1)?
            }
            Bson::Document(doc) if is_operator_document(doc) => {
                return Err(QueryError::bad_value("no $ expressions in $all"));
            }
            Bson::RegularExpression(regex) => Test::Regex(Pattern::from_bson_regex(regex)?),
            other => Test::Eq(other.clone()),
        });
    }
    Ok(Test::All(tests))
}

fn parse_elem_match(argument: &Bson, depth: usize) -> Result<Test, QueryError> {
    let Bson::Document(doc) = argument else {
        return Err(QueryError::bad_value("$elemMatch needs an Object"));
    };
    let value_form = doc.keys().next().is_some_and(|k| {
        k.starts_with('$') && !matches!(k.as_str(), "$and" | "$or" | "$nor" | "$expr" | "$where" | "$comment")
    });
    if value_form {
        let tests = match parse_operator_document(doc, depth + 1)? {
            Test::All(tests) => tests,
            single => vec![single],
        };
        Ok(Test::ElemMatchValue(tests))
    } else {
        Ok(Test::ElemMatchDocument(Box::new(parse_document(doc, depth + 1)?)))
    }
}

fn parse_not(argument: &Bson, depth: usize) -> Result<Test, QueryError> {
    match argument {
        Bson::RegularExpression(regex) => Ok(Test::Not(vec![Test::Regex(Pattern::from_bson_regex(regex)?)])),
        Bson::Document(doc) if doc.is_empty() => Err(QueryError::bad_value("$not cannot be empty")),
        Bson::Document(doc) if is_operator_document(doc) => {
            let inner = parse_operator_document(doc, depth + 1)?;
            Ok(Test::Not(vec![inner]))
        }
        _ => Err(QueryError::bad_value("$not needs a regex or a document")),
    }
}

//! The expression operators this engine supports and their evaluation. `$rand` is the one that is not a
//! function of its arguments: it draws from the thread's random generator.
use std::cmp::Ordering;

use bson::{Bson, Document};

use super::{Expr, is_truthy};
use crate::query::QueryError;
use crate::query::compare::compare_bson;
use crate::query::numeric::{self, Number};

/// An expression operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Mod,
    Abs,
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Cmp,
    And,
    Or,
    Not,
    Cond,
    IfNull,
    Concat,
    ToLower,
    ToUpper,
    Size,
    ArrayElemAt,
    In,
    Type,
    Sum,
    Avg,
    Min,
    Max,
    Rand,
}

impl Operator {
    /// Parses `{<name>: <arguments>}` into an expression.
    pub(super) fn parse(name: &str, arguments: &Bson) -> Result<Expr, QueryError> {
        if name == "$literal" {
            return Ok(Expr::Literal(arguments.clone()));
        }
        let operator = Self::from_name(name)
            .ok_or_else(|| QueryError::invalid_pipeline_operator(format!("Unrecognized expression '{name}'")))?;
        let args = match (operator, arguments) {
            (Operator::Rand, Bson::Document(spec)) if spec.is_empty() => Vec::new(),
            (Operator::Rand, _) => {
                return Err(QueryError::location(
                    3040500,
                    "$rand does not currently accept arguments",
                ));
            }
            (Operator::Cond, Bson::Document(spec)) => cond_arguments(spec)?,
            (_, Bson::Array(items)) => items.iter().map(Expr::parse_unchecked).collect::<Result<_, _>>()?,
            (_, single) => vec![Expr::parse_unchecked(single)?],
        };
        operator.check_arity(name, args.len())?;
        Ok(Expr::Operation(operator, args))
    }

    fn from_name(name: &str) -> Option<Operator> {
        use Operator::*;
        Some(match name {
            "$add" => Add,
            "$subtract" => Subtract,
            "$multiply" => Multiply,
            "$divide" => Divide,
            "$mod" => Mod,
            "$abs" => Abs,
            "$eq" => Eq,
            "$ne" => Ne,
            "$gt" => Gt,
            "$gte" => Gte,
            "$lt" => Lt,
            "$lte" => Lte,
            "$cmp" => Cmp,
            "$and" => And,
            "$or" => Or,
            "$not" => Not,
            "$cond" => Cond,
            "$ifNull" => IfNull,
            "$concat" => Concat,
            "$toLower" => ToLower,
            "$toUpper" => ToUpper,
            "$size" => Size,
            "$arrayElemAt" => ArrayElemAt,
            "$in" => In,
            "$type" => Type,
            "$sum" => Sum,
            "$avg" => Avg,
            "$min" => Min,
            "$max" => Max,
            "$rand" => Rand,
            _ => return None,
        })
    }

    fn check_arity(self, name: &str, count: usize) -> Result<(), QueryError> {
        use Operator::*;
        let ok = match self {
            Subtract | Divide | Mod | Eq | Ne | Gt | Gte | Lt | Lte | Cmp | ArrayElemAt | In => count == 2,
            Abs | Not | ToLower | ToUpper | Size | Type => count == 1,
            Cond => count == 3,
            IfNull => count >= 2,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(QueryError::location(
                16020,
                format!("Expression {name} takes a different number of arguments, got {count}"),
            ))
        }
    }

    pub(super) fn evaluate(self, args: &[Expr], root: &Document) -> Result<Option<Bson>, QueryError> {
        use Operator::*;
        match self {
            And => short_circuit(args, root, false),
            Or => short_circuit(args, root, true),
            Cond => {
                let branch = if is_truthy(eval_nth(args, 0, root)?.as_ref()) {
                    1
                } else {
                    2
                };
                eval_nth(args, branch, root)
            }
            IfNull => if_null(args, root),
            _ => {
                let values = args.iter().map(|a| eval(a, root)).collect::<Result<Vec<_>, _>>()?;
                self.apply(&values)
            }
        }
    }

    fn apply(self, values: &[Option<Bson>]) -> Result<Option<Bson>, QueryError> {
        use Operator::*;
        let first = values.first().cloned().flatten();
        Ok(match self {
            Add => sum_values(values, 16554, "$add")?,
            Multiply => product(values)?,
            Subtract => subtract(nth(values, 0), nth(values, 1))?,
            Divide => divide(nth(values, 0), nth(values, 1))?,
            Mod => modulo(nth(values, 0), nth(values, 1))?,
            Abs => abs(first)?,
            Eq | Ne | Gt | Gte | Lt | Lte | Cmp => Some(compare_values(self, nth(values, 0), nth(values, 1))),
            Not => Some(Bson::Boolean(!is_truthy(first.as_ref()))),
            Concat => concat(values)?,
            ToLower | ToUpper => Some(change_case(self, first)),
            Size => Some(size(first)?),
            ArrayElemAt => array_elem_at(nth(values, 0), nth(values, 1))?,
            In => Some(in_array(nth(values, 0), nth(values, 1))?),
            Type => Some(Bson::String(type_name(nth(values, 0).as_ref()).to_string())),
            Sum | Avg | Min | Max => array_accumulate(self, values)?,
            Rand => Some(Bson::Double(rand::random::<f64>())),
            And | Or | Cond | IfNull => None,
        })
    }
}

fn eval(expr: &Expr, root: &Document) -> Result<Option<Bson>, QueryError> {
    expr.evaluate(root)
}

/// The `index`th argument's value; a missing argument (impossible after arity checks) evaluates to missing.
fn eval_nth(args: &[Expr], index: usize, root: &Document) -> Result<Option<Bson>, QueryError> {
    args.get(index).map_or(Ok(None), |arg| arg.evaluate(root))
}

fn nth(values: &[Option<Bson>], index: usize) -> &Option<Bson> {
    const MISSING: &Option<Bson> = &None;
    values.get(index).unwrap_or(MISSING)
}

fn cond_arguments(spec: &Document) -> Result<Vec<Expr>, QueryError> {
    let part = |name: &str| -> Result<Expr, QueryError> {
        match spec.get(name) {
            Some(value) => Expr::parse_unchecked(value),
            None => Err(QueryError::location(
                17080,
                format!("Missing '{name}' parameter to $cond"),
            )),
        }
    };
    if let Some(extra) = spec.keys().find(|k| !matches!(k.as_str(), "if" | "then" | "else")) {
        return Err(QueryError::location(
            17083,
            format!("Unrecognized parameter to $cond: {extra}"),
        ));
    }
    Ok(vec![part("if")?, part("then")?, part("else")?])
}

fn short_circuit(args: &[Expr], root: &Document, stop_on: bool) -> Result<Option<Bson>, QueryError> {
    for arg in args {
        if is_truthy(eval(arg, root)?.as_ref()) == stop_on {
            return Ok(Some(Bson::Boolean(stop_on)));
        }
    }
    Ok(Some(Bson::Boolean(!stop_on)))
}

fn if_null(args: &[Expr], root: &Document) -> Result<Option<Bson>, QueryError> {
    let (last, candidates) = match args.split_last() {
        Some(split) => split,
        None => return Ok(None),
    };
    for arg in candidates {
        match eval(arg, root)? {
            None | Some(Bson::Null) | Some(Bson::Undefined) => {}
            found => return Ok(found),
        }
    }
    eval(last, root)
}

fn is_nullish(value: &Option<Bson>) -> bool {
    matches!(value, None | Some(Bson::Null) | Some(Bson::Undefined))
}

fn overflow_to_double(
    a: Number,
    b: Number,
    op: fn(Number, Number) -> Result<Number, numeric::ArithmeticError>,
) -> Number {
    op(a, b).unwrap_or_else(|_| {
        Number::Double(
            op(Number::Double(a.as_f64()), Number::Double(b.as_f64()))
                .map(Number::as_f64)
                .unwrap_or(f64::NAN),
        )
    })
}

fn sum_values(values: &[Option<Bson>], code: i32, name: &str) -> Result<Option<Bson>, QueryError> {
    let mut total = Number::Int32(0);
    let mut date: Option<i64> = None;
    for value in values {
        if is_nullish(value) {
            return Ok(Some(Bson::Null));
        }
        match value {
            Some(Bson::DateTime(d)) if date.is_none() => date = Some(d.timestamp_millis()),
            Some(v) => match Number::from_bson(v) {
                Some(n) => total = overflow_to_double(total, n, numeric::add),
                None => {
                    return Err(QueryError::location(
                        code,
                        format!("{name} only supports numeric or date types, not {}", type_name(Some(v))),
                    ));
                }
            },
            None => {}
        }
    }
    Ok(Some(match date {
        Some(millis) => {
            let offset = total.as_f64().round() as i64;
            Bson::DateTime(bson::DateTime::from_millis(millis.saturating_add(offset)))
        }
        None => total.to_bson(),
    }))
}

fn product(values: &[Option<Bson>]) -> Result<Option<Bson>, QueryError> {
    let mut total = Number::Int32(1);
    for value in values {
        if is_nullish(value) {
            return Ok(Some(Bson::Null));
        }
        let n = numeric_argument(value, 16555, "$multiply")?;
        total = overflow_to_double(total, n, numeric::multiply);
    }
    Ok(Some(total.to_bson()))
}

fn numeric_argument(value: &Option<Bson>, code: i32, name: &str) -> Result<Number, QueryError> {
    value.as_ref().and_then(Number::from_bson).ok_or_else(|| {
        QueryError::location(
            code,
            format!("{name} only supports numeric types, not {}", type_name(value.as_ref())),
        )
    })
}

fn subtract(a: &Option<Bson>, b: &Option<Bson>) -> Result<Option<Bson>, QueryError> {
    if is_nullish(a) || is_nullish(b) {
        return Ok(Some(Bson::Null));
    }
    match (a, b) {
        (Some(Bson::DateTime(x)), Some(Bson::DateTime(y))) => Ok(Some(Bson::Int64(
            x.timestamp_millis().saturating_sub(y.timestamp_millis()),
        ))),
        (Some(Bson::DateTime(x)), other) => {
            let n = numeric_argument(other, 16556, "$subtract")?;
            let millis = x.timestamp_millis().saturating_sub(n.as_f64().round() as i64);
            Ok(Some(Bson::DateTime(bson::DateTime::from_millis(millis))))
        }
        _ => {
            let x = numeric_argument(a, 16556, "$subtract")?;
            let y = numeric_argument(b, 16556, "$subtract")?;
            Ok(Some(overflow_to_double(x, y, numeric::subtract).to_bson()))
        }
    }
}

fn divide(a: &Option<Bson>, b: &Option<Bson>) -> Result<Option<Bson>, QueryError> {
    if is_nullish(a) || is_nullish(b) {
        return Ok(Some(Bson::Null));
    }
    let x = numeric_argument(a, 16609, "$divide")?;
    let y = numeric_argument(b, 16609, "$divide")?;
    if y.as_f64() == 0.0 {
        return Err(QueryError::location(16608, "can't $divide by zero"));
    }
    let quotient = x.as_f64() / y.as_f64();
    let decimal = matches!(x, Number::Decimal(_)) || matches!(y, Number::Decimal(_));
    Ok(Some(
        if decimal {
            Number::Decimal(quotient)
        } else {
            Number::Double(quotient)
        }
        .to_bson(),
    ))
}

fn modulo(a: &Option<Bson>, b: &Option<Bson>) -> Result<Option<Bson>, QueryError> {
    if is_nullish(a) || is_nullish(b) {
        return Ok(Some(Bson::Null));
    }
    let x = numeric_argument(a, 16611, "$mod")?;
    let y = numeric_argument(b, 16611, "$mod")?;
    if y.as_f64() == 0.0 {
        return Err(QueryError::location(16610, "can't $mod by 0"));
    }
    let result = match (x, y) {
        (Number::Int32(p), Number::Int32(q)) => Number::Int32(p.wrapping_rem(q)),
        (Number::Int32(_) | Number::Int64(_), Number::Int32(_) | Number::Int64(_)) => Number::Int64(
            x.as_exact_i64()
                .unwrap_or(0)
                .wrapping_rem(y.as_exact_i64().unwrap_or(1)),
        ),
        (Number::Decimal(_), _) | (_, Number::Decimal(_)) => Number::Decimal(x.as_f64() % y.as_f64()),
        _ => Number::Double(x.as_f64() % y.as_f64()),
    };
    Ok(Some(result.to_bson()))
}

fn abs(value: Option<Bson>) -> Result<Option<Bson>, QueryError> {
    if is_nullish(&value) {
        return Ok(Some(Bson::Null));
    }
    Ok(Some(match numeric_argument(&value, 28765, "$abs")? {
        Number::Int32(i) => i.checked_abs().map(Bson::Int32).unwrap_or(Bson::Int64(-i64::from(i))),
        Number::Int64(i) => match i.checked_abs() {
            Some(v) => Bson::Int64(v),
            None => return Err(QueryError::location(28680, "can't take $abs of long long min")),
        },
        Number::Double(d) => Bson::Double(d.abs()),
        Number::Decimal(d) => Number::Decimal(d.abs()).to_bson(),
    }))
}

/// Aggregation comparison: a missing value sorts below everything, including null.
fn compare_optional(a: &Option<Bson>, b: &Option<Bson>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_bson(x, y),
    }
}

fn compare_values(operator: Operator, a: &Option<Bson>, b: &Option<Bson>) -> Bson {
    let ordering = compare_optional(a, b);
    let result = match operator {
        Operator::Eq => ordering == Ordering::Equal,
        Operator::Ne => ordering != Ordering::Equal,
        Operator::Gt => ordering == Ordering::Greater,
        Operator::Gte => ordering != Ordering::Less,
        Operator::Lt => ordering == Ordering::Less,
        Operator::Lte => ordering != Ordering::Greater,
        _ => {
            return Bson::Int32(match ordering {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            });
        }
    };
    Bson::Boolean(result)
}

fn concat(values: &[Option<Bson>]) -> Result<Option<Bson>, QueryError> {
    let mut out = String::new();
    for value in values {
        match value {
            None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
            Some(Bson::String(s)) => out.push_str(s),
            Some(other) => {
                return Err(QueryError::location(
                    16702,
                    format!("$concat only supports strings, not {}", type_name(Some(other))),
                ));
            }
        }
    }
    Ok(Some(Bson::String(out)))
}

fn change_case(operator: Operator, value: Option<Bson>) -> Bson {
    let text = match value {
        Some(Bson::String(s)) | Some(Bson::Symbol(s)) => s,
        None | Some(Bson::Null) | Some(Bson::Undefined) => String::new(),
        Some(other) => other.to_string(),
    };
    Bson::String(if operator == Operator::ToLower {
        text.to_lowercase()
    } else {
        text.to_uppercase()
    })
}

fn size(value: Option<Bson>) -> Result<Bson, QueryError> {
    match value {
        Some(Bson::Array(items)) => Ok(Bson::Int32(i32::try_from(items.len()).unwrap_or(i32::MAX))),
        other => Err(QueryError::location(
            17124,
            format!(
                "The argument to $size must be an array. Type of argument was: {}",
                type_name(other.as_ref())
            ),
        )),
    }
}

fn array_elem_at(array: &Option<Bson>, index: &Option<Bson>) -> Result<Option<Bson>, QueryError> {
    if is_nullish(array) || is_nullish(index) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = array else {
        return Err(QueryError::location(
            28689,
            "$arrayElemAt's first argument must be an array",
        ));
    };
    let Some(position) = index
        .as_ref()
        .and_then(Number::from_bson)
        .and_then(Number::as_exact_i64)
    else {
        return Err(QueryError::location(
            28691,
            "$arrayElemAt's second argument must be a 32-bit integer",
        ));
    };
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let resolved = if position < 0 { len + position } else { position };
    Ok(usize::try_from(resolved).ok().and_then(|i| items.get(i)).cloned())
}

fn in_array(value: &Option<Bson>, array: &Option<Bson>) -> Result<Bson, QueryError> {
    let Some(Bson::Array(items)) = array else {
        return Err(QueryError::location(
            40081,
            "$in requires an array as a second argument",
        ));
    };
    let needle = value.clone().unwrap_or(Bson::Undefined);
    Ok(Bson::Boolean(
        items.iter().any(|item| compare_bson(item, &needle) == Ordering::Equal),
    ))
}

fn array_accumulate(operator: Operator, values: &[Option<Bson>]) -> Result<Option<Bson>, QueryError> {
    let elements: Vec<Bson> = match values {
        [Some(Bson::Array(items))] => items.clone(),
        _ => values.iter().flatten().cloned().collect(),
    };
    Ok(Some(match operator {
        Operator::Sum => sum_numbers(&elements).to_bson(),
        Operator::Avg => average(&elements),
        Operator::Min => extreme(&elements, Ordering::Less),
        _ => extreme(&elements, Ordering::Greater),
    }))
}

/// Sums the numbers among `values`, ignoring everything else (`$sum` semantics).
pub(crate) fn sum_numbers(values: &[Bson]) -> Number {
    values
        .iter()
        .filter_map(Number::from_bson)
        .fold(Number::Int32(0), |acc, n| overflow_to_double(acc, n, numeric::add))
}

/// The mean of the numbers among `values`, or null when there are none (`$avg` semantics).
pub(crate) fn average(values: &[Bson]) -> Bson {
    let numbers: Vec<Number> = values.iter().filter_map(Number::from_bson).collect();
    if numbers.is_empty() {
        return Bson::Null;
    }
    let total: f64 = numbers.iter().map(|n| n.as_f64()).sum();
    let mean = total / numbers.len() as f64;
    if numbers.iter().any(|n| matches!(n, Number::Decimal(_))) {
        Number::Decimal(mean).to_bson()
    } else {
        Bson::Double(mean)
    }
}

/// The smallest (`Less`) or largest (`Greater`) non-null value, or null (`$min` / `$max` semantics).
pub(crate) fn extreme(values: &[Bson], wanted: Ordering) -> Bson {
    values
        .iter()
        .filter(|v| !matches!(v, Bson::Null | Bson::Undefined))
        .fold(None::<&Bson>, |best, v| match best {
            Some(b) if compare_bson(v, b) != wanted => Some(b),
            _ => Some(v),
        })
        .cloned()
        .unwrap_or(Bson::Null)
}

/// The `$type` name of a value ("missing" when absent).
pub fn type_name(value: Option<&Bson>) -> &'static str {
    match value {
        None => "missing",
        Some(Bson::Double(_)) => "double",
        Some(Bson::String(_)) => "string",
        Some(Bson::Document(_)) => "object",
        Some(Bson::Array(_)) => "array",
        Some(Bson::Binary(_)) => "binData",
        Some(Bson::Undefined) => "undefined",
        Some(Bson::ObjectId(_)) => "objectId",
        Some(Bson::Boolean(_)) => "bool",
        Some(Bson::DateTime(_)) => "date",
        Some(Bson::Null) => "null",
        Some(Bson::RegularExpression(_)) => "regex",
        Some(Bson::DbPointer(_)) => "dbPointer",
        Some(Bson::JavaScriptCode(_)) => "javascript",
        Some(Bson::Symbol(_)) => "symbol",
        Some(Bson::JavaScriptCodeWithScope(_)) => "javascriptWithScope",
        Some(Bson::Int32(_)) => "int",
        Some(Bson::Timestamp(_)) => "timestamp",
        Some(Bson::Int64(_)) => "long",
        Some(Bson::Decimal128(_)) => "decimal",
        Some(Bson::MinKey) => "minKey",
        Some(Bson::MaxKey) => "maxKey",
    }
}

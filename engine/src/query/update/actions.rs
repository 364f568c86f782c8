//! Field actions: what each update operator does to one path.
use bson::{Bson, DateTime, Document, Timestamp};

use super::arrays::{self, PullCondition, PushSpec};
use crate::query::compare::compare_bson;
use crate::query::expr::type_name;
use crate::query::numeric::{self, Number};
use crate::query::{QueryError, path};

/// A `$bit` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BitOp {
    And,
    Or,
    Xor,
}

/// What an operator does at its path.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Inc(Number),
    Mul(Number),
    Min(Bson),
    Max(Bson),
    CurrentDate { timestamp: bool },
    Rename { to: String },
    Push(PushSpec),
    AddToSet(Vec<Bson>),
    Pop { first: bool },
    Pull(PullCondition),
    PullAll(Vec<Bson>),
    Bit(Vec<(BitOp, Bson)>),
}

/// One operator applied to one path.
#[derive(Debug, Clone)]
pub(super) struct Action {
    pub(super) operator: &'static str,
    pub(super) path: String,
    pub(super) op: Op,
}

impl Action {
    pub(super) fn apply(&self, doc: &mut Document, is_upsert_insert: bool, now: DateTime) -> Result<(), QueryError> {
        let current = path::lookup(doc, &self.path).cloned();
        match &self.op {
            Op::Set(value) => path::set(doc, &self.path, value.clone()),
            Op::SetOnInsert(value) if is_upsert_insert => path::set(doc, &self.path, value.clone()),
            Op::SetOnInsert(_) => Ok(()),
            Op::Unset => {
                path::unset(doc, &self.path);
                Ok(())
            }
            Op::Inc(amount) => self.arithmetic(doc, current, *amount, numeric::add),
            Op::Mul(factor) => self.arithmetic(doc, current, *factor, numeric::multiply),
            Op::Min(value) | Op::Max(value) => self.min_max(doc, current, value),
            Op::CurrentDate { timestamp } => path::set(doc, &self.path, current_date(*timestamp, now)),
            Op::Rename { to } => self.rename(doc, current, to),
            Op::Push(spec) => self.set_array(doc, arrays::push(current, spec, &self.path)?),
            Op::AddToSet(values) => self.set_array(doc, arrays::add_to_set(current, values, &self.path)?),
            Op::Pop { first } => self.set_array(doc, arrays::pop(current, *first, &self.path)?),
            Op::Pull(condition) => self.set_array(doc, arrays::pull(current, condition)?),
            Op::PullAll(values) => self.set_array(doc, arrays::pull_all(current, values)?),
            Op::Bit(operations) => self.bit(doc, current, operations),
        }
    }

    fn set_array(&self, doc: &mut Document, array: Option<Vec<Bson>>) -> Result<(), QueryError> {
        match array {
            Some(items) => path::set(doc, &self.path, Bson::Array(items)),
            None => Ok(()),
        }
    }

    fn arithmetic(
        &self,
        doc: &mut Document,
        current: Option<Bson>,
        operand: Number,
        op: fn(Number, Number) -> Result<Number, numeric::ArithmeticError>,
    ) -> Result<(), QueryError> {
        let result = match current {
            None if self.operator == "$mul" => numeric::zero_like(operand),
            None => operand,
            Some(value) => {
                let Some(number) = Number::from_bson(&value) else {
                    return Err(QueryError::type_mismatch(format!(
                        "Cannot apply {} to a value of non-numeric type. {{_id: {}}} has the field '{}' of non-numeric type {}",
                        self.operator,
                        doc.get("_id").map(ToString::to_string).unwrap_or_default(),
                        self.path,
                        type_name(Some(&value))
                    )));
                };
                op(number, operand).map_err(|_| {
                    QueryError::bad_value(format!(
                        "Failed to apply {} operations to current value ({value}) for document {{_id: {}}}",
                        self.operator,
                        doc.get("_id").map(ToString::to_string).unwrap_or_default()
                    ))
                })?
            }
        };
        path::set(doc, &self.path, result.to_bson())
    }

    fn min_max(&self, doc: &mut Document, current: Option<Bson>, value: &Bson) -> Result<(), QueryError> {
        let wanted = if self.operator == "$min" {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        };
        match current {
            Some(existing) if compare_bson(value, &existing) != wanted => Ok(()),
            _ => path::set(doc, &self.path, value.clone()),
        }
    }

    fn rename(&self, doc: &mut Document, current: Option<Bson>, to: &str) -> Result<(), QueryError> {
        if passes_through_array(doc, &self.path) {
            return Err(QueryError::bad_value(format!(
                "The source field cannot be an array element, '{}'",
                self.path
            )));
        }
        if passes_through_array(doc, to) {
            return Err(QueryError::bad_value(format!(
                "The destination field cannot be an array element, '{to}'"
            )));
        }
        let Some(value) = current else {
            return Ok(());
        };
        path::unset(doc, &self.path);
        path::set(doc, to, value)
    }

    fn bit(&self, doc: &mut Document, current: Option<Bson>, operations: &[(BitOp, Bson)]) -> Result<(), QueryError> {
        let mut value = match current {
            None => match operations.first() {
                Some((_, Bson::Int64(_))) => Bson::Int64(0),
                _ => Bson::Int32(0),
            },
            Some(v @ (Bson::Int32(_) | Bson::Int64(_))) => v,
            Some(other) => {
                return Err(QueryError::bad_value(format!(
                    "Cannot apply $bit to a value of non-integral type. {{_id: {}}} has the field {} of non-integer type {}",
                    doc.get("_id").map(ToString::to_string).unwrap_or_default(),
                    self.path,
                    type_name(Some(&other))
                )));
            }
        };
        for (operation, operand) in operations {
            value = apply_bit(&value, *operation, operand);
        }
        path::set(doc, &self.path, value)
    }
}

fn apply_bit(value: &Bson, operation: BitOp, operand: &Bson) -> Bson {
    let combine = |a: i64, b: i64| match operation {
        BitOp::And => a & b,
        BitOp::Or => a | b,
        BitOp::Xor => a ^ b,
    };
    match (value, operand) {
        (Bson::Int32(a), Bson::Int32(b)) => Bson::Int32(combine(i64::from(*a), i64::from(*b)) as i32),
        (Bson::Int32(a), Bson::Int64(b)) => Bson::Int64(combine(i64::from(*a), *b)),
        (Bson::Int64(a), Bson::Int32(b)) => Bson::Int64(combine(*a, i64::from(*b))),
        (Bson::Int64(a), Bson::Int64(b)) => Bson::Int64(combine(*a, *b)),
        (other, _) => other.clone(),
    }
}

/// Whether any proper prefix of `dotted` resolves to an array in `doc`.
fn passes_through_array(doc: &Document, dotted: &str) -> bool {
    let mut prefix = String::new();
    let segments: Vec<&str> = dotted.split('.').collect();
    for segment in segments.iter().take(segments.len().saturating_sub(1)) {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(segment);
        if matches!(path::lookup(doc, &prefix), Some(Bson::Array(_))) {
            return true;
        }
    }
    false
}

fn current_date(timestamp: bool, now: DateTime) -> Bson {
    if timestamp {
        let seconds = u32::try_from(now.timestamp_millis().div_euclid(1000)).unwrap_or(0);
        Bson::Timestamp(Timestamp {
            time: seconds,
            increment: 1,
        })
    } else {
        Bson::DateTime(now)
    }
}

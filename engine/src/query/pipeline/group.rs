//! The `$group` stage: documents bucketed by an `_id` expression, with accumulators per bucket.
use std::cmp::Ordering;
use std::collections::BTreeMap;

use bson::{Bson, Document};

use crate::query::QueryError;
use crate::query::compare::{OrderedBson, bson_equal, compare_bson};
use crate::query::expr::Expr;
use crate::query::numeric::{self, Number};

/// An accumulator operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accumulator {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
}

/// A parsed `$group` specification.
#[derive(Debug, Clone)]
pub(crate) struct GroupSpec {
    id: Expr,
    fields: Vec<(String, Accumulator, Expr)>,
}

/// An accumulator's running state.
#[derive(Debug, Clone)]
enum State {
    Sum(Number),
    Avg {
        total: f64,
        count: u64,
        decimal: bool,
    },
    /// `$min` (wanted `Less`) or `$max` (wanted `Greater`); nulls and missing values are ignored.
    Extreme {
        best: Option<Bson>,
        wanted: Ordering,
    },
    First(Option<Bson>),
    Last(Bson),
    /// `$push`, or `$addToSet` when `unique`.
    Values {
        values: Vec<Bson>,
        unique: bool,
    },
}

impl GroupSpec {
    pub(crate) fn parse(spec: &Document) -> Result<GroupSpec, QueryError> {
        let id = spec
            .get("_id")
            .ok_or_else(|| QueryError::location(15955, "a group specification must include an _id"))
            .and_then(Expr::parse)?;
        let mut fields = Vec::new();
        for (name, value) in spec {
            if name == "_id" {
                continue;
            }
            if name.contains('.') {
                return Err(QueryError::location(
                    40235,
                    format!("The field name '{name}' cannot contain '.'"),
                ));
            }
            if name.starts_with('$') {
                return Err(QueryError::location(
                    40236,
                    format!("The field name '{name}' cannot be an operator name"),
                ));
            }
            fields.push(parse_accumulator(name, value)?);
        }
        Ok(GroupSpec { id, fields })
    }

    pub(crate) fn run(&self, docs: &[Document]) -> Result<Vec<Document>, QueryError> {
        let mut index: BTreeMap<OrderedBson, usize> = BTreeMap::new();
        let mut groups: Vec<(Bson, Vec<State>)> = Vec::new();
        for doc in docs {
            let key = self.id.evaluate(doc)?.unwrap_or(Bson::Null);
            let slot = *index.entry(OrderedBson(key.clone())).or_insert_with(|| {
                groups.push((key, self.fields.iter().map(|(_, acc, _)| initial_state(*acc)).collect()));
                groups.len() - 1
            });
            let states = &mut groups[slot].1;
            for ((_, accumulator, expr), state) in self.fields.iter().zip(states.iter_mut()) {
                let value = if *accumulator == Accumulator::Count {
                    Some(Bson::Int32(1))
                } else {
                    expr.evaluate(doc)?
                };
                accumulate(state, value);
            }
        }
        Ok(groups
            .into_iter()
            .map(|(key, states)| {
                let mut out = Document::new();
                out.insert("_id", key);
                for ((name, _, _), state) in self.fields.iter().zip(states) {
                    out.insert(name.clone(), finish(state));
                }
                out
            })
            .collect())
    }
}

fn parse_accumulator(name: &str, value: &Bson) -> Result<(String, Accumulator, Expr), QueryError> {
    let Bson::Document(spec) = value else {
        return Err(QueryError::location(
            40234,
            format!("The field '{name}' must be an accumulator object"),
        ));
    };
    let mut entries = spec.iter();
    let (Some((operator, argument)), None) = (entries.next(), entries.next()) else {
        return Err(QueryError::location(
            40238,
            format!("The field '{name}' must specify one accumulator"),
        ));
    };
    let accumulator = match operator.as_str() {
        "$sum" => Accumulator::Sum,
        "$avg" => Accumulator::Avg,
        "$min" => Accumulator::Min,
        "$max" => Accumulator::Max,
        "$first" => Accumulator::First,
        "$last" => Accumulator::Last,
        "$push" => Accumulator::Push,
        "$addToSet" => Accumulator::AddToSet,
        "$count" => Accumulator::Count,
        other => return Err(QueryError::location(15952, format!("unknown group operator '{other}'"))),
    };
    Ok((name.to_string(), accumulator, Expr::parse(argument)?))
}

fn initial_state(accumulator: Accumulator) -> State {
    match accumulator {
        Accumulator::Sum | Accumulator::Count => State::Sum(Number::Int32(0)),
        Accumulator::Avg => State::Avg {
            total: 0.0,
            count: 0,
            decimal: false,
        },
        Accumulator::Min => State::Extreme {
            best: None,
            wanted: Ordering::Less,
        },
        Accumulator::Max => State::Extreme {
            best: None,
            wanted: Ordering::Greater,
        },
        Accumulator::First => State::First(None),
        Accumulator::Last => State::Last(Bson::Null),
        Accumulator::Push => State::Values {
            values: Vec::new(),
            unique: false,
        },
        Accumulator::AddToSet => State::Values {
            values: Vec::new(),
            unique: true,
        },
    }
}

fn accumulate(state: &mut State, value: Option<Bson>) {
    match state {
        State::Sum(total) => {
            if let Some(n) = value.as_ref().and_then(Number::from_bson) {
                *total = numeric::add(*total, n).unwrap_or_else(|_| Number::Double(total.as_f64() + n.as_f64()));
            }
        }
        State::Avg { total, count, decimal } => {
            if let Some(n) = value.as_ref().and_then(Number::from_bson) {
                *total += n.as_f64();
                *count += 1;
                *decimal |= matches!(n, Number::Decimal(_));
            }
        }
        State::Extreme { best, wanted } => match value {
            None | Some(Bson::Null) | Some(Bson::Undefined) => {}
            Some(v) => {
                if best.as_ref().is_none_or(|b| compare_bson(&v, b) == *wanted) {
                    *best = Some(v);
                }
            }
        },
        State::First(first) => {
            if first.is_none() {
                *first = Some(value.unwrap_or(Bson::Null));
            }
        }
        State::Last(last) => *last = value.unwrap_or(Bson::Null),
        State::Values { values, unique } => {
            if let Some(v) = value
                && !(*unique && values.iter().any(|existing| bson_equal(existing, &v)))
            {
                values.push(v);
            }
        }
    }
}

fn finish(state: State) -> Bson {
    match state {
        State::Sum(total) => total.to_bson(),
        State::Avg { count: 0, .. } => Bson::Null,
        State::Avg { total, count, decimal } => {
            let mean = total / count as f64;
            if decimal {
                Number::Decimal(mean).to_bson()
            } else {
                Bson::Double(mean)
            }
        }
        State::Extreme { best, .. } => best.unwrap_or(Bson::Null),
        State::First(value) => value.unwrap_or(Bson::Null),
        State::Last(value) => value,
        State::Values { values, .. } => Bson::Array(values),
    }
}

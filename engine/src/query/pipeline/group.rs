//! The `$group` stage: documents bucketed by an `_id` expression, with accumulators per bucket.
//!
//! The groups are held in memory within mongod's `internalDocumentSourceGroupMaxMemoryBytes` (100 MiB,
//! counted as the approximate size of keys and accumulator states); past it the stage fails with 292, or
//! under `allowDiskUse` writes its groups, in key order, to a run on disk and starts afresh. At the end the
//! runs are merged by key, combining the partial states of a key in the order they were written (so `$first`,
//! `$last` and `$push` see the input order). One `$push` / `$addToSet` array may not exceed
//! `internalQueryMaxPushBytes` / `internalQueryMaxAddToSetBytes` (146 ExceededMemoryLimit), spilling or not.
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use bson::{Bson, Document, doc};

use super::stream::{DocStream, Limits, approx_size};
use crate::query::QueryError;
use crate::query::compare::{OrderedBson, bson_equal, compare_bson};
use crate::query::expr::Expr;
use crate::query::numeric::{self, Number};
use crate::spill::{RunReader, RunWriter};

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
    /// `$push`, or `$addToSet` when `unique`; `bytes` is their approximate size.
    Values {
        values: Vec<Bson>,
        unique: bool,
        bytes: usize,
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
}

/// The `$group` stage over its input.
pub(super) struct GroupStream {
    spec: GroupSpec,
    limits: Limits,
    input: Option<Box<dyn DocStream>>,
    output: Output,
}

enum Output {
    Pending,
    Memory(std::vec::IntoIter<(Bson, Vec<State>)>),
    Merge {
        runs: Vec<RunReader>,
        heads: Vec<Option<(Bson, Vec<State>)>>,
    },
    Done,
}

/// The groups being accumulated, and their approximate size.
#[derive(Default)]
struct Table {
    index: BTreeMap<OrderedBson, usize>,
    groups: Vec<(Bson, Vec<State>)>,
    bytes: usize,
}

fn group_memory_error() -> QueryError {
    QueryError::new(
        292,
        "QueryExceededMemoryLimitNoDiskUseAllowed",
        "Exceeded memory limit for $group, but didn't allow external sort. Pass allowDiskUse:true to opt in.",
    )
}

fn values_memory_error(unique: bool, limit: usize) -> QueryError {
    let operator = if unique { "$addToSet" } else { "$push" };
    QueryError::new(
        146,
        "ExceededMemoryLimit",
        format!("{operator} used too much memory and cannot spill to disk. Memory limit: {limit} bytes"),
    )
}

impl GroupStream {
    pub(super) fn new(input: Box<dyn DocStream>, spec: GroupSpec, limits: Limits) -> GroupStream {
        GroupStream {
            spec,
            limits,
            input: Some(input),
            output: Output::Pending,
        }
    }

    fn add(&self, table: &mut Table, doc: &Document) -> Result<(), QueryError> {
        let key = self.spec.id.evaluate(doc)?.unwrap_or(Bson::Null);
        let next = table.groups.len();
        let slot = match table.index.entry(OrderedBson(key)) {
            Entry::Occupied(slot) => *slot.get(),
            Entry::Vacant(slot) => {
                let key = slot.key().0.clone();
                let states: Vec<State> = self.spec.fields.iter().map(|(_, acc, _)| initial_state(*acc)).collect();
                table.bytes += 2 * approx_size(&key) + 64 + states.len() * 48;
                table.groups.push((key, states));
                slot.insert(next);
                next
            }
        };
        let states = &mut table.groups[slot].1;
        for ((_, accumulator, expr), state) in self.spec.fields.iter().zip(states.iter_mut()) {
            let value = if *accumulator == Accumulator::Count {
                Some(Bson::Int32(1))
            } else {
                expr.evaluate(doc)?
            };
            let grown = accumulate(state, value);
            table.bytes = table.bytes.saturating_add_signed(grown);
            self.check_values(state)?;
        }
        Ok(())
    }

    /// A `$push` / `$addToSet` array over its own limit is an error, spilling or not.
    fn check_values(&self, state: &State) -> Result<(), QueryError> {
        if let State::Values { unique, bytes, .. } = state {
            let limit = if *unique {
                self.limits.add_to_set_bytes
            } else {
                self.limits.push_bytes
            };
            if *bytes > limit {
                return Err(values_memory_error(*unique, limit));
            }
        }
        Ok(())
    }

    /// Writes the table's groups, in key order, to a new run.
    fn write_run(&self, table: &mut Table, runs: &mut Vec<RunReader>) -> Result<(), QueryError> {
        let dir = self.limits.spill_dir().ok_or_else(group_memory_error)?;
        let mut writer = RunWriter::create(dir)?;
        let mut groups: Vec<Option<(Bson, Vec<State>)>> = table.groups.drain(..).map(Some).collect();
        for slot in std::mem::take(&mut table.index).into_values() {
            if let Some((key, states)) = groups[slot].take() {
                let states: Vec<Bson> = states.into_iter().map(state_into_bson).collect();
                writer.write(0, &doc! {"k": key, "s": states})?;
            }
        }
        table.bytes = 0;
        runs.push(writer.finish()?);
        Ok(())
    }

    fn read_group(&self, run: &mut RunReader) -> Result<Option<(Bson, Vec<State>)>, QueryError> {
        let Some((_, record)) = run.next_record()? else {
            return Ok(None);
        };
        let corrupt = || QueryError::new(1, "InternalError", "a spilled $group run is corrupt");
        let key = record.get("k").cloned().ok_or_else(corrupt)?;
        let saved = record.get_array("s").map_err(|_| corrupt())?;
        if saved.len() != self.spec.fields.len() {
            return Err(corrupt());
        }
        let states = self
            .spec
            .fields
            .iter()
            .zip(saved)
            .map(|((_, acc, _), value)| state_from_bson(*acc, value))
            .collect();
        Ok(Some((key, states)))
    }

    fn drain(&mut self) -> Result<(), QueryError> {
        let Some(mut input) = self.input.take() else {
            return Ok(());
        };
        let mut table = Table::default();
        let mut runs = Vec::new();
        while let Some(doc) = input.next_doc()? {
            self.add(&mut table, &doc)?;
            if table.bytes > self.limits.group_bytes {
                self.write_run(&mut table, &mut runs)?;
            }
        }
        drop(input);
        if runs.is_empty() {
            self.output = Output::Memory(table.groups.into_iter());
            return Ok(());
        }
        if !table.groups.is_empty() {
            self.write_run(&mut table, &mut runs)?;
        }
        let mut heads = Vec::with_capacity(runs.len());
        for run in &mut runs {
            heads.push(self.read_group(run)?);
        }
        self.output = Output::Merge { runs, heads };
        Ok(())
    }

    /// The next group of a merge: the smallest key among the runs' heads, its states combined in run order.
    fn next_merged(
        &self,
        runs: &mut [RunReader],
        heads: &mut [Option<(Bson, Vec<State>)>],
    ) -> Result<Option<(Bson, Vec<State>)>, QueryError> {
        let mut smallest: Option<&Bson> = None;
        for (key, _) in heads.iter().flatten() {
            if smallest.is_none_or(|s| compare_bson(key, s) == Ordering::Less) {
                smallest = Some(key);
            }
        }
        let Some(smallest) = smallest.cloned() else {
            return Ok(None);
        };
        let mut merged: Option<(Bson, Vec<State>)> = None;
        for (run, head) in runs.iter_mut().zip(heads.iter_mut()) {
            if head
                .as_ref()
                .is_none_or(|(key, _)| compare_bson(key, &smallest) != Ordering::Equal)
            {
                continue;
            }
            let refill = self.read_group(run)?;
            let Some((key, states)) = std::mem::replace(head, refill) else {
                continue;
            };
            match merged.as_mut() {
                None => merged = Some((key, states)),
                Some((_, into)) => {
                    for (into, later) in into.iter_mut().zip(states) {
                        merge_state(into, later);
                        self.check_values(into)?;
                    }
                }
            }
        }
        Ok(merged)
    }

    fn output_document(&self, key: Bson, states: Vec<State>) -> Document {
        let mut out = Document::new();
        out.insert("_id", key);
        for ((name, _, _), state) in self.spec.fields.iter().zip(states) {
            out.insert(name.clone(), finish(state));
        }
        out
    }
}

impl DocStream for GroupStream {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        if matches!(self.output, Output::Pending) {
            self.drain()?;
        }
        let mut output = std::mem::replace(&mut self.output, Output::Done);
        let next = match &mut output {
            Output::Pending | Output::Done => None,
            Output::Memory(groups) => groups.next(),
            Output::Merge { runs, heads } => self.next_merged(runs, heads)?,
        };
        let Some((key, states)) = next else {
            return Ok(None);
        };
        self.output = output;
        Ok(Some(self.output_document(key, states)))
    }

    fn park(&mut self) {
        if let Some(input) = self.input.as_mut() {
            input.park();
        }
        if let Output::Memory(groups) = &self.output
            && groups.as_slice().iter().map(group_size).sum::<usize>() > super::sorter::PARK_IN_MEMORY_BYTES
            && let Some(dir) = self.limits.spill_dir.clone()
            && let Err(err) = self.park_on_disk(&dir)
        {
            tracing::warn!(error = %err, "a parked $group cursor stays in memory");
        }
    }
}

/// The approximate memory of one group.
fn group_size((key, states): &(Bson, Vec<State>)) -> usize {
    approx_size(key)
        + states
            .iter()
            .map(|state| match state {
                State::Values { bytes, .. } => *bytes + 48,
                State::Extreme { best: Some(v), .. } | State::First(Some(v)) | State::Last(v) => approx_size(v) + 48,
                _ => 48,
            })
            .sum::<usize>()
}

impl GroupStream {
    /// Moves the groups a waiting cursor has still to return to one run on disk (in their output order), as a
    /// parked sorted cursor does: an idle cursor holds a file, not its result.
    fn park_on_disk(&mut self, dir: &std::path::Path) -> Result<(), QueryError> {
        let Output::Memory(groups) = &self.output else {
            return Ok(());
        };
        // Copied one group at a time, so a failed write leaves the result whole in memory.
        let mut writer = RunWriter::create(dir)?;
        for (key, states) in groups.as_slice() {
            let states: Vec<Bson> = states.iter().cloned().map(state_into_bson).collect();
            writer.write(0, &doc! {"k": key.clone(), "s": states})?;
        }
        let mut run = writer.finish()?;
        let head = self.read_group(&mut run)?;
        self.output = Output::Merge {
            runs: vec![run],
            heads: vec![head],
        };
        Ok(())
    }
}

/// A state as saved in a spilled run.
fn state_into_bson(state: State) -> Bson {
    match state {
        State::Sum(total) => total.to_bson(),
        State::Avg { total, count, decimal } => {
            Bson::Document(doc! {"t": total, "c": i64::try_from(count).unwrap_or(i64::MAX), "d": decimal})
        }
        State::Extreme { best, .. } => Bson::Array(best.into_iter().collect()),
        State::First(first) => Bson::Array(first.into_iter().collect()),
        State::Last(last) => last,
        State::Values { values, .. } => Bson::Array(values),
    }
}

fn state_from_bson(accumulator: Accumulator, saved: &Bson) -> State {
    let mut state = initial_state(accumulator);
    match (&mut state, saved) {
        (State::Sum(total), value) => {
            if let Some(n) = Number::from_bson(value) {
                *total = n;
            }
        }
        (State::Avg { total, count, decimal }, Bson::Document(d)) => {
            *total = d.get_f64("t").unwrap_or(0.0);
            *count = u64::try_from(d.get_i64("c").unwrap_or(0)).unwrap_or(0);
            *decimal = d.get_bool("d").unwrap_or(false);
        }
        (State::Extreme { best, .. }, Bson::Array(items)) => *best = items.first().cloned(),
        (State::First(first), Bson::Array(items)) => *first = items.first().cloned(),
        (State::Last(last), value) => *last = value.clone(),
        (State::Values { values, bytes, .. }, Bson::Array(items)) => {
            *bytes = items.iter().map(approx_size).sum();
            *values = items.clone();
        }
        _ => {}
    }
    state
}

/// Combines a state with the state of the same group from later input.
fn merge_state(into: &mut State, later: State) {
    match (into, later) {
        (State::Sum(total), State::Sum(more)) => {
            *total = numeric::add(*total, more).unwrap_or_else(|_| Number::Double(total.as_f64() + more.as_f64()));
        }
        (
            State::Avg { total, count, decimal },
            State::Avg {
                total: t,
                count: c,
                decimal: d,
            },
        ) => {
            *total += t;
            *count += c;
            *decimal |= d;
        }
        (State::Extreme { best, wanted }, State::Extreme { best: Some(other), .. })
            if best.as_ref().is_none_or(|b| compare_bson(&other, b) == *wanted) =>
        {
            *best = Some(other);
        }
        (State::First(first), State::First(other)) if first.is_none() => *first = other,
        (State::Last(last), State::Last(other)) => *last = other,
        (
            State::Values { values, unique, bytes },
            State::Values {
                values: more,
                bytes: more_bytes,
                ..
            },
        ) => {
            if *unique {
                for v in more {
                    if !values.iter().any(|existing| bson_equal(existing, &v)) {
                        *bytes += approx_size(&v);
                        values.push(v);
                    }
                }
            } else {
                values.extend(more);
                *bytes += more_bytes;
            }
        }
        _ => {}
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
            bytes: 0,
        },
        Accumulator::AddToSet => State::Values {
            values: Vec::new(),
            unique: true,
            bytes: 0,
        },
    }
}

/// Adds one value to a state; returns how much the state grew (approximately, in bytes).
fn accumulate(state: &mut State, value: Option<Bson>) -> isize {
    let size = |v: &Bson| approx_size(v) as isize;
    match state {
        State::Sum(total) => {
            if let Some(n) = value.as_ref().and_then(Number::from_bson) {
                *total = numeric::add(*total, n).unwrap_or_else(|_| Number::Double(total.as_f64() + n.as_f64()));
            }
            0
        }
        State::Avg { total, count, decimal } => {
            if let Some(n) = value.as_ref().and_then(Number::from_bson) {
                *total += n.as_f64();
                *count += 1;
                *decimal |= matches!(n, Number::Decimal(_));
            }
            0
        }
        State::Extreme { best, wanted } => match value {
            None | Some(Bson::Null) | Some(Bson::Undefined) => 0,
            Some(v) => {
                if best.as_ref().is_none_or(|b| compare_bson(&v, b) == *wanted) {
                    let grown = size(&v) - best.as_ref().map(size).unwrap_or(0);
                    *best = Some(v);
                    grown
                } else {
                    0
                }
            }
        },
        State::First(first) => {
            if first.is_none() {
                let v = value.unwrap_or(Bson::Null);
                let grown = size(&v);
                *first = Some(v);
                grown
            } else {
                0
            }
        }
        State::Last(last) => {
            let v = value.unwrap_or(Bson::Null);
            let grown = size(&v) - size(last);
            *last = v;
            grown
        }
        State::Values { values, unique, bytes } => {
            if let Some(v) = value
                && !(*unique && values.iter().any(|existing| bson_equal(existing, &v)))
            {
                let grown = approx_size(&v);
                *bytes += grown;
                values.push(v);
                grown as isize
            } else {
                0
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

//! Streamed linearizability checking of JSONL histories too large to load (issue 17, "Larger histories").
//!
//! [`check_jsonl`] reads the history line by line and never holds it whole: each event is paired with its
//! invocation as it arrives (with the loaded path's pairing errors, at the same lines) and appended to its
//! key's partition in a compact byte encoding — values, names and errors interned once, the other fields
//! delta- and varint-coded, some 10–20 bytes an event instead of an [`Op`]'s 100 and more. A JSONL file
//! does not say when a key has seen its last event, so the partitions are checked after the read: smallest
//! first, in batches of about [`BATCH_OPERATIONS`] operations, each batch rebuilt into a small [`History`]
//! and checked by [`linear::check`] (same search, threads and memory budget) and then freed. The first
//! non-linearizable batch ends the check, as the first failing partition cancels the others in the loaded
//! path; a time budget (the search's, from the end of the read) is shared by the batches.
//!
//! The verdict is the loaded path's: the same partitions are searched with the same model, and the
//! counterexample names the file's own event indices and lines.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thiserror::Error;

use crate::formats::FormatError;
use crate::formats::jsonl::{LineEvent, parse_line};
use crate::formats::lines::Lines;
use crate::history::pairing::PairingError;
use crate::history::{History, Interner, Key, Name, Op, OpType, Process};
use crate::linear::{self, LinearError, LinearOptions, ModelKind};
use crate::result::{CheckResult, Validity};

/// Operations rebuilt and searched together: large enough for the worker threads to share a batch's
/// partitions, small enough that a rebuilt batch (about 400 bytes an operation) stays near 100 MiB.
pub const BATCH_OPERATIONS: usize = 1 << 18;

/// Why a streamed check could not reach a verdict.
#[derive(Debug, Error)]
pub enum StreamError {
    /// A line is not a JSONL event, or the input has none.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The events break the invoke/completion protocol, or an operation does not fit the model.
    #[error(transparent)]
    Linear(#[from] LinearError),
    /// The model spans keys, so the history cannot be split into partitions.
    #[error("model {0} is not checked per key, so it cannot be streamed")]
    NotPartitioned(&'static str),
}

/// A streamed check's verdict and what it took.
#[derive(Debug)]
pub struct Streamed {
    /// The verdict, as [`linear::check`] gives it for the whole history.
    pub result: CheckResult,
    /// History events read (client and nemesis).
    pub events: usize,
    /// Bytes of the compact partitions once the whole file was read (the encoded events, not the tables).
    pub stored_bytes: usize,
    /// Time spent reading the file into the partitions.
    pub read_time: Duration,
    /// Time spent checking the partitions.
    pub check_time: Duration,
}

/// Whether a model's histories can be checked streamed (per key).
pub fn supports(model: ModelKind) -> bool {
    model != ModelKind::MultiRegister
}

/// Checks a JSONL history for linearizability under `options`, streaming it (see the module header).
pub fn check_jsonl(reader: impl BufRead, options: &LinearOptions) -> Result<Streamed, StreamError> {
    check_jsonl_in_batches(reader, options, BATCH_OPERATIONS)
}

/// [`check_jsonl`] with batches of about `batch_operations` operations (a partition larger than that is a
/// batch of its own).
pub fn check_jsonl_in_batches(
    reader: impl BufRead,
    options: &LinearOptions,
    batch_operations: usize,
) -> Result<Streamed, StreamError> {
    if !supports(options.model) {
        return Err(StreamError::NotPartitioned(options.model.name()));
    }
    let started = Instant::now();
    let mut store = Store::default();
    let mut lines = Lines::new(reader);
    // The loaded path reads the whole file before it pairs, so a malformed line anywhere wins over a
    // protocol error: after one, the rest is still parsed, not filed.
    let mut protocol_error = None;
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_line(line_no, line)?;
        if protocol_error.is_none() {
            protocol_error = store.add(line_no, event).err();
        }
    }
    if store.events == 0 {
        return Err(FormatError::Empty.into());
    }
    if let Some(error) = protocol_error {
        return Err(error.into());
    }
    store.close_open_operations();
    let stored_bytes = store.parts.iter().map(|p| p.bytes.len()).sum();
    let events = store.events;
    let read_time = started.elapsed();
    // As in the loaded path, the time budget is the search's: it starts once the history is read.
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let result = store.check(options, deadline, batch_operations)?;
    Ok(Streamed {
        result,
        events,
        stored_bytes,
        read_time,
        check_time: started.elapsed() - read_time,
    })
}

/// Distinct values (and errors) as dense ids; id 0 is `null`.
struct Values {
    ints: HashMap<i64, u32>,
    texts: HashMap<String, u32>,
    others: HashMap<String, u32>,
    table: Vec<Value>,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            ints: HashMap::new(),
            texts: HashMap::new(),
            others: HashMap::new(),
            table: vec![Value::Null],
        }
    }
}

impl Values {
    fn id(&mut self, value: Value) -> u32 {
        let next = self.table.len() as u32;
        let id = match &value {
            Value::Null => return 0,
            Value::Number(n) if n.is_i64() => *self.ints.entry(n.as_i64().unwrap_or_default()).or_insert(next),
            Value::String(s) => match self.texts.get(s.as_str()) {
                Some(&id) => id,
                None => {
                    self.texts.insert(s.clone(), next);
                    next
                }
            },
            other => *self.others.entry(other.to_string()).or_insert(next),
        };
        if id == next {
            self.table.push(value);
        }
        id
    }

    fn value(&self, id: u32) -> Value {
        self.table.get(id as usize).cloned().unwrap_or(Value::Null)
    }
}

/// Distinct names (`f`, `node`) as dense ids.
#[derive(Default)]
struct Names {
    ids: HashMap<String, u32>,
    table: Vec<Name>,
}

impl Names {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.table.len() as u32;
        self.ids.insert(text.to_string(), id);
        self.table.push(Name::from(text));
        id
    }

    fn name(&self, id: u32) -> Name {
        self.table.get(id as usize).cloned().unwrap_or_else(|| Name::from(""))
    }
}

/// One client event with its strings replaced by ids.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Compact {
    op_type: OpType,
    index: u64,
    time: u64,
    line: u64,
    process: u64,
    f: u32,
    value: u32,
    node: Option<u32>,
    error: Option<u32>,
}

/// One key's events, encoded back to back (see [`Part::push`]).
struct Part {
    key: Option<Key>,
    bytes: Vec<u8>,
    /// The last encoded event's index, time and line, which the next one is coded against.
    previous: (u64, u64, u64),
    operations: usize,
}

const NODE_FLAG: u8 = 1 << 2;
const ERROR_FLAG: u8 = 1 << 3;

impl Part {
    fn new(key: Option<Key>) -> Part {
        Part {
            key,
            bytes: Vec::new(),
            previous: (0, 0, 0),
            operations: 0,
        }
    }

    /// Appends an event: a flags byte (type, node?, error?), then index, time and line as signed deltas
    /// from the previous event, then process, f, value, node and error ids, all LEB128 varints.
    fn push(&mut self, event: &Compact) {
        let kind = match event.op_type {
            OpType::Invoke => 0,
            OpType::Ok => 1,
            OpType::Fail => 2,
            OpType::Info => 3,
        };
        let flags = kind | event.node.map_or(0, |_| NODE_FLAG) | event.error.map_or(0, |_| ERROR_FLAG);
        let (index, time, line) = self.previous;
        let out = &mut self.bytes;
        out.push(flags);
        put_signed(out, event.index.wrapping_sub(index) as i64);
        put_signed(out, event.time.wrapping_sub(time) as i64);
        put_signed(out, event.line.wrapping_sub(line) as i64);
        put(out, event.process);
        put(out, u64::from(event.f));
        put(out, u64::from(event.value));
        for id in [event.node, event.error].into_iter().flatten() {
            put(out, u64::from(id));
        }
        self.previous = (event.index, event.time, event.line);
        if event.op_type == OpType::Invoke {
            self.operations += 1;
        }
    }

    /// Decodes every event, in the order pushed.
    fn events(&self) -> Vec<Compact> {
        let mut events = Vec::new();
        let (mut index, mut time, mut line) = (0u64, 0u64, 0u64);
        let mut at = 0;
        let bytes = &self.bytes;
        while at < bytes.len() {
            let flags = bytes[at];
            at += 1;
            index = index.wrapping_add(take_signed(bytes, &mut at) as u64);
            time = time.wrapping_add(take_signed(bytes, &mut at) as u64);
            line = line.wrapping_add(take_signed(bytes, &mut at) as u64);
            let process = take(bytes, &mut at);
            let f = take(bytes, &mut at) as u32;
            let value = take(bytes, &mut at) as u32;
            let node = (flags & NODE_FLAG != 0).then(|| take(bytes, &mut at) as u32);
            let error = (flags & ERROR_FLAG != 0).then(|| take(bytes, &mut at) as u32);
            let op_type = match flags & 3 {
                0 => OpType::Invoke,
                1 => OpType::Ok,
                2 => OpType::Fail,
                _ => OpType::Info,
            };
            events.push(Compact {
                op_type,
                index,
                time,
                line,
                process,
                f,
                value,
                node,
                error,
            });
        }
        events
    }
}

fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_signed(out: &mut Vec<u8>, n: i64) {
    put(out, ((n << 1) ^ (n >> 63)) as u64);
}

fn take(bytes: &[u8], at: &mut usize) -> u64 {
    let mut n = 0u64;
    let mut shift = 0;
    while let Some(&byte) = bytes.get(*at) {
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    n
}

fn take_signed(bytes: &[u8], at: &mut usize) -> i64 {
    let n = take(bytes, at);
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Where an open operation's events go.
enum Route {
    /// Its key's partition.
    Part(usize),
    /// Its invocation has no key: held until the completion says which partition (its key, or none).
    Held(Compact),
}

/// An invocation waiting for its completion.
struct Open {
    line: usize,
    f: u32,
    route: Route,
}

/// Everything read so far: the partitions, the tables their ids point into, and the open operations.
#[derive(Default)]
struct Store {
    keys: Interner,
    values: Values,
    names: Names,
    parts: Vec<Part>,
    slots: HashMap<Option<Key>, usize>,
    open: HashMap<u64, Open>,
    /// Every non-blank line, client or nemesis (the loaded reader's position).
    events: usize,
}

impl Store {
    fn slot(&mut self, key: Option<Key>) -> usize {
        if let Some(&slot) = self.slots.get(&key) {
            return slot;
        }
        self.parts.push(Part::new(key.clone()));
        self.slots.insert(key, self.parts.len() - 1);
        self.parts.len() - 1
    }

    /// Pairs and files one event (the loaded path's [`crate::history::pair`], one event at a time).
    fn add(&mut self, line_no: usize, event: LineEvent<'_>) -> Result<(), LinearError> {
        let position = self.events as u64;
        self.events += 1;
        let Process::Client(process) = event.process else {
            return Ok(());
        };
        let compact = Compact {
            op_type: event.op_type,
            index: event.index.unwrap_or(position),
            time: event.time.unwrap_or(position),
            line: line_no as u64,
            process,
            f: self.names.id(&event.f),
            value: self.values.id(event.value),
            node: event.node.map(|n| self.names.id(&n)),
            error: event.error.map(|e| self.values.id(e)),
        };
        let key = event.key.map(|k| self.keys.key(k));
        if compact.op_type == OpType::Invoke {
            if let Some(open) = self.open.get(&process) {
                return Err(PairingError::DoubleInvoke {
                    line: line_no,
                    process,
                    open_line: open.line,
                }
                .into());
            }
            let route = match key {
                Some(key) => {
                    let slot = self.slot(Some(key));
                    self.parts[slot].push(&compact);
                    Route::Part(slot)
                }
                None => Route::Held(compact),
            };
            let open = Open {
                line: line_no,
                f: compact.f,
                route,
            };
            self.open.insert(process, open);
            return Ok(());
        }
        let Some(open) = self.open.remove(&process) else {
            return Err(PairingError::CompletionWithoutInvoke { line: line_no, process }.into());
        };
        if open.f != compact.f {
            return Err(PairingError::FunctionMismatch {
                line: line_no,
                expected: self.names.name(open.f).to_string(),
                got: event.f.into_owned(),
            }
            .into());
        }
        match open.route {
            Route::Part(slot) => self.parts[slot].push(&compact),
            Route::Held(invocation) => {
                let slot = self.slot(key);
                self.parts[slot].push(&invocation);
                self.parts[slot].push(&compact);
            }
        }
        Ok(())
    }

    /// Files the invocations never completed whose key is unknown (they are key-less).
    fn close_open_operations(&mut self) {
        let mut held: Vec<Compact> = self
            .open
            .drain()
            .filter_map(|(_, open)| match open.route {
                Route::Held(invocation) => Some(invocation),
                Route::Part(_) => None,
            })
            .collect();
        held.sort_by_key(|e| e.line);
        for invocation in held {
            let slot = self.slot(None);
            self.parts[slot].push(&invocation);
        }
    }

    /// Rebuilds the partitions `batch` as one history, events in file order.
    fn history(&self, batch: &[usize]) -> History {
        let mut events: Vec<(u64, Op)> = Vec::new();
        for &slot in batch {
            let part = &self.parts[slot];
            for e in part.events() {
                let op = Op {
                    index: e.index,
                    time: e.time,
                    op_type: e.op_type,
                    process: Process::Client(e.process),
                    f: self.names.name(e.f),
                    key: part.key.clone(),
                    value: self.values.value(e.value),
                    node: e.node.map(|id| self.names.name(id)),
                    error: e.error.map(|id| Box::new(self.values.value(id))),
                };
                events.push((e.line, op));
            }
        }
        events.sort_by_key(|(line, _)| *line);
        let mut history = History::new();
        for (line, op) in events {
            history.push(op, line as usize);
        }
        history
    }

    /// Checks the partitions smallest first, in batches; the worst batch's verdict with the whole counts.
    fn check(
        mut self,
        options: &LinearOptions,
        deadline: Option<Instant>,
        batch_operations: usize,
    ) -> Result<CheckResult, LinearError> {
        let mut order: Vec<usize> = (0..self.parts.len()).collect();
        order.sort_by_key(|&slot| self.parts[slot].operations);
        let operations: usize = self.parts.iter().map(|p| p.operations).sum();
        let mut worst: Option<CheckResult> = None;
        let (mut searched, mut configurations) = (0, 0);
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let mut size = 0;
            let count = rest
                .iter()
                .take_while(|&&slot| {
                    let fits = size == 0 || size + self.parts[slot].operations <= batch_operations;
                    size += self.parts[slot].operations;
                    fits
                })
                .count();
            let (batch, later) = rest.split_at(count);
            rest = later;
            let history = self.history(batch);
            for &slot in batch {
                self.parts[slot].bytes = Vec::new();
            }
            let mut batch_options = options.clone();
            batch_options.timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let result = linear::check(&history, &batch_options)?;
            drop(history);
            searched += result.counts.get("searched-operations").copied().unwrap_or(0);
            configurations += result.counts.get("configurations").copied().unwrap_or(0);
            let decided_invalid = result.valid == Validity::False;
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            if worst.as_ref().is_none_or(|w| result.valid > w.valid) {
                worst = Some(result);
            }
            if decided_invalid || out_of_time {
                if !decided_invalid && !rest.is_empty() {
                    let w = worst.get_or_insert_with(|| CheckResult::new("linearizable"));
                    w.valid = Validity::Unknown;
                    w.details = json!({"model": options.model.name(), "unknown-reason": "timeout"});
                }
                break;
            }
        }
        let mut result = worst.unwrap_or_else(|| CheckResult::new("linearizable"));
        result.set_count("operations", operations as u64);
        result.set_count("partitions", self.parts.len() as u64);
        result.set_count("searched-operations", searched);
        result.set_count("configurations", configurations);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_compact_encoding() {
        let mut part = Part::new(None);
        let events = [
            Compact {
                op_type: OpType::Invoke,
                index: 7,
                time: 1_000_000_000_000,
                line: 8,
                process: u64::MAX / 2,
                f: 3,
                value: 300,
                node: None,
                error: None,
            },
            Compact {
                op_type: OpType::Info,
                index: 2,
                time: 5,
                line: 3,
                process: 0,
                f: 0,
                value: 0,
                node: Some(1),
                error: Some(70_000),
            },
            Compact {
                op_type: OpType::Fail,
                index: u64::MAX,
                time: 0,
                line: 9,
                process: 1,
                f: 1,
                value: u32::MAX,
                node: Some(0),
                error: None,
            },
        ];
        for e in &events {
            part.push(e);
        }
        assert_eq!(part.events(), events);
        assert_eq!(part.operations, 1);
    }
}

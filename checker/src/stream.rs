//! Streamed linearizability checking of JSONL histories too large to load (issue 17, "Larger histories").
//!
//! [`check_jsonl`] never holds the history whole. One thread reads blocks of whole lines
//! ([`Blocks`], about a megabyte), the worker threads parse them, and the calling thread files the events
//! in file order: each is paired with its invocation as it arrives (with the loaded path's pairing errors,
//! at the same lines) and appended to its key's partition in a compact byte encoding — values, names and
//! errors interned once, the other fields delta- and varint-coded, some 10–20 bytes an event instead of an
//! [`Op`]'s 100 and more. Blocks in flight are bounded, so memory grows with the partitions only. A JSONL file
//! does not say when a key has seen its last event, so the partitions are checked after the read: each is
//! rebuilt into a small [`History`] and checked by [`linear::check`] (same search, same model), smallest
//! first, one partition per worker thread at a time, the memory budget split between the workers. The first
//! non-linearizable partition stops the workers taking more, as the first failing partition cancels the
//! others in the loaded path; the time budget (the search's, from the end of the read) is shared.
//!
//! The verdict is the loaded path's: the same partitions are searched with the same model, and the
//! counterexample names the file's own event indices and lines.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thiserror::Error;

use crate::formats::FormatError;
use crate::formats::jsonl::parse_line;
use crate::formats::lines::{Block, Blocks};
use crate::history::pairing::PairingError;
use crate::history::{History, Interner, Key, Name, Op, OpType, Process};
use crate::linear::{self, LinearError, LinearOptions, ModelKind};
use crate::result::{CheckResult, Validity};

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
pub fn check_jsonl(reader: impl Read + Send, options: &LinearOptions) -> Result<Streamed, StreamError> {
    if !supports(options.model) {
        return Err(StreamError::NotPartitioned(options.model.name()));
    }
    let started = Instant::now();
    let mut store = Store::default();
    let protocol_error = read(reader, &mut store, threads(options))?;
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
    let result = store.check(options, deadline)?;
    Ok(Streamed {
        result,
        events,
        stored_bytes,
        read_time,
        check_time: started.elapsed() - read_time,
    })
}

/// Worker threads the options ask for (0: one per core).
fn threads(options: &LinearOptions) -> usize {
    match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// A value as a parser thread hands it on: small ones inline, others in its block's table.
#[derive(Debug, Clone, Copy)]
enum Slim {
    Null,
    Int(i64),
    Table(u32),
}

/// One event as a parser thread hands it on: no allocation of its own, names and large values in its
/// block's tables (moving 20 million events between threads is the read's main cost).
struct ParsedEvent {
    line: usize,
    index: Option<u64>,
    time: Option<u64>,
    /// The client, or `None` for a named process (not checked).
    process: Option<u64>,
    op_type: OpType,
    f: u32,
    node: Option<u32>,
    key: Option<Slim>,
    value: Slim,
    error: Option<u32>,
}

/// A block's events with the names and values they point to.
#[derive(Default)]
struct ParsedEvents {
    events: Vec<ParsedEvent>,
    names: Vec<String>,
    name_ids: FastMap<String, u32>,
    values: Vec<Value>,
}

impl ParsedEvents {
    fn name(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(text) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(text.to_string());
        self.name_ids.insert(text.to_string(), id);
        id
    }

    fn slim(&mut self, value: Value) -> Slim {
        match value {
            Value::Null => Slim::Null,
            Value::Number(n) if n.is_i64() => Slim::Int(n.as_i64().unwrap_or_default()),
            other => Slim::Table(self.table(other)),
        }
    }

    fn table(&mut self, value: Value) -> u32 {
        self.values.push(value);
        self.values.len() as u32 - 1
    }

    /// The value behind `slim`, moved out of the table (each table entry belongs to one event).
    fn take(&mut self, slim: Slim) -> Value {
        match slim {
            Slim::Null => Value::Null,
            Slim::Int(n) => Value::from(n),
            Slim::Table(i) => self.values.get_mut(i as usize).map(std::mem::take).unwrap_or_default(),
        }
    }
}

/// A block's events as parsed, or the first error in it.
type ParsedBlock = Result<ParsedEvents, FormatError>;

/// Reads the input into `store`: one thread reads blocks of whole lines, `parsers` threads parse them, and
/// the calling thread files the events in file order. A malformed line is returned as the error; the first
/// protocol error (pairing), if any, is returned as the value, since the loaded path reads the whole file
/// before it pairs, so that a malformed line anywhere wins over it (after one, the rest is parsed, not
/// filed). Blocks in flight are bounded, so memory does not grow with the file.
fn read(reader: impl Read + Send, store: &mut Store, parsers: usize) -> Result<Option<LinearError>, FormatError> {
    let parsers = parsers.max(1);
    let (block_tx, block_rx) = mpsc::sync_channel::<(u64, Result<Block, FormatError>)>(2 * parsers);
    let block_rx = Mutex::new(block_rx);
    let (parsed_tx, parsed_rx) = mpsc::sync_channel::<(u64, ParsedBlock)>(2 * parsers);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut blocks = Blocks::new(reader);
            for seq in 0.. {
                let (block, last) = match blocks.next_block() {
                    Ok(Some(block)) => (Ok(block), false),
                    Ok(None) => break,
                    Err(e) => (Err(e), true),
                };
                if block_tx.send((seq, block)).is_err() || last {
                    break;
                }
            }
        });
        for _ in 0..parsers {
            let parsed_tx = parsed_tx.clone();
            let block_rx = &block_rx;
            scope.spawn(move || {
                loop {
                    let next = block_rx.lock().ok().and_then(|rx| rx.recv().ok());
                    let Some((seq, block)) = next else { break };
                    if parsed_tx.send((seq, block.and_then(|b| parse_block(&b)))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(parsed_tx);
        file_in_order(parsed_rx, store)
    })
}

/// Parses every non-blank line of a block.
fn parse_block(block: &Block) -> ParsedBlock {
    let mut parsed = ParsedEvents::default();
    // Written events take about 100 bytes a line: one allocation for most blocks.
    parsed.events.reserve(block.bytes.len() / 64);
    block.for_each_line(|line_no, line| -> Result<(), FormatError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let event = parse_line(line_no, line)?;
        let process = match event.process {
            Process::Client(p) => Some(p),
            Process::Named(_) => None,
        };
        let parsed_event = ParsedEvent {
            line: line_no,
            index: event.index,
            time: event.time,
            process,
            op_type: event.op_type,
            f: parsed.name(&event.f),
            node: event.node.map(|n| parsed.name(&n)),
            key: event.key.map(|k| parsed.slim(k)),
            value: parsed.slim(event.value),
            error: event.error.map(|e| parsed.table(e)),
        };
        parsed.events.push(parsed_event);
        Ok(())
    })?;
    Ok(parsed)
}

/// Files parsed blocks into the store in file order (they arrive in any order); consumes the receiver, so
/// returning early stops the reading threads.
fn file_in_order(
    parsed: mpsc::Receiver<(u64, ParsedBlock)>,
    store: &mut Store,
) -> Result<Option<LinearError>, FormatError> {
    let mut waiting: BTreeMap<u64, ParsedBlock> = BTreeMap::new();
    let mut next = 0;
    let mut protocol_error = None;
    for (seq, block) in parsed {
        waiting.insert(seq, block);
        while let Some(block) = waiting.remove(&next) {
            next += 1;
            let mut block = block?;
            if protocol_error.is_some() {
                store.events += block.events.len();
                continue;
            }
            let names: Vec<u32> = block.names.iter().map(|n| store.names.id(n)).collect();
            let events = std::mem::take(&mut block.events);
            for event in events {
                let key = event.key.map(|k| block.take(k));
                let value = block.take(event.value);
                let error = event.error.map(|e| block.take(Slim::Table(e)));
                let event = Event {
                    line: event.line,
                    index: event.index,
                    time: event.time,
                    process: event.process,
                    op_type: event.op_type,
                    f: names[event.f as usize],
                    node: event.node.map(|n| names[n as usize]),
                    key,
                    value,
                    error,
                };
                if let Err(e) = store.add(event) {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
    }
    Ok(protocol_error)
}

/// A fast, non-cryptographic hasher for the read's tables (a history file is not an adversary of its own
/// checker): a multiply-rotate over 8-byte words with a final mix.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in chunks.by_ref() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let mut word = [0u8; 8];
        word[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.write_u64(u64::from_le_bytes(word) ^ (bytes.len() as u64) << 56);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Distinct values (and errors) as dense ids; id 0 is `null`.
struct Values {
    ints: FastMap<i64, u32>,
    texts: FastMap<String, u32>,
    others: FastMap<String, u32>,
    table: Vec<Value>,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            ints: FastMap::default(),
            texts: FastMap::default(),
            others: FastMap::default(),
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
    ids: FastMap<String, u32>,
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
        // At most 1 + 3 × 10 + 10 + 4 × 5 bytes: one reservation, then pushes that never reallocate.
        self.bytes.reserve(64);
        let mut out = Encoder { bytes: &mut self.bytes };
        out.byte(flags);
        out.signed(event.index.wrapping_sub(index) as i64);
        out.signed(event.time.wrapping_sub(time) as i64);
        out.signed(event.line.wrapping_sub(line) as i64);
        out.unsigned(event.process);
        out.unsigned(u64::from(event.f));
        out.unsigned(u64::from(event.value));
        for id in [event.node, event.error].into_iter().flatten() {
            out.unsigned(u64::from(id));
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

/// LEB128 varints (zig-zag for signed numbers) appended to a partition's bytes.
struct Encoder<'a> {
    bytes: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn byte(&mut self, byte: u8) {
        self.bytes.push(byte);
    }

    fn unsigned(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.byte((n as u8) | 0x80);
            n >>= 7;
        }
        self.byte(n as u8);
    }

    fn signed(&mut self, n: i64) {
        self.unsigned(((n << 1) ^ (n >> 63)) as u64);
    }
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

/// One event as the store files it: names interned, values whole.
struct Event {
    line: usize,
    index: Option<u64>,
    time: Option<u64>,
    /// The client, or `None` for a named process (not checked).
    process: Option<u64>,
    op_type: OpType,
    f: u32,
    node: Option<u32>,
    key: Option<Value>,
    value: Value,
    error: Option<Value>,
}

/// Everything read so far: the partitions, the tables their ids point into, and the open operations.
#[derive(Default)]
struct Store {
    keys: Interner,
    values: Values,
    names: Names,
    parts: Vec<Part>,
    /// Partition of each key: integer and string keys looked up without building a [`Key`].
    int_slots: FastMap<i64, usize>,
    text_slots: FastMap<String, usize>,
    other_slots: FastMap<Key, usize>,
    keyless_slot: Option<usize>,
    open: FastMap<u64, Open>,
    /// Every non-blank line, client or nemesis (the loaded reader's position).
    events: usize,
}

impl Store {
    fn new_part(&mut self, key: Option<Key>) -> usize {
        self.parts.push(Part::new(key));
        self.parts.len() - 1
    }

    /// The partition of `key`, made on first sight.
    fn slot(&mut self, key: Option<Value>) -> usize {
        match key {
            None => match self.keyless_slot {
                Some(slot) => slot,
                None => {
                    let slot = self.new_part(None);
                    self.keyless_slot = Some(slot);
                    slot
                }
            },
            Some(Value::Number(n)) if n.is_i64() => {
                let int = n.as_i64().unwrap_or_default();
                match self.int_slots.get(&int) {
                    Some(&slot) => slot,
                    None => {
                        let key = self.keys.key(Value::Number(n));
                        let slot = self.new_part(Some(key));
                        self.int_slots.insert(int, slot);
                        slot
                    }
                }
            }
            Some(Value::String(text)) => match self.text_slots.get(text.as_str()) {
                Some(&slot) => slot,
                None => {
                    let key = self.keys.key(Value::String(text.clone()));
                    let slot = self.new_part(Some(key));
                    self.text_slots.insert(text, slot);
                    slot
                }
            },
            Some(other) => {
                let key = self.keys.key(other);
                match self.other_slots.get(&key) {
                    Some(&slot) => slot,
                    None => {
                        let slot = self.new_part(Some(key.clone()));
                        self.other_slots.insert(key, slot);
                        slot
                    }
                }
            }
        }
    }

    /// Pairs and files one event (the loaded path's [`crate::history::pair`], one event at a time).
    fn add(&mut self, event: Event) -> Result<(), LinearError> {
        let position = self.events as u64;
        self.events += 1;
        let Some(process) = event.process else {
            return Ok(());
        };
        let line_no = event.line;
        let compact = Compact {
            op_type: event.op_type,
            index: event.index.unwrap_or(position),
            time: event.time.unwrap_or(position),
            line: line_no as u64,
            process,
            f: event.f,
            value: self.values.id(event.value),
            node: event.node,
            error: event.error.map(|e| self.values.id(e)),
        };
        if compact.op_type == OpType::Invoke {
            if let Some(open) = self.open.get(&process) {
                return Err(PairingError::DoubleInvoke {
                    line: line_no,
                    process,
                    open_line: open.line,
                }
                .into());
            }
            let route = match event.key {
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
                got: self.names.name(compact.f).to_string(),
            }
            .into());
        }
        match open.route {
            Route::Part(slot) => self.parts[slot].push(&compact),
            Route::Held(invocation) => {
                let slot = self.slot(event.key);
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

    /// Rebuilds one partition as a history, events in file order.
    fn history(&self, slot: usize) -> History {
        let part = &self.parts[slot];
        let mut events = part.events();
        // Already in file order but for held invocations, filed at their completion.
        events.sort_by_key(|e| e.line);
        let mut history = History::new();
        history.ops.reserve(events.len());
        history.lines.reserve(events.len());
        for e in events {
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
            history.push(op, e.line as usize);
        }
        history
    }

    /// Checks the partitions on worker threads, each partition rebuilt and checked on its own, smallest
    /// first; the worst verdict with the whole history's counts.
    fn check(&self, options: &LinearOptions, deadline: Option<Instant>) -> Result<CheckResult, LinearError> {
        let mut order: Vec<usize> = (0..self.parts.len()).collect();
        order.sort_by_key(|&slot| self.parts[slot].operations);
        let workers = threads(options).clamp(1, order.len().max(1));
        let mut partition_options = options.clone();
        if workers > 1 {
            // Each worker searches one partition at a time; the memory budget is shared.
            partition_options.threads = 1;
            partition_options.memory_bytes = options.memory_bytes / workers;
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let outcomes: Mutex<Vec<Result<CheckResult, (usize, LinearError)>>> = Mutex::new(Vec::new());
        let worker = || {
            while !stop.load(Ordering::Relaxed) {
                let Some(&slot) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let history = self.history(slot);
                let mut options = partition_options.clone();
                options.timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let outcome = linear::check(&history, &options).map_err(|e| {
                    let line = match &e {
                        LinearError::Unsupported { line, .. } => *line,
                        LinearError::Pairing(_) => 0,
                    };
                    (line, e)
                });
                let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                if out_of_time || outcome.as_ref().is_ok_and(|r| r.valid == Validity::False) || outcome.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if let Ok(mut outcomes) = outcomes.lock() {
                    outcomes.push(outcome);
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..workers {
                scope.spawn(worker);
            }
            worker();
        });
        let outcomes = outcomes.into_inner().unwrap_or_default();
        let checked = outcomes.len();
        let mut results = Vec::with_capacity(checked);
        let mut first_error: Option<(usize, LinearError)> = None;
        for outcome in outcomes {
            match outcome {
                Ok(result) => results.push(result),
                Err((line, e)) => {
                    if first_error.as_ref().is_none_or(|(first, _)| line < *first) {
                        first_error = Some((line, e));
                    }
                }
            }
        }
        if let Some((_, e)) = first_error {
            return Err(e);
        }
        let sum = |name: &str| results.iter().map(|r| r.counts.get(name).copied().unwrap_or(0)).sum();
        let (searched, configurations) = (sum("searched-operations"), sum("configurations"));
        let mut result = results
            .into_iter()
            .reduce(|worst, r| if r.valid > worst.valid { r } else { worst })
            .unwrap_or_else(|| CheckResult::new("linearizable"));
        if checked < order.len() && result.valid == Validity::True {
            // Out of time before every partition was searched.
            result.valid = Validity::Unknown;
            result.details = json!({"model": options.model.name(), "unknown-reason": "timeout"});
        }
        let operations: usize = self.parts.iter().map(|p| p.operations).sum();
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

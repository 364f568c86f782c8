//! A deterministic generator of register histories, for tests and benchmarks.
//!
//! It runs a real sequential register per key with random concurrency: at each step it either invokes an
//! operation on an idle process, applies a pending operation to the register (its linearization point), or
//! completes an applied operation — or crashes a pending one (`info`; the crashed process is replaced by a
//! fresh process number, as in Jepsen). Histories it makes are therefore linearizable. Written values are
//! unique per key. With more than one key, operations carry their key (written as `{"key": k, "value": v}`).
//!
//! [`kv_history`] does the same for Porcupine-style key-value histories (gets and appends on string keys),
//! and can plant one stale read in a random key so that exactly that key is not linearizable.

use serde_json::{Value, json};

use crate::history::{History, Key, Name, Op, OpType, Process};

/// The workspace's deterministic generator, under the name this module has always used.
pub use faultline_splitmix::SplitMix64 as SplitMix;

/// Shape of a generated history.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// Number of keys (1 = plain, un-keyed register).
    pub keys: u64,
    /// Concurrent client processes.
    pub processes: u64,
    /// Operations (invocations) to generate.
    pub operations: u64,
    /// Probability that an operation crashes (`info`).
    pub crash_rate: f64,
    /// Fraction of operations that are reads.
    pub read_fraction: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for GenSpec {
    fn default() -> GenSpec {
        GenSpec {
            keys: 1,
            processes: 5,
            operations: 100,
            crash_rate: 0.0,
            read_fraction: 0.5,
            seed: 1,
        }
    }
}

struct Pending {
    process: u64,
    key: u64,
    f: &'static str,
    value: Value,
    applied: bool,
}

/// Generates a linearizable register history.
pub fn register_history(spec: &GenSpec) -> History {
    History::from_ops(register_events(spec).collect())
}

/// The events of [`register_history`] one at a time, so a history of any length can be written out without
/// being held in memory (same spec, same events).
pub fn register_events(spec: &GenSpec) -> RegisterEvents {
    let registers: Vec<Value> = vec![Value::Null; spec.keys.max(1) as usize];
    let pending: Vec<Option<Pending>> = (0..spec.processes.max(1)).map(|_| None).collect();
    RegisterEvents {
        spec: spec.clone(),
        rng: SplitMix::new(spec.seed),
        next_value: vec![0; registers.len()],
        keys: (0..registers.len() as u64).map(|k| Key::new(json!(k))).collect(),
        registers,
        process_ids: (0..pending.len() as u64).collect(),
        next_process: pending.len() as u64,
        pending,
        invoked: 0,
        emitted: 0,
        read: Name::from("read"),
        write: Name::from("write"),
    }
}

/// The running register store behind [`register_events`]: an iterator over the history's events.
pub struct RegisterEvents {
    spec: GenSpec,
    rng: SplitMix,
    registers: Vec<Value>,
    next_value: Vec<i64>,
    pending: Vec<Option<Pending>>,
    process_ids: Vec<u64>,
    next_process: u64,
    invoked: u64,
    emitted: u64,
    keys: Vec<Key>,
    read: Name,
    write: Name,
}

impl RegisterEvents {
    /// A process number no event so far has used (crashed processes are replaced by fresh numbers).
    pub fn fresh_process(&self) -> u64 {
        self.next_process
    }

    fn event(&mut self, op_type: OpType, process: u64, f: &str, key: u64, value: Value) -> Op {
        let index = self.emitted;
        self.emitted += 1;
        Op {
            index,
            time: index * 1000,
            op_type,
            process: Process::Client(process),
            f: if f == "read" {
                self.read.clone()
            } else {
                self.write.clone()
            },
            key: (self.spec.keys > 1).then(|| self.keys[key as usize].clone()),
            value,
            node: None,
            error: None,
        }
    }
}

impl Iterator for RegisterEvents {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        while self.invoked < self.spec.operations || self.pending.iter().any(Option::is_some) {
            let slot = self.rng.below(self.pending.len() as u64) as usize;
            match self.pending[slot].take() {
                None if self.invoked < self.spec.operations => {
                    let key = self.rng.below(self.registers.len() as u64);
                    let (f, value) = if self.rng.chance(self.spec.read_fraction) {
                        ("read", Value::Null)
                    } else {
                        self.next_value[key as usize] += 1;
                        ("write", json!(self.next_value[key as usize]))
                    };
                    let process = self.process_ids[slot];
                    let op = self.event(OpType::Invoke, process, f, key, value.clone());
                    self.pending[slot] = Some(Pending {
                        process,
                        key,
                        f,
                        value,
                        applied: false,
                    });
                    self.invoked += 1;
                    return Some(op);
                }
                None => {}
                Some(mut p) if !p.applied && self.rng.chance(0.5) => {
                    let register = &mut self.registers[p.key as usize];
                    if p.f == "write" {
                        *register = p.value.clone();
                    } else {
                        p.value = register.clone();
                    }
                    p.applied = true;
                    self.pending[slot] = Some(p);
                }
                Some(p) if self.rng.chance(self.spec.crash_rate) => {
                    let value = if p.f == "read" { Value::Null } else { p.value };
                    self.process_ids[slot] = self.next_process;
                    self.next_process += 1;
                    return Some(self.event(OpType::Info, p.process, p.f, p.key, value));
                }
                Some(p) if p.applied => {
                    return Some(self.event(OpType::Ok, p.process, p.f, p.key, p.value));
                }
                Some(p) => self.pending[slot] = Some(p),
            }
        }
        None
    }
}

/// Plants a stale read at the end of a register history streamed through it, in a random key: it passes the
/// events on unchanged while remembering, per key, a value that an acknowledged write definitely overwrote
/// (a later write invoked after it completed was acknowledged too); after the last event it adds a read by
/// a fresh process that returns that value, which no linearization explains. Memory is one entry per key.
pub struct StaleReadPlanter<I> {
    events: I,
    rng: SplitMix,
    process: u64,
    /// Per key: the latest acknowledged write's value and completion time.
    last_acked: std::collections::HashMap<Option<Key>, (Value, u64)>,
    /// Per key, in order of first finding: a definitely overwritten value.
    overwritten: Vec<(Option<Key>, Value)>,
    overwritten_keys: std::collections::HashSet<Option<Key>>,
    /// Invocation time of each open write, by process.
    open_writes: std::collections::HashMap<u64, u64>,
    last: Option<(u64, u64)>,
    planted: Vec<Op>,
    finished: bool,
    planted_key: Option<Option<Key>>,
}

impl<I: Iterator<Item = Op>> StaleReadPlanter<I> {
    /// Wraps `events`; the read is made by `process` (one no event uses) and the key chosen with `seed`.
    pub fn new(events: I, process: u64, seed: u64) -> StaleReadPlanter<I> {
        StaleReadPlanter {
            events,
            rng: SplitMix::new(seed ^ 0x5eed_57a1e),
            process,
            last_acked: Default::default(),
            overwritten: Vec::new(),
            overwritten_keys: Default::default(),
            open_writes: Default::default(),
            last: None,
            planted: Vec::new(),
            finished: false,
            planted_key: None,
        }
    }

    /// Once every event was taken: the key of the planted read (`Some(None)` for an un-keyed history), or
    /// `None` if no key had an overwritten value (or the events are not all taken yet).
    pub fn planted_key(&self) -> Option<&Option<Key>> {
        self.planted_key.as_ref()
    }

    fn observe(&mut self, op: &Op) {
        self.last = Some((op.index, op.time));
        let (Process::Client(process), true) = (&op.process, op.f == "write") else {
            return;
        };
        match op.op_type {
            OpType::Invoke => {
                self.open_writes.insert(*process, op.time);
            }
            OpType::Ok => {
                let called = self.open_writes.remove(process).unwrap_or(0);
                let acked = (op.value.clone(), op.time);
                if let Some((older, older_done)) = self.last_acked.insert(op.key.clone(), acked)
                    && older_done < called
                    && self.overwritten_keys.insert(op.key.clone())
                {
                    self.overwritten.push((op.key.clone(), older));
                }
            }
            OpType::Fail | OpType::Info => {
                self.open_writes.remove(process);
            }
        }
    }

    fn plant(&mut self) {
        if self.overwritten.is_empty() {
            return;
        }
        let at = self.rng.below(self.overwritten.len() as u64) as usize;
        let (key, stale) = self.overwritten.swap_remove(at);
        let (index, time) = self.last.map_or((0, 0), |(i, t)| (i + 1, t + 1000));
        let process = Process::Client(self.process);
        let mut invoke = Op::new(index, time, OpType::Invoke, process.clone(), "read", Value::Null);
        invoke.key = key.clone();
        let mut done = Op::new(index + 1, time + 1000, OpType::Ok, process, "read", stale);
        done.key = key.clone();
        // Handed out by popping: completion last.
        self.planted = vec![done, invoke];
        self.planted_key = Some(key);
    }
}

impl<I: Iterator<Item = Op>> Iterator for StaleReadPlanter<I> {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        if !self.finished {
            if let Some(op) = self.events.next() {
                self.observe(&op);
                return Some(op);
            }
            self.finished = true;
            self.plant();
        }
        self.planted.pop()
    }
}

/// Appends a read by a fresh process, after everything else, of a value that an acknowledged write had
/// definitely overwritten before it (a stale read). Returns `None` if no key has two such writes.
pub fn inject_stale_read(history: &History) -> Option<History> {
    let paired = crate::history::pair(history).ok()?;
    let acked: Vec<_> = paired
        .operations
        .iter()
        .filter(|o| o.f == "write" && o.outcome == crate::history::Outcome::Ok)
        .collect();
    for (i, older) in acked.iter().enumerate() {
        let older_done = older.return_time?;
        let newer = acked[i + 1..]
            .iter()
            .find(|w| w.key == older.key && w.call_time > older_done);
        if newer.is_some() {
            let mut out = history.clone();
            let process = Process::Client(u64::MAX / 2);
            let end = history.ops.last().map_or(0, |o| o.time) + 1000;
            let n = history.len() as u64;
            let mut invoke = Op::new(n, end, OpType::Invoke, process.clone(), "read", Value::Null);
            invoke.key = older.key.cloned();
            let mut done = Op::new(n + 1, end + 1000, OpType::Ok, process, "read", older.value.clone());
            done.key = older.key.cloned();
            out.ops.extend([invoke, done]);
            out.lines.extend([0, 0]);
            return Some(out);
        }
    }
    None
}

/// Shape of a generated key-value history (Porcupine's kv logs: `get` and `append` on string keys).
#[derive(Debug, Clone)]
pub struct KvSpec {
    /// Number of keys, named `"0"`, `"1"`, ….
    pub keys: u64,
    /// Concurrent client processes.
    pub processes: u64,
    /// Operations (invocations) to generate.
    pub operations: u64,
    /// Probability that an append crashes (`info`); crashed appends take effect or not, at random.
    pub crash_rate: f64,
    /// Fraction of operations that are gets.
    pub get_fraction: f64,
    /// Plant one stale get in a random key, making that key (and only it) non-linearizable.
    pub anomaly: bool,
    /// Seed.
    pub seed: u64,
}

impl Default for KvSpec {
    fn default() -> KvSpec {
        KvSpec {
            keys: 10,
            processes: 50,
            operations: 2000,
            crash_rate: 0.01,
            get_fraction: 0.5,
            anomaly: false,
            seed: 1,
        }
    }
}

/// A generated key-value history and, if an anomaly was planted, its key.
#[derive(Debug, Clone, PartialEq)]
pub struct KvHistory {
    /// The history; every key starts as `""`.
    pub history: History,
    /// The key of the planted stale get (`None` if none was asked for or no key had room for one).
    pub anomaly_key: Option<String>,
}

struct KvPending {
    process: u64,
    key: usize,
    get: bool,
    value: String,
    /// Event index of the invocation.
    invoke: usize,
    /// The key's value just before this append took effect.
    before: Option<String>,
}

/// Generates a key-value history by running a real store: appends add unique tokens `x P N y` to a key's
/// string and gets read it. With `spec.anomaly`, one completed get of a random key is rewritten to return the
/// value its key had just before an append that had already completed when the get was invoked: a stale read,
/// which no linearization can explain (the append's unique token must be in what the get sees).
pub fn kv_history(spec: &KvSpec) -> KvHistory {
    let mut rng = SplitMix::new(spec.seed);
    let key_count = spec.keys.max(1) as usize;
    let mut store: Vec<String> = vec![String::new(); key_count];
    let mut pending: Vec<Option<KvPending>> = (0..spec.processes.max(1)).map(|_| None).collect();
    let mut process_ids: Vec<u64> = (0..pending.len() as u64).collect();
    let mut next_process = pending.len() as u64;
    let mut counters: Vec<u64> = vec![0; pending.len()];
    let mut ops = Vec::with_capacity(spec.operations as usize * 2);
    let mut invoked = 0;
    let keys: Vec<Key> = (0..key_count).map(|k| Key::new(json!(k.to_string()))).collect();
    let (get, append) = (Name::from("get"), Name::from("append"));
    // Per key: (completion event index, value before) of each acknowledged append, and the completed gets
    // as (invoke event index, completion event index).
    let mut acked: Vec<Vec<(usize, String)>> = vec![Vec::new(); key_count];
    let mut gets: Vec<Vec<(usize, usize)>> = vec![Vec::new(); key_count];
    let event = |index: usize, op_type: OpType, process: u64, is_get: bool, key: usize, value: Value| Op {
        index: index as u64,
        time: index as u64 * 1000,
        op_type,
        process: Process::Client(process),
        f: if is_get { get.clone() } else { append.clone() },
        key: Some(keys[key].clone()),
        value,
        node: None,
        error: None,
    };
    while invoked < spec.operations || pending.iter().any(Option::is_some) {
        let slot = rng.below(pending.len() as u64) as usize;
        match pending[slot].take() {
            None if invoked < spec.operations => {
                let key = rng.below(key_count as u64) as usize;
                let is_get = rng.chance(spec.get_fraction);
                let process = process_ids[slot];
                let value = if is_get {
                    String::new()
                } else {
                    counters[slot] += 1;
                    format!("x {process} {} y", counters[slot])
                };
                let wire = if is_get { Value::Null } else { json!(value) };
                let invoke = ops.len();
                ops.push(event(invoke, OpType::Invoke, process, is_get, key, wire));
                pending[slot] = Some(KvPending {
                    process,
                    key,
                    get: is_get,
                    value,
                    invoke,
                    before: None,
                });
                invoked += 1;
            }
            None => {}
            Some(mut p) if p.before.is_none() && rng.chance(0.5) => {
                let current = &mut store[p.key];
                p.before = Some(current.clone());
                if p.get {
                    p.value = current.clone();
                } else {
                    current.push_str(&p.value);
                }
                pending[slot] = Some(p);
            }
            Some(p) if !p.get && rng.chance(spec.crash_rate) => {
                ops.push(event(ops.len(), OpType::Info, p.process, false, p.key, json!(p.value)));
                process_ids[slot] = next_process;
                next_process += 1;
                counters[slot] = 0;
            }
            Some(p) if p.before.is_some() => {
                let done = ops.len();
                ops.push(event(done, OpType::Ok, p.process, p.get, p.key, json!(p.value)));
                if p.get {
                    gets[p.key].push((p.invoke, done));
                } else if let Some(before) = p.before {
                    acked[p.key].push((done, before));
                }
            }
            Some(p) => pending[slot] = Some(p),
        }
    }
    let mut anomaly_key = None;
    if spec.anomaly {
        // Candidates: (key, get's completion event, stale value) for gets invoked after an acked append.
        let mut candidates = Vec::new();
        for key in 0..key_count {
            for &(invoke, done) in &gets[key] {
                let before_get = acked[key].partition_point(|(completed, _)| *completed < invoke);
                if let Some(i) = before_get.checked_sub(1) {
                    candidates.push((key, done, acked[key][i].1.clone()));
                }
            }
        }
        if !candidates.is_empty() {
            let at = rng.below(candidates.len() as u64) as usize;
            let (key, done, stale) = candidates.swap_remove(at);
            ops[done].value = json!(stale);
            anomaly_key = Some(key.to_string());
        }
    }
    KvHistory {
        history: History::from_ops(ops),
        anomaly_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_complete() {
        let spec = GenSpec {
            keys: 3,
            processes: 4,
            operations: 200,
            crash_rate: 0.1,
            ..GenSpec::default()
        };
        let a = register_history(&spec);
        assert_eq!(a, register_history(&spec));
        let paired = crate::history::pair(&a).expect("valid history");
        assert_eq!(paired.operations.len(), 200);
        assert!(
            paired
                .operations
                .iter()
                .any(|o| o.outcome == crate::history::Outcome::Info)
        );
    }
}

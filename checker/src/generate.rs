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
    let mut rng = SplitMix::new(spec.seed);
    let mut registers: Vec<Value> = vec![Value::Null; spec.keys.max(1) as usize];
    let mut next_value: Vec<i64> = vec![0; registers.len()];
    let mut pending: Vec<Option<Pending>> = (0..spec.processes.max(1)).map(|_| None).collect();
    let mut process_ids: Vec<u64> = (0..pending.len() as u64).collect();
    let mut next_process = pending.len() as u64;
    let mut ops = Vec::with_capacity(spec.operations as usize * 2);
    let mut invoked = 0;
    let keys: Vec<Key> = (0..registers.len() as u64).map(|k| Key::new(json!(k))).collect();
    let (read, write) = (Name::from("read"), Name::from("write"));
    let event = |index: usize, op_type: OpType, process: u64, f: &str, key: u64, value: Value| Op {
        index: index as u64,
        time: index as u64 * 1000,
        op_type,
        process: Process::Client(process),
        f: if f == "read" { read.clone() } else { write.clone() },
        key: (spec.keys > 1).then(|| keys[key as usize].clone()),
        value,
        node: None,
        error: None,
    };
    while invoked < spec.operations || pending.iter().any(Option::is_some) {
        let slot = rng.below(pending.len() as u64) as usize;
        match pending[slot].take() {
            None if invoked < spec.operations => {
                let key = rng.below(registers.len() as u64);
                let (f, value) = if rng.chance(spec.read_fraction) {
                    ("read", Value::Null)
                } else {
                    next_value[key as usize] += 1;
                    ("write", json!(next_value[key as usize]))
                };
                let process = process_ids[slot];
                ops.push(event(ops.len(), OpType::Invoke, process, f, key, value.clone()));
                pending[slot] = Some(Pending {
                    process,
                    key,
                    f,
                    value,
                    applied: false,
                });
                invoked += 1;
            }
            None => {}
            Some(mut p) if !p.applied && rng.chance(0.5) => {
                let register = &mut registers[p.key as usize];
                if p.f == "write" {
                    *register = p.value.clone();
                } else {
                    p.value = register.clone();
                }
                p.applied = true;
                pending[slot] = Some(p);
            }
            Some(p) if rng.chance(spec.crash_rate) => {
                let value = if p.f == "read" { Value::Null } else { p.value };
                ops.push(event(ops.len(), OpType::Info, p.process, p.f, p.key, value));
                process_ids[slot] = next_process;
                next_process += 1;
            }
            Some(p) if p.applied => {
                ops.push(event(ops.len(), OpType::Ok, p.process, p.f, p.key, p.value));
            }
            Some(p) => pending[slot] = Some(p),
        }
    }
    History::from_ops(ops)
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

//! A deterministic generator of register histories, for tests and benchmarks.
//!
//! It runs a real sequential register per key with random concurrency: at each step it either invokes an
//! operation on an idle process, applies a pending operation to the register (its linearization point), or
//! completes an applied operation — or crashes a pending one (`info`; the crashed process is replaced by a
//! fresh process number, as in Jepsen). Histories it makes are therefore linearizable. Written values are
//! unique per key. With more than one key, operations carry their key (written as `{"key": k, "value": v}`).

use serde_json::{Value, json};

use crate::history::{History, Key, Name, Op, OpType, Process};

/// A small deterministic pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 >= 1.0 - p
    }
}

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

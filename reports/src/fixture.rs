//! A synthetic run directory for tests: a 20 s register run on three members with a partition, a kill and a
//! pause, secondary reads that are sometimes stale, lag samples, checker results, a spec and member logs.

use std::path::Path;

use faultline_checker::formats::jsonl;
use faultline_checker::history::{Conventions, History, Op, OpType, Process, pair};
use faultline_checker::linear::{LinearOptions, ModelKind};
use faultline_checker::result::compose;
use serde_json::{Value, json};

use crate::inputs::LagSample;

/// The members' addresses.
pub const MEMBERS: [&str; 3] = ["127.0.0.1:27017", "127.0.0.1:27018", "127.0.0.1:27019"];

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
const RUN: u64 = 20 * SECOND;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn in_partition(t: u64) -> bool {
    (5 * SECOND..10 * SECOND).contains(&t)
}

/// One generated client operation before it is turned into events.
struct Planned {
    process: u64,
    start: u64,
    end: u64,
    f: &'static str,
    key: u64,
    arg: Value,
    outcome: OpType,
    node: &'static str,
    secondary: bool,
}

fn plan(rng: &mut Rng) -> Vec<Planned> {
    let mut planned = Vec::new();
    let mut next_value = 1u64;
    for slot in 0..6u64 {
        let mut process = slot;
        let mut t = slot * 3 * MS;
        while t < RUN - SECOND {
            let roll = rng.unit();
            let secondary = slot >= 4;
            let f = if secondary || roll < 0.4 {
                "read"
            } else if roll < 0.85 {
                "write"
            } else {
                "cas"
            };
            let mut latency = 2 * MS + (rng.unit() * 4.0 * MS as f64) as u64;
            let mut outcome = OpType::Ok;
            if in_partition(t) && !secondary && rng.unit() < 0.3 {
                latency = 400 * MS + (rng.unit() * 600.0 * MS as f64) as u64;
                outcome = if f == "read" { OpType::Fail } else { OpType::Info };
            }
            let arg = match f {
                "write" => {
                    next_value += 1;
                    json!(next_value)
                }
                "cas" => {
                    next_value += 1;
                    json!([next_value - 2, next_value])
                }
                _ => Value::Null,
            };
            let node = if secondary {
                MEMBERS[1 + (slot as usize % 2)]
            } else {
                MEMBERS[0]
            };
            planned.push(Planned {
                process,
                start: t,
                end: t + latency,
                f,
                key: slot % 2,
                arg,
                outcome,
                node,
                secondary,
            });
            if outcome == OpType::Info {
                process += 6;
            }
            t += latency + 15 * MS + (rng.unit() * 10.0 * MS as f64) as u64;
        }
    }
    planned
}

/// Applies writes at their midpoints and answers reads: primary reads see the current value, secondary reads
/// see the previous one when the latest write is younger than a random replication delay.
fn answers(planned: &mut [Planned], rng: &mut Rng) -> Vec<Value> {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|i| planned[*i].start + (planned[*i].end - planned[*i].start) / 2);
    let mut state: [(Value, Value, u64); 2] = [(Value::Null, Value::Null, 0), (Value::Null, Value::Null, 0)];
    let mut results = vec![Value::Null; planned.len()];
    for i in order {
        let p = &mut planned[i];
        let at = p.start + (p.end - p.start) / 2;
        let (current, previous, written_at) = &mut state[p.key as usize];
        match p.f {
            "write" if p.outcome != OpType::Fail => {
                *previous = std::mem::replace(current, p.arg.clone());
                *written_at = at;
            }
            "cas" if p.outcome != OpType::Fail => {
                if *current == p.arg[0] {
                    *previous = std::mem::replace(current, p.arg[1].clone());
                    *written_at = at;
                } else if p.outcome == OpType::Ok {
                    p.outcome = OpType::Fail;
                }
            }
            "read" if p.outcome == OpType::Ok => {
                let delay = (-rng.unit().max(1e-9).ln() * 15.0 * MS as f64) as u64;
                let lagging = p.secondary && at.saturating_sub(*written_at) < delay && !previous.is_null();
                results[i] = if lagging { previous.clone() } else { current.clone() };
            }
            _ => {}
        }
    }
    results
}

fn keyed(key: u64, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// The client and nemesis events, in time order, indexed.
pub fn history() -> History {
    let mut rng = Rng(0x5eed_cafe);
    let mut planned = plan(&mut rng);
    let results = answers(&mut planned, &mut rng);
    let mut events: Vec<Op> = Vec::new();
    for (p, result) in planned.iter().zip(results) {
        let invoke = Op::new(
            0,
            p.start,
            OpType::Invoke,
            Process::Client(p.process),
            p.f,
            keyed(p.key, p.arg.clone()),
        );
        let value = if p.f == "read" {
            keyed(p.key, result)
        } else {
            keyed(p.key, p.arg.clone())
        };
        let mut done = Op::new(0, p.end, p.outcome, Process::Client(p.process), p.f, value);
        done.node = Some(p.node.into());
        events.push(invoke);
        events.push(done);
    }
    let nemesis = [
        (
            5 * SECOND,
            OpType::Invoke,
            "start-partition",
            json!("isolate 127.0.0.1:27017"),
        ),
        (
            5 * SECOND + MS,
            OpType::Info,
            "start-partition",
            json!("isolate 127.0.0.1:27017"),
        ),
        (10 * SECOND, OpType::Invoke, "stop-partition", Value::Null),
        (10 * SECOND + MS, OpType::Info, "stop-partition", json!("healed")),
        (12 * SECOND, OpType::Invoke, "kill", json!("127.0.0.1:27019")),
        (12 * SECOND + 2 * MS, OpType::Info, "kill", json!("127.0.0.1:27019")),
        (14 * SECOND, OpType::Invoke, "start-pause", json!("127.0.0.1:27019")),
        (14 * SECOND + MS, OpType::Info, "start-pause", json!("127.0.0.1:27019")),
        (16 * SECOND, OpType::Invoke, "stop-pause", json!("127.0.0.1:27019")),
        (16 * SECOND + MS, OpType::Info, "stop-pause", Value::Null),
    ];
    events.extend(
        nemesis
            .into_iter()
            .map(|(t, ty, f, v)| Op::new(0, t, ty, Process::nemesis(), f, v)),
    );
    events.sort_by_key(|o| o.time);
    for (i, op) in events.iter_mut().enumerate() {
        op.index = i as u64;
    }
    History::from_ops(events)
}

/// The state and lag of `member` at time `t`.
fn member_at(member: usize, t: u64, rng: &mut Rng) -> (&'static str, Option<f64>) {
    let primary = if t < 6 * SECOND { 0 } else { 1 };
    let jitter = 1.0 + rng.unit() * 8.0;
    match member {
        m if m == primary => ("PRIMARY", Some(0.0)),
        0 if in_partition(t) => ("SECONDARY", None),
        0 if t < 11 * SECOND => ("SECONDARY", Some((11.0 - t as f64 / SECOND as f64) * 400.0 + jitter)),
        2 if (12 * SECOND..12 * SECOND + SECOND / 2).contains(&t) => ("DOWN", None),
        2 if (12 * SECOND + SECOND / 2..13 * SECOND).contains(&t) => ("RECOVERING", Some(200.0)),
        2 if (14 * SECOND..16 * SECOND).contains(&t) => ("DOWN", None),
        2 if (16 * SECOND..17 * SECOND).contains(&t) => ("SECONDARY", Some((17.0 - t as f64 / SECOND as f64) * 2000.0)),
        1 if in_partition(t) => ("SECONDARY", None),
        _ => ("SECONDARY", Some(jitter)),
    }
}

/// A sample of every member every 250 ms.
pub fn lag_samples() -> Vec<LagSample> {
    let mut rng = Rng(42);
    let mut samples = Vec::new();
    for tick in 0..(RUN / (250 * MS)) {
        let t = tick * 250 * MS;
        let primary = if (5 * SECOND..6 * SECOND).contains(&t) {
            None
        } else if t < 6 * SECOND {
            Some(0)
        } else {
            Some(1)
        };
        for (m, member) in MEMBERS.iter().enumerate() {
            let (state, lag_ms) = member_at(m, t, &mut rng);
            samples.push(LagSample {
                time: t,
                member: member.to_string(),
                state: state.to_string(),
                lag_ms,
                primary: primary.map(|p| MEMBERS[p].to_string()),
            });
        }
    }
    samples
}

/// The spec text.
pub const SPEC: &str = "name = \"register-partition\"\nseed = 1234\nworkload = \"register\"\n\
                        nemesis = [\"partition\", \"kill\", \"pause\"]\ntime-limit = \"20s\"\nconcurrency = 6\n\
                        \n[client]\nwrite-concern = \"majority\"\nread-preference = \"secondary\"\n";

/// Writes a complete run directory into `dir`.
pub fn write_run(dir: &Path) -> std::io::Result<()> {
    let history = history();
    let mut text = Vec::new();
    jsonl::write(&history, &mut text)?;
    std::fs::write(dir.join("history.jsonl"), text)?;
    let lag: Vec<String> = lag_samples()
        .iter()
        .map(|s| serde_json::to_string(s).map_err(std::io::Error::other))
        .collect::<Result<_, _>>()?;
    std::fs::write(dir.join("lag.jsonl"), lag.join("\n"))?;
    std::fs::write(dir.join("test.toml"), SPEC)?;
    let paired = pair(&history).map_err(std::io::Error::other)?;
    let linear = faultline_checker::linear::check(&history, &LinearOptions::new(ModelKind::CasRegister))
        .map_err(std::io::Error::other)?;
    let stale = faultline_checker::stale::check(&history, &paired, &Conventions::default());
    let results = compose("all", vec![linear, stale]);
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    for (n, member) in MEMBERS.iter().enumerate() {
        let node_dir = dir.join("nodes").join(format!("n{}", n + 1));
        std::fs::create_dir_all(&node_dir)?;
        std::fs::write(node_dir.join("node.log"), format!("listening on {member}\n"))?;
    }
    Ok(())
}

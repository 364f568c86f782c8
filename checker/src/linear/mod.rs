//! Linearizability checking (DESIGN §6): per-key Wing–Gong–Lowe searches run in parallel.
//!
//! [`check`] pairs the history, splits it by key ([`partition`]), compiles each partition for the chosen
//! model ([`models`]) and runs [`search`] on worker threads. The first non-linearizable partition cancels the
//! others. A time budget or memory budget that runs out makes the verdict `unknown` (unless some partition was
//! already found invalid). An invalid result carries a counterexample: the operation that cannot be
//! linearized, the longest linearizable prefix found before it, and the model state after each step.

pub mod intern;
pub mod models;
pub mod partition;
pub mod search;
pub mod witness;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thiserror::Error;

pub use models::ModelKind;
use models::PartOp;
use partition::Partition;
use search::{GiveUp, Limits, Model, Outcome, SearchOp};

use crate::history::{Conventions, History, Operation, PairedHistory, pairing::PairingError};
use crate::result::{CheckResult, Validity};

/// How to check.
#[derive(Debug, Clone)]
pub struct LinearOptions {
    /// The sequential model.
    pub model: ModelKind,
    /// The format's conventions (initial value, meaning of `fail` and `nil`).
    pub conventions: Conventions,
    /// Time budget for the whole check; `None` for no limit.
    pub timeout: Option<Duration>,
    /// Memory budget for the search caches (bytes, shared by the workers).
    pub memory_bytes: usize,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
}

impl LinearOptions {
    /// Options for `model` with native conventions, no timeout, a 1 GiB budget and all cores.
    pub fn new(model: ModelKind) -> LinearOptions {
        LinearOptions {
            model,
            conventions: Conventions::default(),
            timeout: None,
            memory_bytes: 1 << 30,
            threads: 0,
        }
    }
}

/// A history the checker cannot interpret.
#[derive(Debug, Error)]
pub enum LinearError {
    /// The history breaks the event protocol.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// An operation does not fit the model.
    #[error("line {line}: {message}")]
    Unsupported { line: usize, message: String },
}

/// What one partition's search concluded, with op ids in the paired history.
enum Verdict {
    Linearizable,
    Illegal {
        blocked: usize,
        prefix: Vec<(usize, Value)>,
    },
    Unknown(GiveUp),
    /// An operation does not fit the model: its op id and the problem.
    Unsupported(usize, String),
}

struct PartitionReport {
    partition: usize,
    verdict: Verdict,
    configurations: u64,
    searched_ops: usize,
}

/// Checks a history for linearizability.
pub fn check(history: &History, options: &LinearOptions) -> Result<CheckResult, LinearError> {
    let paired = crate::history::pair(history)?;
    check_paired(history, &paired, options)
}

/// Checks an already paired history.
pub fn check_paired(
    history: &History,
    paired: &PairedHistory,
    options: &LinearOptions,
) -> Result<CheckResult, LinearError> {
    let split = options.model != ModelKind::MultiRegister;
    let partitions = partition::partition(&paired.operations, split);
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let reports = run_all(jobs(&partitions, options), options, deadline);
    let unsupported = reports.iter().filter_map(|r| match &r.verdict {
        Verdict::Unsupported(id, message) => Some((*id, message)),
        _ => None,
    });
    if let Some((id, message)) = unsupported.min_by_key(|(id, _)| *id) {
        return Err(LinearError::Unsupported {
            line: history.line_of(paired.operations[id].invoke),
            message: message.clone(),
        });
    }
    Ok(summarise(history, paired, &partitions, reports, options))
}

/// A partition's work: compile it for the model, then search. Compiling inside the job keeps only the
/// partitions being searched compiled at any time.
type Job<'a> = Box<dyn FnOnce(Limits<'_>) -> (Verdict, u64, usize) + Send + 'a>;

fn jobs<'a>(partitions: &'a [Partition<'a>], options: &'a LinearOptions) -> Vec<Job<'a>> {
    partitions
        .iter()
        .map(|p| -> Job<'a> { Box::new(move |limits| compile_and_search(&p.ops, options, limits)) })
        .collect()
}

fn compile_and_search(ops: &[PartOp<'_>], options: &LinearOptions, limits: Limits<'_>) -> (Verdict, u64, usize) {
    let conventions = &options.conventions;
    let compiled = match options.model {
        ModelKind::Register | ModelKind::CasRegister => {
            let allow_cas = options.model == ModelKind::CasRegister;
            models::compile_register(ops, conventions, allow_cas).map(|c| search_compiled(c, limits))
        }
        ModelKind::KvAppend => models::compile_kv(ops, conventions).map(|c| search_compiled(c, limits)),
        ModelKind::Set => models::compile_set(ops).map(|c| search_compiled(c, limits)),
        ModelKind::Mutex => models::compile_mutex(ops).map(|c| search_compiled(c, limits)),
        ModelKind::MultiRegister => {
            models::compile_multi_register(ops, conventions).map(|c| search_compiled(c, limits))
        }
    };
    compiled.unwrap_or_else(|(id, message)| (Verdict::Unsupported(id, message), 0, 0))
}

fn search_compiled<M: Model>((model, ops): (M, Vec<SearchOp<M::Op>>), limits: Limits<'_>) -> (Verdict, u64, usize) {
    let (outcome, stats) = search::search(&model, &ops, limits);
    let verdict = match outcome {
        Outcome::Linearizable(_) => Verdict::Linearizable,
        Outcome::Unknown(why) => Verdict::Unknown(why),
        Outcome::Illegal { blocked, prefix } => Verdict::Illegal {
            blocked,
            prefix: prefix.into_iter().map(|(id, s)| (id, model.describe(&s))).collect(),
        },
    };
    (verdict, stats.configurations, ops.len())
}

fn run_all(jobs: Vec<Job<'_>>, options: &LinearOptions, deadline: Option<Instant>) -> Vec<PartitionReport> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(jobs.len().max(1));
    let cancel = AtomicBool::new(false);
    let memory_bytes = options.memory_bytes / threads;
    let queue: Mutex<Vec<(usize, Job<'_>)>> = Mutex::new(jobs.into_iter().enumerate().rev().collect());
    let reports = Mutex::new(Vec::new());
    let worker = || {
        let limits = Limits {
            deadline,
            cancel: &cancel,
            memory_bytes,
        };
        loop {
            let next = queue.lock().ok().and_then(|mut q| q.pop());
            let Some((partition, job)) = next else { break };
            let (verdict, configurations, searched_ops) = job(limits);
            if matches!(verdict, Verdict::Illegal { .. } | Verdict::Unsupported(..)) {
                cancel.store(true, Ordering::Relaxed);
            }
            if let Ok(mut r) = reports.lock() {
                r.push(PartitionReport {
                    partition,
                    verdict,
                    configurations,
                    searched_ops,
                });
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
    let mut reports = reports.into_inner().unwrap_or_default();
    reports.sort_by_key(|r| r.partition);
    reports
}

fn describe_op(history: &History, operation: &Operation) -> Value {
    json!({
        "index": history.ops.get(operation.invoke).map_or(operation.invoke as u64, |o| o.index),
        "completion": operation.completion.and_then(|c| history.ops.get(c)).map(|o| o.index),
        "line": history.line_of(operation.invoke),
        "process": operation.process,
        "f": operation.f,
        "value": operation.wire_value(),
    })
}

fn summarise(
    history: &History,
    paired: &PairedHistory,
    partitions: &[Partition<'_>],
    reports: Vec<PartitionReport>,
    options: &LinearOptions,
) -> CheckResult {
    let mut result = CheckResult::new("linearizable");
    let ops = &paired.operations;
    result.set_count("operations", ops.len() as u64);
    result.set_count("partitions", partitions.len() as u64);
    result.set_count(
        "searched-operations",
        reports.iter().map(|r| r.searched_ops as u64).sum(),
    );
    result.set_count("configurations", reports.iter().map(|r| r.configurations).sum());
    let mut unknown_reason = None;
    let mut illegal = None;
    for r in &reports {
        match &r.verdict {
            Verdict::Linearizable => {}
            Verdict::Unknown(GiveUp::Cancelled) | Verdict::Unsupported(..) => {}
            Verdict::Unknown(why) => unknown_reason = Some(*why),
            Verdict::Illegal { blocked, prefix } => {
                if illegal
                    .as_ref()
                    .is_none_or(|(_, b, _): &(usize, usize, _)| ops[*blocked].invoke < ops[*b].invoke)
                {
                    illegal = Some((r.partition, *blocked, prefix));
                }
            }
        }
    }
    let mut details = json!({"model": options.model.name()});
    if let Some((partition, blocked, prefix)) = illegal {
        let op = &ops[blocked];
        let steps: Vec<Value> = prefix
            .iter()
            .map(|(id, state)| {
                let mut step = describe_op(history, &ops[*id]);
                step["state"] = state.clone();
                step
            })
            .collect();
        let last_state = prefix
            .last()
            .map_or_else(|| options.conventions.initial.clone(), |(_, s)| s.clone());
        let description = format!(
            "process {} {} {} (line {}) cannot be linearized after a {}-op linearizable prefix ending in state {}",
            op.process,
            op.f,
            op.wire_value(),
            history.line_of(op.invoke),
            prefix.len(),
            last_state
        );
        let event_ids = [Some(op.invoke), op.completion].into_iter().flatten();
        let indices = event_ids.filter_map(|i| history.ops.get(i)).map(|o| o.index).collect();
        result.add_anomaly("nonlinearizable", indices, description);
        details["counterexample"] = json!({
            "key": partitions[partition].key,
            "op": describe_op(history, op),
            "prefix": steps,
        });
    } else if let Some(why) = unknown_reason {
        result.valid = Validity::Unknown;
        details["unknown-reason"] = json!(format!("{why:?}").to_lowercase());
    }
    result.details = details;
    result
}

#[cfg(test)]
mod tests;

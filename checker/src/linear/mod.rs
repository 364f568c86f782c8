//! Linearizability checking (ARCHITECTURE §5): per-key Wing–Gong–Lowe searches run in parallel.
//!
//! [`check`] pairs the history, splits it by key ([`partition`]), compiles each partition for the chosen
//! model ([`models`]) and runs [`search`] on worker threads. Partitions are interleaved in time slices,
//! cheapest (fewest operations) first, so that on an invalid history the work done before the failing
//! partition is found is bounded by a small multiple of that partition's own cost, whatever the number of
//! cores: an expensive valid key cannot hold a worker until it is decided. The first non-linearizable
//! partition cancels the others; the memory budget is shared by the searches alive at any time. A time
//! budget or memory budget that runs out makes the verdict `unknown` (unless some partition was already
//! found invalid). An invalid result names the operation that cannot be linearized and the length and last
//! state of the longest linearizable prefix found before it. The result carries the search's [`witness`]
//! as op ids; the prefix's steps with the model state after each (`details.counterexample.prefix`) are
//! built only when a reader asks ([`CheckResult::expand`]), and viewers take every key's order from it.

pub mod intern;
pub mod models;
pub mod partition;
pub mod search;
pub mod witness;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use thiserror::Error;

pub use models::ModelKind;
use models::PartOp;
use partition::Partition;
use search::{GiveUp, Limits, Model, Outcome, SearchOp, Searcher, replay};
use witness::{Found, LinearWitness};

use crate::history::{Conventions, History, Operation, PairedHistory, pairing::PairingError};
use crate::result::{CheckResult, Validity, Witness};

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
    /// Decided or given up; for a non-linearizable partition with the model state after its prefix.
    Searched(Found, Option<Value>),
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
    let reports = run_all(&partitions, options, deadline);
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

/// Search steps a partition runs before its worker moves on to the next partition in the queue.
const SLICE_STEPS: u64 = 1 << 15;

/// Histories with fewer operations start on the calling thread alone unless threads were asked for.
const SMALL_HISTORY: usize = 4096;

/// One partition's search, compiled for its model, resumable slice by slice; and the model's states along
/// an order, for the witness.
trait PartitionSearch: Send {
    /// Runs one slice: the verdict, configurations and searched operations once decided, else `None`.
    fn advance(&mut self, limits: Limits<'_>, steps: u64) -> Option<(Verdict, u64, usize)>;
    /// Bytes the search's cache holds.
    fn cache_bytes(&self) -> usize;
    /// Runs the search to its end (or its limits): what it found.
    fn search_now(&mut self, limits: Limits<'_>) -> Found;
    /// The initial state, for humans.
    fn initial(&self) -> Value;
    /// The state after each step of `order` (op ids), for humans.
    fn states_along(&self, order: &[usize]) -> Vec<Value>;
}

struct CompiledSearch<M: Model> {
    model: M,
    ops: Vec<SearchOp<M::Op>>,
    searcher: Searcher<M>,
}

impl<M> PartitionSearch for CompiledSearch<M>
where
    M: Model + Send,
    M::State: Send,
    M::Op: Send,
{
    fn advance(&mut self, limits: Limits<'_>, steps: u64) -> Option<(Verdict, u64, usize)> {
        let outcome = self.searcher.advance(&self.model, &self.ops, limits, steps)?;
        let verdict = match outcome {
            Outcome::Linearizable(order) => Verdict::Searched(Found::Order(order), None),
            Outcome::Unknown(why) => Verdict::Searched(Found::Undecided(why), None),
            Outcome::Illegal { blocked, prefix } => {
                let (_, last) = replay(&self.model, &self.ops, &prefix, |_, _| {});
                let last = self.model.describe(&last);
                Verdict::Searched(Found::Blocked { prefix, blocked }, Some(last))
            }
        };
        Some((verdict, self.searcher.stats().configurations, self.ops.len()))
    }

    fn cache_bytes(&self) -> usize {
        self.searcher.cache_bytes()
    }

    fn search_now(&mut self, limits: Limits<'_>) -> Found {
        match self.searcher.advance(&self.model, &self.ops, limits, u64::MAX) {
            Some(Outcome::Linearizable(order)) => Found::Order(order),
            Some(Outcome::Illegal { blocked, prefix }) => Found::Blocked { prefix, blocked },
            Some(Outcome::Unknown(why)) => Found::Undecided(why),
            None => Found::Undecided(GiveUp::Cancelled),
        }
    }

    fn initial(&self) -> Value {
        self.model.describe(&self.model.init())
    }

    fn states_along(&self, order: &[usize]) -> Vec<Value> {
        let mut states = Vec::with_capacity(order.len());
        replay(&self.model, &self.ops, order, |_, state| {
            states.push(self.model.describe(state))
        });
        states
    }
}

fn boxed<'a, M>((model, ops): (M, Vec<SearchOp<M::Op>>)) -> Box<dyn PartitionSearch + 'a>
where
    M: Model + Send + 'a,
    M::State: Send + 'a,
    M::Op: Send + 'a,
{
    let searcher = Searcher::new(&ops);
    Box::new(CompiledSearch { model, ops, searcher })
}

/// Compiles a partition for the model. Compiling when a partition is first scheduled keeps only the
/// partitions under way compiled at any time.
fn compile<'a>(ops: &[PartOp<'_>], options: &LinearOptions) -> Result<Box<dyn PartitionSearch + 'a>, (usize, String)> {
    let conventions = &options.conventions;
    match options.model {
        ModelKind::Register | ModelKind::CasRegister => {
            let allow_cas = options.model == ModelKind::CasRegister;
            models::compile_register(ops, conventions, allow_cas).map(boxed)
        }
        ModelKind::KvAppend => models::compile_kv(ops, conventions).map(boxed),
        ModelKind::Set => models::compile_set(ops).map(boxed),
        ModelKind::Mutex => models::compile_mutex(ops).map(boxed),
        ModelKind::MultiRegister => models::compile_multi_register(ops, conventions).map(boxed),
    }
}

/// A partition waiting in the scheduler's queue: not compiled yet, or part-way through its search with the
/// bytes it had when it was requeued (its share of the shared count of live bytes).
enum Task<'a> {
    Waiting(&'a Partition<'a>),
    Started(Box<dyn PartitionSearch + 'a>, usize),
}

/// The number of cores, asked once per process: the question reads cgroup files, which costs more than
/// checking a small history.
fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs every partition's search on worker threads, round-robin in slices of [`SLICE_STEPS`], cheapest first.
fn run_all(partitions: &[Partition<'_>], options: &LinearOptions, deadline: Option<Instant>) -> Vec<PartitionReport> {
    let operations: usize = partitions.iter().map(|p| p.ops.len()).sum();
    let threads = match (options.threads, partitions.len()) {
        (_, 0 | 1) => 1,
        (0, n) => available_cores().min(n),
        (wanted, n) => wanted.min(n),
    };
    // Starting a thread costs more than checking a small history, so a small history starts on the calling
    // thread alone and brings in the other workers only once a search outlasts its first slice.
    let start_alone = options.threads == 0 && operations < SMALL_HISTORY && threads > 1;
    let cancel = AtomicBool::new(false);
    let live_bytes = AtomicUsize::new(0);
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&i| partitions[i].ops.len());
    let queue: Mutex<VecDeque<(usize, Task<'_>)>> =
        Mutex::new(order.into_iter().map(|i| (i, Task::Waiting(&partitions[i]))).collect());
    let reports = Mutex::new(Vec::new());
    let report = |partition: usize, (verdict, configurations, searched_ops): (Verdict, u64, usize)| {
        if matches!(
            verdict,
            Verdict::Searched(Found::Blocked { .. }, _) | Verdict::Unsupported(..)
        ) {
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
    };
    // Runs queued slices until the queue is empty (true) or, with `until_requeue`, until a search needs
    // another slice (false).
    let worker = |until_requeue: bool| {
        loop {
            let next = queue.lock().ok().and_then(|mut q| q.pop_front());
            let Some((partition, task)) = next else { return true };
            let (mut search, before) = match task {
                Task::Started(search, accounted) => (search, accounted),
                // Compiled even after a cancellation, so that the first unsupported operation is reported
                // whatever the interleaving.
                Task::Waiting(p) => match compile(&p.ops, options) {
                    Ok(_) if cancel.load(Ordering::Relaxed) => {
                        let cancelled = Verdict::Searched(Found::Undecided(GiveUp::Cancelled), None);
                        report(partition, (cancelled, 0, p.ops.len()));
                        continue;
                    }
                    // Not yet in the live count, whatever the compiled model already holds.
                    Ok(search) => (search, 0),
                    Err((id, message)) => {
                        report(partition, (Verdict::Unsupported(id, message), 0, 0));
                        continue;
                    }
                },
            };
            let others = live_bytes.load(Ordering::Relaxed).saturating_sub(before);
            let limits = Limits {
                deadline,
                cancel: &cancel,
                memory_bytes: options.memory_bytes.saturating_sub(others),
            };
            let done = search.advance(limits, SLICE_STEPS);
            let after = search.cache_bytes();
            match done {
                Some(outcome) => {
                    live_bytes.fetch_sub(before, Ordering::Relaxed);
                    drop(search);
                    report(partition, outcome);
                }
                None => {
                    if after >= before {
                        live_bytes.fetch_add(after - before, Ordering::Relaxed);
                    } else {
                        live_bytes.fetch_sub(before - after, Ordering::Relaxed);
                    }
                    if let Ok(mut q) = queue.lock() {
                        q.push_back((partition, Task::Started(search, after)));
                    }
                    if until_requeue {
                        return false;
                    }
                }
            }
        }
    };
    std::thread::scope(|scope| {
        if start_alone && worker(true) {
            return;
        }
        for _ in 1..threads {
            scope.spawn(|| worker(false));
        }
        worker(false);
    });
    let mut reports = reports.into_inner().unwrap_or_default();
    reports.sort_by_key(|r| r.partition);
    reports
}

/// An operation for the counterexample, built field by field (the `json!` macro would serialise each value).
fn describe_op(history: &History, operation: &Operation) -> Value {
    let mut map = Map::new();
    let index = history
        .ops
        .get(operation.invoke)
        .map_or(operation.invoke as u64, |o| o.index);
    map.insert("index".into(), Value::from(index));
    let completion = operation.completion.and_then(|c| history.ops.get(c)).map(|o| o.index);
    map.insert("completion".into(), completion.map_or(Value::Null, Value::from));
    map.insert("line".into(), Value::from(history.line_of(operation.invoke)));
    map.insert("process".into(), Value::from(operation.process));
    map.insert("f".into(), Value::from(operation.f));
    map.insert("value".into(), operation.wire_value());
    Value::Object(map)
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
    // The reported counterexample: the partition whose blocked operation was invoked first.
    let mut illegal: Option<(usize, usize, usize, Value)> = None;
    let mut found: Vec<(usize, Found)> = partitions
        .iter()
        .map(|p| (p.ops.len(), Found::Undecided(GiveUp::Cancelled)))
        .collect();
    for r in reports {
        let Verdict::Searched(outcome, last_state) = r.verdict else {
            continue;
        };
        match &outcome {
            Found::Order(_) | Found::Undecided(GiveUp::Cancelled) => {}
            Found::Undecided(why) => unknown_reason = Some(*why),
            Found::Blocked { prefix, blocked } => {
                if illegal
                    .as_ref()
                    .is_none_or(|(_, b, _, _)| ops[*blocked].invoke < ops[*b].invoke)
                {
                    let last = last_state.unwrap_or_else(|| options.conventions.initial.clone());
                    illegal = Some((r.partition, *blocked, prefix.len(), last));
                }
            }
        }
        if let Some(slot) = found.get_mut(r.partition) {
            slot.1 = outcome;
        }
    }
    let mut details = json!({"model": options.model.name()});
    if let Some((partition, blocked, prefix_len, last_state)) = &illegal {
        let op = &ops[*blocked];
        let description = format!(
            "process {} {} {} (line {}) cannot be linearized after a {prefix_len}-op linearizable prefix ending in state {last_state}",
            op.process,
            op.f,
            op.wire_value(),
            history.line_of(op.invoke),
        );
        let event_ids = [Some(op.invoke), op.completion].into_iter().flatten();
        let indices = event_ids.filter_map(|i| history.ops.get(i)).map(|o| o.index).collect();
        result.add_anomaly("nonlinearizable", indices, description);
        details["counterexample"] = json!({
            "key": partitions[*partition].key,
            "op": describe_op(history, op),
            "prefix-length": prefix_len,
        });
    } else if let Some(why) = unknown_reason {
        result.valid = Validity::Unknown;
        details["unknown-reason"] = json!(format!("{why:?}").to_lowercase());
    }
    result.details = details;
    result.witness = Witness::new(LinearWitness {
        options: options.clone(),
        operations: ops.len(),
        found,
        failing: illegal.map(|(partition, ..)| partition),
    });
    result
}

#[cfg(test)]
mod tests;

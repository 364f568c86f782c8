//! Generators: deterministic, composable sources of operations (Jepsen's generator model, simplified).
//!
//! A [`Generator`] is asked by a worker thread for its next operation with a [`Context`] (time since the run
//! started, the worker's thread number) and the run's [`Rng`]. It answers [`Next::Op`], [`Next::Wait`] (ask
//! again at that time) or [`Next::Done`] (nothing more for this thread). Given the same seed and the same
//! sequence of requests a generator makes the same operations.
//!
//! Combinators ([`combinators`]): [`mix`], [`stagger`], [`limit`], [`time_limit`], [`phases`], [`each_thread`],
//! [`cycle`], plus the leaves [`from_fn`] and [`once`].

pub mod combinators;

use std::time::Duration;

pub use combinators::{cycle, each_thread, from_fn, limit, mix, once, phases, stagger, time_limit};
use serde_json::Value;

use crate::rng::Rng;

/// An operation to invoke: its function and argument, as recorded in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `read`, `write`, `cas`, `add`, ...
    pub f: String,
    /// The argument (`{"key": k, "value": v}` for keyed workloads).
    pub value: Value,
}

impl Invocation {
    /// An invocation of `f` with `value`.
    pub fn new(f: &str, value: Value) -> Invocation {
        Invocation {
            f: f.to_string(),
            value,
        }
    }
}

/// Who is asking and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Time since the run (or the phase) started.
    pub elapsed: Duration,
    /// The worker thread asking (0-based); stable for the whole run.
    pub thread: usize,
}

/// A generator's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Invoke this now.
    Op(Invocation),
    /// Nothing yet: ask again once `elapsed` reaches this.
    Wait(Duration),
    /// Nothing more for this thread.
    Done,
}

/// A source of operations.
pub trait Generator: Send {
    /// The next operation for `ctx.thread` at `ctx.elapsed`.
    fn next(&mut self, ctx: &Context, rng: &mut Rng) -> Next;
}

/// A boxed generator, the unit of composition.
pub type BoxGen = Box<dyn Generator>;

/// Makes fresh generators (for per-thread copies and cycles).
pub type GenFactory = Box<dyn Fn() -> BoxGen + Send>;

/// Draws operations from `gen` for one thread until it is done or `until` is reached, without waiting:
/// `Wait` answers advance the clock. Useful to inspect a plan (and in tests).
pub fn drain(source: &mut dyn Generator, rng: &mut Rng, thread: usize, until: Duration) -> Vec<(Duration, Invocation)> {
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    while now < until {
        match source.next(&Context { elapsed: now, thread }, rng) {
            Next::Op(op) => out.push((now, op)),
            Next::Wait(at) => now = at.max(now + Duration::from_nanos(1)),
            Next::Done => break,
        }
    }
    out
}

//! Faultline's checker: the history model, consistency checkers and history formats (ARCHITECTURE §5).
//!
//! Pure library: it parses bytes handed to it and decides verdicts; it opens no files or sockets. The only
//! clock it reads is the monotonic one behind the linearizability time budget.
//!
//! Layout:
//! - [`history`]: Jepsen's op model, invoke/completion pairing and validation, format conventions.
//! - [`formats`]: JSONL (native), EDN, Jepsen text logs, Porcupine kv logs; readers and writers.
//! - [`result`]: the verdict type every checker returns, and composition (worst verdict wins).
//! - [`linear`]: linearizability (Wing–Gong–Lowe search, per-key in parallel, budgets, counterexamples).
//! - [`stale`]: stale-read classification for registers with unique written values.
//! - [`set`]: lost writes and visibility latency for set workloads.
//! - [`session`]: per-process session guarantees.
//! - [`counter`]: reads of a counter within the bounds of the increments.
//! - [`change_stream`]: a change stream watched during a set run, against the history (repeats, phantoms, missing).
//! - [`convergence`]: whether the members' data agree after healing (hashes in, verdict out).
//! - [`registry`]: the one list of history checkers, by name; [`summary`]: the human lines of a verdict.
//! - [`generate`]: deterministic history generator for tests and benchmarks.
//! - [`stream`]: linearizability of JSONL histories too large to load, checked streamed per key.

pub mod change_stream;
pub mod convergence;
pub mod counter;
pub mod formats;
pub mod generate;
pub mod history;
pub mod linear;
pub mod registry;
pub mod result;
pub mod session;
pub mod set;
pub mod stale;
pub mod stream;
pub mod summary;

//! The history model: events ([`Op`]), the history they form, and invoke/completion pairing.
//!
//! A [`History`] is the sequence of events in real-time order, with the source line of each event so errors
//! can point at the file. [`pairing::pair`] turns it into [`Operation`]s (an invocation plus its completion)
//! and validates it.

pub mod name;
pub mod op;
pub mod pairing;

pub use name::{Interner, Key, Name};
pub use op::{Op, OpType, Process, split_keyed};
pub use pairing::{Operation, Outcome, PairedHistory, pair};

use serde_json::Value;

/// A history: events in real-time order, with their source lines (1-based; 0 if built in memory).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The events.
    pub ops: Vec<Op>,
    /// `lines[i]` is the source line of `ops[i]`.
    pub lines: Vec<usize>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Appends an event read from `line`.
    pub fn push(&mut self, op: Op, line: usize) {
        self.ops.push(op);
        self.lines.push(line);
    }

    /// Builds a history from events made in memory (indices and times are kept as given).
    pub fn from_ops(ops: Vec<Op>) -> History {
        let lines = vec![0; ops.len()];
        History { ops, lines }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The source line of event `i` (0 when unknown).
    pub fn line_of(&self, i: usize) -> usize {
        self.lines.get(i).copied().unwrap_or(0)
    }
}

/// How a format's histories are to be read by the checkers. The formats differ in meaning, not only in
/// syntax (see `shared/testdata/README.md`); each adapter supplies its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Conventions {
    /// A `fail` CAS is an observation ("the register did not hold `from`") rather than "did not happen".
    pub failed_cas_observes: bool,
    /// An `ok` read of `null` matches any state (Knossos) instead of meaning "no value".
    pub nil_read_matches_any: bool,
    /// The register's (or each key's) initial value.
    pub initial: Value,
}

impl Default for Conventions {
    /// The native (JSONL) conventions: `fail` did not happen, `null` means "no value", registers start empty.
    fn default() -> Conventions {
        Conventions {
            failed_cas_observes: false,
            nil_read_matches_any: false,
            initial: Value::Null,
        }
    }
}

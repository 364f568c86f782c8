//! History formats: one adapter per format, each with its own meaning (see `shared/testdata/README.md`).
//!
//! | format | reader | writer | conventions |
//! |---|---|---|---|
//! | [`Format::Jsonl`] (native) | [`jsonl::read`] (streaming) | [`jsonl::write`] | `fail` did not happen; `null` read = no value; initial `null` |
//! | [`Format::Edn`] (Jepsen `history.edn`, Knossos data files) | [`edn::read`] | [`edn::write`] | Knossos: `fail` dropped, `nil` read matches anything, initial `0` |
//! | [`Format::JepsenLog`] (the etcd logs) | [`jepsen_log::read`] | — | `fail` CAS observes a mismatch; `nil` read = no value; initial `nil` |
//! | [`Format::PorcupineKv`] | [`edn::read`] (one map per line) | [`porcupine_kv::write`] | every key starts as `""` |
//!
//! **Keys.** Multi-key histories wrap each value as `{"key": k, "value": v}` (JSONL) — in EDN
//! `{:key k, :value v}`, a Jepsen independent tuple `[k v]` (see [`edn::Tuples`]), or a top-level `:key` in
//! the op map (Porcupine kv logs). All are read into [`Op::key`](crate::history::Op::key) plus the bare
//! value, and written back as `{"key": k, "value": v}`. Missing `index` or `time` fields default to the
//! event's position in the file.
//!
//! **Bad input.** Every reader rejects input that is not a history — binary data, a JSON array, a
//! truncated last line — with a [`FormatError`] naming the line; [`Format::read`] also rejects input with no
//! events. Line-oriented formats are read one line at a time ([`lines`]).

pub mod edn;
pub mod edn_value;
pub mod jepsen_log;
pub mod jsonl;
pub mod jsonl_canonical;
pub mod jsonl_value;
pub mod lines;
pub mod porcupine_kv;

use std::io::BufRead;

use serde_json::Value;
use thiserror::Error;

use crate::history::{Conventions, History};

/// A history file that cannot be read.
#[derive(Debug, Error)]
pub enum FormatError {
    /// The text is malformed at a line.
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
    /// The input holds no events at all.
    #[error("no history events: the input is empty or blank")]
    Empty,
    /// The reader failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}

impl FormatError {
    /// A malformed-input error.
    pub fn at(line: usize, message: impl Into<String>) -> FormatError {
        FormatError::Malformed {
            line,
            message: message.into(),
        }
    }
}

/// The supported history formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Native: one JSON op per line.
    Jsonl,
    /// Jepsen / Knossos EDN.
    Edn,
    /// Jepsen's text log (`INFO  jepsen.util - 3 :invoke :read nil`).
    JepsenLog,
    /// Porcupine's key-value logs (one EDN map per line).
    PorcupineKv,
}

impl Format {
    /// Parses a format name as used on the command line.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "json" => Some(Format::Jsonl),
            "edn" | "knossos-edn" => Some(Format::Edn),
            "jepsen-log" | "log" => Some(Format::JepsenLog),
            "porcupine-kv" | "kv" => Some(Format::PorcupineKv),
            _ => None,
        }
    }

    /// Guesses the format from a file name and its first non-blank line.
    pub fn detect(file_name: &str, first_line: &str) -> Format {
        let first = first_line.trim_start();
        if first.contains("jepsen.util") {
            Format::JepsenLog
        } else if first.starts_with("{:") && first.contains(":key") {
            Format::PorcupineKv
        } else if (first.starts_with('{') && first.contains('"') && !first.contains("{:"))
            || first.starts_with("[{\"")
            || file_name.ends_with(".jsonl")
            || file_name.ends_with(".json")
        {
            Format::Jsonl
        } else {
            Format::Edn
        }
    }

    /// The conventions the format's histories are checked under by default.
    pub fn conventions(self) -> Conventions {
        match self {
            Format::Jsonl => Conventions::default(),
            Format::Edn => Conventions {
                failed_cas_observes: false,
                nil_read_matches_any: true,
                initial: Value::from(0),
            },
            Format::JepsenLog => Conventions {
                failed_cas_observes: true,
                ..Conventions::default()
            },
            Format::PorcupineKv => Conventions {
                initial: Value::from(""),
                ..Conventions::default()
            },
        }
    }

    /// Reads a history in this format. Unlike the per-format readers, it rejects input without events: a
    /// file to be checked that holds no history is an error, not a trivially valid history.
    pub fn read(self, reader: impl BufRead) -> Result<History, FormatError> {
        let history = match self {
            Format::Jsonl => jsonl::read(reader),
            Format::Edn | Format::PorcupineKv => edn::read(reader),
            Format::JepsenLog => jepsen_log::read(reader),
        }?;
        if history.is_empty() {
            return Err(FormatError::Empty);
        }
        Ok(history)
    }
}

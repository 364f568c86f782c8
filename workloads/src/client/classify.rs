//! Error classification: did a failed operation definitely not happen (`fail`), or might it have (`info`)?
//!
//! Reads change nothing, so every failed read is `fail`. For writes: a server error reply (not-primary, a
//! duplicate key, a bad value) means the write was refused before it was applied: `fail`; so does a server
//! selection error (no member was chosen, nothing was sent; retries are off). A write-concern error means the
//! write was applied locally but may roll back; a network error, a timeout, or an interruption by a state
//! change means it may or may not have been applied: `info`.

use mongodb::error::{ErrorKind, WriteFailure};
use serde_json::Value;

use faultline_checker::history::OpType;

/// Error codes of interruptions after which a write's fate is unknown.
const INDETERMINATE_CODES: &[i32] = &[
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    50,    // MaxTimeMSExpired
    64,    // WriteConcernFailed
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    9001,  // SocketException
];

/// Whether the operation can change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Write,
}

/// How an operation ended, ready to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` or `Info`.
    pub op_type: OpType,
    /// The completion's value (for `ok` reads: what was read).
    pub value: Value,
    /// The member that served it, when known.
    pub node: Option<String>,
    /// The error, for `fail` and `info`.
    pub error: Option<Value>,
}

impl Completion {
    /// A successful completion.
    pub fn ok(value: Value) -> Completion {
        Completion {
            op_type: OpType::Ok,
            value,
            node: None,
            error: None,
        }
    }

    /// A completion that definitely did not happen, with a reason.
    pub fn fail(value: Value, error: &str) -> Completion {
        Completion {
            op_type: OpType::Fail,
            value,
            node: None,
            error: Some(Value::String(error.to_string())),
        }
    }

    /// An indeterminate completion, with a reason.
    pub fn info(value: Value, error: &str) -> Completion {
        Completion {
            op_type: OpType::Info,
            value,
            node: None,
            error: Some(Value::String(error.to_string())),
        }
    }
}

/// `fail` or `info` for a driver error, and a short description for the history.
pub fn classify(err: &mongodb::error::Error, kind: OpKind) -> (OpType, String) {
    let (code, description) = describe(err);
    let op_type = match kind {
        OpKind::Read => OpType::Fail,
        OpKind::Write => write_outcome(err.kind.as_ref(), code),
    };
    (op_type, description)
}

/// A timed-out operation: reads did nothing, writes may have.
pub fn timed_out(kind: OpKind) -> OpType {
    match kind {
        OpKind::Read => OpType::Fail,
        OpKind::Write => OpType::Info,
    }
}

fn write_outcome(kind: &ErrorKind, code: Option<i32>) -> OpType {
    match kind {
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => OpType::Info,
        ErrorKind::Command(c) if c.code == 64 => OpType::Info,
        ErrorKind::Write(WriteFailure::WriteError(_)) | ErrorKind::Command(_) => {
            if code.is_some_and(|c| INDETERMINATE_CODES.contains(&c)) {
                OpType::Info
            } else {
                OpType::Fail
            }
        }
        ErrorKind::ServerSelection { .. } | ErrorKind::InvalidArgument { .. } => OpType::Fail,
        _ => OpType::Info,
    }
}

fn describe(err: &mongodb::error::Error) -> (Option<i32>, String) {
    match err.kind.as_ref() {
        ErrorKind::Command(c) => (Some(c.code), format!("{} ({}): {}", c.code_name, c.code, c.message)),
        ErrorKind::Write(WriteFailure::WriteError(e)) => {
            (Some(e.code), format!("write error {}: {}", e.code, e.message))
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => {
            (Some(e.code), format!("write concern error {}: {}", e.code, e.message))
        }
        ErrorKind::Io(e) => (None, format!("network: {e}")),
        ErrorKind::ServerSelection { .. } => (None, "server selection timed out".to_string()),
        ErrorKind::ConnectionPoolCleared { .. } => (None, "connection pool cleared".to_string()),
        other => (None, format!("{other:?}").chars().take(200).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_concern_errors_and_interruptions_are_indeterminate() {
        assert_eq!(
            write_outcome(
                &ErrorKind::Io(std::sync::Arc::new(std::io::ErrorKind::ConnectionReset.into())),
                None
            ),
            OpType::Info
        );
        assert_eq!(timed_out(OpKind::Write), OpType::Info);
        assert_eq!(timed_out(OpKind::Read), OpType::Fail);
    }
}

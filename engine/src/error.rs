//! The engine's error type: a MongoDB error with its numeric code, code name and labels.
//!
//! Every failure a client can see is one of these; `to_reply` renders MongoDB's error shape
//! `{ok: 0, errmsg, code, codeName, errorLabels?}`.

use bson::{Bson, Document, doc};

/// MongoDB's error codes that the engine uses, with their code names.
pub mod code {
    pub const INTERNAL_ERROR: (i32, &str) = (1, "InternalError");
    pub const BAD_VALUE: (i32, &str) = (2, "BadValue");
    pub const FAILED_TO_PARSE: (i32, &str) = (9, "FailedToParse");
    pub const TYPE_MISMATCH: (i32, &str) = (14, "TypeMismatch");
    pub const OVERFLOW: (i32, &str) = (15, "Overflow");
    pub const ILLEGAL_OPERATION: (i32, &str) = (20, "IllegalOperation");
    pub const INVALID_BSON: (i32, &str) = (22, "InvalidBSON");
    pub const ALREADY_INITIALIZED: (i32, &str) = (23, "AlreadyInitialized");
    pub const NAMESPACE_NOT_FOUND: (i32, &str) = (26, "NamespaceNotFound");
    pub const INDEX_NOT_FOUND: (i32, &str) = (27, "IndexNotFound");
    pub const CURSOR_NOT_FOUND: (i32, &str) = (43, "CursorNotFound");
    pub const NAMESPACE_EXISTS: (i32, &str) = (48, "NamespaceExists");
    pub const MAX_TIME_MS_EXPIRED: (i32, &str) = (50, "MaxTimeMSExpired");
    pub const COMMAND_NOT_FOUND: (i32, &str) = (59, "CommandNotFound");
    pub const WRITE_CONCERN_TIMEOUT: (i32, &str) = (64, "WriteConcernTimeout");
    pub const INVALID_OPTIONS: (i32, &str) = (72, "InvalidOptions");
    pub const INVALID_NAMESPACE: (i32, &str) = (73, "InvalidNamespace");
    pub const INDEX_OPTIONS_CONFLICT: (i32, &str) = (85, "IndexOptionsConflict");
    pub const INDEX_KEY_SPECS_CONFLICT: (i32, &str) = (86, "IndexKeySpecsConflict");
    pub const SHUTDOWN_IN_PROGRESS: (i32, &str) = (91, "ShutdownInProgress");
    pub const INVALID_REPLICA_SET_CONFIG: (i32, &str) = (93, "InvalidReplicaSetConfig");
    pub const NOT_YET_INITIALIZED: (i32, &str) = (94, "NotYetInitialized");
    pub const UNSATISFIABLE_WRITE_CONCERN: (i32, &str) = (100, "UnsatisfiableWriteConcern");
    pub const NO_SUCH_TRANSACTION: (i32, &str) = (251, "NoSuchTransaction");
    pub const TRANSACTION_TOO_OLD: (i32, &str) = (225, "TransactionTooOld");
    pub const NOT_WRITABLE_PRIMARY: (i32, &str) = (10107, "NotWritablePrimary");
    pub const DUPLICATE_KEY: (i32, &str) = (11000, "DuplicateKey");
    pub const INTERRUPTED_DUE_TO_REPL_STATE_CHANGE: (i32, &str) = (11602, "InterruptedDueToReplStateChange");
    pub const NOT_PRIMARY_NO_SECONDARY_OK: (i32, &str) = (13435, "NotPrimaryNoSecondaryOk");
    pub const NOT_PRIMARY_OR_SECONDARY: (i32, &str) = (13436, "NotPrimaryOrSecondary");
    pub const OPERATION_NOT_SUPPORTED_IN_TRANSACTION: (i32, &str) = (263, "OperationNotSupportedInTransaction");
}

/// Error codes after which a retryable write is labelled `RetryableWriteError`, as MongoDB labels them.
pub const RETRYABLE_CODES: &[i32] = &[6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436];

/// A MongoDB error as a client sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code_name} ({code}): {message}")]
pub struct Error {
    pub code: i32,
    pub code_name: &'static str,
    pub message: String,
    pub labels: Vec<&'static str>,
    /// Extra fields merged into the error reply or write error (e.g. `keyPattern`, `keyValue`); boxed to keep
    /// `Result`s small.
    pub extra: Option<Box<Document>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new((code, code_name): (i32, &'static str), message: impl Into<String>) -> Error {
        Error {
            code,
            code_name,
            message: message.into(),
            labels: Vec::new(),
            extra: None,
        }
    }

    pub fn bad_value(message: impl Into<String>) -> Error {
        Error::new(code::BAD_VALUE, message)
    }

    pub fn failed_to_parse(message: impl Into<String>) -> Error {
        Error::new(code::FAILED_TO_PARSE, message)
    }

    pub fn type_mismatch(message: impl Into<String>) -> Error {
        Error::new(code::TYPE_MISMATCH, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(code::INTERNAL_ERROR, message)
    }

    pub fn with_extra(mut self, extra: Document) -> Error {
        self.extra.get_or_insert_with(Default::default).extend(extra);
        self
    }

    pub fn is_retryable(&self) -> bool {
        RETRYABLE_CODES.contains(&self.code)
    }

    /// The top-level error reply of a failed command.
    pub fn to_reply(&self) -> Document {
        let mut reply = doc! {"ok": 0.0, "errmsg": &self.message, "code": self.code, "codeName": self.code_name};
        if !self.labels.is_empty() {
            let labels: Vec<Bson> = self.labels.iter().map(|l| Bson::String(l.to_string())).collect();
            reply.insert("errorLabels", labels);
        }
        if let Some(extra) = &self.extra {
            reply.extend(extra.as_ref().clone());
        }
        reply
    }

    /// An entry of a write command's `writeErrors` array.
    pub fn to_write_error(&self, index: usize) -> Document {
        let mut entry = doc! {"index": index as i32, "code": self.code, "codeName": self.code_name,
        "errmsg": &self.message};
        if let Some(extra) = &self.extra {
            entry.extend(extra.as_ref().clone());
        }
        entry
    }
}

impl From<crate::query::QueryError> for Error {
    fn from(err: crate::query::QueryError) -> Error {
        Error {
            code: err.code,
            code_name: err.code_name,
            message: err.message,
            labels: Vec::new(),
            extra: None,
        }
    }
}

impl From<bson::error::Error> for Error {
    fn from(err: bson::error::Error) -> Error {
        Error::new(code::INVALID_BSON, err.to_string())
    }
}

//! Wire errors, their fatal/answerable class, and the response an answerable one gets.
//!
//! The classification policy is documented in the parent module (`wire`).

use bson::{Document, doc};

use super::{Header, encode_msg_reply, encode_op_reply, msg_flags, op_code, reply_flags};

/// Everything that can go wrong reading or decoding a message, or encoding a reply.
#[derive(thiserror::Error, Debug)]
pub enum WireError {
    // ---- fatal: close the connection ----
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside a message header.
    #[error("stream ended after {got} of 16 header bytes")]
    TruncatedHeader { got: usize },
    /// The stream ended inside a message body.
    #[error("stream ended after {got} of {expected} body bytes")]
    TruncatedBody { expected: usize, got: usize },
    /// The header's messageLength is below 16 or above the maximum message size.
    #[error("message length {length} is outside 16..={max}")]
    MessageLength { length: i32, max: usize },
    /// The body handed to the decoder is not as long as its header says.
    #[error("header declares a {declared}-byte body but {actual} bytes were given")]
    BodyLengthMismatch { declared: usize, actual: usize },
    /// OP_COMPRESSED, a legacy opcode, or an unknown one.
    #[error("unsupported opcode {0}")]
    UnsupportedOpCode(i32),
    /// An OP_MSG flag bit in the required (low 16) bits that this codec does not know.
    #[error("message contains illegal flags value: {0:#x}")]
    IllegalFlags(u32),
    /// An OP_MSG section kind other than 0 or 1.
    #[error("unknown section kind {0}")]
    UnknownSectionKind(u8),
    /// checksumPresent is set but the message is too short to hold flags and a checksum.
    #[error("checksumPresent is set but the message has no room for a checksum")]
    ChecksumMissing,
    /// The CRC-32C of the message does not match its trailing checksum.
    #[error("checksum mismatch: message says {received:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { received: u32, computed: u32 },

    // ---- answerable: the stream is intact, reply with an error ----
    /// The message's sections or fields do not fit its length (truncated, trailing bytes, bad cstring).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A document is not valid BSON.
    #[error("invalid BSON: {0}")]
    InvalidBson(String),
    /// A document nests deeper than the limit.
    #[error("BSONObj exceeded maximum nested object depth: {max}")]
    NestingTooDeep { max: usize },
    /// A document is larger than the limit.
    #[error("BSONObj size: {size} is invalid. Size must be between 0 and {max}")]
    DocumentTooLarge { size: usize, max: usize },
    /// An OP_MSG without a kind-0 section.
    #[error("OP_MSG messages must have a body")]
    MissingBody,
    /// An OP_MSG with more than one kind-0 section.
    #[error("Multiple body sections in message")]
    MultipleBodies,
    /// Two kind-1 sections with the same identifier.
    #[error("Duplicate document sequence: {0}")]
    DuplicateSequence(String),
    /// A kind-1 identifier that is also a field of the body.
    #[error("Duplicate field between body and document sequence {0}")]
    SequenceConflictsWithBody(String),
    /// An OP_MSG body without `$db`.
    #[error("OP_MSG requests require a $db argument")]
    MissingDatabase,
    /// An OP_MSG body whose `$db` is not a string.
    #[error("$db must be a string")]
    DatabaseNotString,
    /// A reply document could not be serialised.
    #[error("reply could not be encoded: {0}")]
    ReplyEncoding(String),
}

impl WireError {
    /// `None`: the connection must be closed (framing is broken or the protocol says close).
    /// `Some((code, codeName))`: framing is intact; answer with `{ok: 0, errmsg, code, codeName}`.
    pub fn reply_code(&self) -> Option<(i32, &'static str)> {
        use WireError::*;
        match self {
            Io(_) | TruncatedHeader { .. } | TruncatedBody { .. } | MessageLength { .. } => None,
            BodyLengthMismatch { .. } | UnsupportedOpCode(_) | IllegalFlags(_) | UnknownSectionKind(_) => None,
            ChecksumMissing | ChecksumMismatch { .. } => None,
            Malformed(_) => Some((9, "FailedToParse")),
            InvalidBson(_) => Some((22, "InvalidBSON")),
            NestingTooDeep { .. } => Some((15, "Overflow")),
            DocumentTooLarge { .. } => Some((10334, "BSONObjectTooLarge")),
            MissingBody => Some((40587, "Location40587")),
            MultipleBodies => Some((40430, "Location40430")),
            DuplicateSequence(_) => Some((40431, "Location40431")),
            SequenceConflictsWithBody(_) => Some((40433, "Location40433")),
            MissingDatabase => Some((40571, "Location40571")),
            DatabaseNotString => Some((14, "TypeMismatch")),
            ReplyEncoding(_) => Some((1, "InternalError")),
        }
    }

    /// The OP_MSG error reply `{ok: 0.0, errmsg, code, codeName}`, or `None` if the error is fatal.
    pub fn reply_document(&self) -> Option<Document> {
        let (code, code_name) = self.reply_code()?;
        Some(doc! { "ok": 0.0, "errmsg": self.to_string(), "code": code, "codeName": code_name })
    }

    /// The legacy OP_REPLY failure document `{$err, code, codeName, ok: 0.0}`, or `None` if fatal.
    pub fn legacy_reply_document(&self) -> Option<Document> {
        let (code, code_name) = self.reply_code()?;
        Some(doc! { "$err": self.to_string(), "code": code, "codeName": code_name, "ok": 0.0 })
    }
}

/// What a connection does after [`super::decode_request`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ErrorAction {
    /// Close the connection.
    Close,
    /// Send nothing and keep reading (an OP_MSG with `moreToCome` never gets a reply).
    Ignore,
    /// Send these bytes and keep reading.
    Reply(Vec<u8>),
}

/// Decides how to answer a request that failed to decode: `header` and `body` are the failed frame,
/// `request_id` the id to give the reply.
pub fn error_response(header: &Header, body: &[u8], err: &WireError, request_id: i32) -> ErrorAction {
    match header.op_code {
        op_code::OP_MSG => match err.reply_document() {
            None => ErrorAction::Close,
            Some(_) if has_more_to_come(body) => ErrorAction::Ignore,
            Some(reply) => ErrorAction::Reply(encode_msg_reply(request_id, header.request_id, &reply)),
        },
        op_code::OP_QUERY => match err.legacy_reply_document() {
            None => ErrorAction::Close,
            Some(reply) => ErrorAction::Reply(encode_op_reply(
                request_id,
                header.request_id,
                reply_flags::QUERY_FAILURE,
                &reply,
            )),
        },
        _ => ErrorAction::Close,
    }
}

/// Whether an OP_MSG body's flags (if it has any) set moreToCome.
fn has_more_to_come(body: &[u8]) -> bool {
    match body.first_chunk::<4>() {
        Some(flags) => u32::from_le_bytes(*flags) & msg_flags::MORE_TO_COME != 0,
        None => false,
    }
}

//! The MongoDB wire protocol: message framing and the OP_MSG / OP_QUERY / OP_REPLY codecs.
//!
//! Everything here is sans-I/O except [`read_frame`], a small async helper that cuts one message out of a
//! byte stream, and [`client`], the OP_MSG client members and the harness talk to members with. The decoder never panics and never indexes past the bytes it was given: every length read from
//! the network is checked against the bytes that remain before it is used.
//!
//! ```text
//! socket ──read_frame──► (Header, body bytes) ──decode_request──► Request::Msg(OpMsg) | Request::Query(OpQuery)
//!                                                       │ Err(WireError)
//!                                                       ▼
//!                                  error_response ──► Close | Ignore | Reply(bytes)
//! reply Document ──encode_msg_reply / encode_op_reply──► bytes ──► socket
//! ```
//!
//! # Fatal versus answerable errors
//!
//! A [`WireError`] is *fatal* (`reply_code()` is `None`: close the connection) when the byte stream can no
//! longer be trusted or the protocol says to close:
//!
//! - I/O errors, a truncated header or body, a message length below 16 or above the maximum;
//! - an opcode other than OP_MSG or OP_QUERY (OP_COMPRESSED — compression is never advertised — the legacy
//!   opcodes 2001/2002/2005/2006/2007, and unknown opcodes);
//! - OP_MSG: an unknown flag bit in the low 16 bits, an unknown section kind, a checksum that is missing or
//!   does not match (a corrupted message may be corrupted anywhere, including its `moreToCome` bit).
//!
//! Every other problem happens inside a message whose boundaries are known, so the stream stays in sync and the
//! error is *answerable* (`reply_code()` is `Some((code, codeName))`) with MongoDB's own code where it has one:
//! invalid BSON (22 InvalidBSON), too-deep nesting (15 Overflow), an oversized document (10334
//! BSONObjectTooLarge), several or no body sections (40430, 40587), a duplicate document sequence (40431), a
//! sequence colliding with a body field (40433), a missing `$db` (40571) or a non-string one (14 TypeMismatch),
//! and sections that do not tile the message (9 FailedToParse). [`error_response`] turns an answerable error
//! into the reply the request's opcode calls for, and swallows it for an OP_MSG sent with `moreToCome` (a w:0
//! write gets no reply, even an error).
//!
//! # Limits
//!
//! Each document received (the OP_MSG body, each document of a kind-1 sequence, the OP_QUERY documents) may be
//! at most [`MAX_COMMAND_DOCUMENT_SIZE`] bytes (16 MiB + 16 KiB, as in mongod) and nested at most
//! [`MAX_NESTING_DEPTH`] levels (mongod's 200). The depth limit also protects the recursive BSON conversion
//! from overflowing the stack. Replies are held to the same size limit.

pub mod client;
mod error;
mod frame;
mod header;
mod op_msg;
mod op_query;
mod op_reply;
mod reader;
mod request;

#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
mod test_support;

pub use error::{ErrorAction, WireError, error_response};
pub use frame::read_frame;
pub use header::Header;
pub use op_msg::{OpMsg, encode_msg_reply, encode_msg_reply_bson, try_encode_msg};
pub use op_query::{OpQuery, encode_op_query};
pub use op_reply::{OpReply, decode_op_reply, encode_op_reply, try_encode_op_reply};
pub use request::{Request, decode_request};

/// Length of the standard message header: messageLength, requestID, responseTo, opCode.
pub const HEADER_LEN: usize = 16;
/// The largest user document; advertised in `hello` as `maxBsonObjectSize`.
pub const MAX_BSON_OBJECT_SIZE: usize = 16 * 1024 * 1024;
/// The largest message, header included; advertised in `hello` as `maxMessageSizeBytes`.
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;
/// The largest single document accepted in a message or sent in a reply: a command may carry a user document
/// of [`MAX_BSON_OBJECT_SIZE`] plus some command overhead (mongod allows 16 KiB).
pub const MAX_COMMAND_DOCUMENT_SIZE: usize = MAX_BSON_OBJECT_SIZE + 16 * 1024;
/// The deepest nesting of documents and arrays accepted below a top-level document (mongod's limit,
/// [`depth::MAX_BSON_DEPTH`](crate::depth::MAX_BSON_DEPTH)).
pub const MAX_NESTING_DEPTH: usize = crate::depth::MAX_BSON_DEPTH;

/// The opcodes this codec knows.
pub mod op_code {
    /// A reply to OP_QUERY (used only for the legacy handshake).
    pub const OP_REPLY: i32 = 1;
    /// A legacy query; accepted only for the handshake of old clients (Node, mongosh).
    pub const OP_QUERY: i32 = 2004;
    /// A compressed message; the server never advertises compression, so it is refused.
    pub const OP_COMPRESSED: i32 = 2012;
    /// The extensible message format every modern driver uses.
    pub const OP_MSG: i32 = 2013;
}

/// OP_MSG flag bits.
pub mod msg_flags {
    /// A CRC-32C checksum follows the sections.
    pub const CHECKSUM_PRESENT: u32 = 1 << 0;
    /// The sender will send another message without waiting; on a request it means "do not reply".
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// The client accepts a stream of replies (exhaust cursors, awaitable hello).
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// Every bit this codec understands.
    pub const KNOWN: u32 = CHECKSUM_PRESENT | MORE_TO_COME | EXHAUST_ALLOWED;
    /// Bits that a receiver must understand; an unknown one among them is fatal.
    pub const REQUIRED_MASK: u32 = 0xffff;
}

/// OP_QUERY flag bits.
pub mod query_flags {
    /// The client allows this query to run on a secondary.
    pub const SECONDARY_OK: u32 = 1 << 2;
}

/// OP_REPLY responseFlags bits.
pub mod reply_flags {
    /// The query failed; the single document is `{$err, code, ok: 0}`.
    pub const QUERY_FAILURE: i32 = 1 << 1;
    /// The server supports awaitData (always set by modern servers).
    pub const AWAIT_CAPABLE: i32 = 1 << 3;
}

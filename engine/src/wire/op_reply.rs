//! OP_REPLY (opcode 1), the answer to a legacy OP_QUERY handshake: always one document, cursor 0.

use bson::{Document, doc};

use super::op_query::frame;
use super::reader::ByteReader;
use super::{MAX_COMMAND_DOCUMENT_SIZE, WireError, op_code};

/// A decoded OP_REPLY (used by tests and by anything that speaks the legacy handshake as a client).
#[derive(Debug, Clone, PartialEq)]
pub struct OpReply {
    /// See [`super::reply_flags`].
    pub response_flags: i32,
    pub cursor_id: i64,
    pub starting_from: i32,
    pub documents: Vec<Document>,
}

/// Encodes an OP_REPLY with `response_flags`, cursorID 0, startingFrom 0 and the single document `doc`.
/// Fails if `doc` cannot be serialised or exceeds [`MAX_COMMAND_DOCUMENT_SIZE`].
pub fn try_encode_op_reply(
    request_id: i32,
    response_to: i32,
    response_flags: i32,
    doc: &Document,
) -> Result<Vec<u8>, WireError> {
    let document = doc.to_vec().map_err(|err| WireError::ReplyEncoding(err.to_string()))?;
    if document.len() > MAX_COMMAND_DOCUMENT_SIZE {
        return Err(WireError::DocumentTooLarge {
            size: document.len(),
            max: MAX_COMMAND_DOCUMENT_SIZE,
        });
    }
    let mut payload = Vec::with_capacity(20 + document.len());
    payload.extend_from_slice(&response_flags.to_le_bytes());
    payload.extend_from_slice(&0i64.to_le_bytes());
    payload.extend_from_slice(&0i32.to_le_bytes());
    payload.extend_from_slice(&1i32.to_le_bytes());
    payload.extend_from_slice(&document);
    frame(request_id, response_to, op_code::OP_REPLY, &payload)
}

/// Encodes an OP_REPLY (flags: bit 1 QueryFailure, bit 3 AwaitCapable), cursorID 0, startingFrom 0, one
/// document. Never fails: an unencodable document is replaced by a QueryFailure `{$err, code, codeName, ok: 0}`
/// saying why, and the failure is logged.
pub fn encode_op_reply(request_id: i32, response_to: i32, response_flags: i32, doc: &Document) -> Vec<u8> {
    try_encode_op_reply(request_id, response_to, response_flags, doc).unwrap_or_else(|err| {
        tracing::error!(%err, request_id, response_to, "OP_REPLY could not be encoded; sending an error instead");
        let (code, code_name) = err.reply_code().unwrap_or((1, "InternalError"));
        let fallback = doc! { "$err": err.to_string(), "code": code, "codeName": code_name, "ok": 0.0 };
        let flags = response_flags | super::reply_flags::QUERY_FAILURE;
        // A small document of strings and numbers always encodes; an empty Vec would mean "send nothing".
        try_encode_op_reply(request_id, response_to, flags, &fallback).unwrap_or_default()
    })
}

/// Decodes an OP_REPLY body (the bytes after the header). numberReturned must match the documents present.
pub fn decode_op_reply(body: &[u8]) -> Result<OpReply, WireError> {
    let mut reader = ByteReader::new(body);
    let response_flags = reader.read_i32("responseFlags")?;
    let cursor_bytes = reader.take(8, "cursorID")?;
    let cursor_id = i64::from_le_bytes(cursor_bytes.try_into().unwrap_or_default());
    let starting_from = reader.read_i32("startingFrom")?;
    let number_returned = reader.read_i32("numberReturned")?;
    let mut documents = Vec::new();
    while !reader.is_empty() {
        documents.push(reader.read_document("OP_REPLY document")?);
    }
    if usize::try_from(number_returned).ok() != Some(documents.len()) {
        return Err(WireError::Malformed(format!(
            "numberReturned is {number_returned} but {} documents follow",
            documents.len()
        )));
    }
    Ok(OpReply {
        response_flags,
        cursor_id,
        starting_from,
        documents,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{HEADER_LEN, Header, MAX_BSON_OBJECT_SIZE, reply_flags};
    use super::*;

    fn split(bytes: &[u8]) -> (Header, &[u8]) {
        let header_bytes = bytes.first_chunk::<HEADER_LEN>().copied().unwrap_or_default();
        (
            Header::parse(&header_bytes),
            bytes.get(HEADER_LEN..).unwrap_or_default(),
        )
    }

    #[test]
    fn a_reply_round_trips_with_its_header() {
        let doc = doc! { "ismaster": true, "maxWireVersion": 21, "ok": 1.0 };
        let bytes = encode_op_reply(9, 4, reply_flags::AWAIT_CAPABLE, &doc);
        let (header, body) = split(&bytes);
        assert_eq!(
            header,
            Header {
                message_length: bytes.len() as i32,
                request_id: 9,
                response_to: 4,
                op_code: 1
            }
        );
        let reply = decode_op_reply(body);
        let expected = OpReply {
            response_flags: 8,
            cursor_id: 0,
            starting_from: 0,
            documents: vec![doc],
        };
        assert_eq!(reply.ok(), Some(expected));
    }

    #[test]
    fn an_oversized_reply_becomes_a_query_failure() {
        let big = doc! { "s": "x".repeat(MAX_BSON_OBJECT_SIZE + 20_000) };
        let bytes = encode_op_reply(1, 2, 0, &big);
        let reply = decode_op_reply(split(&bytes).1).ok();
        let flags = reply.as_ref().map(|r| r.response_flags);
        assert_eq!(flags, Some(reply_flags::QUERY_FAILURE));
        let code = reply.and_then(|r| r.documents.first().and_then(|d| d.get_i32("code").ok()));
        assert_eq!(code, Some(10334));
    }

    #[test]
    fn a_wrong_number_returned_is_malformed() {
        let mut bytes = encode_op_reply(1, 2, 0, &doc! { "ok": 1 });
        bytes[HEADER_LEN + 16] = 2;
        assert!(matches!(decode_op_reply(split(&bytes).1), Err(WireError::Malformed(_))));
    }
}

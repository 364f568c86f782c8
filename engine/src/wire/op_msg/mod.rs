//! OP_MSG (opcode 2013): flags, one kind-0 body, kind-1 document sequences, optional CRC-32C checksum.
//!
//! Decoding merges each kind-1 sequence into the body as an array field named by its identifier, so the
//! command layer sees one document whether a driver used sequences or not.

use std::collections::HashSet;

use bson::raw::RawDocumentBuf;
use bson::{Bson, Document, doc};

use super::reader::ByteReader;
use super::{HEADER_LEN, Header, MAX_COMMAND_DOCUMENT_SIZE, WireError, msg_flags, op_code};

const SECTION_BODY: u8 = 0;
const SECTION_SEQUENCE: u8 = 1;
const CHECKSUM_LEN: usize = 4;

/// A decoded OP_MSG: its flags and its body with any document sequences merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    /// The raw flag bits (see [`msg_flags`]).
    pub flags: u32,
    /// The kind-0 document, plus one array field per kind-1 sequence.
    pub body: Document,
}

impl OpMsg {
    /// The sender expects no reply (a w:0 write when set on a request).
    pub fn more_to_come(&self) -> bool {
        self.flags & msg_flags::MORE_TO_COME != 0
    }

    /// The client accepts a stream of replies.
    pub fn exhaust_allowed(&self) -> bool {
        self.flags & msg_flags::EXHAUST_ALLOWED != 0
    }

    /// The command name: the body's first key.
    pub fn command_name(&self) -> Option<&str> {
        self.body.keys().next().map(String::as_str)
    }

    /// The target database, `$db`, if it is present and a string.
    pub fn database(&self) -> Option<&str> {
        self.body.get_str("$db").ok()
    }

    /// Decodes an OP_MSG body (the bytes after the header), request or reply: checks flags and checksum,
    /// reads the sections and merges the sequences. Does not require `$db` (see [`super::decode_request`]).
    pub fn decode(header: &Header, body: &[u8]) -> Result<OpMsg, WireError> {
        let (flags, sections) = flags_and_sections(header, body)?;
        let body = decode_sections(sections)?;
        Ok(OpMsg { flags, body })
    }

    /// Decodes a reply that carries only its kind-0 body (every server reply does), checked as
    /// [`OpMsg::decode`] checks it but left as raw BSON: a reader that needs a few fields of a large reply (an
    /// oplog batch) never converts the rest. Returns the flags and the body.
    pub fn decode_raw_reply(header: &Header, body: &[u8]) -> Result<(u32, RawDocumentBuf), WireError> {
        let (flags, sections) = flags_and_sections(header, body)?;
        let mut reader = ByteReader::new(sections);
        match reader.read_u8("section kind")? {
            SECTION_BODY => {}
            SECTION_SEQUENCE => {
                return Err(WireError::Malformed("a reply with a document sequence".into()));
            }
            kind => return Err(WireError::UnknownSectionKind(kind)),
        }
        let raw = reader.read_raw_document("OP_MSG body")?.to_owned();
        if !reader.is_empty() {
            return Err(WireError::Malformed("a reply with more than its body section".into()));
        }
        Ok((flags, raw))
    }
}

/// Reads the flags (refusing unknown required ones) and returns them with the sections, after checking the
/// checksum when there is one.
fn flags_and_sections<'a>(header: &Header, body: &'a [u8]) -> Result<(u32, &'a [u8]), WireError> {
    let flags = ByteReader::new(body).read_u32("OP_MSG flags")?;
    let unknown_required = flags & msg_flags::REQUIRED_MASK & !msg_flags::KNOWN;
    if unknown_required != 0 {
        return Err(WireError::IllegalFlags(flags));
    }
    let sections = if flags & msg_flags::CHECKSUM_PRESENT != 0 {
        verify_checksum(header, body)?
    } else {
        &body[4..]
    };
    Ok((flags, sections))
}

/// Checks the trailing CRC-32C (over header and body, minus the checksum) and returns the sections.
fn verify_checksum<'a>(header: &Header, body: &'a [u8]) -> Result<&'a [u8], WireError> {
    let covered_len = body
        .len()
        .checked_sub(CHECKSUM_LEN)
        .filter(|&len| len >= 4)
        .ok_or(WireError::ChecksumMissing)?;
    let (covered, trailer) = body.split_at(covered_len);
    let received = trailer
        .first_chunk::<4>()
        .map(|b| u32::from_le_bytes(*b))
        .ok_or(WireError::ChecksumMissing)?;
    let computed = crc32c::crc32c_append(crc32c::crc32c(&header.to_bytes()), covered);
    if computed != received {
        return Err(WireError::ChecksumMismatch { received, computed });
    }
    Ok(&covered[4..])
}

/// Reads every section and returns the body with the sequences merged in.
fn decode_sections(sections: &[u8]) -> Result<Document, WireError> {
    let mut reader = ByteReader::new(sections);
    let mut body: Option<Document> = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    let mut identifiers = HashSet::new();
    while !reader.is_empty() {
        match reader.read_u8("section kind")? {
            SECTION_BODY if body.is_some() => return Err(WireError::MultipleBodies),
            SECTION_BODY => body = Some(reader.read_document("OP_MSG body")?),
            SECTION_SEQUENCE => {
                let (identifier, documents) = read_sequence(&mut reader)?;
                if !identifiers.insert(identifier.clone()) {
                    return Err(WireError::DuplicateSequence(identifier));
                }
                sequences.push((identifier, documents));
            }
            kind => return Err(WireError::UnknownSectionKind(kind)),
        }
    }
    let mut body = body.ok_or(WireError::MissingBody)?;
    for (identifier, documents) in sequences {
        if body.contains_key(&identifier) {
            return Err(WireError::SequenceConflictsWithBody(identifier));
        }
        body.insert(identifier, Bson::Array(documents));
    }
    Ok(body)
}

/// Reads one kind-1 section after its kind byte: size (counting itself), identifier, documents.
fn read_sequence(reader: &mut ByteReader<'_>) -> Result<(String, Vec<Bson>), WireError> {
    let size = reader.read_i32("document sequence size")?;
    let content_len = usize::try_from(size)
        .ok()
        .and_then(|size| size.checked_sub(4))
        .ok_or_else(|| WireError::Malformed(format!("document sequence size {size} is below 4")))?;
    let mut content = ByteReader::new(reader.take(content_len, "document sequence")?);
    let identifier = content.read_cstring("document sequence identifier")?.to_owned();
    let mut documents = Vec::new();
    while !content.is_empty() {
        documents.push(Bson::Document(content.read_document("document sequence entry")?));
    }
    Ok((identifier, documents))
}

/// Encodes an OP_MSG with one kind-0 section. If `flags` has checksumPresent, the CRC-32C is appended.
/// Fails if the body cannot be serialised or exceeds [`MAX_COMMAND_DOCUMENT_SIZE`].
pub fn try_encode_msg(request_id: i32, response_to: i32, flags: u32, body: &Document) -> Result<Vec<u8>, WireError> {
    let document = body.to_vec().map_err(|err| WireError::ReplyEncoding(err.to_string()))?;
    frame_msg(request_id, response_to, flags, &document)
}

/// Frames an encoded body document as an OP_MSG with one kind-0 section (see [`try_encode_msg`]).
fn frame_msg(request_id: i32, response_to: i32, flags: u32, document: &[u8]) -> Result<Vec<u8>, WireError> {
    if document.len() > MAX_COMMAND_DOCUMENT_SIZE {
        return Err(WireError::DocumentTooLarge {
            size: document.len(),
            max: MAX_COMMAND_DOCUMENT_SIZE,
        });
    }
    let with_checksum = flags & msg_flags::CHECKSUM_PRESENT != 0;
    let length = HEADER_LEN + 4 + 1 + document.len() + if with_checksum { CHECKSUM_LEN } else { 0 };
    let message_length = i32::try_from(length).map_err(|_| WireError::ReplyEncoding("message too long".into()))?;
    let header = Header {
        message_length,
        request_id,
        response_to,
        op_code: op_code::OP_MSG,
    };
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(SECTION_BODY);
    out.extend_from_slice(document);
    if with_checksum {
        out.extend_from_slice(&crc32c::crc32c(&out).to_le_bytes());
    }
    Ok(out)
}

/// Encodes an OP_MSG reply: flags 0, one kind-0 section, no checksum.
///
/// Never fails: a reply that cannot be encoded (too large, or not serialisable) is replaced by the error reply
/// `{ok: 0, errmsg, code, codeName}` describing why (10334 BSONObjectTooLarge, or 1 InternalError), and the
/// failure is logged. The command layer should keep batches under [`super::MAX_BSON_OBJECT_SIZE`].
pub fn encode_msg_reply(request_id: i32, response_to: i32, body: &Document) -> Vec<u8> {
    encode_msg_reply_bson(request_id, response_to, body.to_vec().map_err(|err| err.to_string()))
}

/// [`encode_msg_reply`] of a body already encoded (or the reason it could not be).
pub fn encode_msg_reply_bson(request_id: i32, response_to: i32, body: Result<Vec<u8>, String>) -> Vec<u8> {
    body.map_err(WireError::ReplyEncoding)
        .and_then(|document| frame_msg(request_id, response_to, 0, &document))
        .unwrap_or_else(|err| {
            tracing::error!(%err, request_id, response_to, "reply could not be encoded; sending an error instead");
            let (code, code_name) = err.reply_code().unwrap_or((1, "InternalError"));
            let fallback = doc! { "ok": 0.0, "errmsg": err.to_string(), "code": code, "codeName": code_name };
            // A small document of strings and numbers always encodes; an empty Vec would mean "send nothing".
            try_encode_msg(request_id, response_to, 0, &fallback).unwrap_or_default()
        })
}

#[cfg(test)]
mod tests;

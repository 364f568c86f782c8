//! Test helpers: hand-built OP_MSG messages with arbitrary sections, and splitting a message into its parts.

use bson::Document;

use super::{HEADER_LEN, Header, op_code};

/// One OP_MSG section to put on the wire as it is, valid or not.
pub(super) enum Section {
    /// Kind 0 with this document.
    Body(Document),
    /// Kind 1 with this identifier and these documents.
    Sequence(&'static str, Vec<Document>),
    /// A kind byte followed by arbitrary bytes.
    Raw(u8, Vec<u8>),
}

fn document_bytes(doc: &Document) -> Vec<u8> {
    doc.to_vec().unwrap_or_default()
}

fn section_bytes(section: &Section) -> Vec<u8> {
    match section {
        Section::Body(doc) => [vec![0], document_bytes(doc)].concat(),
        Section::Sequence(identifier, docs) => {
            let mut content = identifier.as_bytes().to_vec();
            content.push(0);
            docs.iter().for_each(|doc| content.extend(document_bytes(doc)));
            let size = i32::try_from(content.len() + 4).unwrap_or(i32::MAX);
            [vec![1], size.to_le_bytes().to_vec(), content].concat()
        }
        Section::Raw(kind, bytes) => [vec![*kind], bytes.clone()].concat(),
    }
}

/// A whole OP_MSG message; with `checksum`, a correct CRC-32C is appended (set the flag bit yourself).
pub(super) fn build_msg(request_id: i32, flags: u32, sections: &[Section], checksum: bool) -> Vec<u8> {
    let mut body = flags.to_le_bytes().to_vec();
    sections.iter().for_each(|section| body.extend(section_bytes(section)));
    let length = HEADER_LEN + body.len() + if checksum { 4 } else { 0 };
    let message_length = i32::try_from(length).unwrap_or(i32::MAX);
    let header = Header {
        message_length,
        request_id,
        response_to: 0,
        op_code: op_code::OP_MSG,
    };
    let mut out = [header.to_bytes().to_vec(), body].concat();
    if checksum {
        out.extend(crc32c::crc32c(&out).to_le_bytes());
    }
    out
}

/// Splits a message into its parsed header and its body; a message shorter than a header gets a zero header.
pub(super) fn split(bytes: &[u8]) -> (Header, &[u8]) {
    let header_bytes = bytes.first_chunk::<HEADER_LEN>().copied().unwrap_or_default();
    (
        Header::parse(&header_bytes),
        bytes.get(HEADER_LEN..).unwrap_or_default(),
    )
}

/// Rewrites the header's messageLength to match the bytes (after a test edited the body).
pub(super) fn fix_length(bytes: &mut [u8]) {
    let length = i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_le_bytes();
    if let Some(prefix) = bytes.first_chunk_mut::<4>() {
        *prefix = length;
    }
}

//! A command's reply on its way to the wire: a document and, for an oplog batch served as stored, the
//! entries' bytes.
//!
//! Members tailing this one's oplog read every entry once per follower. Decoding each stored entry into a
//! [`Document`] only to encode it again for the reply cost a tenth of a busy primary's CPU, so a qualifying
//! `getMore` ([`super::read`]) collects the entries' stored bytes into a [`StoredBatch`] and the reply's
//! `cursor` document carries everything else. [`Reply::to_bson`] splices the batch in as `cursor.nextBatch`
//! when the reply is encoded; [`Reply::into_document`] decodes it for callers that read replies as
//! documents (the in-process simulation, OP_QUERY replies). Either way the client sees one reply document.

use std::ops::{Deref, DerefMut};

use bson::{Bson, Document, RawDocument};

use crate::error::{Error, Result};

/// BSON element type of an embedded document and of an array.
const EMBEDDED_DOCUMENT: u8 = 0x03;
const ARRAY: u8 = 0x04;

/// A command's reply: its document, and the stored entries its cursor batch holds, if it was served so.
#[derive(Debug, Default)]
pub struct Reply {
    body: Document,
    batch: Option<StoredBatch>,
}

impl Reply {
    /// A reply whose `cursor` document (in `body`) gets `batch` as its `nextBatch`.
    pub fn with_stored_batch(body: Document, batch: StoredBatch) -> Reply {
        Reply {
            body,
            batch: Some(batch),
        }
    }

    /// The reply as one document: a stored batch is decoded into `cursor.nextBatch`.
    pub fn into_document(self) -> Document {
        let Reply { mut body, batch } = self;
        let Some(batch) = batch else { return body };
        match batch.documents() {
            Ok(entries) => {
                if let Ok(cursor) = body.get_document_mut("cursor") {
                    cursor.insert("nextBatch", entries);
                }
                body
            }
            Err(err) => err.to_reply(),
        }
    }

    /// The reply's BSON bytes. A stored batch is spliced in as `cursor.nextBatch` without decoding it; the
    /// `cursor` element comes first, as in mongod's cursor replies.
    pub fn to_bson(&self) -> std::result::Result<Vec<u8>, String> {
        let Some(batch) = &self.batch else {
            return self.body.to_vec().map_err(|e| e.to_string());
        };
        let cursor = self.body.get_document("cursor").map_err(|e| e.to_string())?;
        let cursor = cursor.to_vec().map_err(|e| e.to_string())?;
        let rest: Document = self
            .body
            .iter()
            .filter(|(key, _)| key.as_str() != "cursor")
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let rest = rest.to_vec().map_err(|e| e.to_string())?;
        Ok(splice_batch(&cursor, &batch.elements, &rest))
    }
}

/// The reply document `{cursor: {<cursor's elements>, nextBatch: [<batch>]}, <rest's elements>}`, written in
/// one pass: the batch, the largest part, is copied once.
fn splice_batch(cursor: &[u8], batch: &[u8], rest: &[u8]) -> Vec<u8> {
    const CURSOR_KEY: &[u8] = b"cursor\0";
    const NEXT_BATCH_KEY: &[u8] = b"nextBatch\0";
    let cursor_elements = &cursor[4..cursor.len() - 1];
    let rest_elements = &rest[4..rest.len() - 1];
    let array_len = 4 + batch.len() + 1;
    let cursor_len = 4 + cursor_elements.len() + 1 + NEXT_BATCH_KEY.len() + array_len + 1;
    let total = 4 + 1 + CURSOR_KEY.len() + cursor_len + rest_elements.len() + 1;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&bson_len(total));
    out.push(EMBEDDED_DOCUMENT);
    out.extend_from_slice(CURSOR_KEY);
    out.extend_from_slice(&bson_len(cursor_len));
    out.extend_from_slice(cursor_elements);
    out.push(ARRAY);
    out.extend_from_slice(NEXT_BATCH_KEY);
    out.extend_from_slice(&bson_len(array_len));
    out.extend_from_slice(batch);
    out.push(0);
    out.push(0);
    out.extend_from_slice(rest_elements);
    out.push(0);
    debug_assert_eq!(out.len(), total);
    out
}

/// A BSON length prefix. It saturates rather than wraps; a reply that large never leaves anyway, as the wire
/// layer refuses any reply over its maximum document size (`frame_msg`).
fn bson_len(len: usize) -> [u8; 4] {
    i32::try_from(len).unwrap_or(i32::MAX).to_le_bytes()
}

impl From<Document> for Reply {
    fn from(body: Document) -> Reply {
        Reply { body, batch: None }
    }
}

impl Deref for Reply {
    type Target = Document;

    fn deref(&self) -> &Document {
        &self.body
    }
}

impl DerefMut for Reply {
    fn deref_mut(&mut self) -> &mut Document {
        &mut self.body
    }
}

/// Oplog entries as stored, in order, for a cursor batch: each entry's bytes, checked to be one whole BSON
/// document, laid end to end.
#[derive(Debug, Default)]
pub struct StoredBatch {
    /// The array's elements: `0x03`, the index as a C string, the document.
    elements: Vec<u8>,
    len: usize,
    /// The newest entry's oplog key (its timestamp).
    last_key: Option<u64>,
}

impl StoredBatch {
    /// Appends the stored entry `bytes` under oplog key `key`; refuses bytes that are not one whole document.
    pub fn push(&mut self, key: u64, bytes: &[u8]) -> Result<()> {
        RawDocument::from_bytes(bytes)
            .map_err(|e| Error::internal(format!("stored oplog entry {key} is not a BSON document: {e}")))?;
        self.elements.push(EMBEDDED_DOCUMENT);
        self.elements.extend_from_slice(self.len.to_string().as_bytes());
        self.elements.push(0);
        self.elements.extend_from_slice(bytes);
        self.len += 1;
        self.last_key = Some(key);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the entries take in the reply.
    pub fn size(&self) -> usize {
        self.elements.len()
    }

    /// The newest entry's oplog key.
    pub fn last_key(&self) -> Option<u64> {
        self.last_key
    }

    /// The batch as an encoded BSON array.
    fn array(&self) -> Vec<u8> {
        let mut array = empty_document();
        append_element_bytes(&mut array, &self.elements);
        array
    }

    /// The entries, decoded.
    pub fn documents(&self) -> Result<Vec<Bson>> {
        let array = self.array();
        let raw = RawDocument::from_bytes(&array).map_err(|e| Error::internal(format!("stored batch: {e}")))?;
        let decoded = crate::bsonx::to_document(raw).map_err(|e| Error::internal(format!("stored batch: {e}")))?;
        Ok(decoded.into_iter().map(|(_, entry)| entry).collect())
    }
}

/// An encoded document with no elements.
fn empty_document() -> Vec<u8> {
    vec![5, 0, 0, 0, 0]
}

/// Appends encoded elements to the encoded document `doc` and fixes its length.
fn append_element_bytes(doc: &mut Vec<u8>, elements: &[u8]) {
    doc.pop();
    doc.extend_from_slice(elements);
    doc.push(0);
    let len = bson_len(doc.len());
    doc[..4].copy_from_slice(&len);
}

#[cfg(test)]
mod tests {
    use bson::{Timestamp, doc};

    use super::*;

    fn entry(i: u32) -> Document {
        doc! {"ts": Timestamp { time: 1, increment: i }, "op": "i", "ns": "db.c", "o": {"_id": i, "x": "y"}}
    }

    fn stored(entries: &[Document]) -> StoredBatch {
        let mut batch = StoredBatch::default();
        for (i, e) in entries.iter().enumerate() {
            batch.push(i as u64 + 1, &e.to_vec().unwrap()).unwrap();
        }
        batch
    }

    #[test]
    fn a_stored_batch_encodes_as_the_decoded_reply_would() {
        let entries: Vec<Document> = (1..=3).map(entry).collect();
        let body = doc! {"cursor": {"id": 7_i64, "ns": "local.oplog.rs"}, "ok": 1.0, "$replData": {"term": 2_i64}};
        let reply = Reply::with_stored_batch(body.clone(), stored(&entries));
        let bytes = reply.to_bson().unwrap();
        let got = Document::from_reader(&mut bytes.as_slice()).unwrap();
        let want = doc! {
            "cursor": {"id": 7_i64, "ns": "local.oplog.rs", "nextBatch": entries.clone()},
            "ok": 1.0, "$replData": {"term": 2_i64},
        };
        assert_eq!(got, want);
        assert_eq!(reply.into_document(), want);
    }

    #[test]
    fn a_long_stored_batch_with_only_a_cursor_encodes_whole() {
        let entries: Vec<Document> = (1..=120).map(entry).collect();
        let reply = Reply::with_stored_batch(doc! {"cursor": {"id": 0_i64}}, stored(&entries));
        let bytes = reply.to_bson().unwrap();
        assert_eq!(i32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len());
        let got = Document::from_reader(&mut bytes.as_slice()).unwrap();
        assert_eq!(got, doc! {"cursor": {"id": 0_i64, "nextBatch": entries}});
    }

    #[test]
    fn an_empty_stored_batch_is_an_empty_array() {
        let reply = Reply::with_stored_batch(doc! {"cursor": {"id": 0_i64}}, StoredBatch::default());
        let got = Document::from_reader(&mut reply.to_bson().unwrap().as_slice()).unwrap();
        assert_eq!(got, doc! {"cursor": {"id": 0_i64, "nextBatch": []}});
    }

    #[test]
    fn bytes_that_are_not_a_document_are_refused() {
        let mut batch = StoredBatch::default();
        assert!(batch.push(1, &[9, 0, 0, 0, 0]).is_err());
        assert!(batch.push(1, &[1, 2]).is_err());
        assert!(batch.is_empty());
    }

    #[test]
    fn a_reply_without_a_batch_is_its_document() {
        let body = doc! {"ok": 1.0, "n": 3};
        let reply = Reply::from(body.clone());
        assert_eq!(reply.to_bson().unwrap(), body.to_vec().unwrap());
        assert_eq!(reply.into_document(), body);
    }
}

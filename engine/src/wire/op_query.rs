//! OP_QUERY (opcode 2004), decoded only so that old clients (the Node driver, mongosh) can send their first
//! `ismaster`; the command layer answers anything else with an OP_REPLY QueryFailure.

use bson::{Bson, Document, doc};

use super::reader::ByteReader;
use super::{HEADER_LEN, Header, WireError, op_code, query_flags};

/// A decoded OP_QUERY.
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    /// The raw flag bits (see [`query_flags`]).
    pub flags: u32,
    /// `db.collection`; commands go to `db.$cmd`.
    pub full_collection_name: String,
    pub number_to_skip: i32,
    pub number_to_return: i32,
    /// The query or command document, already unwrapped from `{$query: …}` / `{query: …}`.
    pub query: Document,
    /// The optional returnFieldsSelector (projection).
    pub return_fields: Option<Document>,
    /// `$readPreference` from the wrapper, if the query was wrapped.
    pub read_preference: Option<Document>,
}

impl OpQuery {
    /// The client allows the query on a secondary (flag bit 2).
    pub fn secondary_ok(&self) -> bool {
        self.flags & query_flags::SECONDARY_OK != 0
    }

    /// Whether this is a command: the namespace is `<db>.$cmd`.
    pub fn is_command(&self) -> bool {
        self.full_collection_name.ends_with(".$cmd")
    }

    /// The database part of the namespace (before the first dot).
    pub fn database(&self) -> &str {
        self.full_collection_name.split('.').next().unwrap_or_default()
    }

    /// The command name: the query's first key.
    pub fn command_name(&self) -> Option<&str> {
        self.query.keys().next().map(String::as_str)
    }

    /// Decodes an OP_QUERY body (the bytes after the header).
    pub fn decode(body: &[u8]) -> Result<OpQuery, WireError> {
        let mut reader = ByteReader::new(body);
        let flags = reader.read_u32("OP_QUERY flags")?;
        let full_collection_name = reader.read_cstring("fullCollectionName")?.to_owned();
        let number_to_skip = reader.read_i32("numberToSkip")?;
        let number_to_return = reader.read_i32("numberToReturn")?;
        let query = reader.read_document("OP_QUERY query")?;
        let return_fields = if reader.is_empty() {
            None
        } else {
            Some(reader.read_document("returnFieldsSelector")?)
        };
        if !reader.is_empty() {
            return Err(WireError::Malformed(format!(
                "{} trailing bytes after OP_QUERY",
                reader.remaining()
            )));
        }
        let (query, read_preference) = unwrap_query(query);
        Ok(OpQuery {
            flags,
            full_collection_name,
            number_to_skip,
            number_to_return,
            query,
            return_fields,
            read_preference,
        })
    }

    /// Encodes this query as a full message (header included); wraps the query in `{$query, $readPreference}`
    /// when a read preference is set. Fails if a document cannot be serialised or the namespace contains NUL.
    pub fn encode(&self, request_id: i32) -> Result<Vec<u8>, WireError> {
        let encoding = |err: bson::error::Error| WireError::ReplyEncoding(err.to_string());
        if self.full_collection_name.contains('\0') {
            return Err(WireError::ReplyEncoding("namespace contains NUL".into()));
        }
        let query = match &self.read_preference {
            Some(pref) => doc! { "$query": self.query.clone(), "$readPreference": pref.clone() },
            None => self.query.clone(),
        };
        let mut payload = Vec::new();
        payload.extend_from_slice(&self.flags.to_le_bytes());
        payload.extend_from_slice(self.full_collection_name.as_bytes());
        payload.push(0);
        payload.extend_from_slice(&self.number_to_skip.to_le_bytes());
        payload.extend_from_slice(&self.number_to_return.to_le_bytes());
        payload.extend_from_slice(&query.to_vec().map_err(encoding)?);
        if let Some(fields) = &self.return_fields {
            payload.extend_from_slice(&fields.to_vec().map_err(encoding)?);
        }
        frame(request_id, 0, op_code::OP_QUERY, &payload)
    }
}

/// Encodes a full OP_QUERY message for `query`; see [`OpQuery::encode`].
pub fn encode_op_query(request_id: i32, query: &OpQuery) -> Result<Vec<u8>, WireError> {
    query.encode(request_id)
}

/// Prefixes `payload` with a header.
pub(super) fn frame(request_id: i32, response_to: i32, op_code: i32, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    let length = HEADER_LEN + payload.len();
    let message_length = i32::try_from(length).map_err(|_| WireError::ReplyEncoding("message too long".into()))?;
    let header = Header {
        message_length,
        request_id,
        response_to,
        op_code,
    };
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Unwraps `{$query: q, $readPreference: p, …}` (or `{query: q, …}`): the wrapper's first key names the real
/// query, which must be a document. Anything else is returned as it is.
fn unwrap_query(mut query: Document) -> (Document, Option<Document>) {
    let wrapper_key = match query.keys().next().map(String::as_str) {
        Some(key @ ("$query" | "query")) if matches!(query.get(key), Some(Bson::Document(_))) => key.to_owned(),
        _ => return (query, None),
    };
    let read_preference = match query.remove("$readPreference") {
        Some(Bson::Document(pref)) => Some(pref),
        _ => None,
    };
    match query.remove(&wrapper_key) {
        Some(Bson::Document(inner)) => (inner, read_preference),
        _ => (query, read_preference),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_message(bytes: &[u8]) -> Result<OpQuery, WireError> {
        OpQuery::decode(bytes.get(HEADER_LEN..).unwrap_or_default())
    }

    fn handshake() -> OpQuery {
        OpQuery {
            flags: query_flags::SECONDARY_OK,
            full_collection_name: "admin.$cmd".into(),
            number_to_skip: 0,
            number_to_return: -1,
            query: doc! { "ismaster": 1, "helloOk": true, "client": { "driver": { "name": "nodejs" } } },
            return_fields: None,
            read_preference: None,
        }
    }

    #[test]
    fn an_unwrapped_handshake_round_trips() {
        let query = handshake();
        let bytes = query.encode(5).unwrap_or_default();
        let decoded = decode_message(&bytes);
        assert_eq!(decoded.as_ref().ok(), Some(&query));
        let decoded = decoded.unwrap_or_else(|_| handshake());
        assert!(decoded.secondary_ok());
        assert!(decoded.is_command());
        assert_eq!(decoded.database(), "admin");
        assert_eq!(decoded.command_name(), Some("ismaster"));
    }

    #[test]
    fn a_dollar_query_wrapper_is_unwrapped_and_keeps_the_read_preference() {
        let mut query = handshake();
        query.read_preference = Some(doc! { "mode": "primaryPreferred" });
        query.return_fields = Some(doc! { "x": 1 });
        query.flags = 0;
        let decoded = decode_message(&query.encode(1).unwrap_or_default());
        assert_eq!(decoded.as_ref().ok(), Some(&query));
        assert!(!decoded.is_ok_and(|q| q.secondary_ok()));
    }

    #[test]
    fn a_plain_query_wrapper_is_unwrapped() {
        let mut query = handshake();
        query.query = doc! { "query": { "isMaster": 1 }, "orderby": { "a": 1 } };
        let decoded = decode_message(&query.encode(1).unwrap_or_default());
        assert_eq!(decoded.ok().map(|q| q.query), Some(doc! { "isMaster": 1 }));
    }

    #[test]
    fn a_query_field_that_is_not_first_or_not_a_document_is_left_alone() {
        for document in [doc! { "find": "c", "query": { "a": 1 } }, doc! { "$query": 5 }] {
            let mut query = handshake();
            query.query = document.clone();
            let decoded = decode_message(&query.encode(1).unwrap_or_default());
            assert_eq!(decoded.ok().map(|q| q.query), Some(document));
        }
    }

    #[test]
    fn truncated_or_trailing_bytes_are_answerable_errors() {
        let bytes = handshake().encode(1).unwrap_or_default();
        let body = &bytes[HEADER_LEN..];
        for cut in [0, 3, 6, 15, 19, body.len() - 1] {
            let err = OpQuery::decode(&body[..cut]).err();
            assert!(
                err.as_ref().is_some_and(|e| e.reply_code().is_some()),
                "cut {cut}: {err:?}"
            );
        }
        let mut trailing = body.to_vec();
        trailing.extend_from_slice(&[5, 0, 0, 0, 0, 1]);
        let err = OpQuery::decode(&trailing).err();
        assert!(matches!(err, Some(WireError::Malformed(_))), "{err:?}");
    }

    #[test]
    fn a_namespace_with_nul_cannot_be_encoded() {
        let mut query = handshake();
        query.full_collection_name = "a\0b".into();
        assert!(query.encode(1).is_err());
    }
}

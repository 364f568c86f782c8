//! Decoding a client request: dispatch on the opcode to the OP_MSG or OP_QUERY decoder.

use bson::Bson;

use super::{Header, OpMsg, OpQuery, WireError, op_code};

/// A decoded client request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Every modern command.
    Msg(OpMsg),
    /// A legacy handshake from an old client (boxed: it is rare and much larger than an OpMsg).
    Query(Box<OpQuery>),
}

/// Decodes one request body (the bytes after the 16-byte header).
///
/// `body.len()` must equal `header.message_length - 16` (what [`super::read_frame`] returns). An OP_MSG
/// request must name its database in a string `$db`. See the `wire` module docs for which errors are fatal.
pub fn decode_request(header: &Header, body: &[u8]) -> Result<Request, WireError> {
    let declared = usize::try_from(header.message_length)
        .ok()
        .and_then(|length| length.checked_sub(super::HEADER_LEN))
        .unwrap_or(usize::MAX);
    if declared != body.len() {
        return Err(WireError::BodyLengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    match header.op_code {
        op_code::OP_MSG => {
            let msg = OpMsg::decode(header, body)?;
            match msg.body.get("$db") {
                Some(Bson::String(_)) => Ok(Request::Msg(msg)),
                Some(_) => Err(WireError::DatabaseNotString),
                None => Err(WireError::MissingDatabase),
            }
        }
        op_code::OP_QUERY => Ok(Request::Query(Box::new(OpQuery::decode(body)?))),
        other => Err(WireError::UnsupportedOpCode(other)),
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;
    use crate::wire::test_support::split;

    #[test]
    fn an_op_query_is_dispatched_to_the_legacy_decoder() {
        let query = OpQuery {
            flags: 0,
            full_collection_name: "admin.$cmd".into(),
            number_to_skip: 0,
            number_to_return: 1,
            query: doc! { "isMaster": 1 },
            return_fields: None,
            read_preference: Some(doc! { "mode": "secondaryPreferred" }),
        };
        let bytes = query.encode(4).unwrap_or_default();
        let (header, body) = split(&bytes);
        assert_eq!(header.op_code, op_code::OP_QUERY);
        assert_eq!(
            decode_request(&header, body).ok(),
            Some(Request::Query(Box::new(query)))
        );
    }

    #[test]
    fn a_negative_message_length_is_a_mismatch_not_a_panic() {
        let header = Header {
            message_length: -20,
            request_id: 1,
            response_to: 0,
            op_code: op_code::OP_MSG,
        };
        let err = decode_request(&header, &[]).err();
        assert!(matches!(err, Some(WireError::BodyLengthMismatch { .. })), "{err:?}");
    }
}

//! Resume tokens: `{_data: "<hex>"}`, opaque to clients but ordered as strings. The hex spells a version
//! byte (`82`), the oplog timestamp the token stands for (seconds and increment, big-endian) and a kind: an
//! event, the invalidate that follows the event at that timestamp, or a high-water mark ("everything through
//! this timestamp was seen"), in that order, so resuming from any token means "every event after it". Every member's oplog has the same timestamps for the same majority-committed
//! entries, so a token taken on one member resumes on any other (the failover case).

use bson::{Bson, Document, Timestamp, doc};

use crate::error::{Error, Result};
use crate::storage::{ts_from_u64, ts_to_u64};

const VERSION: &str = "82";

/// mongod's code for a resume token it cannot read.
const INVALID_RESUME_TOKEN: (i32, &str) = (260, "InvalidResumeToken");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenKind {
    /// The event of the oplog entry at the timestamp.
    Event = 1,
    /// The invalidate event that follows the event at the timestamp.
    Invalidate = 2,
    /// Everything at or before the timestamp was scanned (a post-batch resume token).
    HighWater = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResumeToken {
    /// The oplog key (`ts_to_u64`) of the entry.
    pub key: u64,
    pub kind: TokenKind,
}

impl ResumeToken {
    pub fn new(ts: Timestamp, kind: TokenKind) -> ResumeToken {
        ResumeToken {
            key: ts_to_u64(ts),
            kind,
        }
    }

    pub fn ts(&self) -> Timestamp {
        ts_from_u64(self.key)
    }

    /// The `_id` of an event, or a `postBatchResumeToken`.
    pub fn to_document(self) -> Document {
        doc! {"_data": format!("{VERSION}{:016X}{:02X}", self.key, self.kind as u8)}
    }

    /// Reads a token a client sent back (`resumeAfter`, `startAfter`).
    pub fn parse(value: &Bson) -> Result<ResumeToken> {
        let invalid = || Error::new(INVALID_RESUME_TOKEN, format!("invalid resume token: {value}"));
        let data = value
            .as_document()
            .and_then(|d| d.get_str("_data").ok())
            .ok_or_else(|| Error::type_mismatch("resume token must be a document with a string '_data' field"))?;
        let hex = data.strip_prefix(VERSION).ok_or_else(invalid)?;
        if hex.len() != 18 || !hex.is_ascii() {
            return Err(invalid());
        }
        let key = u64::from_str_radix(&hex[..16], 16).map_err(|_| invalid())?;
        let kind = match u8::from_str_radix(&hex[16..], 16).map_err(|_| invalid())? {
            1 => TokenKind::Event,
            2 => TokenKind::Invalidate,
            3 => TokenKind::HighWater,
            _ => return Err(invalid()),
        };
        Ok(ResumeToken { key, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_order_as_strings() {
        let tokens = [
            ResumeToken::new(Timestamp { time: 5, increment: 9 }, TokenKind::Event),
            ResumeToken::new(Timestamp { time: 5, increment: 9 }, TokenKind::Invalidate),
            ResumeToken::new(Timestamp { time: 5, increment: 9 }, TokenKind::HighWater),
            ResumeToken::new(Timestamp { time: 6, increment: 0 }, TokenKind::Event),
            ResumeToken::new(
                Timestamp {
                    time: 300,
                    increment: 1,
                },
                TokenKind::Event,
            ),
        ];
        let mut previous: Option<String> = None;
        for token in tokens {
            let doc = token.to_document();
            assert_eq!(ResumeToken::parse(&Bson::Document(doc.clone())).unwrap(), token);
            let data = doc.get_str("_data").unwrap().to_string();
            if let Some(previous) = previous {
                assert!(previous < data, "{previous} then {data}");
            }
            previous = Some(data);
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [doc! {"_data": "zz"}, doc! {"_data": "8200"}, doc! {"x": 1}] {
            assert!(ResumeToken::parse(&Bson::Document(bad)).is_err());
        }
        assert!(ResumeToken::parse(&Bson::Int32(1)).is_err());
    }
}

//! `OpTime`: the position of an oplog entry, `{ts: Timestamp, t: term}`, ordered by term first and then by
//! timestamp, exactly as MongoDB compares them.

use std::cmp::Ordering;
use std::fmt;

use bson::{Bson, Document, Timestamp, doc};

use super::error::ReplError;

/// The term MongoDB uses for "no term yet" (`OpTime::kUninitializedTerm`).
pub const UNINITIALIZED_TERM: i64 = -1;

/// The position of an oplog entry: the primary's timestamp and the term it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpTime {
    /// The oplog timestamp (`ts`), strictly increasing on one primary.
    pub ts: Timestamp,
    /// The election term (`t`) of the primary that wrote the entry.
    pub term: i64,
}

impl OpTime {
    /// Builds an optime from a timestamp's seconds and increment and a term.
    pub fn new(secs: u32, increment: u32, term: i64) -> Self {
        Self {
            ts: Timestamp { time: secs, increment },
            term,
        }
    }

    /// The null optime, `{ts: Timestamp(0, 0), t: -1}`, older than every real optime.
    pub fn null() -> Self {
        Self::new(0, 0, UNINITIALIZED_TERM)
    }

    /// Whether this is the null optime (no entry at all).
    pub fn is_null(&self) -> bool {
        self.ts == Timestamp { time: 0, increment: 0 }
    }

    /// The BSON form, `{ts: Timestamp, t: Int64}`.
    pub fn to_document(&self) -> Document {
        doc! { "ts": self.ts, "t": self.term }
    }

    /// Reads `{ts, t}`; `t` may be any integral number (drivers and shells send int32, int64 or double).
    pub fn from_document(document: &Document) -> Result<Self, ReplError> {
        let ts = document
            .get_timestamp("ts")
            .map_err(|_| ReplError::failed_to_parse("optime field 'ts' must be a Timestamp"))?;
        let term = match document.get("t") {
            Some(Bson::Int64(term)) => *term,
            Some(Bson::Int32(term)) => i64::from(*term),
            Some(Bson::Double(term)) if term.fract() == 0.0 && term.abs() < 9.0e15 => *term as i64,
            _ => return Err(ReplError::failed_to_parse("optime field 't' must be an integer")),
        };
        Ok(Self { ts, term })
    }

    /// Reads an optime from a BSON value that must be a document.
    pub fn from_bson(value: &Bson) -> Result<Self, ReplError> {
        match value {
            Bson::Document(document) => Self::from_document(document),
            _ => Err(ReplError::failed_to_parse("optime must be a document {ts, t}")),
        }
    }
}

impl Default for OpTime {
    fn default() -> Self {
        Self::null()
    }
}

impl Ord for OpTime {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.term, self.ts).cmp(&(other.term, other.ts))
    }
}

impl PartialOrd for OpTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<OpTime> for Bson {
    fn from(optime: OpTime) -> Self {
        Bson::Document(optime.to_document())
    }
}

impl fmt::Display for OpTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{{ ts: Timestamp({}, {}), t: {} }}",
            self.ts.time, self.ts.increment, self.term
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn term_dominates_timestamp() {
        assert!(OpTime::new(100, 0, 1) < OpTime::new(1, 0, 2));
        assert!(OpTime::new(5, 1, 3) < OpTime::new(5, 2, 3));
        assert!(OpTime::new(4, 9, 3) < OpTime::new(5, 0, 3));
    }

    #[test]
    fn null_is_older_than_everything() {
        assert!(OpTime::null().is_null());
        assert!(OpTime::null() < OpTime::new(0, 1, 0));
        assert!(OpTime::null() < OpTime::new(1, 1, 0));
        assert!(!OpTime::new(1, 1, 0).is_null());
        assert_eq!(OpTime::default(), OpTime::null());
    }

    #[test]
    fn document_round_trip() {
        let optime = OpTime::new(1_700_000_000, 7, 4);
        let document = optime.to_document();
        assert_eq!(document.get_i64("t").ok(), Some(4));
        assert_eq!(OpTime::from_document(&document), Ok(optime));
        assert_eq!(OpTime::from_bson(&Bson::from(optime)), Ok(optime));
    }

    #[test]
    fn accepts_int32_and_integral_double_terms() {
        let ts = Timestamp { time: 3, increment: 1 };
        assert_eq!(
            OpTime::from_document(&doc! {"ts": ts, "t": 2_i32}),
            Ok(OpTime::new(3, 1, 2))
        );
        assert_eq!(
            OpTime::from_document(&doc! {"ts": ts, "t": 2.0}),
            Ok(OpTime::new(3, 1, 2))
        );
    }

    #[test]
    fn rejects_malformed_optimes() {
        let ts = Timestamp { time: 3, increment: 1 };
        assert_eq!(OpTime::from_document(&doc! {"t": 1_i64}).map_err(|e| e.code), Err(9));
        assert_eq!(
            OpTime::from_document(&doc! {"ts": 5, "t": 1_i64}).map_err(|e| e.code),
            Err(9)
        );
        assert_eq!(
            OpTime::from_document(&doc! {"ts": ts, "t": 1.5}).map_err(|e| e.code),
            Err(9)
        );
        assert_eq!(OpTime::from_document(&doc! {"ts": ts}).map_err(|e| e.code), Err(9));
        assert!(OpTime::from_bson(&Bson::Int32(1)).is_err());
    }

    proptest! {
        #[test]
        fn order_matches_term_then_ts(a in any::<(u32, u32, i64)>(), b in any::<(u32, u32, i64)>()) {
            let left = OpTime::new(a.0, a.1, a.2);
            let right = OpTime::new(b.0, b.1, b.2);
            prop_assert_eq!(left.cmp(&right), (a.2, a.0, a.1).cmp(&(b.2, b.0, b.1)));
            prop_assert_eq!(OpTime::from_document(&left.to_document()), Ok(left));
        }
    }
}

//! A bounds-checked cursor over a message body, and the one place BSON documents are decoded.
//!
//! Every read checks the bytes that remain first, so a lying length can only produce an error. Documents are
//! checked for size and nesting depth before they are converted, because the conversion recurses.

use bson::{Document, RawDocument};

use super::{MAX_COMMAND_DOCUMENT_SIZE, MAX_NESTING_DEPTH, WireError};

/// The smallest BSON document: a length and the terminating NUL.
const MIN_DOCUMENT_LEN: usize = 5;

/// A cursor over borrowed bytes whose reads fail instead of running past the end.
pub(super) struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Takes the next `len` bytes; `what` names them in the error.
    pub(super) fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], WireError> {
        if len > self.bytes.len() {
            return Err(WireError::Malformed(format!(
                "{what} needs {len} bytes but only {} remain",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    pub(super) fn read_u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    pub(super) fn read_i32(&mut self, what: &str) -> Result<i32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(super) fn read_u32(&mut self, what: &str) -> Result<u32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Reads a NUL-terminated UTF-8 string (the NUL is consumed, not returned).
    pub(super) fn read_cstring(&mut self, what: &str) -> Result<&'a str, WireError> {
        let Some(nul) = self.bytes.iter().position(|&b| b == 0) else {
            return Err(WireError::Malformed(format!("{what} is not NUL-terminated")));
        };
        let text = self.take(nul + 1, what)?;
        std::str::from_utf8(&text[..nul]).map_err(|_| WireError::Malformed(format!("{what} is not valid UTF-8")))
    }

    /// Reads one BSON document whose own length prefix says how long it is.
    pub(super) fn read_document(&mut self, what: &str) -> Result<Document, WireError> {
        let raw = self.read_raw_document(what)?;
        crate::bsonx::to_document(raw).map_err(invalid_bson)
    }

    /// [`ByteReader::read_document`], checked as it would be but not converted.
    pub(super) fn read_raw_document(&mut self, what: &str) -> Result<&'a RawDocument, WireError> {
        let Some(prefix) = self.bytes.first_chunk::<4>() else {
            return Err(WireError::Malformed(format!("{what} is truncated before its length")));
        };
        let declared = i32::from_le_bytes(*prefix);
        let len = usize::try_from(declared)
            .ok()
            .filter(|&len| len >= MIN_DOCUMENT_LEN)
            .ok_or_else(|| WireError::InvalidBson(format!("{what} declares an impossible length {declared}")))?;
        if len > MAX_COMMAND_DOCUMENT_SIZE {
            return Err(WireError::DocumentTooLarge {
                size: len,
                max: MAX_COMMAND_DOCUMENT_SIZE,
            });
        }
        if len > self.bytes.len() {
            return Err(WireError::InvalidBson(format!(
                "{what} declares {len} bytes but only {} remain",
                self.bytes.len()
            )));
        }
        let bytes = self.take(len, what)?;
        check_document(bytes)
    }
}

/// Decodes exactly one BSON document occupying all of `bytes`, within the size and depth limits.
#[cfg(test)]
pub(super) fn decode_document(bytes: &[u8]) -> Result<Document, WireError> {
    crate::bsonx::to_document(check_document(bytes)?).map_err(invalid_bson)
}

/// Checks that `bytes` are exactly one well-formed BSON document within the size and depth limits, without
/// converting it.
fn check_document(bytes: &[u8]) -> Result<&RawDocument, WireError> {
    if bytes.len() > MAX_COMMAND_DOCUMENT_SIZE {
        return Err(WireError::DocumentTooLarge {
            size: bytes.len(),
            max: MAX_COMMAND_DOCUMENT_SIZE,
        });
    }
    let raw = RawDocument::from_bytes(bytes).map_err(invalid_bson)?;
    // Iterative, and before any recursive conversion into a `Document`: malformed elements and nesting past
    // the limit are refused without the stack ever depending on the input.
    if !crate::depth::raw_nesting_within(raw, MAX_NESTING_DEPTH).map_err(invalid_bson)? {
        return Err(WireError::NestingTooDeep { max: MAX_NESTING_DEPTH });
    }
    Ok(raw)
}

fn invalid_bson(err: impl std::fmt::Display) -> WireError {
    WireError::InvalidBson(err.to_string())
}

#[cfg(test)]
mod tests {
    use bson::{Bson, doc};

    use super::*;

    fn nested(depth: usize) -> Document {
        let mut doc = doc! { "leaf": 1 };
        for _ in 0..depth {
            doc = doc! { "a": doc };
        }
        doc
    }

    fn nested_arrays(depth: usize) -> Document {
        let mut value = Bson::Int32(1);
        for _ in 0..depth {
            value = Bson::Array(vec![value]);
        }
        doc! { "a": value }
    }

    #[test]
    fn reads_fixed_width_fields_and_cstrings() {
        let mut reader = ByteReader::new(b"\x01\x02\x00\x00\xff\xff\xff\xffab\0\x07");
        assert_eq!(reader.read_i32("x").ok(), Some(0x0201));
        assert_eq!(reader.read_u32("y").ok(), Some(u32::MAX));
        assert_eq!(reader.read_cstring("z").ok(), Some("ab"));
        assert_eq!(reader.read_u8("w").ok(), Some(7));
        assert!(reader.is_empty());
        assert!(matches!(reader.read_u8("v"), Err(WireError::Malformed(_))));
    }

    #[test]
    fn unterminated_or_non_utf8_cstrings_are_malformed() {
        assert!(matches!(
            ByteReader::new(b"abc").read_cstring("id"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            ByteReader::new(b"\xff\0").read_cstring("id"),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn documents_round_trip_and_advance_the_cursor() {
        let doc = doc! { "x": 1, "y": "two" };
        let mut bytes = doc.to_vec().unwrap_or_default();
        bytes.push(9);
        let mut reader = ByteReader::new(&bytes);
        assert_eq!(reader.read_document("d").ok(), Some(doc));
        assert_eq!(reader.remaining(), 1);
    }

    #[test]
    fn a_lying_document_length_is_invalid_bson_not_a_panic() {
        for declared in [-1i32, 0, 4, 1000, i32::MAX] {
            let mut bytes = declared.to_le_bytes().to_vec();
            bytes.extend_from_slice(&[0, 0, 0, 0]);
            let result = ByteReader::new(&bytes).read_document("d");
            assert!(
                matches!(
                    result,
                    Err(WireError::InvalidBson(_) | WireError::DocumentTooLarge { .. })
                ),
                "{declared}: {result:?}"
            );
        }
    }

    #[test]
    fn oversized_documents_are_rejected_before_reading() {
        let declared = i32::try_from(MAX_COMMAND_DOCUMENT_SIZE + 1).unwrap_or(i32::MAX);
        let result = ByteReader::new(&declared.to_le_bytes()).read_document("d");
        assert!(matches!(result, Err(WireError::DocumentTooLarge { .. })), "{result:?}");
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let doc = nested(MAX_NESTING_DEPTH - 1);
        let bytes = doc.to_vec().unwrap_or_default();
        assert_eq!(decode_document(&bytes).ok(), Some(doc));
        let arrays = nested_arrays(MAX_NESTING_DEPTH - 1);
        assert_eq!(decode_document(&arrays.to_vec().unwrap_or_default()).ok(), Some(arrays));
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let bytes = nested(MAX_NESTING_DEPTH + 1).to_vec().unwrap_or_default();
        assert!(matches!(decode_document(&bytes), Err(WireError::NestingTooDeep { .. })));
        let bytes = nested_arrays(MAX_NESTING_DEPTH + 1).to_vec().unwrap_or_default();
        assert!(matches!(decode_document(&bytes), Err(WireError::NestingTooDeep { .. })));
    }

    #[test]
    fn a_nesting_bomb_is_refused_without_recursing_through_it() {
        // 100 000 levels of {"": {...}} built by hand: 7 bytes per level.
        let levels = 100_000usize;
        let mut bytes = Vec::with_capacity(levels * 7 + 5);
        for level in 0..levels {
            let len = i32::try_from((levels - level) * 7 + 5).unwrap_or(i32::MAX);
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&[0x03, 0]);
        }
        bytes.extend_from_slice(&[5, 0, 0, 0, 0]);
        bytes.extend(std::iter::repeat_n(0u8, levels));
        let result = decode_document(&bytes);
        assert!(matches!(result, Err(WireError::NestingTooDeep { .. })), "{result:?}");
    }

    #[test]
    fn malformed_elements_are_invalid_bson() {
        // {"a": string of declared length 100} in a 13-byte document.
        let bytes = b"\x0d\0\0\0\x02a\0\x64\0\0\0\0\0";
        assert!(matches!(decode_document(bytes), Err(WireError::InvalidBson(_))));
    }
}

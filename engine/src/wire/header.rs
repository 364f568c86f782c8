//! The 16-byte message header that starts every wire message, and its length check.

use super::{HEADER_LEN, WireError};

/// The standard message header (all fields little-endian int32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length in bytes, this header included.
    pub message_length: i32,
    /// The sender's identifier for this message.
    pub request_id: i32,
    /// The `request_id` this message answers (0 on requests).
    pub response_to: i32,
    /// What the body is; see [`super::op_code`].
    pub op_code: i32,
}

impl Header {
    /// Reads a header from its 16 bytes. Any bytes form a header; [`Header::body_len`] validates it.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        let field = |at: usize| i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Header {
            message_length: field(0),
            request_id: field(4),
            response_to: field(8),
            op_code: field(12),
        }
    }

    /// The header's wire form.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.message_length.to_le_bytes());
        out[4..8].copy_from_slice(&self.request_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.response_to.to_le_bytes());
        out[12..16].copy_from_slice(&self.op_code.to_le_bytes());
        out
    }

    /// Checks `16 <= message_length <= max_message_size` and returns the body length (`message_length - 16`).
    /// A bad length is fatal: the stream cannot be re-synchronised.
    pub fn body_len(&self, max_message_size: usize) -> Result<usize, WireError> {
        let bad = || WireError::MessageLength {
            length: self.message_length,
            max: max_message_size,
        };
        let length = usize::try_from(self.message_length).map_err(|_| bad())?;
        if length < HEADER_LEN || length > max_message_size {
            return Err(bad());
        }
        Ok(length - HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(message_length: i32) -> Header {
        Header {
            message_length,
            request_id: 7,
            response_to: -3,
            op_code: 2013,
        }
    }

    #[test]
    fn parse_inverts_to_bytes() {
        let h = Header {
            message_length: 0x0102_0304,
            request_id: -1,
            response_to: i32::MIN,
            op_code: 2004,
        };
        assert_eq!(Header::parse(&h.to_bytes()), h);
        assert_eq!(&h.to_bytes()[0..4], &[4, 3, 2, 1], "little-endian");
    }

    #[test]
    fn body_len_accepts_the_bounds() {
        assert_eq!(header(16).body_len(100).ok(), Some(0));
        assert_eq!(header(100).body_len(100).ok(), Some(84));
    }

    #[test]
    fn body_len_rejects_short_long_and_negative_lengths_fatally() {
        for length in [15, 0, -1, i32::MIN, 101, i32::MAX] {
            let err = header(length).body_len(100).err();
            assert!(
                matches!(err, Some(WireError::MessageLength { .. })),
                "length {length}: {err:?}"
            );
            assert_eq!(err.and_then(|e| e.reply_code()), None, "length {length} must close");
        }
    }
}

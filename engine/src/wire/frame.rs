//! Cutting one message out of a byte stream: the only async code in the wire module.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{HEADER_LEN, Header, WireError};

/// The body is read in pieces of at most this many bytes, so a peer that declares a large message but sends
/// little costs little memory.
const READ_CHUNK: usize = 1 << 20;

/// Reads one frame: `Ok(None)` on a clean end of stream before any header byte; otherwise the header and the
/// body (`message_length - 16` bytes). A truncated header or body, or a length below 16 or above
/// `max_message_size`, is an error, and so is any I/O error. Never allocates more than the validated length.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_message_size: usize,
) -> Result<Option<(Header, Vec<u8>)>, WireError> {
    let mut header_bytes = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header_bytes[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(WireError::TruncatedHeader { got })
            };
        }
        got += n;
    }
    let header = Header::parse(&header_bytes);
    let body_len = header.body_len(max_message_size)?;
    let body = read_body(r, body_len).await?;
    Ok(Some((header, body)))
}

/// Reads exactly `body_len` bytes, growing the buffer one chunk at a time.
async fn read_body<R: AsyncRead + Unpin>(r: &mut R, body_len: usize) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::with_capacity(body_len.min(READ_CHUNK));
    let mut filled = 0;
    while filled < body_len {
        let end = filled + (body_len - filled).min(READ_CHUNK);
        body.reserve_exact(end - body.len());
        body.resize(end, 0);
        while filled < end {
            let n = r.read(&mut body[filled..end]).await?;
            if n == 0 {
                return Err(WireError::TruncatedBody {
                    expected: body_len,
                    got: filled,
                });
            }
            filled += n;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::wire::{MAX_MESSAGE_SIZE, encode_msg_reply};

    fn message(id: i32) -> Vec<u8> {
        encode_msg_reply(id, 0, &bson::doc! { "ping": 1, "$db": "admin" })
    }

    #[tokio::test]
    async fn a_clean_eof_is_none() {
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty, MAX_MESSAGE_SIZE).await, Ok(None)));
    }

    #[tokio::test]
    async fn frames_come_out_one_at_a_time_then_none() {
        let mut bytes = message(1);
        bytes.extend(message(2));
        let mut stream: &[u8] = &bytes;
        for id in [1, 2] {
            let frame = read_frame(&mut stream, MAX_MESSAGE_SIZE).await.ok().flatten();
            let (header, body) = frame.unwrap_or_else(|| (Header::parse(&[0; 16]), Vec::new()));
            assert_eq!(header.request_id, id);
            assert_eq!(HEADER_LEN + body.len(), message(id).len());
            assert_eq!(body, message(id)[HEADER_LEN..]);
        }
        assert!(matches!(read_frame(&mut stream, MAX_MESSAGE_SIZE).await, Ok(None)));
    }

    #[tokio::test]
    async fn a_byte_at_a_time_stream_is_reassembled() {
        let bytes = message(3);
        let (mut writer, mut reader) = tokio::io::duplex(1);
        let write = async {
            let result = writer.write_all(&bytes).await;
            drop(writer);
            result
        };
        let (written, frame) = tokio::join!(write, read_frame(&mut reader, MAX_MESSAGE_SIZE));
        assert!(written.is_ok());
        let body = frame.ok().flatten().map(|(_, body)| body);
        assert_eq!(body.as_deref(), bytes.get(HEADER_LEN..));
    }

    #[tokio::test]
    async fn a_truncated_header_is_fatal() {
        let bytes = message(1);
        let mut stream: &[u8] = &bytes[..7];
        let result = read_frame(&mut stream, MAX_MESSAGE_SIZE).await;
        assert!(
            matches!(result, Err(WireError::TruncatedHeader { got: 7 })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_truncated_body_is_fatal() {
        let bytes = message(1);
        let mut stream: &[u8] = &bytes[..bytes.len() - 1];
        let result = read_frame(&mut stream, MAX_MESSAGE_SIZE).await;
        assert!(matches!(result, Err(WireError::TruncatedBody { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn a_huge_declared_length_with_little_data_fails_without_reading_it_all() {
        let mut bytes = Header {
            message_length: 40_000_000,
            request_id: 1,
            response_to: 0,
            op_code: 2013,
        }
        .to_bytes()
        .to_vec();
        bytes.extend_from_slice(&[0; 10]);
        let mut stream: &[u8] = &bytes;
        let result = read_frame(&mut stream, MAX_MESSAGE_SIZE).await;
        assert!(
            matches!(
                result,
                Err(WireError::TruncatedBody {
                    expected: 39_999_984,
                    got: 10
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn lengths_outside_the_limits_are_fatal_before_the_body_is_read() {
        for length in [0, 15, -5, 1001] {
            let bytes = Header {
                message_length: length,
                request_id: 1,
                response_to: 0,
                op_code: 2013,
            }
            .to_bytes();
            let mut stream: &[u8] = &bytes;
            let result = read_frame(&mut stream, 1000).await;
            assert!(
                matches!(result, Err(WireError::MessageLength { .. })),
                "{length}: {result:?}"
            );
        }
    }
}

//! Property tests: the decoder and the framer never panic or hang on any bytes, and everything `bson` writes
//! round-trips through encode → decode unchanged.

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, Timestamp, doc, oid::ObjectId};
use proptest::collection::vec;
use proptest::prelude::*;

use super::test_support::{Section, build_msg, fix_length, split};
use super::{
    HEADER_LEN, Header, OpMsg, OpQuery, Request, decode_request, error_response, msg_flags, read_frame, try_encode_msg,
};

/// Common BSON values (also the base of `bsonx`'s conversion tests).
pub(crate) fn leaf() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        any::<bool>().prop_map(Bson::Boolean),
        ".{0,12}".prop_map(Bson::String),
        Just(Bson::Null),
        any::<[u8; 12]>().prop_map(|bytes| Bson::ObjectId(ObjectId::from_bytes(bytes))),
        any::<i64>().prop_map(|ms| Bson::DateTime(DateTime::from_millis(ms))),
        vec(any::<u8>(), 0..16).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        (any::<u32>(), any::<u32>()).prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
    ]
}

fn key() -> impl Strategy<Value = String> {
    "[^\\x00]{0,8}"
}

fn document_of(value: impl Strategy<Value = Bson>) -> impl Strategy<Value = Document> {
    vec((key(), value), 0..6).prop_map(|fields| fields.into_iter().collect())
}

fn value() -> impl Strategy<Value = Bson> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Bson::Array),
            document_of(inner).prop_map(Bson::Document)
        ]
    })
}

fn document() -> impl Strategy<Value = Document> {
    document_of(value())
}

/// A command body: a command name first, arbitrary fields, then `$db`.
fn command_body() -> impl Strategy<Value = Document> {
    ("[a-zA-Z]{1,10}", document()).prop_map(|(name, fields)| {
        let mut body = doc! { name: 1 };
        body.extend(fields);
        body.insert("$db", "test");
        body
    })
}

/// Valid messages of every request kind, as bytes.
fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    let op_msg = (command_body(), vec(document(), 0..4), any::<bool>(), any::<bool>()).prop_map(
        |(body, docs, before, checksum)| {
            let flags = if checksum { msg_flags::CHECKSUM_PRESENT } else { 0 };
            let sequence = Section::Sequence("zz_documents", docs);
            let body = Section::Body(body);
            let sections = if before { [sequence, body] } else { [body, sequence] };
            build_msg(1, flags, &sections, checksum)
        },
    );
    let op_query = (
        command_body(),
        proptest::option::of(document()),
        proptest::option::of(document()),
    )
        .prop_map(|(query, return_fields, read_preference)| {
            let query = OpQuery {
                flags: 4,
                full_collection_name: "admin.$cmd".into(),
                number_to_skip: 0,
                number_to_return: -1,
                query,
                return_fields,
                read_preference,
            };
            query.encode(2).unwrap_or_default()
        });
    prop_oneof![op_msg, op_query]
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    SetLength(i32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        any::<i32>().prop_map(Mutation::SetLength),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::FlipBit(at, bit) => bytes.get_mut(at % len).into_iter().for_each(|b| *b ^= 1 << bit),
        Mutation::SetByte(at, byte) => bytes.get_mut(at % len).into_iter().for_each(|b| *b = *byte),
        Mutation::Truncate(at) => bytes.truncate(at % len),
        Mutation::Insert(at, extra) => {
            let at = at % len;
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::SetLength(length) => {
            if let Some(prefix) = bytes.first_chunk_mut::<4>() {
                *prefix = length.to_le_bytes();
            }
        }
    }
}

/// Decodes as a connection would; answering a failure must not panic either.
fn decode_like_a_connection(bytes: &[u8]) {
    let (header, body) = split(bytes);
    let _ = header.body_len(super::MAX_MESSAGE_SIZE);
    if let Err(err) = decode_request(&header, body) {
        let _ = error_response(&header, body, &err, 1);
    }
}

/// Reads frames until the stream ends or fails; the loop is bounded because every frame consumes bytes.
fn read_all_frames(bytes: &[u8], max_message_size: usize) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let Ok(runtime) = runtime else { return 0 };
    runtime.block_on(async {
        let mut stream = bytes;
        let mut frames = 0;
        while let Ok(Some((header, body))) = read_frame(&mut stream, max_message_size).await {
            assert_eq!(header.body_len(max_message_size).ok(), Some(body.len()));
            let _ = decode_request(&header, &body);
            frames += 1;
        }
        frames
    })
}

proptest! {
    // The robustness properties are cheap, so they get more cases than the default 256.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(op in prop_oneof![Just(2013), Just(2004), any::<i32>()],
                                               body in vec(any::<u8>(), 0..256)) {
        let length = i32::try_from(HEADER_LEN + body.len()).unwrap_or(i32::MAX);
        let header = Header { message_length: length, request_id: 1, response_to: 0, op_code: op };
        let bytes = [header.to_bytes().to_vec(), body].concat();
        decode_like_a_connection(&bytes);
    }

    #[test]
    fn arbitrary_headers_never_panic(header in any::<[u8; HEADER_LEN]>(), max in any::<usize>()) {
        let parsed = Header::parse(&header);
        prop_assert_eq!(parsed.to_bytes(), header);
        if let Ok(len) = parsed.body_len(max) {
            prop_assert!(len + HEADER_LEN <= max);
        }
    }

    #[test]
    fn valid_messages_decode(bytes in valid_message()) {
        let (header, body) = split(&bytes);
        prop_assert!(decode_request(&header, body).is_ok());
    }

    #[test]
    fn mutated_messages_never_panic(bytes in valid_message(), mutations in vec(mutation(), 1..4), fix in any::<bool>()) {
        let mut bytes = bytes;
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        if fix {
            fix_length(&mut bytes);
        }
        decode_like_a_connection(&bytes);
    }
}

proptest! {
    #[test]
    fn read_frame_never_panics_or_hangs(bytes in vec(any::<u8>(), 0..512), small in any::<bool>()) {
        let max = if small { 64 } else { super::MAX_MESSAGE_SIZE };
        prop_assert!(read_all_frames(&bytes, max) <= bytes.len() / HEADER_LEN);
    }

    #[test]
    fn read_frame_returns_valid_streams_frame_by_frame(messages in vec(valid_message(), 0..4)) {
        let stream = messages.concat();
        prop_assert_eq!(read_all_frames(&stream, super::MAX_MESSAGE_SIZE), messages.len());
    }

    #[test]
    fn bson_written_by_bson_round_trips(body in command_body(), docs in vec(document(), 0..3), checksum in any::<bool>()) {
        let flags = if checksum { msg_flags::CHECKSUM_PRESENT } else { 0 };
        let bytes = try_encode_msg(1, 0, flags, &body).unwrap_or_default();
        let (header, rest) = split(&bytes);
        let decoded = OpMsg::decode(&header, rest).map(|msg| msg.body);
        let reencoded = decoded.as_ref().ok().and_then(|d| d.to_vec().ok());
        prop_assert_eq!(reencoded, body.to_vec().ok(), "byte-identical after a round trip");

        let sections = [Section::Body(body.clone()), Section::Sequence("zz_documents", docs.clone())];
        let bytes = build_msg(1, 0, &sections, false);
        let (header, rest) = split(&bytes);
        let merged = match decode_request(&header, rest) {
            Ok(Request::Msg(msg)) => msg.body,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let mut expected = body;
        expected.insert("zz_documents", docs.into_iter().map(Bson::Document).collect::<Vec<_>>());
        prop_assert_eq!(merged.to_vec().ok(), expected.to_vec().ok());
    }
}

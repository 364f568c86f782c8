//! Unit tests for the OP_MSG codec, request dispatch and error responses.

use bson::{Bson, Document, doc};

use super::super::test_support::{Section, build_msg, fix_length, split};
use super::super::{
    ErrorAction, HEADER_LEN, MAX_BSON_OBJECT_SIZE, OpMsg, Request, WireError, decode_op_reply, decode_request,
    error_response, msg_flags, op_code, reply_flags,
};
use super::{encode_msg_reply, try_encode_msg};

fn insert_body() -> Document {
    doc! { "insert": "c", "ordered": true, "$db": "test" }
}

fn decode(bytes: &[u8]) -> Result<Request, WireError> {
    let (header, body) = split(bytes);
    decode_request(&header, body)
}

fn decode_msg(bytes: &[u8]) -> Result<OpMsg, WireError> {
    match decode(bytes)? {
        Request::Msg(msg) => Ok(msg),
        Request::Query(_) => Err(WireError::Malformed("expected OP_MSG".into())),
    }
}

/// The (code, codeName) an error gets, or None for fatal; panics in the test if decoding succeeded.
fn class_of(bytes: &[u8]) -> Option<(i32, &'static str)> {
    match decode(bytes) {
        Ok(request) => panic!("expected an error, decoded {request:?}"),
        Err(err) => err.reply_code(),
    }
}

fn docs(n: i32) -> Vec<Document> {
    (0..n).map(|i| doc! { "_id": i, "x": "y" }).collect()
}

#[test]
fn an_encoded_message_decodes_to_the_same_body_and_flags() {
    let body = doc! { "find": "c", "filter": { "a": { "$gt": 1.5 } }, "batchSize": 2i64, "$db": "db" };
    let bytes = try_encode_msg(11, 0, msg_flags::EXHAUST_ALLOWED, &body).unwrap_or_default();
    let msg = decode_msg(&bytes);
    assert_eq!(
        msg.as_ref().ok(),
        Some(&OpMsg {
            flags: msg_flags::EXHAUST_ALLOWED,
            body
        })
    );
    let msg = msg.unwrap_or_else(|_| OpMsg {
        flags: 0,
        body: Document::new(),
    });
    assert_eq!(msg.command_name(), Some("find"));
    assert_eq!(msg.database(), Some("db"));
    assert!(msg.exhaust_allowed());
    assert!(!msg.more_to_come());
}

#[test]
fn a_reply_has_flags_zero_one_body_section_and_no_checksum() {
    let body = doc! { "ok": 1.0, "n": 3 };
    let bytes = encode_msg_reply(7, 42, &body);
    let (header, rest) = split(&bytes);
    assert_eq!(
        (header.request_id, header.response_to, header.op_code),
        (7, 42, op_code::OP_MSG)
    );
    assert_eq!(usize::try_from(header.message_length).ok(), Some(bytes.len()));
    assert_eq!(rest[..5], [0, 0, 0, 0, 0], "flags 0 then section kind 0");
    assert_eq!(
        rest[5..],
        body.to_vec().unwrap_or_default()[..],
        "one document, nothing after it"
    );
    assert_eq!(OpMsg::decode(&header, rest).ok().map(|m| m.body), Some(body));
}

#[test]
fn an_oversized_reply_is_replaced_by_an_error_reply() {
    let big = doc! { "s": "x".repeat(MAX_BSON_OBJECT_SIZE + 20_000) };
    let bytes = encode_msg_reply(1, 2, &big);
    let (header, body) = split(&bytes);
    let reply = OpMsg::decode(&header, body).ok().map(|m| m.body);
    assert_eq!(reply.as_ref().and_then(|d| d.get_i32("code").ok()), Some(10334));
    assert_eq!(reply.as_ref().and_then(|d| d.get_f64("ok").ok()), Some(0.0));
}

#[test]
fn sequences_merge_into_the_body_in_any_order() {
    let sections = [
        Section::Sequence("documents", docs(3)),
        Section::Body(insert_body()),
        Section::Sequence("extra", vec![]),
    ];
    let msg = decode_msg(&build_msg(1, 0, &sections, false));
    let mut expected = insert_body();
    expected.insert("documents", docs(3).into_iter().map(Bson::Document).collect::<Vec<_>>());
    expected.insert("extra", Bson::Array(vec![]));
    assert_eq!(msg.ok().map(|m| m.body), Some(expected));
}

#[test]
fn a_correct_checksum_is_verified_and_stripped() {
    let flags = msg_flags::CHECKSUM_PRESENT;
    let sections = [Section::Body(insert_body()), Section::Sequence("documents", docs(2))];
    let msg = decode_msg(&build_msg(1, flags, &sections, true));
    assert_eq!(msg.as_ref().ok().map(|m| m.flags), Some(flags));
    assert_eq!(
        msg.ok().and_then(|m| m.body.get_array("documents").ok().map(Vec::len)),
        Some(2)
    );
    let encoded = try_encode_msg(3, 0, flags, &insert_body()).unwrap_or_default();
    assert_eq!(decode_msg(&encoded).ok().map(|m| m.body), Some(insert_body()));
}

#[test]
fn a_checksum_mismatch_anywhere_in_the_message_is_fatal() {
    let good = build_msg(1, msg_flags::CHECKSUM_PRESENT, &[Section::Body(insert_body())], true);
    // The request id (header), a body byte and the checksum itself are all covered.
    for at in [5, HEADER_LEN + 12, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        assert!(
            matches!(decode(&bad), Err(WireError::ChecksumMismatch { .. })),
            "byte {at}"
        );
        assert_eq!(class_of(&bad), None);
    }
}

#[test]
fn a_checksum_flag_without_room_for_a_checksum_is_fatal() {
    let bytes = build_msg(1, msg_flags::CHECKSUM_PRESENT, &[], false);
    assert!(matches!(decode(&bytes), Err(WireError::ChecksumMissing)));
}

#[test]
fn more_to_come_is_reported() {
    let bytes = try_encode_msg(1, 0, msg_flags::MORE_TO_COME, &insert_body()).unwrap_or_default();
    let msg = decode_msg(&bytes);
    assert!(msg.as_ref().is_ok_and(OpMsg::more_to_come));
    assert!(!msg.is_ok_and(|m| m.exhaust_allowed()));
}

#[test]
fn unknown_low_flag_bits_are_fatal_and_high_bits_are_ignored() {
    let low = build_msg(1, 1 << 2, &[Section::Body(insert_body())], false);
    assert!(matches!(decode(&low), Err(WireError::IllegalFlags(4))));
    assert_eq!(class_of(&low), None);
    let high = build_msg(1, 1 << 20, &[Section::Body(insert_body())], false);
    assert_eq!(decode_msg(&high).ok().map(|m| m.flags), Some(1 << 20));
}

#[test]
fn an_unknown_section_kind_is_fatal() {
    let bytes = build_msg(
        1,
        0,
        &[Section::Body(insert_body()), Section::Raw(2, vec![0; 8])],
        false,
    );
    assert!(matches!(decode(&bytes), Err(WireError::UnknownSectionKind(2))));
    assert_eq!(class_of(&bytes), None);
}

#[test]
fn body_section_count_errors_are_answerable() {
    let two = build_msg(
        1,
        0,
        &[Section::Body(insert_body()), Section::Body(insert_body())],
        false,
    );
    assert_eq!(class_of(&two), Some((40430, "Location40430")));
    let none = build_msg(1, 0, &[Section::Sequence("documents", docs(1))], false);
    assert_eq!(class_of(&none), Some((40587, "Location40587")));
}

#[test]
fn duplicate_and_colliding_sequences_are_answerable() {
    let dup = [
        Section::Body(insert_body()),
        Section::Sequence("documents", docs(1)),
        Section::Sequence("documents", docs(1)),
    ];
    assert_eq!(class_of(&build_msg(1, 0, &dup, false)), Some((40431, "Location40431")));
    let collide = [Section::Body(insert_body()), Section::Sequence("ordered", docs(1))];
    assert_eq!(
        class_of(&build_msg(1, 0, &collide, false)),
        Some((40433, "Location40433"))
    );
}

#[test]
fn a_missing_or_non_string_db_is_answerable() {
    let missing = build_msg(1, 0, &[Section::Body(doc! { "ping": 1 })], false);
    assert_eq!(class_of(&missing), Some((40571, "Location40571")));
    let number = build_msg(1, 0, &[Section::Body(doc! { "ping": 1, "$db": 3 })], false);
    assert_eq!(class_of(&number), Some((14, "TypeMismatch")));
}

#[test]
fn invalid_bson_in_a_well_framed_message_is_answerable() {
    // Corrupt the body's first element type byte to an undefined type (0x7e).
    let mut bytes = build_msg(1, 0, &[Section::Body(insert_body())], false);
    bytes[HEADER_LEN + 4 + 1 + 4] = 0x7e;
    assert_eq!(class_of(&bytes), Some((22, "InvalidBSON")));
    // A body whose declared length runs past the message.
    let mut bytes = build_msg(1, 0, &[Section::Body(insert_body())], false);
    bytes[HEADER_LEN + 5] = 0xff;
    assert_eq!(class_of(&bytes), Some((22, "InvalidBSON")));
}

#[test]
fn broken_sequence_framing_is_answerable() {
    for size in [-1i32, 0, 3, 1000] {
        let raw = [size.to_le_bytes().to_vec(), b"documents\0".to_vec()].concat();
        let bytes = build_msg(1, 0, &[Section::Body(insert_body()), Section::Raw(1, raw)], false);
        assert_eq!(class_of(&bytes), Some((9, "FailedToParse")), "size {size}");
    }
}

#[test]
fn a_body_over_the_command_limit_is_answerable() {
    let big = doc! { "insert": "c", "s": "x".repeat(MAX_BSON_OBJECT_SIZE + 17 * 1024), "$db": "t" };
    let bytes = build_msg(1, 0, &[Section::Body(big)], false);
    assert_eq!(class_of(&bytes), Some((10334, "BSONObjectTooLarge")));
}

#[test]
fn a_body_slightly_over_16_mib_is_accepted() {
    let body = doc! { "insert": "c", "s": "x".repeat(MAX_BSON_OBJECT_SIZE + 1024), "$db": "t" };
    let bytes = build_msg(1, 0, &[Section::Body(body.clone())], false);
    assert_eq!(decode_msg(&bytes).ok().map(|m| m.body), Some(body));
}

#[test]
fn compressed_legacy_and_unknown_opcodes_are_fatal() {
    for op in [
        op_code::OP_COMPRESSED,
        2001,
        2002,
        2005,
        2006,
        2007,
        op_code::OP_REPLY,
        0,
        -1,
        9999,
    ] {
        let mut bytes = encode_msg_reply(1, 0, &insert_body());
        bytes[12..16].copy_from_slice(&op.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(WireError::UnsupportedOpCode(o)) if o == op));
        assert_eq!(class_of(&bytes), None, "opcode {op}");
    }
}

#[test]
fn a_body_that_disagrees_with_its_header_is_fatal() {
    let mut bytes = encode_msg_reply(1, 0, &insert_body());
    bytes.push(1);
    assert!(matches!(decode(&bytes), Err(WireError::BodyLengthMismatch { .. })));
    assert_eq!(class_of(&bytes), None);
    fix_length(&mut bytes);
    assert_eq!(
        class_of(&bytes),
        Some((9, "FailedToParse")),
        "a trailing 1 starts a truncated sequence"
    );
}

#[test]
fn an_answerable_op_msg_error_gets_an_op_msg_error_reply() {
    let bytes = build_msg(77, 0, &[Section::Body(doc! { "ping": 1 })], false);
    let (header, body) = split(&bytes);
    let err = decode_request(&header, body).err().unwrap_or(WireError::MissingBody);
    let ErrorAction::Reply(reply) = error_response(&header, body, &err, 5) else {
        panic!("expected a reply for {err:?}");
    };
    let (reply_header, reply_body) = split(&reply);
    assert_eq!((reply_header.request_id, reply_header.response_to), (5, 77));
    let doc = OpMsg::decode(&reply_header, reply_body)
        .ok()
        .map(|m| m.body)
        .unwrap_or_default();
    assert_eq!(doc.get_f64("ok").ok(), Some(0.0));
    assert_eq!(doc.get_i32("code").ok(), Some(40571));
    assert_eq!(doc.get_str("codeName").ok(), Some("Location40571"));
    assert_eq!(
        doc.get_str("errmsg").ok(),
        Some("OP_MSG requests require a $db argument")
    );
}

#[test]
fn an_answerable_error_on_a_more_to_come_request_is_swallowed() {
    let bytes = build_msg(
        1,
        msg_flags::MORE_TO_COME,
        &[Section::Body(doc! { "insert": "c" })],
        false,
    );
    let (header, body) = split(&bytes);
    let err = decode_request(&header, body).err().unwrap_or(WireError::MissingBody);
    assert_eq!(error_response(&header, body, &err, 5), ErrorAction::Ignore);
}

#[test]
fn a_fatal_error_closes_even_with_more_to_come() {
    let bytes = build_msg(
        1,
        msg_flags::MORE_TO_COME | 1 << 3,
        &[Section::Body(insert_body())],
        false,
    );
    let (header, body) = split(&bytes);
    let err = decode_request(&header, body).err().unwrap_or(WireError::MissingBody);
    assert_eq!(error_response(&header, body, &err, 5), ErrorAction::Close);
}

#[test]
fn an_answerable_op_query_error_gets_a_query_failure_op_reply() {
    let mut bytes = encode_msg_reply(31, 0, &insert_body());
    bytes[12..16].copy_from_slice(&op_code::OP_QUERY.to_le_bytes());
    let (header, body) = split(&bytes);
    let err = decode_request(&header, body).err().unwrap_or(WireError::MissingBody);
    assert!(err.reply_code().is_some(), "{err:?}");
    let ErrorAction::Reply(reply) = error_response(&header, body, &err, 6) else {
        panic!("expected a reply for {err:?}");
    };
    let (reply_header, reply_body) = split(&reply);
    assert_eq!(
        (reply_header.op_code, reply_header.response_to),
        (op_code::OP_REPLY, 31)
    );
    let reply = decode_op_reply(reply_body).ok();
    assert_eq!(
        reply.as_ref().map(|r| r.response_flags),
        Some(reply_flags::QUERY_FAILURE)
    );
    let doc = reply.and_then(|r| r.documents.into_iter().next()).unwrap_or_default();
    assert!(doc.get_str("$err").is_ok());
    assert_eq!(doc.get_f64("ok").ok(), Some(0.0));
}

#[test]
fn an_unsupported_opcode_closes() {
    let mut bytes = encode_msg_reply(1, 0, &insert_body());
    bytes[12..16].copy_from_slice(&op_code::OP_COMPRESSED.to_le_bytes());
    let (header, body) = split(&bytes);
    let err = decode_request(&header, body).err().unwrap_or(WireError::MissingBody);
    assert_eq!(error_response(&header, body, &err, 5), ErrorAction::Close);
}

fn decode_raw(bytes: &[u8]) -> Result<Document, WireError> {
    let (header, body) = split(bytes);
    let (_, raw) = OpMsg::decode_raw_reply(&header, body)?;
    Ok(Document::try_from(raw.as_ref()).expect("a checked raw reply converts"))
}

#[test]
fn a_raw_reply_reads_as_the_decoded_reply_and_is_checked_the_same_way() {
    let reply = doc! {"cursor": {"nextBatch": docs(3), "id": 7i64}, "ok": 1.0};
    for checksum in [false, true] {
        let flags = if checksum { msg_flags::CHECKSUM_PRESENT } else { 0 };
        let bytes = build_msg(1, flags, &[Section::Body(reply.clone())], checksum);
        assert_eq!(decode_raw(&bytes).ok(), Some(reply.clone()), "checksum {checksum}");
    }
    // Checksum, element and nesting errors are refused as the decoding reader refuses them.
    let mut bad = build_msg(1, msg_flags::CHECKSUM_PRESENT, &[Section::Body(reply.clone())], true);
    let at = bad.len() - 1;
    bad[at] ^= 0x20;
    assert!(matches!(decode_raw(&bad), Err(WireError::ChecksumMismatch { .. })));
    let mut bad = build_msg(1, 0, &[Section::Body(reply.clone())], false);
    bad[HEADER_LEN + 4 + 1 + 4] = 0x7e;
    assert!(matches!(decode_raw(&bad), Err(WireError::InvalidBson(_))));
    let mut deep = doc! {"leaf": 1};
    for _ in 0..super::super::MAX_NESTING_DEPTH + 1 {
        deep = doc! {"a": deep};
    }
    let bytes = build_msg(1, 0, &[Section::Body(deep)], false);
    assert!(matches!(decode_raw(&bytes), Err(WireError::NestingTooDeep { .. })));
}

#[test]
fn a_raw_reply_is_one_body_section_and_nothing_else() {
    let with_sequence = build_msg(
        1,
        0,
        &[Section::Body(insert_body()), Section::Sequence("documents", docs(2))],
        false,
    );
    assert!(matches!(decode_raw(&with_sequence), Err(WireError::Malformed(_))));
    let two_bodies = build_msg(
        1,
        0,
        &[Section::Body(insert_body()), Section::Body(insert_body())],
        false,
    );
    assert!(matches!(decode_raw(&two_bodies), Err(WireError::Malformed(_))));
    let none = build_msg(1, 0, &[], false);
    assert!(decode_raw(&none).is_err());
}

//! Key strings: BSON values encoded as bytes whose byte order is MongoDB's comparison order.
//!
//! Used as keys of the document tables (`_id`) and of unique indexes, so two values that MongoDB considers
//! equal (`1`, `1.0` and `NumberLong(1)`) get the same key, and a range scan walks keys in BSON order.
//!
//! ```text
//! value  := type-class byte, payload
//! number := class 0x20, f64 as order-preserving bits, then 8 bytes of the exact i64 when the value is an
//!           integer beyond 2^53 (so distinct large integers stay distinct)
//! string := class 0x30, bytes with 0x00 escaped as 0x00 0xFF, terminated by 0x00 0x00
//! object := class 0x40, per field: name (as a string) then value; terminated by 0x00
//! array  := class 0x50, per element: value; terminated by 0x00
//! ```
//! Type classes follow MongoDB's canonical order (MinKey < null < numbers < strings < objects < arrays <
//! binary < ObjectId < bool < date < timestamp < regex < MaxKey); 0x00 is never a class byte, which is what
//! makes the terminators sort first.

use bson::Bson;

mod class {
    pub const MIN_KEY: u8 = 0x01;
    pub const NULL: u8 = 0x10;
    pub const NUMBER: u8 = 0x20;
    pub const STRING: u8 = 0x30;
    pub const OBJECT: u8 = 0x40;
    pub const ARRAY: u8 = 0x50;
    pub const BINARY: u8 = 0x60;
    pub const OBJECT_ID: u8 = 0x70;
    pub const BOOLEAN: u8 = 0x80;
    pub const DATE: u8 = 0x90;
    pub const TIMESTAMP: u8 = 0xA0;
    pub const REGEX: u8 = 0xB0;
    pub const CODE: u8 = 0xC0;
    pub const MAX_KEY: u8 = 0xF0;
}

/// Encodes one value as a key string.
pub fn encode(value: &Bson) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_into(value, &mut out);
    out
}

/// Encodes several values (a compound index key) one after another.
pub fn encode_compound<'a>(values: impl IntoIterator<Item = &'a Bson>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    for value in values {
        encode_into(value, &mut out);
    }
    out
}

/// Encodes one value. Iterative: embedded documents and arrays are walked with an explicit stack, so the
/// stack this uses does not grow with the depth of the value.
fn encode_into(value: &Bson, out: &mut Vec<u8>) {
    let mut open: Vec<Open<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        if let Some(value) = next.take() {
            match value {
                Bson::Document(doc) => {
                    out.push(class::OBJECT);
                    open.push(Open::Document(doc.iter()));
                }
                Bson::Array(items) => {
                    out.push(class::ARRAY);
                    open.push(Open::Array(items.iter()));
                }
                Bson::JavaScriptCodeWithScope(code) => {
                    out.push(class::CODE);
                    encode_bytes(code.code.as_bytes(), out);
                    out.push(class::OBJECT);
                    open.push(Open::Document(code.scope.iter()));
                }
                scalar => encode_scalar(scalar, out),
            }
        }
        let Some(top) = open.last_mut() else {
            return;
        };
        match top {
            Open::Document(fields) => match fields.next() {
                Some((name, value)) => {
                    // A field is never empty-tagged: prefix with 0x01 so the terminator 0x00 sorts before any
                    // field.
                    out.push(0x01);
                    encode_bytes(name.as_bytes(), out);
                    next = Some(value);
                }
                None => {
                    out.push(0);
                    open.pop();
                }
            },
            Open::Array(items) => match items.next() {
                Some(value) => next = Some(value),
                None => {
                    out.push(0);
                    open.pop();
                }
            },
        }
    }
}

/// A document or array whose elements are still being encoded.
enum Open<'a> {
    Document(bson::document::Iter<'a>),
    Array(std::slice::Iter<'a, Bson>),
}

/// Encodes a value that is not a document, an array or code with scope.
fn encode_scalar(value: &Bson, out: &mut Vec<u8>) {
    match value {
        Bson::MinKey => out.push(class::MIN_KEY),
        Bson::Null | Bson::Undefined => out.push(class::NULL),
        Bson::Int32(v) => encode_number(*v as f64, None, out),
        Bson::Int64(v) => encode_number(*v as f64, Some(*v), out),
        Bson::Double(v) => encode_number(*v, None, out),
        Bson::Decimal128(d) => {
            let approx = d.to_string().parse::<f64>().unwrap_or(f64::NAN);
            encode_number(approx, None, out)
        }
        Bson::String(s) | Bson::Symbol(s) => {
            out.push(class::STRING);
            encode_bytes(s.as_bytes(), out);
        }
        Bson::Binary(bin) => {
            out.push(class::BINARY);
            out.extend_from_slice(&(bin.bytes.len() as u32).to_be_bytes());
            out.push(u8::from(bin.subtype));
            out.extend_from_slice(&bin.bytes);
        }
        Bson::ObjectId(oid) => {
            out.push(class::OBJECT_ID);
            out.extend_from_slice(&oid.bytes());
        }
        Bson::Boolean(b) => {
            out.push(class::BOOLEAN);
            out.push(u8::from(*b));
        }
        Bson::DateTime(dt) => {
            out.push(class::DATE);
            out.extend_from_slice(&((dt.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes());
        }
        Bson::Timestamp(ts) => {
            out.push(class::TIMESTAMP);
            out.extend_from_slice(&ts.time.to_be_bytes());
            out.extend_from_slice(&ts.increment.to_be_bytes());
        }
        Bson::RegularExpression(re) => {
            out.push(class::REGEX);
            encode_bytes(re.pattern.as_str().as_bytes(), out);
            encode_bytes(re.options.as_str().as_bytes(), out);
        }
        Bson::JavaScriptCode(code) => {
            out.push(class::CODE);
            encode_bytes(code.as_bytes(), out);
        }
        Bson::DbPointer(_) => out.push(class::CODE),
        Bson::MaxKey => out.push(class::MAX_KEY),
        // Containers are encoded by `encode_into`.
        Bson::Document(_) | Bson::Array(_) | Bson::JavaScriptCodeWithScope(_) => {}
    }
}

/// Writes bytes with 0x00 escaped as 0x00 0xFF and a 0x00 0x00 terminator, so prefixes sort first.
fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

const EXACT_F64_INT: i64 = 1 << 53;

fn encode_number(value: f64, exact: Option<i64>, out: &mut Vec<u8>) {
    out.push(class::NUMBER);
    // -0.0 and 0.0 are equal in MongoDB; NaN sorts below every other number.
    let value = if value == 0.0 { 0.0 } else { value };
    let bits = if value.is_nan() {
        0
    } else if value.is_sign_negative() {
        !value.to_bits()
    } else {
        value.to_bits() | (1 << 63)
    };
    out.extend_from_slice(&bits.to_be_bytes());
    // Integers too large for f64 keep their exact value as a tie-breaker; a double that happens to have
    // the same rounded value is a different number unless it is exactly integral and equal.
    let tail = match exact {
        Some(v) if !(-EXACT_F64_INT..=EXACT_F64_INT).contains(&v) => Some(v),
        None if value.fract() == 0.0 && value.abs() > EXACT_F64_INT as f64 && value.abs() < 9.2e18 => {
            Some(value as i64)
        }
        _ => None,
    };
    if let Some(v) = tail {
        out.push(0x01);
        out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Document, doc, oid::ObjectId};

    /// The recursive encoding the iterative one replaced, kept as its specification (small inputs).
    fn reference(value: &Bson, out: &mut Vec<u8>) {
        match value {
            Bson::Document(doc) => reference_document(doc, out),
            Bson::Array(items) => {
                out.push(class::ARRAY);
                for item in items {
                    reference(item, out);
                }
                out.push(0);
            }
            Bson::JavaScriptCodeWithScope(code) => {
                out.push(class::CODE);
                encode_bytes(code.code.as_bytes(), out);
                reference_document(&code.scope, out);
            }
            scalar => encode_scalar(scalar, out),
        }
    }

    fn reference_document(doc: &Document, out: &mut Vec<u8>) {
        out.push(class::OBJECT);
        for (name, value) in doc {
            out.push(0x01);
            encode_bytes(name.as_bytes(), out);
            reference(value, out);
        }
        out.push(0);
    }

    proptest::proptest! {
        #[test]
        fn the_iterative_encoding_is_the_recursive_definition(value in crate::query::test_support::value()) {
            let mut expected = Vec::new();
            reference(&value, &mut expected);
            proptest::prop_assert_eq!(encode(&value), expected);
        }
    }

    #[test]
    fn deep_values_encode_with_constant_stack() {
        let mut value = Bson::Int32(1);
        for _ in 0..20_000 {
            value = Bson::Array(vec![value]);
        }
        let encoded = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(scope, || encode(&value))
                .expect("spawn")
                .join()
                .expect("encoded on a 64 KiB stack")
        });
        assert_eq!(encoded.len(), 2 * 20_000 + 9);
        // Dropping it recurses in the bson crate: keep that off the test thread.
        std::mem::forget(value);
    }

    #[test]
    fn equal_numbers_of_different_types_share_a_key() {
        assert_eq!(encode(&Bson::Int32(1)), encode(&Bson::Int64(1)));
        assert_eq!(encode(&Bson::Int32(1)), encode(&Bson::Double(1.0)));
        assert_eq!(encode(&Bson::Double(0.0)), encode(&Bson::Double(-0.0)));
        assert_ne!(encode(&Bson::Int64(1 << 60)), encode(&Bson::Int64((1 << 60) + 1)));
        assert_eq!(
            encode(&Bson::Int64(1 << 60)),
            encode(&Bson::Double((1u64 << 60) as f64))
        );
    }

    #[test]
    fn byte_order_follows_bson_order() {
        let ordered = [
            Bson::MinKey,
            Bson::Null,
            Bson::Double(f64::NEG_INFINITY),
            Bson::Int32(-5),
            Bson::Double(-0.5),
            Bson::Int32(0),
            Bson::Double(2.5),
            Bson::Int64(1 << 40),
            Bson::String(String::new()),
            Bson::String("a".into()),
            Bson::String("a\0".into()),
            Bson::String("ab".into()),
            Bson::String("b".into()),
            Bson::Document(doc! {}),
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 1, "b": 1}),
            Bson::Document(doc! {"b": 0}),
            Bson::Array(vec![]),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::ObjectId(ObjectId::from_bytes([1; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::DateTime(bson::DateTime::from_millis(5)),
            Bson::Timestamp(bson::Timestamp { time: 1, increment: 2 }),
            Bson::MaxKey,
        ];
        for pair in ordered.windows(2) {
            assert!(
                encode(&pair[0]) < encode(&pair[1]),
                "{:?} should sort before {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn integer_order_is_preserved(a in proptest::num::i64::ANY, b in proptest::num::i64::ANY) {
            let (ka, kb) = (encode(&Bson::Int64(a)), encode(&Bson::Int64(b)));
            proptest::prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn string_order_is_preserved(a in ".{0,8}", b in ".{0,8}") {
            let (ka, kb) = (encode(&Bson::String(a.clone())), encode(&Bson::String(b.clone())));
            proptest::prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()), ka.cmp(&kb));
        }
    }
}

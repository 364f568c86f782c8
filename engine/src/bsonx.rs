//! BSON value helpers below every layer: reading numbers and truthiness with MongoDB's type rules, and the
//! one conversion of raw BSON bytes into a [`Document`].
//!
//! The command layer reads its arguments with these, and so do the replica-set messages, write concerns and
//! fail point settings; none of them depends on another for it. Every request body and every stored document
//! the engine decodes goes through [`to_document`].

use bson::raw::{RawBsonRef, RawDocument};
use bson::{Binary, Bson, Document};

/// An integral number of any BSON numeric type (a double only when it has no fraction).
pub fn as_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.is_finite() => Some(*v as i64),
        _ => None,
    }
}

/// Truthiness as MongoDB reads boolean options: booleans, and numbers other than 0.
pub fn truthy(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Null => false,
        other => as_i64(other).map(|n| n != 0).unwrap_or(true),
    }
}

/// Converts raw BSON into a [`Document`], as `Document::try_from(raw)` does and with the same result (the same
/// values, key order and duplicate-key handling, and an error for the same malformed input), but directly:
/// the `bson` crate's conversion first copies every embedded document and array into an owned buffer and then
/// parses that copy again, so a document nested n deep was copied n times. Under a driver's load those copies
/// were a tenth of a member's CPU (#14).
///
/// Recursive like the crate's: callers pass BSON whose nesting was already checked
/// ([`raw_nesting_within`](crate::depth::raw_nesting_within)), as every request and stored document is.
pub fn to_document(raw: &RawDocument) -> bson::error::Result<Document> {
    let mut out = Document::new();
    for element in raw {
        let (key, value) = element?;
        out.insert(key.as_str(), to_bson(value)?);
    }
    Ok(out)
}

fn to_bson(value: RawBsonRef<'_>) -> bson::error::Result<Bson> {
    Ok(match value {
        RawBsonRef::Double(v) => Bson::Double(v),
        RawBsonRef::String(v) => Bson::String(v.to_owned()),
        RawBsonRef::Document(v) => Bson::Document(to_document(v)?),
        RawBsonRef::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.push(to_bson(item?)?);
            }
            Bson::Array(out)
        }
        RawBsonRef::Binary(v) => Bson::Binary(Binary {
            subtype: v.subtype,
            bytes: v.bytes.to_vec(),
        }),
        RawBsonRef::ObjectId(v) => Bson::ObjectId(v),
        RawBsonRef::Boolean(v) => Bson::Boolean(v),
        RawBsonRef::DateTime(v) => Bson::DateTime(v),
        RawBsonRef::Null => Bson::Null,
        RawBsonRef::Int32(v) => Bson::Int32(v),
        RawBsonRef::Timestamp(v) => Bson::Timestamp(v),
        RawBsonRef::Int64(v) => Bson::Int64(v),
        RawBsonRef::Decimal128(v) => Bson::Decimal128(v),
        RawBsonRef::Undefined => Bson::Undefined,
        RawBsonRef::MaxKey => Bson::MaxKey,
        RawBsonRef::MinKey => Bson::MinKey,
        // Rare types (regular expressions, JavaScript, symbols, DB pointers) take the crate's own path, so their
        // normalisation (a regex's options sorted) stays the crate's.
        other => Bson::try_from(other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_of_every_type_read_as_i64() {
        assert_eq!(as_i64(&Bson::Int32(-3)), Some(-3));
        assert_eq!(as_i64(&Bson::Int64(1 << 40)), Some(1 << 40));
        assert_eq!(as_i64(&Bson::Double(7.0)), Some(7));
        assert_eq!(as_i64(&Bson::Double(7.5)), None);
        assert_eq!(as_i64(&Bson::Double(f64::NAN)), None);
        assert_eq!(as_i64(&Bson::String("7".into())), None);
    }

    #[test]
    fn truthiness_follows_mongodb() {
        assert!(truthy(&Bson::Boolean(true)));
        assert!(!truthy(&Bson::Int32(0)));
        assert!(truthy(&Bson::Double(2.0)));
        assert!(!truthy(&Bson::Null));
        assert!(truthy(&Bson::String(String::new())));
    }

    mod conversion {
        use bson::raw::CString;
        use bson::spec::BinarySubtype;
        use bson::{Decimal128, JavaScriptCodeWithScope, Regex, doc};
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        /// The wire tests' common values, plus the types they leave out (binary of every subtype, the rare and
        /// deprecated types, which take the crate's own conversion path).
        fn leaf() -> impl Strategy<Value = Bson> {
            prop_oneof![
                crate::wire::proptests::leaf(),
                Just(Bson::Undefined),
                Just(Bson::MinKey),
                Just(Bson::MaxKey),
                any::<[u8; 16]>().prop_map(|b| Bson::Decimal128(Decimal128::from_bytes(b))),
                (any::<u8>(), vec(any::<u8>(), 0..16)).prop_map(|(t, bytes)| Bson::Binary(Binary {
                    subtype: BinarySubtype::from(if t == 2 { 0 } else { t }),
                    bytes
                })),
                ("[a-z.*]{0,6}", "[imsx]{0,4}").prop_map(|(pattern, options)| Bson::RegularExpression(Regex {
                    pattern: CString::try_from(pattern).unwrap(),
                    options: CString::try_from(options).unwrap()
                })),
                ".{0,8}".prop_map(Bson::JavaScriptCode),
                ".{0,8}".prop_map(Bson::Symbol),
                ".{0,8}".prop_map(|code| Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                    code,
                    scope: doc! {"x": 1}
                })),
            ]
        }

        fn document_of(value: impl Strategy<Value = Bson>) -> impl Strategy<Value = Document> {
            // Keys from a small alphabet, so duplicates (which raw BSON can hold) come up.
            vec(("[ab]{0,2}", value), 0..6).prop_map(|fields| fields.into_iter().collect())
        }

        fn document() -> impl Strategy<Value = Document> {
            document_of(leaf().prop_recursive(5, 64, 6, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..5).prop_map(Bson::Array),
                    document_of(inner).prop_map(Bson::Document)
                ]
            }))
        }

        /// Both conversions of the same bytes: equal documents with equal key order, or both an error.
        fn same_as_the_crate(bytes: &[u8]) -> Result<(), TestCaseError> {
            let Ok(raw) = RawDocument::from_bytes(bytes) else {
                return Ok(());
            };
            match (to_document(raw), Document::try_from(raw)) {
                (Ok(ours), Ok(theirs)) => {
                    prop_assert_eq!(&ours, &theirs);
                    prop_assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "ours {ours:?}, the crate's {theirs:?}"),
            }
            Ok(())
        }

        #[test]
        fn duplicate_keys_keep_the_first_position_and_the_last_value() {
            // Raw BSON of {a: 1, b: 2, a: 3}, which a Document cannot be built with.
            let mut bytes = Vec::new();
            for (key, value) in [("a", 1i32), ("b", 2), ("a", 3)] {
                bytes.push(0x10);
                bytes.extend_from_slice(key.as_bytes());
                bytes.push(0);
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            let mut raw = ((bytes.len() + 5) as i32).to_le_bytes().to_vec();
            raw.extend_from_slice(&bytes);
            raw.push(0);
            let doc = to_document(RawDocument::from_bytes(&raw).unwrap()).unwrap();
            assert_eq!(doc, doc! {"a": 3, "b": 2});
            same_as_the_crate(&raw).unwrap();
        }

        proptest! {
            #[test]
            fn converts_as_the_crate_does(doc in document()) {
                same_as_the_crate(&doc.to_vec().unwrap())?;
            }

            /// Corrupted bytes (a flipped byte, a truncated tail) fail or succeed exactly as the crate's
            /// conversion does.
            #[test]
            fn malformed_bytes_fail_as_the_crate_does(doc in document(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
                let bytes = doc.to_vec().unwrap();
                let mut flipped = bytes.clone();
                let i = at.index(flipped.len());
                flipped[i] = byte;
                same_as_the_crate(&flipped)?;
                let mut truncated = bytes[..cut.index(bytes.len())].to_vec();
                if truncated.len() >= 4 {
                    let len = truncated.len() as i32;
                    truncated[..4].copy_from_slice(&len.to_le_bytes());
                }
                same_as_the_crate(&truncated)?;
            }
        }
    }
}

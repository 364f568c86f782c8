//! Proptest strategies for BSON values, documents and query-language inputs (tests only).
use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Decimal128, Document, Timestamp};
use proptest::prelude::*;

/// Field names drawn from a small set so that filters and documents overlap.
pub(crate) fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("_id"), Just("0"), Just("1")].prop_map(str::to_string)
}

pub(crate) fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        (-3i32..4).prop_map(Bson::Int32),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            -3i64..4,
            Just(1i64 << 53),
            Just((1i64 << 53) + 1)
        ]
        .prop_map(Bson::Int64),
        prop_oneof![
            Just(f64::NAN),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(9_007_199_254_740_992.0),
            (-6i32..7).prop_map(|n| f64::from(n) / 2.0)
        ]
        .prop_map(Bson::Double),
        prop_oneof![Just("1.5"), Just("-2"), Just("NaN"), Just("1E+400")]
            .prop_map(|s| s.parse::<Decimal128>().map(Bson::Decimal128).unwrap_or(Bson::Null)),
        "[ab]{0,2}".prop_map(Bson::String),
        "[ab]{0,2}".prop_map(Bson::Symbol),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        Just(Bson::Undefined),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
        (-2i64..3).prop_map(|ms| Bson::DateTime(DateTime::from_millis(ms))),
        (0u32..2, 0u32..2).prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
        (0u8..2).prop_map(|b| Bson::ObjectId(ObjectId::from_bytes([b; 12]))),
        prop::collection::vec(0u8..2, 0..2).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        Just(Bson::JavaScriptCode("x".into())),
    ]
}

/// Any BSON value, nested up to a few levels.
pub(crate) fn value() -> impl Strategy<Value = Bson> {
    scalar().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Bson::Array),
            prop::collection::vec((field_name(), inner), 0..3)
                .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
        ]
    })
}

pub(crate) fn document() -> impl Strategy<Value = Document> {
    prop::collection::vec((field_name(), value()), 0..4).prop_map(|fields| fields.into_iter().collect())
}

/// Dotted paths over the small field-name set.
pub(crate) fn dotted_path() -> impl Strategy<Value = String> {
    prop::collection::vec(field_name(), 1..3).prop_map(|segments| segments.join("."))
}

/// A query operator name, valid or not.
pub(crate) fn filter_operator() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$eq"),
        Just("$ne"),
        Just("$gt"),
        Just("$gte"),
        Just("$lt"),
        Just("$lte"),
        Just("$in"),
        Just("$nin"),
        Just("$exists"),
        Just("$type"),
        Just("$size"),
        Just("$all"),
        Just("$mod"),
        Just("$elemMatch"),
        Just("$not"),
        Just("$regex"),
        Just("$options"),
        Just("$foo"),
        Just("$and"),
        Just("$or"),
        Just("$nor"),
        Just("$expr"),
    ]
    .prop_map(str::to_string)
}

/// Filters mixing well-formed and malformed parts.
pub(crate) fn filter_document() -> impl Strategy<Value = Document> {
    let leaf = prop_oneof![
        value(),
        (filter_operator(), value()).prop_map(|(op, v)| {
            let mut d = Document::new();
            d.insert(op, v);
            Bson::Document(d)
        }),
    ];
    let clause = (prop_oneof![dotted_path(), filter_operator()], leaf);
    prop::collection::vec(clause, 0..3).prop_map(|fields| fields.into_iter().collect())
}

/// An update operator name, valid or not.
pub(crate) fn update_operator() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$set"),
        Just("$unset"),
        Just("$inc"),
        Just("$mul"),
        Just("$min"),
        Just("$max"),
        Just("$push"),
        Just("$addToSet"),
        Just("$pop"),
        Just("$pull"),
        Just("$pullAll"),
        Just("$rename"),
        Just("$setOnInsert"),
        Just("$currentDate"),
        Just("$bit"),
        Just("$bogus"),
    ]
    .prop_map(str::to_string)
}

/// Update documents: operators over random paths and values, sometimes replacements.
pub(crate) fn update_document() -> impl Strategy<Value = Document> {
    let fields = prop::collection::vec((dotted_path(), value()), 0..3)
        .prop_map(|f| Bson::Document(f.into_iter().collect::<Document>()));
    prop_oneof![
        prop::collection::vec((update_operator(), fields), 0..3).prop_map(|ops| ops.into_iter().collect()),
        document(),
    ]
}

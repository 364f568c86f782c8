//! Command options the engine checks rather than accepts and ignores, so a client that asks for something
//! gets MongoDB's error or an honest "not implemented" instead of a silently different answer.
//!
//! ```text
//! hint        must name an index of the collection (by name or key pattern) or be {$natural: ±1}: else
//!             BadValue (2), as mongod's planner refuses it; a missing collection takes any hint
//! collation   on reads and writes: simple, or what `query::collation` implements (strength 1-5 and
//!             numericOrdering for en/de/fr/it/nl/pt); other locales and options are NotImplemented (238);
//!             on indexes and collection defaults only {locale: "simple"}; no locale is 40414, not an object 14
//! min / max   need a hint (2, mongod's rule) and the hinted index's fields (51174); they bound the index
//!             keys of the results (`query::filter::KeyRange`)
//! ```
//!
//! The collection `validator` is enforced by the write path (`write.rs`, `validator`).

use std::sync::Arc;

use bson::{Bson, Document};

use crate::error::{Error, Result};
use crate::query::collation::Collation;
use crate::query::filter::KeyRange;
use crate::storage::CollectionMeta;

const NOT_IMPLEMENTED: (i32, &str) = (238, "NotImplemented");

/// Checks a `hint` against the collection it will run on.
pub fn check_hint(hint: Option<&Bson>, meta: Option<&CollectionMeta>) -> Result<()> {
    let (Some(hint), Some(meta)) = (hint, meta) else {
        return Ok(());
    };
    let found = match hint {
        Bson::String(name) => meta.index(name).is_some(),
        Bson::Document(key) if key.is_empty() => true,
        Bson::Document(key) if key.keys().next().is_some_and(|k| k == "$natural") => true,
        Bson::Document(key) => meta
            .indexes
            .iter()
            .any(|i| crate::query::compare::compare_documents(&i.key, key).is_eq()),
        Bson::Null => true,
        _ => {
            return Err(Error::failed_to_parse("hint must be either a string or an object"));
        }
    };
    if found {
        return Ok(());
    }
    Err(Error::bad_value(
        "error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index",
    ))
}

/// The `collation` a read or write command (or statement) carries: `None` for none or the simple one; the
/// locales and options `query::collation` implements; its errors (NotImplemented, 238, for the rest).
pub fn collation(body: &Document) -> Result<Option<Arc<Collation>>> {
    match body.get("collation") {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(spec)) => Ok(Collation::parse(spec)?.map(Arc::new)),
        Some(_) => Err(Error::type_mismatch(
            "BSON field 'collation' is the wrong type, expected type 'object'",
        )),
    }
}

/// Checks the `collation` an index specification or a collection's options carry: only the simple one (the
/// engine keeps no collated indexes or collection defaults).
pub fn check_collation(body: &Document) -> Result<()> {
    let collation = match body.get("collation") {
        None | Some(Bson::Null) => return Ok(()),
        Some(Bson::Document(c)) => c,
        Some(_) => {
            return Err(Error::type_mismatch(
                "BSON field 'collation' is the wrong type, expected type 'object'",
            ));
        }
    };
    match collation.get("locale") {
        Some(Bson::String(locale)) if locale == "simple" => Ok(()),
        Some(Bson::String(locale)) => Err(Error::new(
            NOT_IMPLEMENTED,
            format!(
                "collation with locale '{locale}' is not supported by the Faultline engine; only the simple collation ({{locale: \"simple\"}}) is"
            ),
        )),
        Some(_) => Err(Error::type_mismatch(
            "BSON field 'locale' is the wrong type, expected type 'string'",
        )),
        None => Err(Error::new(
            (40414, "Location40414"),
            "BSON field 'locale' is missing but a required field",
        )),
    }
}

/// A find's `min`/`max`: the bounds on the hinted index's keys, or `None` without them (or on a collection
/// that does not exist). They need a hint (BadValue, 2, mongod's rule), and must name the hinted index's
/// fields in order (51174).
pub fn min_max(body: &Document, meta: Option<&CollectionMeta>) -> Result<Option<KeyRange>> {
    let bound = |name: &str| match body.get(name) {
        Some(Bson::Document(d)) if !d.is_empty() => Ok(Some(d)),
        None | Some(Bson::Null) | Some(Bson::Document(_)) => Ok(None),
        Some(_) => Err(Error::type_mismatch(format!(
            "BSON field 'FindCommandRequest.{name}' is the wrong type, expected type 'object'"
        ))),
    };
    let (min, max) = (bound("min")?, bound("max")?);
    if min.is_none() && max.is_none() {
        return Ok(None);
    }
    let pattern = match body.get("hint") {
        Some(Bson::String(name)) => meta.and_then(|m| m.index(name)).map(|i| i.key.clone()),
        Some(Bson::Document(key)) if !key.is_empty() && !key.contains_key("$natural") => Some(key.clone()),
        _ => {
            return Err(Error::bad_value(
                "error processing query: planner returned error :: caused by :: When using min()/max() a hint of which index to use must be specified",
            ));
        }
    };
    let Some(pattern) = pattern else {
        return Ok(None);
    };
    let names_pattern = |bound: Option<&Document>| bound.is_none_or(|b| b.keys().eq(pattern.keys()));
    if !names_pattern(min) || !names_pattern(max) {
        return Err(Error::new(
            (51174, "Location51174"),
            "error processing query: planner returned error :: caused by :: The index key pattern and the min/max doc must match",
        ));
    }
    Ok(Some(KeyRange::new(&pattern, min, max)))
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;
    use crate::error::code;
    use crate::storage::Namespace;

    fn meta() -> CollectionMeta {
        CollectionMeta::new(Namespace::new("d", "c"), Document::new())
    }

    #[test]
    fn hints_name_existing_indexes() {
        let meta = meta();
        let code_of = |hint: Bson| check_hint(Some(&hint), Some(&meta)).err().map(|e| e.code);
        assert_eq!(code_of(Bson::String("_id_".into())), None);
        assert_eq!(code_of(Bson::Document(doc! {"_id": 1.0})), None);
        assert_eq!(code_of(Bson::Document(doc! {"$natural": -1})), None);
        assert_eq!(code_of(Bson::String("x_1".into())), Some(code::BAD_VALUE.0));
        assert_eq!(code_of(Bson::Int32(3)), Some(code::FAILED_TO_PARSE.0));
        assert!(check_hint(Some(&Bson::String("x".into())), None).is_ok());
    }

    #[test]
    fn only_the_simple_collation_is_accepted() {
        let code_of = |body: Document| check_collation(&body).err().map(|e| e.code);
        assert_eq!(code_of(doc! {"collation": {"locale": "simple"}}), None);
        assert_eq!(code_of(doc! {"collation": {"locale": "en"}}), Some(238));
        assert_eq!(code_of(doc! {"collation": {"strength": 1}}), Some(40414));
        assert_eq!(code_of(doc! {"collation": 1}), Some(14));
    }
}

//! Collection document validation: the `validator` query `create` stored with the collection, checked on
//! every document an insert, update, upsert or findAndModify writes.
//!
//! ```text
//! validationLevel   strict (default): every write; moderate: inserts, and updates of documents that were
//!                   valid before; off: none
//! validationAction  error (default): the write fails with DocumentValidationFailure (121); warn: it is
//!                   written and a warning logged
//! bypassDocumentValidation: true on the command skips the check
//! ```
//!
//! A validator that does not parse as a query (`$jsonSchema` included: not implemented) is refused when the
//! collection is created, so it can never be ignored silently.

use bson::{Bson, Document, doc};

use crate::error::{Error, Result};
use crate::query::filter::Filter;
use crate::storage::CollectionMeta;

/// A collection's validator, ready to check documents.
pub struct Validator {
    /// The validator as stored (for the failure's `errInfo.details`).
    spec: Document,
    filter: Filter,
    moderate: bool,
    warn_only: bool,
}

impl Validator {
    /// The validator of `meta`, unless it has none, validation is off, or the command bypasses it.
    pub fn of(meta: &CollectionMeta, bypass: bool) -> Result<Option<Validator>> {
        let Ok(spec) = meta.options.get_document("validator") else {
            return Ok(None);
        };
        let level = meta.options.get_str("validationLevel").unwrap_or("strict");
        if bypass || spec.is_empty() || level == "off" {
            return Ok(None);
        }
        Ok(Some(Validator {
            spec: spec.clone(),
            filter: Filter::parse(spec)?,
            moderate: level == "moderate",
            warn_only: meta.options.get_str("validationAction").is_ok_and(|a| a == "warn"),
        }))
    }

    /// Checks a document about to be written; `before` is the document it replaces (for moderate).
    pub fn check(validator: Option<&Validator>, doc: &Document, before: Option<&Document>) -> Result<()> {
        let Some(v) = validator else { return Ok(()) };
        if v.moderate && before.is_some_and(|old| !v.filter.matches(old)) {
            return Ok(());
        }
        if v.filter.matches(doc) {
            return Ok(());
        }
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        if v.warn_only {
            tracing::warn!(document_id = %id, "Document would fail validation");
            return Ok(());
        }
        Err(
            Error::new((121, "DocumentValidationFailure"), "Document failed validation").with_extra(doc! {"errInfo": {
                "failingDocumentId": id,
                "details": super::validation_details::explain(&v.spec, doc),
            }}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Namespace;

    fn meta(options: Document) -> CollectionMeta {
        CollectionMeta::new(Namespace::new("d", "c"), options)
    }

    #[test]
    fn levels_and_actions() -> Result<()> {
        let strict = meta(doc! {"validator": {"n": {"$gte": 0}}});
        let v = Validator::of(&strict, false)?;
        assert!(Validator::check(v.as_ref(), &doc! {"_id": 1, "n": 1}, None).is_ok());
        let refused = Validator::check(v.as_ref(), &doc! {"_id": 1, "n": -1}, None);
        assert_eq!(refused.err().map(|e| e.code), Some(121));
        assert!(Validator::of(&strict, true)?.is_none(), "bypassed");

        let moderate = meta(doc! {"validator": {"n": {"$gte": 0}}, "validationLevel": "moderate"});
        let v = Validator::of(&moderate, false)?;
        let invalid_before = doc! {"_id": 1, "n": -3};
        assert!(Validator::check(v.as_ref(), &doc! {"_id": 1, "n": -1}, Some(&invalid_before)).is_ok());

        let warn = meta(doc! {"validator": {"n": {"$gte": 0}}, "validationAction": "warn"});
        let v = Validator::of(&warn, false)?;
        assert!(Validator::check(v.as_ref(), &doc! {"_id": 1, "n": -1}, None).is_ok());
        Ok(())
    }
}

//! `collMod`: changes a collection's document validation, replicated as a `collMod` oplog entry.
//!
//! ```text
//! validator          a query document ({} removes validation); checked like create's
//! validationLevel    off | strict | moderate
//! validationAction   error | warn
//! changeStreamPreAndPostImages   {enabled: <bool>}: record pre-images for change streams (`changestream/`)
//! ```
//!
//! What mongod's collMod also changes but the engine does not implement (index `hidden` and
//! `expireAfterSeconds`, `recordPreImages`, capped sizes, views, time series, ...) is refused with
//! NotImplemented (238) rather than ignored; a field mongod does not know is 40415. The collection must exist
//! (NamespaceNotFound, 26). The reply waits for the command's write concern like the other DDL commands.

use bson::{Bson, Document};

use super::Context;
use super::args;
use super::catalog::{ddl_write_concern, wait_ddl_write_concern};
use crate::error::{Error, Result, code};
use crate::query::filter::Filter;

const NOT_IMPLEMENTED: (i32, &str) = (238, "NotImplemented");
/// mongod's error for a command field its IDL does not know (it has no code name).
use super::args::UNKNOWN_FIELD;

/// collMod fields mongod accepts that the engine does not implement.
const UNIMPLEMENTED: [&str; 11] = [
    "index",
    "recordPreImages",
    "expireAfterSeconds",
    "clusteredIndex",
    "timeseries",
    "timeseriesBucketsMayHaveMixedSchemaData",
    "viewOn",
    "pipeline",
    "cappedSize",
    "cappedMax",
    "dryRun",
];

/// Generic command fields that are not collection options.
const GENERIC: [&str; 7] = [
    "lsid",
    "txnNumber",
    "writeConcern",
    "comment",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
];

pub async fn coll_mod(ctx: &Context<'_>) -> Result<Document> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    ctx.node.member.check_writable(&ns.db)?;
    let wc = ddl_write_concern(ctx)?;
    let changes = validation_changes(ctx.body)?;
    let changed = ctx
        .node
        .storage
        .write(wc.j, {
            let ns = ns.clone();
            move |w| w.modify_collection_options(&ns, &changes)
        })
        .await??;
    if !changed {
        return Err(Error::new(
            code::NAMESPACE_NOT_FOUND,
            format!("ns does not exist: {ns}"),
        ));
    }
    Ok(wait_ddl_write_concern(ctx, &wc, Document::new()).await)
}

/// The validation options the command sets, each checked.
fn validation_changes(body: &Document) -> Result<Document> {
    let mut changes = Document::new();
    for (key, value) in body.iter().skip(1) {
        if key.starts_with('$') || GENERIC.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "validator" => {
                let Bson::Document(validator) = value else {
                    return Err(Error::type_mismatch("collMod: 'validator' must be an object"));
                };
                Filter::parse(validator)?;
            }
            "validationLevel" => check_choice(key, value, &["off", "strict", "moderate"])?,
            "validationAction" => check_choice(key, value, &["error", "warn"])?,
            // Change streams' pre- and post-images (`changestream/`): `{enabled: <bool>}`.
            "changeStreamPreAndPostImages" => check_pre_and_post_images(value)?,
            other if UNIMPLEMENTED.contains(&other) => {
                return Err(Error::new(
                    NOT_IMPLEMENTED,
                    format!("collMod '{other}' is not supported by the Faultline engine"),
                ));
            }
            other => {
                return Err(Error::new(
                    UNKNOWN_FIELD,
                    format!("BSON field 'collMod.{other}' is an unknown field."),
                ));
            }
        }
        changes.insert(key.clone(), value.clone());
    }
    Ok(changes)
}

fn check_pre_and_post_images(value: &Bson) -> Result<()> {
    let Bson::Document(spec) = value else {
        return Err(Error::type_mismatch(
            "BSON field 'collMod.changeStreamPreAndPostImages' is the wrong type, expected type 'object'",
        ));
    };
    for (key, value) in spec {
        match (key.as_str(), value) {
            ("enabled", Bson::Boolean(_)) => {}
            ("enabled", _) => {
                return Err(Error::type_mismatch(
                    "BSON field 'changeStreamPreAndPostImages.enabled' is the wrong type, expected type 'bool'",
                ));
            }
            (other, _) => {
                return Err(Error::new(
                    UNKNOWN_FIELD,
                    format!("BSON field 'changeStreamPreAndPostImages.{other}' is an unknown field."),
                ));
            }
        }
    }
    if !spec.contains_key("enabled") {
        return Err(Error::new(
            (40414, "Location40414"),
            "BSON field 'changeStreamPreAndPostImages.enabled' is missing but a required field",
        ));
    }
    Ok(())
}

fn check_choice(key: &str, value: &Bson, allowed: &[&str]) -> Result<()> {
    match value {
        Bson::String(s) if allowed.contains(&s.as_str()) => Ok(()),
        Bson::String(s) => Err(Error::bad_value(format!(
            "Enumeration value '{s}' for field 'collMod.{key}' is not a valid value."
        ))),
        _ => Err(Error::type_mismatch(format!("collMod: '{key}' must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    #[test]
    fn validation_options_are_checked_and_others_refused() {
        let body = doc! {"collMod": "c", "validator": {"x": {"$gt": 1}}, "validationLevel": "moderate",
        "validationAction": "warn", "writeConcern": {"w": 1}, "$db": "d"};
        let changes = validation_changes(&body).unwrap();
        assert_eq!(
            changes.keys().collect::<Vec<_>>(),
            ["validator", "validationLevel", "validationAction"]
        );
        let code_of = |body: Document| validation_changes(&body).unwrap_err().code;
        assert_eq!(code_of(doc! {"collMod": "c", "validationLevel": "loose"}), 2);
        assert_eq!(code_of(doc! {"collMod": "c", "validationAction": 1}), 14);
        assert_eq!(
            code_of(doc! {"collMod": "c", "index": {"name": "x_1", "hidden": true}}),
            238
        );
        assert_eq!(code_of(doc! {"collMod": "c", "bogus": 1}), 40415);
        assert_eq!(code_of(doc! {"collMod": "c", "validator": 5}), 14);
    }
}

//! The `$merge` stage, last in an `aggregate` pipeline: each output document is matched against the target
//! collection on the `on` fields and inserted, replaced, merged, kept or refused.
//!
//! ```text
//! {$merge: "<coll>"}  or  {$merge: {into: "<coll>" | {db, coll}, on: "<field>" | [<field>, ...],
//!          let: {...}, whenMatched: "merge" | "replace" | "keepExisting" | "fail" | [<update pipeline>],
//!          whenNotMatched: "insert" | "discard" | "fail"}}
//! ```
//!
//! Defaults as MongoDB's: `on: "_id"`, `whenMatched: "merge"`, `whenNotMatched: "insert"`. `on` fields other
//! than `_id` need a unique index on exactly those fields (51183); each output document must have them, not
//! null nor an array (51132). `whenMatched: "fail"` fails with the duplicate key (11000), `whenNotMatched:
//! "fail"` with 13113. A pipeline sees the output document as `$$new` (or the `let` variables, evaluated
//! against it). The target's validator applies unless `bypassDocumentValidation`. As in MongoDB the stage
//! is not atomic: the documents written before an error stay. All writes go in one storage write job; the
//! command waits for its `writeConcern` as `$out` does, and its cursor is empty.

use std::collections::HashMap;

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};

use super::Context;
use super::catalog::{ddl_write_concern, wait_ddl_write_concern};
use super::validator::Validator;
use crate::error::{Error, Result, code};
use crate::query::expr::Expr;
use crate::query::update::Update;
use crate::query::variables::Variables;
use crate::storage::{Namespace, WriteCtx, keystring};

/// What to do with an output document that matches a target document.
#[derive(Debug, Clone)]
enum WhenMatched {
    Merge,
    Replace,
    KeepExisting,
    Fail,
    Pipeline(Vec<Document>),
}

/// What to do with an output document that matches none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

/// A parsed `$merge` specification.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    pub target: Namespace,
    /// The stage's specification with `into` spelled `{db, coll}` (what a secondary sends the primary).
    pub stage: Document,
    on: Vec<String>,
    let_vars: Option<Document>,
    when_matched: WhenMatched,
    when_not_matched: WhenNotMatched,
}

impl MergeSpec {
    pub fn parse(spec: &Bson, db: &str) -> Result<MergeSpec> {
        let spec = match spec {
            Bson::String(coll) => doc! {"into": coll},
            Bson::Document(d) => d.clone(),
            _ => {
                return Err(Error::failed_to_parse(
                    "$merge requires a string or object argument, but found a different type",
                ));
            }
        };
        if let Some(unknown) = spec
            .keys()
            .find(|k| !matches!(k.as_str(), "into" | "on" | "let" | "whenMatched" | "whenNotMatched"))
        {
            return Err(Error::new(
                (40415, "Location40415"),
                format!("BSON field '$merge.{unknown}' is an unknown field."),
            ));
        }
        let target = match spec.get("into") {
            Some(Bson::String(coll)) => Namespace::new(db, coll),
            Some(Bson::Document(d)) => {
                let coll = d
                    .get_str("coll")
                    .map_err(|_| Error::failed_to_parse("$merge 'into' requires a 'coll' string"))?;
                Namespace::new(d.get_str("db").unwrap_or(db), coll)
            }
            Some(_) => {
                return Err(Error::type_mismatch(
                    "BSON field '$merge.into' must be a string or an object",
                ));
            }
            None => {
                return Err(Error::new(
                    (40414, "Location40414"),
                    "BSON field '$merge.into' is missing but a required field",
                ));
            }
        };
        if target.coll.is_empty() || target.coll.starts_with("system.") || target.db == "local" || target.db == "admin"
        {
            return Err(Error::new(
                code::INVALID_NAMESPACE,
                format!("Invalid $merge target namespace, {target}"),
            ));
        }
        let on = match spec.get("on") {
            None => vec!["_id".to_string()],
            Some(Bson::String(field)) => vec![field.clone()],
            Some(Bson::Array(fields)) if !fields.is_empty() => fields
                .iter()
                .map(|f| match f {
                    Bson::String(s) => Ok(s.clone()),
                    _ => Err(Error::new(
                        (51134, "Location51134"),
                        "$merge 'on' array elements must be strings",
                    )),
                })
                .collect::<Result<_>>()?,
            Some(Bson::Array(_)) => {
                return Err(Error::new(
                    (51187, "Location51187"),
                    "If explicitly specifying $merge 'on', must include at least one field",
                ));
            }
            Some(_) => {
                return Err(Error::new(
                    (51186, "Location51186"),
                    "$merge 'on' field must be either a string or an array of strings",
                ));
            }
        };
        let enumeration = |field: &str, value: &str| {
            Error::bad_value(format!(
                "Enumeration value '{value}' for field '$merge.{field}' is not a valid value."
            ))
        };
        let when_matched = match spec.get("whenMatched") {
            None => WhenMatched::Merge,
            Some(Bson::String(mode)) => match mode.as_str() {
                "merge" => WhenMatched::Merge,
                "replace" => WhenMatched::Replace,
                "keepExisting" => WhenMatched::KeepExisting,
                "fail" => WhenMatched::Fail,
                other => return Err(enumeration("whenMatched", other)),
            },
            Some(Bson::Array(stages)) => WhenMatched::Pipeline(
                stages
                    .iter()
                    .map(|s| {
                        s.as_document()
                            .cloned()
                            .ok_or_else(|| Error::type_mismatch("each stage of a $merge pipeline must be an object"))
                    })
                    .collect::<Result<_>>()?,
            ),
            Some(_) => {
                return Err(Error::type_mismatch(
                    "BSON field '$merge.whenMatched' must be a string or an array",
                ));
            }
        };
        let when_not_matched = match spec.get("whenNotMatched") {
            None => WhenNotMatched::Insert,
            Some(Bson::String(mode)) => match mode.as_str() {
                "insert" => WhenNotMatched::Insert,
                "discard" => WhenNotMatched::Discard,
                "fail" => WhenNotMatched::Fail,
                other => return Err(enumeration("whenNotMatched", other)),
            },
            Some(_) => {
                return Err(Error::type_mismatch(
                    "BSON field '$merge.whenNotMatched' is the wrong type, expected type 'string'",
                ));
            }
        };
        let let_vars = match spec.get("let") {
            None | Some(Bson::Null) => None,
            Some(Bson::Document(vars)) => {
                if !matches!(when_matched, WhenMatched::Pipeline(_)) {
                    return Err(Error::new(
                        (51199, "Location51199"),
                        "Cannot use 'let' variables with 'whenMatched' mode other than a pipeline",
                    ));
                }
                Some(vars.clone())
            }
            Some(_) => return Err(Error::type_mismatch("BSON field '$merge.let' must be an object")),
        };
        let mut stage = spec.clone();
        stage.insert("into", doc! {"db": target.db.clone(), "coll": target.coll.clone()});
        Ok(MergeSpec {
            target,
            stage,
            on,
            let_vars,
            when_matched,
            when_not_matched,
        })
    }

    fn on_id(&self) -> bool {
        self.on.len() == 1 && self.on[0] == "_id"
    }

    /// The values of the `on` fields of an output document (51132 when one is missing, null or an array).
    fn on_key(&self, doc: &Document) -> Result<Vec<u8>> {
        let mut key = Vec::new();
        for field in &self.on {
            match crate::query::path::lookup(doc, field) {
                None | Some(Bson::Null | Bson::Undefined | Bson::Array(_)) => {
                    return Err(Error::new(
                        (51132, "Location51132"),
                        format!(
                            "$merge write error: 'on' field '{field}' cannot be missing, null, undefined or an array"
                        ),
                    ));
                }
                Some(value) => key.extend(keystring::encode(value)),
            }
        }
        Ok(key)
    }

    /// The variables a `whenMatched` pipeline sees for one output document.
    fn variables(&self, new: &Document) -> Result<Variables> {
        let literal = |value: Bson| Bson::Document(doc! {"$literal": value});
        let spec = match &self.let_vars {
            None => doc! {"new": literal(Bson::Document(new.clone()))},
            Some(vars) => {
                let mut evaluated = Document::new();
                for (name, expr) in vars {
                    let value = Expr::parse(expr)?.evaluate(new)?.unwrap_or(Bson::Null);
                    evaluated.insert(name.clone(), literal(value));
                }
                evaluated
            }
        };
        Ok(Variables::parse(&spec)?)
    }
}

/// Merges `output` into the target; the command's reply (an empty cursor on the source namespace).
pub async fn write(ctx: &Context<'_>, source: &Namespace, spec: MergeSpec, output: Vec<Document>) -> Result<Document> {
    ctx.node.member.check_writable(&spec.target.db)?;
    let bypass = super::args::opt_bool(ctx.body, "bypassDocumentValidation")?.unwrap_or(false);
    let wc = ddl_write_concern(ctx)?;
    let now = ctx.node.clock().now();
    ctx.node
        .storage
        .write(wc.j, move |w| merge_all(w, &spec, output, bypass, now))
        .await??;
    let reply = doc! {"cursor": {"firstBatch": [], "id": 0i64, "ns": source.full()}};
    Ok(wait_ddl_write_concern(ctx, &wc, reply).await)
}

fn merge_all(
    w: &mut WriteCtx<'_>,
    spec: &MergeSpec,
    output: Vec<Document>,
    bypass: bool,
    now: bson::DateTime,
) -> Result<()> {
    let existing = w.collection(&spec.target)?;
    if !spec.on_id() {
        let indexed = existing.as_ref().is_some_and(|meta| {
            meta.unique_indexes().any(|index| {
                let mut fields: Vec<&str> = index.fields().collect();
                let mut on: Vec<&str> = spec.on.iter().map(String::as_str).collect();
                fields.sort_unstable();
                on.sort_unstable();
                fields == on
            })
        });
        if !indexed {
            return Err(Error::new(
                (51183, "Location51183"),
                "Cannot find index to verify that join fields will be unique",
            ));
        }
    }
    let meta = match existing {
        Some(meta) => meta,
        None if output.is_empty() => return Ok(()),
        None => w.ensure_collection(&spec.target)?,
    };
    let validator = Validator::of(&meta, bypass)?;
    // Target documents by their `on` key (for `on` other than `_id`), kept current as the stage writes.
    let mut by_key: HashMap<Vec<u8>, Document> = HashMap::new();
    if !spec.on_id() {
        for doc in w.scan(&meta, |_| true, usize::MAX)? {
            if let Ok(key) = spec.on_key(&doc) {
                by_key.insert(key, doc);
            }
        }
    }
    for mut doc in output {
        if spec.on_id() && !doc.contains_key("_id") {
            let mut with_id = doc! {"_id": ObjectId::new()};
            with_id.extend(doc);
            doc = with_id;
        }
        let key = spec.on_key(&doc)?;
        let matched = if spec.on_id() {
            w.get_by_id(&meta, doc.get("_id").unwrap_or(&Bson::Null))?
        } else {
            by_key.get(&key).cloned()
        };
        let written = match matched {
            None => match spec.when_not_matched {
                WhenNotMatched::Discard => None,
                WhenNotMatched::Fail => {
                    return Err(Error::new(
                        (13113, "MergeStageNoMatchingDocument"),
                        "$merge could not find a matching document in the target collection for at least one document in the source collection",
                    ));
                }
                WhenNotMatched::Insert => {
                    let mut doc = doc;
                    if !doc.contains_key("_id") {
                        let mut with_id = doc! {"_id": ObjectId::new()};
                        with_id.extend(doc);
                        doc = with_id;
                    }
                    Validator::check(validator.as_ref(), &doc, None)?;
                    w.insert(&meta, doc.clone(), None)?;
                    Some(doc)
                }
            },
            Some(before) => {
                let after = match &spec.when_matched {
                    WhenMatched::KeepExisting => None,
                    WhenMatched::Fail => {
                        // The insert fails with the duplicate key, as mongod's does.
                        w.insert(&meta, doc, None)?;
                        return Err(Error::new(code::DUPLICATE_KEY, "$merge: the document matched"));
                    }
                    WhenMatched::Replace => Some(replacement(&before, doc)?),
                    WhenMatched::Merge => {
                        let mut merged = before.clone();
                        for (name, value) in doc {
                            merged.insert(name, value);
                        }
                        Some(merged)
                    }
                    WhenMatched::Pipeline(stages) => {
                        let vars = spec.variables(&doc)?;
                        let update = Update::parse_pipeline(&vars.bind_stages(stages), &[])?;
                        let mut updated = before.clone();
                        update.apply(&mut updated, false, now)?;
                        Some(updated)
                    }
                };
                match after {
                    Some(after) if after != before => {
                        check_id_kept(&before, &after)?;
                        Validator::check(validator.as_ref(), &after, Some(&before))?;
                        w.replace(&meta, &before, after.clone(), None)?;
                        Some(after)
                    }
                    _ => None,
                }
            }
        };
        if let Some(written) = written
            && !spec.on_id()
        {
            by_key.insert(key, written);
        }
    }
    Ok(())
}

/// `whenMatched: "replace"`: the output document in place of the target's, keeping its `_id`.
fn replacement(before: &Document, doc: Document) -> Result<Document> {
    let mut after = doc! {"_id": before.get("_id").cloned().unwrap_or(Bson::Null)};
    for (name, value) in doc {
        if name == "_id" {
            if value != *after.get("_id").unwrap_or(&Bson::Null) {
                return Err(Error::new(
                    (66, "ImmutableField"),
                    "$merge failed to update the matching document, did you attempt to modify the _id or the shard key?",
                ));
            }
            continue;
        }
        after.insert(name, value);
    }
    Ok(after)
}

fn check_id_kept(before: &Document, after: &Document) -> Result<()> {
    if before.get("_id") == after.get("_id") {
        return Ok(());
    }
    Err(Error::new(
        (66, "ImmutableField"),
        "$merge failed to update the matching document, did you attempt to modify the _id or the shard key?",
    ))
}

//! The `$out` stage, last in an `aggregate` pipeline: the pipeline's whole output replaces a collection.
//! Also where a trailing `$out` or `$merge` is recognised ([`split`]) and its write dispatched ([`write`]).
//!
//! ```text
//! {$out: "<coll>"}  or  {$out: {db: "<db>", coll: "<coll>"}}
//! ```
//!
//! The output is written to a temporary collection (`tmp.agg_out.<uuid>`, the target's options and indexes
//! copied), which then replaces the target in one rename with `dropTarget`, all in one storage write: a reader
//! sees the old contents or the new ones. Documents without `_id` get an ObjectId; a duplicate `_id` or unique
//! key fails the stage (11000) and leaves the target as it was, as does a document the target's validator
//! refuses (121, unless `bypassDocumentValidation`); a `linearizable` read concern is refused (72). The command waits for its `writeConcern`
//! like the DDL commands, and its cursor is empty. On a secondary (the client allowed reading there) the
//! pipeline reads locally and the primary writes its output ([`write_through_primary`]), as in MongoDB 5.0+.

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};

use super::Context;
use super::catalog::{ddl_write_concern, wait_ddl_write_concern};
use super::merge_stage::MergeSpec;
use super::validator::Validator;
use crate::error::{Error, Result, code};
use crate::storage::Namespace;

/// The stage that writes a pipeline's output: `$out`, or `$merge` (`merge_stage.rs`).
pub enum WriteStage {
    Out(Namespace),
    Merge(Box<MergeSpec>),
}

/// The trailing `$out` or `$merge` stage, with the stages before it; `None` when the pipeline has none.
pub fn split(stages: &[Document], db: &str) -> Result<Option<(Vec<Document>, WriteStage)>> {
    let Some((last, before)) = stages.split_last() else {
        return Ok(None);
    };
    for name in ["$out", "$merge"] {
        if before.iter().any(|s| s.contains_key(name)) {
            return Err(Error::new(
                (40601, "Location40601"),
                format!("{name} can only be the final stage in the pipeline"),
            ));
        }
    }
    if let Some(spec) = last.get("$merge") {
        return Ok(Some((
            before.to_vec(),
            WriteStage::Merge(Box::new(MergeSpec::parse(spec, db)?)),
        )));
    }
    let Some(spec) = last.get("$out") else {
        return Ok(None);
    };
    let target = match spec {
        Bson::String(coll) => Namespace::new(db, coll),
        Bson::Document(d) => match (d.get_str("db"), d.get_str("coll")) {
            (Ok(db), Ok(coll)) => Namespace::new(db, coll),
            _ => {
                return Err(Error::failed_to_parse(
                    "$out: the target must be a collection name or {db: <string>, coll: <string>}",
                ));
            }
        },
        _ => {
            return Err(Error::failed_to_parse(
                "$out: the target must be a collection name or {db: <string>, coll: <string>}",
            ));
        }
    };
    if target.coll.is_empty() || target.coll.starts_with("system.") || target.db == "local" {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("Invalid $out target namespace, {target}"),
        ));
    }
    Ok(Some((before.to_vec(), WriteStage::Out(target))))
}

/// Writes a pipeline's output as its last stage says; the command's reply (an empty cursor on the source
/// namespace). Neither stage runs under a `linearizable` read concern (72).
pub async fn write(
    ctx: &Context<'_>,
    source: &Namespace,
    stage: WriteStage,
    output: Vec<Document>,
) -> Result<Document> {
    let linearizable = ctx
        .body
        .get_document("readConcern")
        .ok()
        .and_then(|rc| rc.get_str("level").ok())
        == Some("linearizable");
    let name = match stage {
        WriteStage::Out(_) => "$out",
        WriteStage::Merge(_) => "$merge",
    };
    if linearizable {
        return Err(Error::new(
            code::INVALID_OPTIONS,
            format!("{name} cannot be used with a 'linearizable' read concern level"),
        ));
    }
    if !ctx.node.member.role().writable && ctx.secondary_ok {
        return write_through_primary(ctx, source, stage, output).await;
    }
    match stage {
        WriteStage::Out(target) => write_out(ctx, source, target, output).await,
        WriteStage::Merge(spec) => super::merge_stage::write(ctx, source, *spec, output).await,
    }
}

/// A secondary read the pipeline's input (the client allowed it); the primary writes the output: the
/// secondary sends it `{aggregate: 1, pipeline: [{$documents: <output>}, <the stage>]}` with the command's
/// write concern and `bypassDocumentValidation`. The output travels in one message, so it must fit in 16 MiB
/// (mongod sends batches).
async fn write_through_primary(
    ctx: &Context<'_>,
    source: &Namespace,
    stage: WriteStage,
    output: Vec<Document>,
) -> Result<Document> {
    let (db, last) = match stage {
        WriteStage::Out(target) => (target.db.clone(), doc! {"$out": {"db": target.db, "coll": target.coll}}),
        WriteStage::Merge(spec) => (spec.target.db.clone(), doc! {"$merge": spec.stage}),
    };
    let mut body = doc! {
        "aggregate": 1,
        "pipeline": [{"$documents": output}, last],
        "cursor": {},
        "$db": db,
    };
    for option in ["writeConcern", "bypassDocumentValidation", "comment"] {
        if let Some(value) = ctx.body.get(option) {
            body.insert(option, value.clone());
        }
    }
    ctx.node.member.run_on_primary(&body).await?;
    Ok(doc! {"cursor": {"firstBatch": [], "id": 0i64, "ns": source.full()}})
}

/// Replaces `target`'s contents with `output`.
async fn write_out(
    ctx: &Context<'_>,
    source: &Namespace,
    target: Namespace,
    output: Vec<Document>,
) -> Result<Document> {
    ctx.node.member.check_writable(&target.db)?;
    let bypass = super::args::opt_bool(ctx.body, "bypassDocumentValidation")?.unwrap_or(false);
    let wc = ddl_write_concern(ctx)?;
    let temp = Namespace::new(&target.db, &format!("tmp.agg_out.{}", bson::Uuid::new()));
    ctx.node
        .storage
        .write(wc.j, move |w| {
            let existing = w.collection(&target)?;
            let options = existing.as_ref().map(|m| m.options.clone()).unwrap_or_default();
            let meta = w.create_collection(&temp, options)?;
            for index in existing
                .iter()
                .flat_map(|m| m.indexes.iter())
                .filter(|i| i.name != "_id_")
            {
                w.create_index(&temp, &index.spec)?;
            }
            let meta = w.collection(&temp)?.unwrap_or(meta);
            let validator = Validator::of(&meta, bypass)?;
            for mut doc in output {
                if !doc.contains_key("_id") {
                    let mut with_id = doc! {"_id": ObjectId::new()};
                    with_id.extend(doc);
                    doc = with_id;
                }
                let written =
                    Validator::check(validator.as_ref(), &doc, None).and_then(|()| w.insert(&meta, doc, None));
                if let Err(err) = written {
                    w.drop_collection(&temp)?;
                    return Err(err);
                }
            }
            w.rename_collection(&temp, &target, true, false)
        })
        .await??;
    let reply = doc! {"cursor": {"firstBatch": [], "id": 0i64, "ns": source.full()}};
    Ok(wait_ddl_write_concern(ctx, &wc, reply).await)
}

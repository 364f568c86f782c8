//! Database-level aggregation, `{aggregate: 1, pipeline: [...]}`: pipelines whose first stage makes its own
//! documents instead of reading a collection (and `$changeStream`, a database or cluster change stream,
//! `changestream/`). `$documents` (its literal array), `$currentOp` (admin only,
//! `current_op.rs`) and `$listLocalSessions` (the member's session cache, `local_sessions.rs`) are the sources;
//! the rest of the pipeline runs on their output, and the reply is a cursor on `<db>.$cmd.aggregate`. Any
//! other first stage needs a collection (InvalidNamespace, as mongod answers).

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use super::read::{DEFAULT_BATCH, batch_size, next_batch};
use crate::cursor::{Cursor, CursorSource};
use crate::error::{Error, Result, code};
use crate::storage::Namespace;

/// mongod's error for an unknown field of a stage parsed from its IDL (it has no code name).
use super::args::UNKNOWN_FIELD;

/// The `aggregate` command with `aggregate: 1`.
pub async fn aggregate(ctx: &Context<'_>) -> Result<Document> {
    if !matches!(
        ctx.body.get("aggregate"),
        Some(Bson::Int32(1) | Bson::Int64(1) | Bson::Double(1.0))
    ) {
        return Err(Error::new(
            code::FAILED_TO_PARSE,
            "Invalid value for 'aggregate': must be a collection name (string) or the number 1",
        ));
    }
    let stages = args::command_variables(ctx)?.bind_stages(&super::read::pipeline_stages(ctx.body)?);
    if crate::changestream::is_change_stream(&stages) {
        let batch = super::read::change_stream_batch(ctx.body)?;
        return crate::changestream::aggregate(ctx, None, &stages, batch).await;
    }
    let cursor_opts = args::opt_doc(ctx.body, "cursor")?.ok_or_else(|| {
        Error::failed_to_parse("The 'cursor' option is required, except for aggregate with the explain argument")
    })?;
    let batch = batch_size(cursor_opts, DEFAULT_BATCH)?;
    args::opt_bool(ctx.body, "allowDiskUse")?;
    let Some((first, rest)) = stages.split_first() else {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            "{aggregate: 1} is not valid for an empty pipeline; a collection is required.",
        ));
    };
    let out = super::out_stage::split(rest, &ctx.db)?;
    let rest = out.as_ref().map_or(rest, |(before, _)| before.as_slice());
    let source = source_documents(ctx, first)?;
    let output = crate::query::pipeline::run(rest, source, ctx.node.clock().now())?;
    let ns = Namespace::new(&ctx.db, "$cmd.aggregate");
    if let Some((_, target)) = out {
        return super::out_stage::write(ctx, &ns, target, output).await;
    }
    let mut cursor = Cursor::new(ns.clone(), CursorSource::Buffered(output.into()));
    let (docs, exhausted) = next_batch(ctx.node, &mut cursor, batch)?;
    let id = if exhausted {
        0
    } else {
        ctx.node.cursors.register(cursor)
    };
    Ok(doc! {"cursor": {"firstBatch": docs, "id": id, "ns": ns.full()}})
}

/// The documents the pipeline's first stage produces.
fn source_documents(ctx: &Context<'_>, first: &Document) -> Result<Vec<Document>> {
    let Some((name, spec)) = first.iter().next() else {
        return Err(Error::failed_to_parse(
            "A pipeline stage specification object must contain exactly one field.",
        ));
    };
    match name.as_str() {
        "$documents" => documents(spec),
        "$currentOp" => super::current_op::stage_output(ctx, spec),
        "$listLocalSessions" => {
            list_local_sessions_options(spec)?;
            Ok(ctx.node.local_sessions.list())
        }
        other => Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("{{aggregate: 1}} is not valid for '{other}'; a collection is required."),
        )),
    }
}

/// `$documents: [<document>, ...]`: the literal documents, in order.
fn documents(spec: &Bson) -> Result<Vec<Document>> {
    let Bson::Array(items) = spec else {
        return Err(Error::failed_to_parse("$documents: an array of documents is expected"));
    };
    items
        .iter()
        .map(|item| {
            item.as_document()
                .cloned()
                .ok_or_else(|| Error::failed_to_parse("$documents: each element of the array must be a document"))
        })
        .collect()
}

/// `$listLocalSessions: {}` or `{allUsers: <bool>}` or `{users: [{user, db}, ...]}`: with no users in the
/// engine every form lists every session, but the options are checked as mongod checks them.
fn list_local_sessions_options(spec: &Bson) -> Result<()> {
    let Bson::Document(spec) = spec else {
        return Err(Error::type_mismatch("$listLocalSessions must be an object"));
    };
    for (key, value) in spec {
        match (key.as_str(), value) {
            ("allUsers", Bson::Boolean(_)) | ("users", Bson::Array(_)) => {}
            ("allUsers" | "users", _) => {
                return Err(Error::type_mismatch(format!(
                    "$listLocalSessions: '{key}' has the wrong type"
                )));
            }
            _ => {
                return Err(Error::new(
                    UNKNOWN_FIELD,
                    format!("BSON field '$listLocalSessions.{key}' is an unknown field."),
                ));
            }
        }
    }
    if spec.get_bool("allUsers").unwrap_or(false) && spec.contains_key("users") {
        return Err(Error::bad_value(
            "$listLocalSessions: cannot specify both 'allUsers' and 'users'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_stage_takes_a_literal_array_of_documents() {
        let out = documents(&Bson::Array(vec![
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 2}),
        ]))
        .unwrap();
        assert_eq!(out, vec![doc! {"a": 1}, doc! {"a": 2}]);
        assert!(documents(&Bson::Int32(1)).is_err());
        assert!(documents(&Bson::Array(vec![Bson::Int32(1)])).is_err());
    }

    #[test]
    fn list_local_sessions_options_are_checked() {
        assert!(list_local_sessions_options(&Bson::Document(doc! {})).is_ok());
        assert!(list_local_sessions_options(&Bson::Document(doc! {"allUsers": true})).is_ok());
        assert!(list_local_sessions_options(&Bson::Document(doc! {"bogus": 1})).is_err());
        assert!(list_local_sessions_options(&Bson::Document(doc! {"allUsers": true, "users": []})).is_err());
    }
}

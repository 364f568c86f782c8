//! Write commands: insert, update, delete, findAndModify.
//!
//! Each command runs as one job of the storage writer (so it shares a group commit with concurrent writes),
//! then waits for its write concern. Retryable writes (`lsid` + `txnNumber`) look up each statement in the
//! session table first and return the stored result instead of applying it twice.
//!
//! Updates are operator, replacement or pipeline-style (`query::update`), with `arrayFilters` and the
//! query's matched array position for the positional operators; `let` (and a statement's `c`) variables are
//! bound into filters and update pipelines; a statement's `hint` and `collation` are checked (`options`);
//! every document written goes through the collection's validator (`validator`) unless the command says
//! `bypassDocumentValidation`.

use std::sync::Arc;

use bson::{Bson, Document, doc, oid::ObjectId};

use super::Context;
use super::args;
use super::options;
use super::validator::Validator;
use crate::bsonx;
use crate::depth;
use crate::error::{Error, Result, code};
use crate::failpoint;
use crate::member::{WriteConcern, WriteMode};
use crate::node::Counters;
use crate::query::collation::Collation;
use crate::query::filter::Filter;
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::query::update::Update;
use crate::query::variables::Variables;
use crate::storage::{CollectionMeta, JobSize, Namespace, RetryImage, SessionStatement, WriteCtx};

/// The maximum size of a stored document.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The session identity of a retryable write command: statement `i` gets `stmtIds[i]` or `stmtId + i`.
#[derive(Clone)]
struct RetryableWrite {
    lsid: Document,
    txn_number: i64,
    stmt_ids: Option<Vec<i32>>,
    first_stmt_id: i32,
}

impl RetryableWrite {
    fn parse(body: &Document) -> Result<Option<RetryableWrite>> {
        let Some(txn) = body.get("txnNumber") else {
            return Ok(None);
        };
        let txn_number = bsonx::as_i64(txn).ok_or_else(|| Error::type_mismatch("txnNumber must be a long"))?;
        let lsid = args::opt_doc(body, "lsid")?
            .ok_or_else(|| {
                Error::new(
                    code::ILLEGAL_OPERATION,
                    "Transaction number requires a session ID to also be specified",
                )
            })?
            .clone();
        let stmt_ids = args::opt_array(body, "stmtIds")?
            .map(|ids| {
                ids.iter()
                    .map(|v| bsonx::as_i64(v).map(|n| n as i32))
                    .collect::<Option<Vec<_>>>()
            })
            .map(|ids| ids.ok_or_else(|| Error::type_mismatch("stmtIds must be numbers")))
            .transpose()?;
        let first_stmt_id = args::opt_i64(body, "stmtId")?.unwrap_or(0) as i32;
        Ok(Some(RetryableWrite {
            lsid,
            txn_number,
            stmt_ids,
            first_stmt_id,
        }))
    }

    fn statement(&self, index: usize) -> SessionStatement {
        let stmt_id = match &self.stmt_ids {
            Some(ids) => ids.get(index).copied().unwrap_or(self.first_stmt_id + index as i32),
            None => self.first_stmt_id + index as i32,
        };
        SessionStatement {
            lsid: self.lsid.clone(),
            txn_number: self.txn_number,
            stmt_id,
            retry_image: None,
        }
    }
}

/// What every write command parses first.
struct WriteCommon {
    ns: Namespace,
    ordered: bool,
    wc: WriteConcern,
    session: Option<RetryableWrite>,
    /// `bypassDocumentValidation`: the collection validator is not applied.
    bypass_validation: bool,
}

fn common(ctx: &Context<'_>) -> Result<WriteCommon> {
    let ns = args::namespace(ctx.body, &ctx.db)?;
    if (ns.coll.starts_with("system.") && ns.db != "local") || ns.is_engine_view() {
        return Err(Error::new(code::INVALID_NAMESPACE, format!("cannot write to '{ns}'")));
    }
    ctx.node.member.check_writable(&ns.db)?;
    Ok(WriteCommon {
        ordered: args::opt_bool(ctx.body, "ordered")?.unwrap_or(true),
        wc: super::rw_defaults::resolve_write_concern(ctx, args::opt_doc(ctx.body, "writeConcern")?)?,
        session: RetryableWrite::parse(ctx.body)?,
        bypass_validation: args::opt_bool(ctx.body, "bypassDocumentValidation")?.unwrap_or(false),
        ns,
    })
}

/// Runs a write job with the command's durability, then waits for the write concern; returns the job's
/// output and the `writeConcernError` to attach, if any.
async fn run_job<R: Send + 'static>(
    ctx: &Context<'_>,
    wc: &WriteConcern,
    session: Option<RetryableWrite>,
    size: JobSize,
    job: impl FnOnce(&mut WriteCtx<'_>) -> R + Send + 'static,
) -> Result<(R, Option<Document>)> {
    tracing::trace!(target: "write_path", "cmd.start");
    // Another write running here (waiting for its write concern, say) means a load whose writes should share
    // the writer's group commits: only a lone write may run on this task.
    let in_flight = ctx.node.writes_in_flight.enter();
    let size = if in_flight.alone() { size } else { JobSize::Any };
    let journaled = wc.j || (wc.w == WriteMode::Majority && journals_majority(ctx));
    // Counted before it commits: the sync sources' batches carrying its entry tell their fetchers.
    let _durable_waiter =
        (journaled && !matches!(wc.w, WriteMode::Nodes(n) if n <= 1)).then(|| ctx.node.member.await_durable_members());
    let skip_fsync = journaled && ctx.node.failpoints.hit(failpoint::SKIP_JOURNAL_FSYNC).is_some();
    let durable = wc.j && !skip_fsync;
    let output = ctx
        .node
        .storage
        .write_sized(durable, size, move |w| {
            if skip_fsync {
                w.withhold_from_journal();
            }
            // A retry of an older transaction number fails the whole command (TransactionTooOld).
            if let Some(session) = &session {
                w.executed_statement(&session.statement(0))?;
            }
            Ok::<R, crate::error::Error>(job(w))
        })
        .await??;
    let ack_early = wc.w == WriteMode::Majority
        && ctx
            .node
            .failpoints
            .hit(failpoint::ACK_MAJORITY_BEFORE_REPLICATION)
            .is_some();
    if ack_early {
        return Ok((output, None));
    }
    let optime = ctx.node.storage.positions().last_written;
    ctx.operation_time.note(optime.ts);
    tracing::trace!(target: "write_path", ts = crate::storage::ts_to_u64(optime.ts), "cmd.committed");
    let wc_error = if skip_fsync {
        // The bug skips every fsync, not the replication: the write still waits until the members its write
        // concern names have applied it (durable or not), so what it loses on a crash is only the journal's part.
        let config = ctx.node.member.role().config.clone();
        let write_majority = config.map_or(1, |c| c.write_majority_count());
        ctx.node
            .member
            .wait_for_write_concern(optime, &wc.applied_only(write_majority))
            .await
    } else {
        ctx.node.member.wait_for_write_concern(optime, wc).await
    };
    tracing::trace!(target: "write_path", ts = crate::storage::ts_to_u64(optime.ts), "cmd.acked");
    Ok((output, wc_error))
}

/// Whether `w:"majority"` implies the journal here (`writeConcernMajorityJournalDefault`).
fn journals_majority(ctx: &Context<'_>) -> bool {
    let role = ctx.node.member.role();
    role.config.is_some_and(|c| c.write_concern_majority_journal_default)
}

/// How many write commands are running on this node (from their job's submission to their reply).
#[derive(Debug, Default)]
pub struct WritesInFlight(std::sync::atomic::AtomicUsize);

impl WritesInFlight {
    fn enter(&self) -> InFlightWrite<'_> {
        let before = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlightWrite {
            count: &self.0,
            alone: before == 0,
        }
    }
}

/// One running write command, counted in [`WritesInFlight`] until it is dropped.
struct InFlightWrite<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    alone: bool,
}

impl InFlightWrite<'_> {
    /// Whether no other write command was running when this one began.
    fn alone(&self) -> bool {
        self.alone
    }
}

impl Drop for InFlightWrite<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The most statements a write command may carry and still be a [`JobSize::Small`] job.
const SMALL_WRITE_STATEMENTS: usize = 16;

/// How much work a write command's job is: small when it has at most [`SMALL_WRITE_STATEMENTS`] statements
/// and each is `bounded` (its work is linear in its own bytes: an insert, or a filter that pins `_id`, which
/// `find_targets` looks up rather than scans). A statement that failed to parse does no work.
fn job_size<T>(statements: &[Result<T>], bounded: impl Fn(&T) -> bool) -> JobSize {
    let small = statements.len() <= SMALL_WRITE_STATEMENTS
        && statements.iter().all(|stmt| stmt.as_ref().map_or(true, &bounded));
    if small { JobSize::Small } else { JobSize::Any }
}

fn finish(mut reply: Document, write_errors: Vec<Document>, wc_error: Option<Document>) -> Document {
    if !write_errors.is_empty() {
        reply.insert("writeErrors", write_errors);
    }
    if let Some(err) = wc_error {
        reply.insert("writeConcernError", err);
    }
    reply
}

fn documents<'a>(body: &'a Document, field: &str) -> Result<&'a Vec<Bson>> {
    args::opt_array(body, field)?
        .ok_or_else(|| Error::failed_to_parse(format!("BSON field '{field}' is missing but a required field")))
}

/// Puts `_id` first, generating an ObjectId when missing; rejects array `_id`s, documents nested deeper than
/// MongoDB stores (Overflow, its wording) and oversized documents.
fn prepare_insert(doc: &Bson) -> Result<Document> {
    let Bson::Document(doc) = doc else {
        return Err(Error::type_mismatch("documents to insert must be objects"));
    };
    let mut out = Document::new();
    match doc.get("_id") {
        Some(Bson::Array(_)) => return Err(Error::bad_value("can't use an array for _id")),
        Some(Bson::RegularExpression(_)) => return Err(Error::bad_value("can't use a regex for _id")),
        Some(id) => {
            if let Some(name) = dollar_prefixed_name(id) {
                return Err(Error::new(
                    (52, "DollarPrefixedFieldName"),
                    format!("_id fields may not contain '$'-prefixed fields: {name} is not valid for storage."),
                ));
            }
            out.insert("_id", id.clone())
        }
        None => out.insert("_id", ObjectId::new()),
    };
    for (k, v) in doc {
        if k != "_id" {
            out.insert(k.clone(), v.clone());
        }
    }
    if !depth::document_within(&out, depth::MAX_DOCUMENT_DEPTH) {
        return Err(Error::new(
            code::OVERFLOW,
            format!(
                "cannot insert document because it exceeds {} levels of nesting",
                depth::MAX_DOCUMENT_DEPTH
            ),
        ));
    }
    let size = out.to_vec()?.len();
    if size > MAX_DOCUMENT_BYTES {
        return Err(Error::new(
            (10334, "BSONObjectTooLarge"),
            format!("object to insert too large. size in bytes: {size}, max size: {MAX_DOCUMENT_BYTES}"),
        ));
    }
    Ok(out)
}

/// The first `$`-prefixed field name inside an `_id` value (DBRef's `$ref`, `$id` and `$db` allowed), which
/// mongod refuses to store.
fn dollar_prefixed_name(value: &Bson) -> Option<&str> {
    match value {
        Bson::Document(doc) => doc.iter().find_map(|(name, child)| {
            if name.starts_with('$') && !matches!(name.as_str(), "$ref" | "$id" | "$db") {
                Some(name.as_str())
            } else {
                dollar_prefixed_name(child)
            }
        }),
        Bson::Array(items) => items.iter().find_map(dollar_prefixed_name),
        _ => None,
    }
}

pub async fn insert(ctx: &Context<'_>) -> Result<Document> {
    let common = common(ctx)?;
    let raw = documents(ctx.body, "documents")?;
    if raw.is_empty() {
        return Err(Error::new(
            (10, "InvalidLength"),
            "Write batch sizes must be between 1 and 100000. Got 0 operations.",
        ));
    }
    let prepared: Vec<Result<Document>> = raw.iter().map(prepare_insert).collect();
    Counters::bump(&ctx.node.counters.inserts, prepared.len() as u64);
    let WriteCommon {
        ns,
        ordered,
        wc,
        session,
        bypass_validation,
    } = common;
    let size = job_size(&prepared, |_| true);
    let ((n, errors), wc_error) = run_job(ctx, &wc, session.clone(), size, move |w| {
        let (meta, validator) = match w
            .ensure_collection(&ns)
            .and_then(|meta| Validator::of(&meta, bypass_validation).map(|v| (meta, v)))
        {
            Ok(found) => found,
            Err(err) => return (0, vec![err.to_write_error(0)]),
        };
        let (done, errors) = run_statements(prepared, ordered, |i, doc| {
            Validator::check(validator.as_ref(), &doc, None)?;
            let stmt = session.as_ref().map(|s| s.statement(i));
            insert_one(w, &meta, doc, stmt.as_ref())
        });
        (done.len() as i32, errors)
    })
    .await?;
    Ok(finish(doc! {"n": n}, errors, wc_error))
}

/// Runs each parsed statement in order. A failed statement (or one that failed to parse) becomes a write
/// error at its index and, in an ordered batch, stops the batch.
fn run_statements<S, T>(
    statements: Vec<Result<S>>,
    ordered: bool,
    mut run: impl FnMut(usize, S) -> Result<T>,
) -> (Vec<T>, Vec<Document>) {
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    for (i, statement) in statements.into_iter().enumerate() {
        match statement.and_then(|s| run(i, s)) {
            Ok(outcome) => done.push(outcome),
            Err(err) => {
                errors.push(err.to_write_error(i));
                if ordered {
                    break;
                }
            }
        }
    }
    (done, errors)
}

/// Runs one statement of a write at most once per session: a retry (same lsid, txnNumber and stmtId) gets
/// the stored result back instead of running the statement again; a first run stores its result.
fn run_once<T>(
    w: &mut WriteCtx<'_>,
    session: Option<&SessionStatement>,
    stored: impl FnOnce(&Document) -> Result<T>,
    to_store: impl FnOnce(&T) -> Document,
    run: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
) -> Result<T> {
    if let Some(s) = session
        && let Some(previous) = w.executed_statement(s)?
    {
        return stored(&previous);
    }
    let outcome = run(w)?;
    if let Some(s) = session {
        w.record_statement(s, to_store(&outcome))?;
    }
    Ok(outcome)
}

fn insert_one(
    w: &mut WriteCtx<'_>,
    meta: &CollectionMeta,
    doc: Document,
    stmt: Option<&SessionStatement>,
) -> Result<()> {
    run_once(w, stmt, |_| Ok(()), |_| doc! {"n": 1}, |w| w.insert(meta, doc, stmt))
}

/// The fields of an update statement in MongoDB 7.0 (8.0's `sort` is not one of them).
const UPDATE_STATEMENT_FIELDS: &[&str] = &[
    "q",
    "u",
    "c",
    "arrayFilters",
    "multi",
    "upsert",
    "upsertSupplied",
    "hint",
    "collation",
    "sampleId",
    "allowShardKeyUpdatesWithoutFullShardKeyInQuery",
];

/// The fields of a delete statement in MongoDB 7.0.
const DELETE_STATEMENT_FIELDS: &[&str] = &["q", "limit", "hint", "collation", "sampleId"];

/// One parsed update statement.
struct UpdateStatement {
    filter: Filter,
    update: Update,
    upsert: bool,
    multi: bool,
    hint: Option<Bson>,
    bypass_validation: bool,
}

fn parse_update_statement(value: &Bson, vars: &Variables, bypass_validation: bool) -> Result<UpdateStatement> {
    let Bson::Document(stmt) = value else {
        return Err(Error::type_mismatch("each update must be an object"));
    };
    let collation = options::collation(stmt)?;
    let vars = vars.with(&args::variables(stmt, "c")?);
    let filter = parse_filter(args::opt_doc(stmt, "q")?, &vars, collation.as_ref())?;
    let update = match stmt.get("u") {
        Some(u) => {
            check_collated_update(collation.as_ref(), u, stmt)?;
            parse_update(u, &array_filters(stmt)?, &vars, "u")?
        }
        None => return Err(Error::failed_to_parse("BSON field 'u' is missing but a required field")),
    };
    let multi = args::opt_bool(stmt, "multi")?.unwrap_or(false);
    if multi && update.is_replacement() {
        return Err(Error::failed_to_parse(
            "multi update is not supported for replacement-style update",
        ));
    }
    Ok(UpdateStatement {
        filter,
        update,
        upsert: args::opt_bool(stmt, "upsert")?.unwrap_or(false),
        multi,
        hint: stmt.get("hint").cloned(),
        bypass_validation,
    })
}

/// A write's filter with the user variables bound, matched under the statement's collation.
fn parse_filter(filter: Option<&Document>, vars: &Variables, collation: Option<&Arc<Collation>>) -> Result<Filter> {
    Ok(Filter::parse_collated(
        &vars.bind_filter(filter.unwrap_or(&Document::new())),
        collation,
    )?)
}

/// Under a non-simple collation only the filter (and findAndModify's sort) are collated here: an update that
/// would compare strings itself (`$pull`, `$pullAll`, `$addToSet`, `$min`, `$max`, `$push` with `$sort`,
/// `arrayFilters`, a pipeline) is NotImplemented (238) rather than done in binary order.
fn check_collated_update(collation: Option<&Arc<Collation>>, update: &Bson, stmt: &Document) -> Result<()> {
    if collation.is_none() {
        return Ok(());
    }
    let refused = match update {
        Bson::Array(_) => Some("a pipeline-style update"),
        Bson::Document(ops) => ops
            .iter()
            .find_map(|(op, arg)| match op.as_str() {
                "$pull" | "$pullAll" | "$addToSet" | "$min" | "$max" => Some(op.as_str()),
                "$push" if matches!(arg, Bson::Document(d) if d.values().any(|v| matches!(v, Bson::Document(m) if m.contains_key("$sort")))) => {
                    Some("$push with $sort")
                }
                _ => None,
            })
            .or_else(|| {
                matches!(stmt.get("arrayFilters"), Some(Bson::Array(items)) if !items.is_empty()).then_some("arrayFilters")
            }),
        _ => None,
    };
    match refused {
        None => Ok(()),
        Some(what) => Err(Error::new(
            (238, "NotImplemented"),
            format!("{what} under a non-simple collation is not supported by the Faultline engine"),
        )),
    }
}

/// An update: operators or a replacement (a document), or a pipeline (an array of stages, with the user
/// variables bound).
fn parse_update(value: &Bson, array_filters: &[Document], vars: &Variables, field: &str) -> Result<Update> {
    match value {
        Bson::Document(u) => Ok(Update::parse_with_array_filters(u, array_filters)?),
        Bson::Array(stages) => {
            let stages: Vec<Document> = stages
                .iter()
                .map(|s| {
                    s.as_document()
                        .cloned()
                        .ok_or_else(|| Error::type_mismatch("each stage of an update pipeline must be an object"))
                })
                .collect::<Result<_>>()?;
            Ok(Update::parse_pipeline(&vars.bind_stages(&stages), array_filters)?)
        }
        _ => Err(Error::type_mismatch(format!(
            "BSON field '{field}' is the wrong type, expected an object or an array"
        ))),
    }
}

/// A statement's (or findAndModify's) `arrayFilters`: documents.
fn array_filters(body: &Document) -> Result<Vec<Document>> {
    args::opt_array(body, "arrayFilters")?
        .map(|filters| {
            filters
                .iter()
                .map(|f| {
                    f.as_document()
                        .cloned()
                        .ok_or_else(|| Error::type_mismatch("each array filter must be an object"))
                })
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
}

/// Applies an update to a document the filter matched, telling it which array element the filter matched
/// through when the update uses the positional `$`.
fn apply_to_match(update: &Update, filter: &Filter, doc: &mut Document, now: bson::DateTime) -> Result<bool> {
    let matched = if update.uses_matched_position() {
        filter.matched_array_index(doc)
    } else {
        None
    };
    Ok(update.apply_matched(doc, false, now, matched)?)
}

/// The outcome of one update statement, as stored for retries.
#[derive(Default)]
struct UpdateOutcome {
    matched: i32,
    modified: i32,
    upserted: Option<Bson>,
}

impl UpdateOutcome {
    fn to_document(&self) -> Document {
        let mut doc = doc! {"n": self.matched, "nModified": self.modified};
        if let Some(id) = &self.upserted {
            doc.insert("upserted", id.clone());
        }
        doc
    }

    fn from_document(doc: &Document) -> UpdateOutcome {
        UpdateOutcome {
            matched: doc.get_i32("n").unwrap_or(0),
            modified: doc.get_i32("nModified").unwrap_or(0),
            upserted: doc.get("upserted").cloned(),
        }
    }
}

pub async fn update(ctx: &Context<'_>) -> Result<Document> {
    let common = common(ctx)?;
    let raw = documents(ctx.body, "updates")?;
    args::check_statement_fields(raw, UPDATE_STATEMENT_FIELDS, "update.updates")?;
    let vars = args::command_variables(ctx)?;
    let bypass = common.bypass_validation;
    let statements: Vec<Result<UpdateStatement>> =
        raw.iter().map(|u| parse_update_statement(u, &vars, bypass)).collect();
    Counters::bump(&ctx.node.counters.updates, statements.len() as u64);
    let WriteCommon {
        ns,
        ordered,
        wc,
        session,
        ..
    } = common;
    let size = job_size(&statements, |stmt| {
        stmt.hint.is_none() && stmt.filter.id_equality().is_some()
    });
    let ((n, modified, upserted, errors), wc_error) = run_job(ctx, &wc, session.clone(), size, move |w| {
        let (outcomes, errors) = run_statements(statements, ordered, |i, stmt| {
            let session_stmt = session.as_ref().map(|s| s.statement(i));
            update_one_statement(w, &ns, &stmt, session_stmt.as_ref()).map(|outcome| (i, outcome))
        });
        let n: i32 = outcomes.iter().map(|(_, o)| o.matched).sum();
        let modified: i32 = outcomes.iter().map(|(_, o)| o.modified).sum();
        let upserted: Vec<Bson> = outcomes
            .into_iter()
            .filter_map(|(i, o)| o.upserted.map(|id| Bson::Document(doc! {"index": i as i32, "_id": id})))
            .collect();
        (n, modified, upserted, errors)
    })
    .await?;
    let mut reply = doc! {"n": n, "nModified": modified};
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    Ok(finish(reply, errors, wc_error))
}

fn update_one_statement(
    w: &mut WriteCtx<'_>,
    ns: &Namespace,
    stmt: &UpdateStatement,
    session: Option<&SessionStatement>,
) -> Result<UpdateOutcome> {
    run_once(
        w,
        session,
        |stored| Ok(UpdateOutcome::from_document(stored)),
        UpdateOutcome::to_document,
        |w| apply_update_statement(w, ns, stmt, session),
    )
}

fn apply_update_statement(
    w: &mut WriteCtx<'_>,
    ns: &Namespace,
    stmt: &UpdateStatement,
    session: Option<&SessionStatement>,
) -> Result<UpdateOutcome> {
    let mut outcome = UpdateOutcome::default();
    let now = w.clock().now();
    let meta = w.collection(ns)?;
    options::check_hint(stmt.hint.as_ref(), meta.as_ref())?;
    let validator = validator_of(meta.as_ref(), stmt.bypass_validation)?;
    let targets = match &meta {
        Some(meta) => find_targets(w, meta, &stmt.filter, None, if stmt.multi { usize::MAX } else { 1 })?,
        None => Vec::new(),
    };
    if let Some(meta) = &meta {
        for before in targets {
            let mut after = before.clone();
            outcome.matched += 1;
            if apply_to_match(&stmt.update, &stmt.filter, &mut after, now)? {
                Validator::check(validator.as_ref(), &after, Some(&before))?;
                let whole = matches!(stmt.update, Update::Replacement(_));
                w.replace_as(meta, &before, after, session, whole)?;
                outcome.modified += 1;
            }
        }
    }
    if outcome.matched == 0 && stmt.upsert {
        let doc = upsert_document(&stmt.filter, &stmt.update, now)?;
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        let meta = w.ensure_collection(ns)?;
        Validator::check(validator.as_ref(), &doc, None)?;
        w.insert(&meta, doc, session)?;
        outcome.matched = 1;
        outcome.upserted = Some(id);
    }
    Ok(outcome)
}

/// The validator of a collection that may not exist yet (then it has none).
fn validator_of(meta: Option<&CollectionMeta>, bypass: bool) -> Result<Option<Validator>> {
    Ok(meta.map(|m| Validator::of(m, bypass)).transpose()?.flatten())
}

/// Documents matching `filter` (sorted when asked), at most `limit`, read inside the write transaction.
fn find_targets(
    w: &mut WriteCtx<'_>,
    meta: &CollectionMeta,
    filter: &Filter,
    sort: Option<&SortSpec>,
    limit: usize,
) -> Result<Vec<Document>> {
    if let Some(id) = filter.id_equality() {
        return Ok(w
            .get_by_id(meta, id)?
            .filter(|d| filter.matches(d))
            .into_iter()
            .collect());
    }
    match sort {
        Some(spec) => {
            let mut docs = w.scan(meta, |d| filter.matches(d), usize::MAX)?;
            docs.sort_by(|a, b| spec.compare(a, b));
            docs.truncate(limit);
            Ok(docs)
        }
        None => w.scan(meta, |d| filter.matches(d), limit),
    }
}

/// The document an upsert inserts: the filter's equalities with the update applied (or the replacement).
fn upsert_document(filter: &Filter, update: &Update, now: bson::DateTime) -> Result<Document> {
    let seed = filter.upsert_seed();
    let mut doc = if update.is_replacement() {
        let mut doc = Document::new();
        if let Some(id) = seed.get("_id") {
            doc.insert("_id", id.clone());
        }
        doc
    } else {
        seed
    };
    update.apply(&mut doc, true, now)?;
    prepare_insert(&Bson::Document(doc))
}

pub async fn delete(ctx: &Context<'_>) -> Result<Document> {
    let common = common(ctx)?;
    let raw = documents(ctx.body, "deletes")?;
    args::check_statement_fields(raw, DELETE_STATEMENT_FIELDS, "delete.deletes")?;
    let vars = args::command_variables(ctx)?;
    let statements: Vec<Result<(Filter, usize, Option<Bson>)>> = raw
        .iter()
        .map(|value| {
            let Bson::Document(stmt) = value else {
                return Err(Error::type_mismatch("each delete must be an object"));
            };
            let collation = options::collation(stmt)?;
            let filter = parse_filter(args::opt_doc(stmt, "q")?, &vars, collation.as_ref())?;
            let limit = match args::opt_i64(stmt, "limit")? {
                Some(0) => usize::MAX,
                Some(1) => 1,
                Some(other) => {
                    return Err(Error::failed_to_parse(format!(
                        "The limit field in delete objects must be 0 or 1. Got {other}"
                    )));
                }
                None => {
                    return Err(Error::failed_to_parse(
                        "BSON field 'limit' is missing but a required field",
                    ));
                }
            };
            Ok((filter, limit, stmt.get("hint").cloned()))
        })
        .collect();
    Counters::bump(&ctx.node.counters.deletes, statements.len() as u64);
    let WriteCommon {
        ns,
        ordered,
        wc,
        session,
        ..
    } = common;
    let size = job_size(&statements, |(filter, _, hint)| {
        hint.is_none() && filter.id_equality().is_some()
    });
    let ((n, errors), wc_error) = run_job(ctx, &wc, session.clone(), size, move |w| {
        let (deleted, errors) = run_statements(statements, ordered, |i, (filter, limit, hint)| {
            let session_stmt = session.as_ref().map(|s| s.statement(i));
            delete_statement(w, &ns, &filter, limit, hint.as_ref(), session_stmt.as_ref())
        });
        let n: i32 = deleted.iter().sum();
        (n, errors)
    })
    .await?;
    Ok(finish(doc! {"n": n}, errors, wc_error))
}

fn delete_statement(
    w: &mut WriteCtx<'_>,
    ns: &Namespace,
    filter: &Filter,
    limit: usize,
    hint: Option<&Bson>,
    session: Option<&SessionStatement>,
) -> Result<i32> {
    let stored = |d: &Document| Ok(d.get_i32("n").unwrap_or(0));
    run_once(
        w,
        session,
        stored,
        |n| doc! {"n": *n},
        |w| {
            let meta = w.collection(ns)?;
            options::check_hint(hint, meta.as_ref())?;
            let Some(meta) = meta else { return Ok(0) };
            let targets = find_targets(w, &meta, filter, None, limit)?;
            for doc in &targets {
                w.delete(&meta, doc, session)?;
            }
            Ok(targets.len() as i32)
        },
    )
}

/// findAndModify's arguments.
struct FindAndModify {
    filter: Filter,
    sort: Option<SortSpec>,
    update: Option<Update>,
    remove: bool,
    return_new: bool,
    upsert: bool,
    fields: Option<Projection>,
    hint: Option<Bson>,
    bypass_validation: bool,
}

impl FindAndModify {
    /// A returned document, with the command's projection applied.
    fn project(&self, doc: Document) -> Result<Document> {
        match &self.fields {
            Some(p) => Ok(p.apply(&doc)?),
            None => Ok(doc),
        }
    }

    /// The reply a retry gets: the first reply, when this member ran the statement; else one rebuilt from
    /// what it stored when it applied the statement's oplog entry (`storage::apply`): whether it upserted,
    /// and the document image the entry named, projected as this command asks.
    fn retried_reply(&self, stored: &Document) -> Result<Document> {
        if stored.contains_key("lastErrorObject") {
            return Ok(stored.clone());
        }
        let value = match stored.get_document("image") {
            Ok(image) => Bson::Document(self.project(image.clone())?),
            Err(_) => Bson::Null,
        };
        let n = stored.get_i32("n").unwrap_or(0);
        let last_error = match stored.get("upserted") {
            _ if self.remove => doc! {"n": n},
            Some(id) => doc! {"n": n, "updatedExisting": false, "upserted": id.clone()},
            None => doc! {"n": n, "updatedExisting": true},
        };
        Ok(doc! {"lastErrorObject": last_error, "value": value})
    }
}

fn parse_find_and_modify(body: &Document, vars: &Variables) -> Result<FindAndModify> {
    let collation = options::collation(body)?;
    let filter = parse_filter(args::opt_doc(body, "query")?, vars, collation.as_ref())?;
    let sort = match args::opt_doc(body, "sort")? {
        Some(s) if !s.is_empty() => Some(SortSpec::parse(s)?.with_collation(collation.as_ref())),
        _ => None,
    };
    let remove = args::opt_bool(body, "remove")?.unwrap_or(false);
    let update = match body.get("update") {
        None | Some(Bson::Null) => None,
        Some(u @ (Bson::Document(_) | Bson::Array(_))) => {
            check_collated_update(collation.as_ref(), u, body)?;
            Some(parse_update(u, &array_filters(body)?, vars, "update")?)
        }
        Some(_) => return Err(Error::type_mismatch("findAndModify: 'update' must be an object")),
    };
    match (remove, update.is_some()) {
        (true, true) => return Err(Error::failed_to_parse("Cannot specify both an update and remove=true")),
        (false, false) => {
            return Err(Error::failed_to_parse(
                "Either an update or remove=true must be specified",
            ));
        }
        _ => {}
    }
    let return_new = args::opt_bool(body, "new")?.unwrap_or(false);
    let upsert = args::opt_bool(body, "upsert")?.unwrap_or(false);
    if remove && (return_new || upsert) {
        return Err(Error::failed_to_parse(
            "Cannot specify new=true or upsert=true together with remove=true",
        ));
    }
    let fields = match args::opt_doc(body, "fields")? {
        Some(f) if !f.is_empty() => Some(Projection::parse(f)?),
        _ => None,
    };
    Ok(FindAndModify {
        filter,
        sort,
        update,
        remove,
        return_new,
        upsert,
        fields,
        hint: body.get("hint").cloned(),
        bypass_validation: args::opt_bool(body, "bypassDocumentValidation")?.unwrap_or(false),
    })
}

pub async fn find_and_modify(ctx: &Context<'_>) -> Result<Document> {
    let common = common(ctx)?;
    let spec = parse_find_and_modify(ctx.body, &args::command_variables(ctx)?)?;
    Counters::bump(
        if spec.remove {
            &ctx.node.counters.deletes
        } else {
            &ctx.node.counters.updates
        },
        1,
    );
    let WriteCommon { ns, wc, session, .. } = common;
    let size = job_size(&[Ok(&spec)], |spec| {
        spec.hint.is_none() && spec.filter.id_equality().is_some()
    });
    let (result, wc_error) = run_job(ctx, &wc, session.clone(), size, move |w| {
        let stmt = session.as_ref().map(|s| s.statement(0));
        find_and_modify_job(w, &ns, &spec, stmt.as_ref())
    })
    .await?;
    let mut reply = result?;
    if let Some(err) = wc_error {
        reply.insert("writeConcernError", err);
    }
    Ok(reply)
}

fn find_and_modify_job(
    w: &mut WriteCtx<'_>,
    ns: &Namespace,
    spec: &FindAndModify,
    session: Option<&SessionStatement>,
) -> Result<Document> {
    run_once(
        w,
        session,
        |stored| spec.retried_reply(stored),
        Document::clone,
        |w| apply_find_and_modify(w, ns, spec, session),
    )
}

fn apply_find_and_modify(
    w: &mut WriteCtx<'_>,
    ns: &Namespace,
    spec: &FindAndModify,
    session: Option<&SessionStatement>,
) -> Result<Document> {
    let now = w.clock().now();
    let project = |doc: Document| spec.project(doc);
    let meta = w.collection(ns)?;
    options::check_hint(spec.hint.as_ref(), meta.as_ref())?;
    let validator = validator_of(meta.as_ref(), spec.bypass_validation)?;
    let target = match &meta {
        Some(meta) => find_targets(w, meta, &spec.filter, spec.sort.as_ref(), 1)?
            .into_iter()
            .next(),
        None => None,
    };
    // The reply's value is projected before anything is written: a projection that fails (a result nested
    // too deep) fails the command without changing the data.
    let reply = match (target, &spec.update) {
        (Some(before), None) => {
            let meta = meta
                .as_ref()
                .ok_or_else(|| Error::internal("matched a document in a missing collection"))?;
            let value = project(before.clone())?;
            let stmt = session.map(|s| s.with_retry_image(Some(RetryImage::Pre)));
            w.delete(meta, &before, stmt.as_ref())?;
            doc! {"lastErrorObject": {"n": 1}, "value": value}
        }
        (Some(before), Some(update)) => {
            let meta = meta
                .as_ref()
                .ok_or_else(|| Error::internal("matched a document in a missing collection"))?;
            let mut after = before.clone();
            let changed = apply_to_match(update, &spec.filter, &mut after, now)?;
            let value = project(if spec.return_new { after.clone() } else { before.clone() })?;
            if changed {
                Validator::check(validator.as_ref(), &after, Some(&before))?;
                let whole = matches!(update, Update::Replacement(_));
                let image = if spec.return_new {
                    RetryImage::Post
                } else {
                    RetryImage::Pre
                };
                let stmt = session.map(|s| s.with_retry_image(Some(image)));
                w.replace_as(meta, &before, after, stmt.as_ref(), whole)?;
            }
            doc! {"lastErrorObject": {"n": 1, "updatedExisting": true}, "value": value}
        }
        (None, Some(update)) if spec.upsert => {
            let doc = upsert_document(&spec.filter, update, now)?;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            let value = if spec.return_new {
                Bson::Document(project(doc.clone())?)
            } else {
                Bson::Null
            };
            let meta = w.ensure_collection(ns)?;
            Validator::check(validator.as_ref(), &doc, None)?;
            let stmt = session.map(|s| s.with_retry_image(spec.return_new.then_some(RetryImage::Post)));
            w.insert(&meta, doc, stmt.as_ref())?;
            doc! {"lastErrorObject": {"n": 1, "updatedExisting": false, "upserted": id}, "value": value}
        }
        (None, Some(_)) => doc! {"lastErrorObject": {"n": 0, "updatedExisting": false}, "value": Bson::Null},
        (None, None) => doc! {"lastErrorObject": {"n": 0}, "value": Bson::Null},
    };
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::WritesInFlight;

    /// A write is alone only when no other write command runs; one that ends no longer counts.
    #[test]
    fn a_write_is_alone_only_without_others_running() {
        let writes = WritesInFlight::default();
        let first = writes.enter();
        assert!(first.alone());
        let second = writes.enter();
        assert!(!second.alone(), "the first is still running");
        drop(first);
        drop(second);
        assert!(writes.enter().alone(), "both ended");
    }
}

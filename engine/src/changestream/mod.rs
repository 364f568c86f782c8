//! Change streams: `$changeStream` on a collection, a database (`{aggregate: 1}`) and the cluster (`admin`,
//! `allChangesForCluster`), read from the oplog.
//!
//! ```text
//! token.rs   ResumeToken: {_data: hex} from an oplog timestamp and a kind (event, invalidate, high water)
//! event.rs   oplog entry -> change events for a Scope (pure)
//! mod.rs     the $changeStream spec, the cursor's state (ChangeStream) and its aggregate/getMore
//! ```
//!
//! A stream's cursor holds a position in the oplog (the key it scanned through), never a result. Each batch
//! scans forward from it, only as far as the majority commit point (what this member has itself written
//! and knows to be majority-committed): events are those of majority-committed entries only, so a
//! rolled-back write is never returned, and every member has the same entries at the same timestamps, so
//! a resume token from one member resumes on another after a failover. Resuming from a token rescans from
//! its timestamp and drops the events at or before the token. A getMore that finds nothing waits (awaitData)
//! until the commit point moves past its position or `maxTimeMS` passes.
//!
//! Pre- and post-images: on a collection with `changeStreamPreAndPostImages: {enabled: true}` each update and
//! delete logs the document's pre-image as a no-op entry just before it and points at it with
//! `preImageOpTime` (MongoDB 4.4's layout; 7.0 keeps them in `config.system.preimages`). The images live as
//! long as the oplog does.

pub mod event;
pub mod token;

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Duration;

use bson::{Bson, Document, Timestamp, doc};

use self::event::{Lookup, RawEvent, Scope};
use self::token::{ResumeToken, TokenKind};
use crate::command::Context;
use crate::cursor::{Cursor, CursorSource};
use crate::error::{Error, Result, code};
use crate::node::Node;
use crate::repl::OpTime;
use crate::storage::{Namespace, OplogEntry, Snapshot, ts_from_u64, ts_to_u64};

const CHANGE_STREAM_FATAL: (i32, &str) = (280, "ChangeStreamFatalError");
const CHANGE_STREAM_HISTORY_LOST: (i32, &str) = (286, "ChangeStreamHistoryLost");
const NO_MATCHING_DOCUMENT: (i32, &str) = (47, "NoMatchingDocument");
const INVALID_RESUME_TOKEN: (i32, &str) = (260, "InvalidResumeToken");

/// The stages mongod allows after `$changeStream`.
const ALLOWED_STAGES: [&str; 8] = [
    "$match",
    "$project",
    "$addFields",
    "$set",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
    "$redact",
];

/// Error codes after which a driver resumes a change stream, labelled `ResumableChangeStreamError` as mongod
/// labels them (the retryable, network, shard-retargeting and read-preference codes, and RetryChangeStream).
pub const RESUMABLE_CODES: &[i32] = &[
    6, 7, 63, 89, 91, 133, 134, 150, 189, 234, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436,
];

/// The label drivers resume a change stream on.
pub const RESUMABLE_LABEL: &str = "ResumableChangeStreamError";

/// Labels `err` `ResumableChangeStreamError` when its code is one a driver resumes after, and
/// `NonResumableChangeStreamError` when it is ChangeStreamFatalError (280), as mongod labels them.
fn label_resumable(mut err: Error) -> Error {
    let label = if RESUMABLE_CODES.contains(&err.code) {
        RESUMABLE_LABEL
    } else if err.code == CHANGE_STREAM_FATAL.0 {
        "NonResumableChangeStreamError"
    } else {
        return err;
    };
    if !err.labels.contains(&label) {
        err.labels.push(label);
    }
    err
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullDocument {
    Default,
    UpdateLookup,
    WhenAvailable,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeChange {
    Off,
    WhenAvailable,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After the newest entry written when the stream opens.
    Now,
    ResumeAfter(ResumeToken),
    StartAfter(ResumeToken),
    AtOperationTime(Timestamp),
}

/// The `$changeStream` stage's options.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeStreamSpec {
    pub full_document: FullDocument,
    pub before_change: BeforeChange,
    pub start: Start,
    pub expanded: bool,
    pub all_changes_for_cluster: bool,
}

impl ChangeStreamSpec {
    pub fn parse(value: &Bson) -> Result<ChangeStreamSpec> {
        let Bson::Document(spec) = value else {
            return Err(Error::new(
                (50808, "Location50808"),
                "$changeStream stage expects a document as argument",
            ));
        };
        let mut parsed = ChangeStreamSpec {
            full_document: FullDocument::Default,
            before_change: BeforeChange::Off,
            start: Start::Now,
            expanded: false,
            all_changes_for_cluster: false,
        };
        let mut starts = 0;
        for (key, value) in spec {
            let enumeration = |allowed: &[&str]| -> Result<String> {
                match value {
                    Bson::String(s) if allowed.contains(&s.as_str()) => Ok(s.clone()),
                    Bson::String(s) => Err(Error::bad_value(format!(
                        "Enumeration value '{s}' for field '$changeStream.{key}' is not a valid value."
                    ))),
                    _ => Err(Error::type_mismatch(format!(
                        "BSON field '$changeStream.{key}' is the wrong type '{}', expected type 'string'",
                        crate::command::args::type_name(value)
                    ))),
                }
            };
            let flag = || -> Result<bool> {
                value.as_bool().ok_or_else(|| {
                    Error::type_mismatch(format!(
                        "BSON field '$changeStream.{key}' is the wrong type '{}', expected type 'bool'",
                        crate::command::args::type_name(value)
                    ))
                })
            };
            match key.as_str() {
                "fullDocument" => {
                    parsed.full_document =
                        match enumeration(&["default", "updateLookup", "whenAvailable", "required"])?.as_str() {
                            "updateLookup" => FullDocument::UpdateLookup,
                            "whenAvailable" => FullDocument::WhenAvailable,
                            "required" => FullDocument::Required,
                            _ => FullDocument::Default,
                        }
                }
                "fullDocumentBeforeChange" => {
                    parsed.before_change = match enumeration(&["off", "whenAvailable", "required"])?.as_str() {
                        "whenAvailable" => BeforeChange::WhenAvailable,
                        "required" => BeforeChange::Required,
                        _ => BeforeChange::Off,
                    }
                }
                "resumeAfter" => {
                    starts += 1;
                    parsed.start = Start::ResumeAfter(ResumeToken::parse(value)?);
                }
                "startAfter" => {
                    starts += 1;
                    parsed.start = Start::StartAfter(ResumeToken::parse(value)?);
                }
                "startAtOperationTime" => {
                    starts += 1;
                    let Bson::Timestamp(ts) = value else {
                        return Err(Error::type_mismatch(
                            "BSON field '$changeStream.startAtOperationTime' is the wrong type, expected type 'timestamp'",
                        ));
                    };
                    parsed.start = Start::AtOperationTime(*ts);
                }
                "showExpandedEvents" => parsed.expanded = flag()?,
                "allChangesForCluster" => parsed.all_changes_for_cluster = flag()?,
                "showMigrationEvents"
                | "showSystemEvents"
                | "allowToRunOnConfigDB"
                | "allowToRunOnSystemNS"
                | "showRawUpdateDescription" => {
                    flag()?;
                }
                other => {
                    return Err(Error::new(
                        crate::command::args::UNKNOWN_FIELD,
                        format!("BSON field '$changeStream.{other}' is an unknown field."),
                    ));
                }
            }
        }
        if starts > 1 {
            return Err(Error::new(
                (40674, "Location40674"),
                "Only one type of resume option is allowed, but multiple were found.",
            ));
        }
        Ok(parsed)
    }
}

/// An open change stream: what a cursor over it holds between batches.
pub struct ChangeStream {
    scope: Scope,
    spec: ChangeStreamSpec,
    /// The stages after `$changeStream`, run on each event.
    stages: Vec<Document>,
    /// The oplog key scanned through.
    after: u64,
    /// Events at or before this token are not returned (the token the stream resumed from).
    skip_through: Option<ResumeToken>,
    /// Finished events a full batch had no room for.
    pending: VecDeque<(ResumeToken, Document)>,
    /// An invalidate was produced: the stream ends once `pending` is returned.
    invalidated: bool,
    /// The post-batch resume token: the newest point the client has everything up to.
    position: ResumeToken,
}

impl ChangeStream {
    /// Whether nothing more can come: the invalidate was returned.
    pub fn finished(&self) -> bool {
        self.invalidated && self.pending.is_empty()
    }

    pub fn post_batch_resume_token(&self) -> Document {
        self.position.to_document()
    }

    /// Up to `cap` events, from the pending ones and then from the oplog up to what is readable now.
    fn next_batch(&mut self, node: &Node, cap: usize) -> Result<Vec<Document>> {
        let mut out = Vec::new();
        self.take_pending(&mut out, cap);
        let limit = readable_limit(node);
        if out.len() < cap && !self.invalidated && self.after < limit {
            let snapshot = node.storage.snapshot()?;
            let mut failure = None;
            let mut reached_limit = true;
            snapshot.scan_oplog_stored(Some(self.after), false, |key, bytes| {
                if key > limit {
                    return ControlFlow::Break(());
                }
                self.after = key;
                let step = OplogEntry::from_bytes(bytes).and_then(|entry| self.take_entry(node, &snapshot, &entry));
                if let Err(err) = step {
                    failure = Some(err);
                    return ControlFlow::Break(());
                }
                self.take_pending(&mut out, cap);
                if self.invalidated || out.len() >= cap {
                    reached_limit = false;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })?;
            if let Some(err) = failure {
                return Err(err);
            }
            if reached_limit {
                self.after = self.after.max(limit);
            }
        }
        if self.pending.is_empty() && !self.invalidated {
            self.position = self.position.max(ResumeToken {
                key: self.after,
                kind: TokenKind::HighWater,
            });
        }
        Ok(out)
    }

    fn take_pending(&mut self, out: &mut Vec<Document>, cap: usize) {
        while out.len() < cap {
            let Some((token, doc)) = self.pending.pop_front() else {
                break;
            };
            self.position = self.position.max(token);
            out.push(doc);
        }
    }

    /// Turns one entry into finished events (looked up, through the stages) in `pending`.
    fn take_entry(&mut self, node: &Node, snapshot: &Snapshot, entry: &OplogEntry) -> Result<()> {
        for raw in event::events_of(entry, &self.scope, self.spec.expanded) {
            if self.skip_through.is_some_and(|skip| raw.token <= skip) {
                continue;
            }
            if raw.token.kind == TokenKind::Invalidate {
                self.invalidated = true;
            }
            let token = raw.token;
            let doc = self.complete(snapshot, raw)?;
            for out in crate::query::pipeline::run(&self.stages, vec![doc], node.clock().now())? {
                if out.get("_id") != Some(&Bson::Document(token.to_document())) {
                    return Err(Error::new(
                        CHANGE_STREAM_FATAL,
                        format!(
                            "Encountered an event whose _id field, which contains the resume token, was modified by \
                             the pipeline. Modifying the _id field of an event makes it impossible to resume the \
                             stream from that point. Only transformations that retain the unmodified _id field are \
                             allowed. Expected: {} but found: {}",
                            doc! {"_id": token.to_document()},
                            out.get("_id")
                                .map_or_else(|| "{}".to_string(), |id| doc! {"_id": id.clone()}.to_string())
                        ),
                    ));
                }
                self.pending.push_back((token, out));
            }
            if self.invalidated {
                break;
            }
        }
        Ok(())
    }

    /// Adds what the stream's options ask for: the current or post-image document, the pre-image.
    fn complete(&self, snapshot: &Snapshot, raw: RawEvent) -> Result<Document> {
        let mut doc = raw.doc;
        let pre_image_at = match &raw.lookup {
            Lookup::None => return Ok(doc),
            Lookup::Update { pre_image, .. } | Lookup::Delete { pre_image } | Lookup::Replace { pre_image } => {
                *pre_image
            }
        };
        let pre_image = match pre_image_at {
            Some(at) if self.spec.before_change != BeforeChange::Off || self.wants_post_image(&raw.lookup) => {
                pre_image(snapshot, at)?
            }
            _ => None,
        };
        if let Lookup::Update { ns, id, change, .. } = &raw.lookup {
            let full = match self.spec.full_document {
                FullDocument::Default => None,
                FullDocument::UpdateLookup => Some(current_document(snapshot, ns, id)?),
                FullDocument::WhenAvailable | FullDocument::Required => {
                    let post = pre_image.clone().map(|pre| change.apply(pre));
                    if post.is_none() && self.spec.full_document == FullDocument::Required {
                        return Err(missing_image("post-image", &doc));
                    }
                    Some(post)
                }
            };
            if let Some(full) = full {
                // Where mongod puts it: after `wallTime`, before `ns`.
                doc = insert_before(doc, "ns", "fullDocument", full.map_or(Bson::Null, Bson::Document));
            }
        }
        match self.spec.before_change {
            BeforeChange::Off => {}
            BeforeChange::WhenAvailable => {
                doc.insert("fullDocumentBeforeChange", pre_image.map_or(Bson::Null, Bson::Document));
            }
            BeforeChange::Required => match pre_image {
                Some(pre) => {
                    doc.insert("fullDocumentBeforeChange", pre);
                }
                None => return Err(missing_image("pre-image", &doc)),
            },
        }
        Ok(doc)
    }

    fn wants_post_image(&self, lookup: &Lookup) -> bool {
        matches!(lookup, Lookup::Update { .. })
            && matches!(
                self.spec.full_document,
                FullDocument::WhenAvailable | FullDocument::Required
            )
    }
}

/// `doc` with `key: value` placed just before the field `before` (at the end when there is none).
fn insert_before(doc: Document, before: &str, key: &str, value: Bson) -> Document {
    let mut out = Document::new();
    let mut value = Some(value);
    for (k, v) in doc {
        if k == before
            && let Some(value) = value.take()
        {
            out.insert(key, value);
        }
        out.insert(k, v);
    }
    if let Some(value) = value {
        out.insert(key, value);
    }
    out
}

fn missing_image(what: &str, event: &Document) -> Error {
    let option = if what == "pre-image" {
        "fullDocumentBeforeChange"
    } else {
        "fullDocument"
    };
    Error::new(
        NO_MATCHING_DOCUMENT,
        format!(
            "Change stream was configured to require a {what} for all update, delete and replace events, but the \
             {what} was not found for event: {event} ({option}: 'required')"
        ),
    )
}

/// The document's current version (`fullDocument: updateLookup`); null when it is gone.
fn current_document(snapshot: &Snapshot, ns: &Namespace, id: &Bson) -> Result<Option<Document>> {
    match snapshot.collection(ns)? {
        Some(meta) => snapshot.get_by_id(&meta, id),
        None => Ok(None),
    }
}

/// The pre-image logged at `at` (a no-op entry's `o`), if the oplog still has it.
fn pre_image(snapshot: &Snapshot, at: OpTime) -> Result<Option<Document>> {
    let key = ts_to_u64(at.ts);
    let mut found = None;
    snapshot.scan_oplog(Some(key.saturating_sub(1)), false, |k, doc| {
        if k == key {
            found = doc.get_document("o").ok().cloned();
        }
        ControlFlow::Break(())
    })?;
    Ok(found)
}

/// The newest oplog key a stream may read: majority-committed and written here.
fn readable_limit(node: &Node) -> u64 {
    let committed = node.member.majority_optime().ts;
    let written = node.storage.positions().last_written.ts;
    ts_to_u64(committed).min(ts_to_u64(written))
}

/// The oldest oplog key, if the oplog has any entry.
fn oldest_key(snapshot: &Snapshot) -> Result<Option<u64>> {
    let mut oldest = None;
    snapshot.scan_oplog(None, false, |key, _| {
        oldest = Some(key);
        ControlFlow::Break(())
    })?;
    Ok(oldest)
}

fn has_entry_at(snapshot: &Snapshot, key: u64) -> Result<bool> {
    let mut found = false;
    snapshot.scan_oplog(Some(key.saturating_sub(1)), false, |k, _| {
        found = k == key;
        ControlFlow::Break(())
    })?;
    Ok(found)
}

/// Checks the stages after `$changeStream`: each one mongod knows, and allowed in a change stream.
fn check_stages(stages: &[Document]) -> Result<()> {
    for stage in stages {
        let name = stage.keys().next().map(String::as_str).unwrap_or("");
        if name == "$changeStream" {
            return Err(Error::new(
                (40602, "Location40602"),
                "$changeStream is only valid as the first stage in a pipeline",
            ));
        }
    }
    // Parsing the stages reports unknown ones (40324) and bad arguments as the pipeline would.
    crate::query::pipeline::run(stages, Vec::new(), bson::DateTime::now())?;
    for stage in stages {
        let name = stage.keys().next().map(String::as_str).unwrap_or("");
        if !ALLOWED_STAGES.contains(&name) {
            return Err(Error::new(
                code::ILLEGAL_OPERATION,
                format!("{name} is not permitted in a $changeStream pipeline"),
            ));
        }
    }
    Ok(())
}

/// Whether a pipeline opens a change stream.
pub fn is_change_stream(stages: &[Document]) -> bool {
    stages.first().is_some_and(|s| s.contains_key("$changeStream"))
}

/// The scope of a `$changeStream` on `ctx.db`: `coll` for a collection, else the database or (on `admin`
/// with `allChangesForCluster`) the cluster.
fn scope_of(ctx: &Context<'_>, coll: Option<&str>, spec: &ChangeStreamSpec) -> Result<Scope> {
    let db = ctx.db.as_str();
    if spec.all_changes_for_cluster {
        if db != "admin" || coll.is_some() {
            return Err(Error::new(
                code::INVALID_NAMESPACE,
                "A change stream with 'allChangesForCluster: true' may only be opened on the 'admin' database, \
                 and with no collection name; found "
                    .to_string()
                    + &coll.map_or(db.to_string(), |c| format!("{db}.{c}")),
            ));
        }
        return Ok(Scope::Cluster);
    }
    match coll {
        Some(coll) => {
            if event::is_internal_db(db) || coll.starts_with("system.") {
                return Err(Error::new(
                    code::INVALID_NAMESPACE,
                    format!("$changeStream may not be opened on the internal {db}.{coll} collection"),
                ));
            }
            Ok(Scope::Collection(Namespace::new(db, coll)))
        }
        None if event::is_internal_db(db) => Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("$changeStream may not be opened on the internal {db} database"),
        )),
        None => Ok(Scope::Database(db.to_string())),
    }
}

/// `aggregate` with a pipeline starting with `$changeStream`: on collection `coll`, or on the database
/// (`coll` None, `{aggregate: 1}`).
pub async fn aggregate(ctx: &Context<'_>, coll: Option<&str>, stages: &[Document], batch: usize) -> Result<Document> {
    open(ctx, coll, stages, batch).await.map_err(label_resumable)
}

async fn open(ctx: &Context<'_>, coll: Option<&str>, stages: &[Document], batch: usize) -> Result<Document> {
    let node = ctx.node;
    if node.member.role().config.is_none() {
        return Err(Error::new(
            (40573, "Location40573"),
            "The $changeStream stage is only supported on replica sets",
        ));
    }
    node.member.check_readable(ctx.secondary_ok)?;
    let (first, rest) = stages
        .split_first()
        .ok_or_else(|| Error::internal("empty change stream pipeline"))?;
    let spec = ChangeStreamSpec::parse(first.get("$changeStream").unwrap_or(&Bson::Null))?;
    check_stages(rest)?;
    let scope = scope_of(ctx, coll, &spec)?;
    let snapshot = node.storage.snapshot()?;
    let oldest = oldest_key(&snapshot)?;
    let history_lost = |key: u64| oldest.is_none_or(|oldest| oldest > key);
    let (after, skip_through) = match spec.start {
        Start::Now => (ts_to_u64(node.storage.positions().last_written.ts), None),
        Start::AtOperationTime(ts) => {
            let key = ts_to_u64(ts);
            // Before the oldest entry: the events in between are gone.
            if history_lost(key) {
                return Err(history_lost_error());
            }
            (key.saturating_sub(1), None)
        }
        Start::ResumeAfter(token) | Start::StartAfter(token) => {
            if matches!(spec.start, Start::ResumeAfter(_)) && token.kind == TokenKind::Invalidate {
                return Err(Error::new(
                    INVALID_RESUME_TOKEN,
                    "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate \
                     notification.",
                ));
            }
            if history_lost(token.key) {
                return Err(history_lost_error());
            }
            if token.kind != TokenKind::HighWater && !has_entry_at(&snapshot, token.key)? {
                return Err(Error::new(
                    CHANGE_STREAM_FATAL,
                    format!(
                        "cannot resume stream; the resume token was not found. {}",
                        token.to_document()
                    ),
                ));
            }
            (token.key.saturating_sub(1), Some(token))
        }
    };
    drop(snapshot);
    ctx.operation_time.note(ts_from_u64(
        after.max(ts_to_u64(node.storage.positions().last_written.ts)),
    ));
    let start_position = skip_through.unwrap_or(ResumeToken {
        key: after,
        kind: TokenKind::HighWater,
    });
    let mut stream = ChangeStream {
        scope,
        spec,
        stages: rest.to_vec(),
        after,
        skip_through,
        pending: VecDeque::new(),
        invalidated: false,
        position: start_position,
    };
    let ns = match coll {
        Some(coll) => Namespace::new(&ctx.db, coll),
        None => Namespace::new(&ctx.db, "$cmd.aggregate"),
    };
    let docs = stream.next_batch(node, batch)?;
    let token = stream.post_batch_resume_token();
    let id = if stream.finished() {
        0
    } else {
        node.cursors
            .register(Cursor::new(ns.clone(), CursorSource::ChangeStream(Box::new(stream))))
    };
    Ok(doc! {"cursor": {"firstBatch": docs, "postBatchResumeToken": token, "id": id, "ns": ns.full()}})
}

fn history_lost_error() -> Error {
    Error::new(
        CHANGE_STREAM_HISTORY_LOST,
        "Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
    )
}

/// `getMore` on a change stream cursor: the next events, waiting up to `max_await` for some (awaitData).
pub async fn get_more(
    ctx: &Context<'_>,
    id: i64,
    mut cursor: Cursor,
    batch: usize,
    max_await: Duration,
) -> Result<Document> {
    let node = ctx.node;
    let CursorSource::ChangeStream(stream) = &mut cursor.source else {
        return Err(Error::internal("not a change stream cursor"));
    };
    let deadline = tokio::time::Instant::now() + max_await;
    let docs = loop {
        // A failed stream is closed, as mongod closes it.
        let docs = stream.next_batch(node, batch).map_err(label_resumable)?;
        if !docs.is_empty() || stream.finished() || batch == 0 {
            break docs;
        }
        let after = stream.after;
        let wait = node.member.wait_committed(|committed| {
            ts_to_u64(committed.ts).min(ts_to_u64(node.storage.positions().last_written.ts)) > after
        });
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => return Err(label_resumable(err)),
            Err(_) => break docs,
        }
    };
    let token = stream.post_batch_resume_token();
    let ns = cursor.ns.full();
    let reply_id = if stream.finished() {
        0
    } else {
        node.cursors.put_back(id, cursor);
        id
    };
    Ok(doc! {"cursor": {"nextBatch": docs, "postBatchResumeToken": token, "id": reply_id, "ns": ns}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UpdateChange;

    #[test]
    fn the_stage_options_are_parsed_and_checked() {
        let spec = ChangeStreamSpec::parse(&Bson::Document(
            doc! {"fullDocument": "updateLookup", "showExpandedEvents": true},
        ))
        .unwrap();
        assert_eq!(spec.full_document, FullDocument::UpdateLookup);
        assert!(spec.expanded);
        let code_of = |d: Document| ChangeStreamSpec::parse(&Bson::Document(d)).unwrap_err().code;
        assert_eq!(code_of(doc! {"fullDocument": "sometimes"}), 2);
        assert_eq!(code_of(doc! {"bogus": 1}), 40415);
        let token = ResumeToken::new(Timestamp { time: 1, increment: 1 }, TokenKind::Event).to_document();
        assert_eq!(code_of(doc! {"resumeAfter": token.clone(), "startAfter": token}), 40674);
    }

    #[test]
    fn only_document_stages_may_follow() {
        assert!(check_stages(&[doc! {"$match": {"x": 1}}, doc! {"$project": {"x": 1}}]).is_ok());
        assert_eq!(check_stages(&[doc! {"$unsupported": "foo"}]).unwrap_err().code, 40324);
        assert_eq!(check_stages(&[doc! {"$group": {"_id": null}}]).unwrap_err().code, 20);
        assert_eq!(check_stages(&[doc! {"$changeStream": {}}]).unwrap_err().code, 40602);
    }

    #[test]
    fn full_documents_go_before_the_namespace() {
        let event = doc! {"_id": 1, "operationType": "update", "ns": {"db": "d"}, "documentKey": {"_id": 1}};
        let placed = insert_before(event, "ns", "fullDocument", Bson::Null);
        assert_eq!(
            placed.keys().collect::<Vec<_>>(),
            ["_id", "operationType", "fullDocument", "ns", "documentKey"]
        );
    }

    #[test]
    fn update_descriptions_apply_to_pre_images() {
        let change = UpdateChange::Diff(doc! {"u": {"x": 1}});
        assert_eq!(change.apply(doc! {"_id": 1}), doc! {"_id": 1, "x": 1});
    }
}

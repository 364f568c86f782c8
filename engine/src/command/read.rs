//! Read commands: find, getMore, killCursors, count, distinct, aggregate.
//!
//! Besides user collections, the namespaces the engine keeps in its own tables are readable as MongoDB
//! exposes them: `local.oplog.rs` (the oplog, in timestamp order; tailable), `local.system.replset` (the
//! config), `admin.system.version` (the feature compatibility version) and `config.transactions` (the
//! retryable-write sessions).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bson::{Bson, Document, doc};

use super::args;
use super::options;
use super::read_concern::{self, ReadConcern};
use super::scan::{CollectionScan, OplogScan};
use super::{Context, StoredBatch};
use crate::bsonx;
use crate::cursor::{Cursor, CursorSource, OplogArrivals};
use crate::error::{Error, Result, code};
use crate::node::{Counters, Node};
use crate::query::filter::Filter;
use crate::query::pipeline::{DocStream, SortStream, VecStream, approx_doc_size};
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::query::variables::Variables;
use crate::storage::{CollectionMeta, Namespace, Snapshot, keystring, oplog_scan_after};

pub(super) const DEFAULT_BATCH: usize = 101;
const GET_MORE_DEFAULT_BATCH: usize = 10_000;
/// The documents of a reply batch stay within mongod's 16 MiB `BSONObjMaxUserSize`.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// A batch also stops at this much decoded document memory (see [`Batch`]).
const MAX_BATCH_MEMORY: usize = 32 * 1024 * 1024;
/// What a document adds to a reply array besides itself: type byte, index digits, NUL (mongod's upper bound).
const PER_DOCUMENT_OVERHEAD: usize = 10;

/// What a namespace resolves to.
pub(super) enum Target {
    Collection(CollectionMeta),
    Oplog,
    ReplsetConfig,
    /// `admin.system.version`: the feature compatibility version document.
    Version,
    /// `config.transactions`: one document per retryable-write session.
    Sessions,
    Missing,
}

/// The feature compatibility version document of `admin.system.version`.
pub(super) fn fcv_document() -> Document {
    doc! {"_id": "featureCompatibilityVersion", "version": "7.0"}
}

/// `config.transactions` documents (`{_id: lsid, txnNum, lastWriteDate}`) from the session records (records
/// stored before the session id was kept in them are left out).
pub(super) fn session_documents(snapshot: &Snapshot) -> Result<Vec<Document>> {
    let (records, _) = snapshot.sessions()?;
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let mut doc = doc! {"_id": r.get_document("lsid").ok()?.clone(), "txnNum": r.get_i64("txnNumber").ok()?};
            if let Some(last) = r.get("lastWrite") {
                doc.insert("lastWriteDate", last.clone());
            }
            Some(doc)
        })
        .collect())
}

pub(super) fn resolve(snapshot: &Snapshot, ns: &Namespace) -> Result<Target> {
    if ns.db == "local" && ns.coll == "oplog.rs" {
        return Ok(Target::Oplog);
    }
    if ns.db == "local" && ns.coll == "system.replset" {
        return Ok(Target::ReplsetConfig);
    }
    if ns.db == "admin" && ns.coll == "system.version" {
        return Ok(Target::Version);
    }
    if ns.db == "config" && ns.coll == "transactions" {
        return Ok(Target::Sessions);
    }
    Ok(snapshot
        .collection(ns)?
        .map(Target::Collection)
        .unwrap_or(Target::Missing))
}

/// Checks a read's `hint` against what it reads (only a collection has indexes to name).
fn check_hint(body: &Document, target: &Target) -> Result<()> {
    let meta = match target {
        Target::Collection(meta) => Some(meta),
        _ => None,
    };
    options::check_hint(body.get("hint"), meta)
}

/// Every document of a target that matches `filter`, in natural order.
pub(super) fn matching(node: &Node, snapshot: &Snapshot, target: &Target, filter: &Filter) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    for_each_matching(node, snapshot, target, filter, |doc| out.push(doc))?;
    Ok(out)
}

/// Visits every document of a target that matches `filter`, in natural order, holding one at a time.
pub(super) fn for_each_matching(
    node: &Node,
    snapshot: &Snapshot,
    target: &Target,
    filter: &Filter,
    mut visit: impl FnMut(Document),
) -> Result<()> {
    match target {
        Target::Collection(meta) => {
            if let Some(id) = filter.id_equality() {
                if let Some(doc) = snapshot.get_by_id(meta, id)?
                    && filter.matches(&doc)
                {
                    visit(doc);
                }
                return Ok(());
            }
            snapshot.scan(meta, None, |doc| {
                if filter.matches(&doc) {
                    visit(doc);
                }
                ControlFlow::Continue(())
            })?;
        }
        Target::Oplog => snapshot.scan_oplog(None, false, |_, doc| {
            if filter.matches(&doc) {
                visit(doc);
            }
            ControlFlow::Continue(())
        })?,
        Target::ReplsetConfig => {
            if let Ok(config) = node.member.config_document()
                && filter.matches(&config)
            {
                visit(config);
            }
        }
        Target::Version => {
            let fcv = fcv_document();
            if filter.matches(&fcv) {
                visit(fcv);
            }
        }
        Target::Sessions => {
            for doc in session_documents(snapshot)?.into_iter().filter(|d| filter.matches(d)) {
                visit(doc);
            }
        }
        Target::Missing => {}
    }
    Ok(())
}

pub(super) fn batch_size(body: &Document, key_present_default: usize) -> Result<usize> {
    match args::opt_i64(body, "batchSize")? {
        None => Ok(key_present_default),
        Some(n) if n < 0 => Err(Error::bad_value("batchSize value must be non-negative")),
        Some(n) => Ok(n as usize),
    }
}

fn parse_projection(body: &Document) -> Result<Option<Arc<Projection>>> {
    match args::opt_doc(body, "projection")? {
        Some(p) if !p.is_empty() => Ok(Some(Arc::new(Projection::parse(p)?))),
        _ => Ok(None),
    }
}

fn project(projection: &Option<Arc<Projection>>, doc: Document) -> Result<Document> {
    match projection {
        Some(p) => Ok(p.apply(&doc)?),
        None => Ok(doc),
    }
}

/// Whether an oplog filter asks nothing but what scanning after [`oplog_start`] ensures: it is empty, or it
/// is exactly `{ts: {$gte: T}}` or `{ts: {$gt: T}}`.
fn filter_is_oplog_position(filter_doc: &Document) -> bool {
    if filter_doc.is_empty() {
        return true;
    }
    filter_doc.len() == 1
        && filter_doc.get_document("ts").is_ok_and(|cond| cond.len() == 1)
        && oplog_start(filter_doc).is_some()
}

/// The oplog key a scan can start after, for a filter on `ts` (`{ts: {$gte: T}}` or `$gt`).
fn oplog_start(filter_doc: &Document) -> Option<u64> {
    let cond = filter_doc.get_document("ts").ok()?;
    if let Ok(ts) = cond.get_timestamp("$gte") {
        return Some(oplog_scan_after(ts, true));
    }
    cond.get_timestamp("$gt").ok().map(|ts| oplog_scan_after(ts, false))
}

/// The documents a sorted (or `_id`-equality, or reverse natural order) find reads, as a stream: a chunked
/// scan, or the one document an `_id` equality names.
fn sorted_source(
    node: &Node,
    snapshot: &Snapshot,
    target: &Target,
    filter: &Arc<Filter>,
    filter_doc: &Document,
    reverse: bool,
) -> Result<Box<dyn DocStream>> {
    Ok(match target {
        Target::Collection(meta) if filter.id_equality().is_none() => Box::new(CollectionScan::new(
            node.storage.clone(),
            meta.clone(),
            filter.clone(),
            reverse,
        )),
        Target::Oplog => {
            let after = if reverse { None } else { oplog_start(filter_doc) };
            Box::new(OplogScan::new(node.storage.clone(), filter.clone(), reverse, after))
        }
        _ => Box::new(VecStream::new(matching(node, snapshot, target, filter)?)),
    })
}

/// Whether a collection scan already yields `spec`'s order: a sort on `_id` alone (scanned backwards when
/// descending), or a query for one `_id`.
fn served_in_order(target: &Target, filter: &Filter, spec: &SortSpec) -> bool {
    matches!(target, Target::Collection(_)) && (filter.id_equality().is_some() || spec.id_only().is_some())
}

/// mongod's wording for an error raised while a query runs (`Executor error during find command :: caused by
/// :: Sort exceeded memory limit ...`), for the memory-limit errors of blocking stages.
fn executor_error(mut err: Error, during: &str) -> Error {
    if matches!(err.code, 292 | 146) {
        err.message = format!("Executor error {during} :: caused by :: {}", err.message);
    }
    err
}

/// A parsed `find` command (explain parses the finds it describes with it too).
pub(super) struct FindSpec {
    pub(super) ns: Namespace,
    /// The filter as given (an oplog scan starts where its `ts` bound says).
    pub(super) filter_doc: Document,
    pub(super) filter: Arc<Filter>,
    pub(super) sort: Option<SortSpec>,
    /// The sort as given (explain shows it).
    pub(super) sort_doc: Option<Document>,
    pub(super) projection: Option<Arc<Projection>>,
    /// The projection as given (explain shows it).
    pub(super) projection_doc: Option<Document>,
    pub(super) skip: usize,
    pub(super) limit: Option<usize>,
    batch_size: usize,
    single_batch: bool,
    tailable: bool,
    await_data: bool,
    allow_disk_use: Option<bool>,
    no_cursor_timeout: bool,
}

impl FindSpec {
    pub(super) fn parse(body: &Document, db: &str, vars: &Variables) -> Result<FindSpec> {
        let ns = args::namespace(body, db)?;
        let filter_doc = vars.bind_filter(args::opt_doc(body, "filter")?.unwrap_or(&Document::new()));
        let collation = options::collation(body)?;
        let filter = Arc::new(Filter::parse_collated(&filter_doc, collation.as_ref())?);
        let sort_doc = args::opt_doc(body, "sort")?.filter(|s| !s.is_empty()).cloned();
        let sort = sort_doc
            .as_ref()
            .map(|s| SortSpec::parse(s).map(|spec| spec.with_collation(collation.as_ref())))
            .transpose()?;
        let projection = parse_projection(body)?;
        let projection_doc = args::opt_doc(body, "projection")?.filter(|p| !p.is_empty()).cloned();
        let skip = match args::opt_i64(body, "skip")? {
            Some(n) if n < 0 => return Err(Error::bad_value("skip value must be non-negative")),
            n => n.unwrap_or(0) as usize,
        };
        let limit = match args::opt_i64(body, "limit")? {
            Some(n) if n < 0 => return Err(Error::bad_value("limit value must be non-negative")),
            Some(0) | None => None,
            Some(n) => Some(n as usize),
        };
        Ok(FindSpec {
            ns,
            filter_doc,
            filter,
            sort,
            sort_doc,
            projection,
            projection_doc,
            skip,
            limit,
            batch_size: batch_size(body, DEFAULT_BATCH)?,
            single_batch: args::opt_bool(body, "singleBatch")?.unwrap_or(false),
            tailable: args::opt_bool(body, "tailable")?.unwrap_or(false),
            await_data: args::opt_bool(body, "awaitData")?.unwrap_or(false),
            allow_disk_use: args::opt_bool(body, "allowDiskUse")?,
            no_cursor_timeout: args::opt_bool(body, "noCursorTimeout")?.unwrap_or(false),
        })
    }

    /// A find of `ns` with just a filter (how explain plans count, distinct and an aggregation's `$match`).
    pub(super) fn with_filter(ns: Namespace, filter_doc: Document) -> Result<FindSpec> {
        Ok(FindSpec {
            ns,
            filter: Arc::new(Filter::parse(&filter_doc)?),
            filter_doc,
            sort: None,
            sort_doc: None,
            projection: None,
            projection_doc: None,
            skip: 0,
            limit: None,
            batch_size: DEFAULT_BATCH,
            single_batch: false,
            tailable: false,
            await_data: false,
            allow_disk_use: None,
            no_cursor_timeout: false,
        })
    }
}

/// How a find reads its target: the planning decision, made once here for `find` (which builds its cursor
/// from it) and `explain` (which describes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FindAccess {
    /// The namespace does not exist: nothing to read.
    Eof,
    /// The one document a collection's `_id` equality names, read by its key.
    IdLookup,
    /// Storage order, forward, by a cursor that resumes where its last batch stopped (the oplog, or a
    /// collection, in natural order).
    ResumableScan,
    /// Storage order streamed (the oplog, or a collection, whose order is `_id` order), from the end when
    /// `backward`: under a blocking sort, a reverse natural order or an `_id` sort.
    StreamedScan { backward: bool },
    /// The documents an engine table lists (the config, the feature compatibility version, the sessions),
    /// in their order.
    Listed,
}

/// A find's plan: how it reads, and whether a blocking sort runs on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FindPlan {
    pub(super) access: FindAccess,
    /// The read order does not serve the sort: every result is sorted before the first is returned.
    pub(super) blocking_sort: bool,
}

/// Plans `spec` on `target`.
pub(super) fn plan_access(target: &Target, spec: &FindSpec) -> FindPlan {
    let natural = spec.sort.as_ref().and_then(SortSpec::natural);
    let natural_order = spec.sort.is_none() || natural == Some(1);
    let access = match target {
        Target::Missing => FindAccess::Eof,
        Target::Oplog if natural_order => FindAccess::ResumableScan,
        Target::Collection(_) if spec.filter.id_equality().is_some() => FindAccess::IdLookup,
        Target::Collection(_) if natural_order => FindAccess::ResumableScan,
        Target::Collection(_) | Target::Oplog => {
            let by_id_descending = matches!(target, Target::Collection(_))
                && spec.sort.as_ref().and_then(SortSpec::id_only) == Some(false);
            FindAccess::StreamedScan {
                backward: natural == Some(-1) || by_id_descending,
            }
        }
        Target::ReplsetConfig | Target::Version | Target::Sessions => FindAccess::Listed,
    };
    let blocking_sort = spec
        .sort
        .as_ref()
        .is_some_and(|sort| !sort.is_empty() && !served_in_order(target, &spec.filter, sort));
    FindPlan { access, blocking_sort }
}

/// `find`: parse, wait for the read concern, plan against a snapshot, return the first batch (the rest
/// stays in a registered cursor for `getMore`).
pub async fn find(ctx: &Context<'_>) -> Result<Document> {
    let mut spec = FindSpec::parse(ctx.body, &ctx.db, &args::command_variables(ctx)?)?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    Counters::bump(&ctx.node.counters.queries, 1);
    let (snapshot, at_cluster_time) = read_concern::read_view(ctx, &rc)?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &spec.ns)?;
    check_hint(ctx.body, &target)?;
    let meta = match &target {
        Target::Collection(meta) => Some(meta),
        _ => None,
    };
    if let Some(range) = options::min_max(ctx.body, meta)? {
        spec.filter = Arc::new((*spec.filter).clone().with_key_range(range));
    }
    if args::opt_bool(ctx.body, "returnKey")?.unwrap_or(false) {
        spec.projection = Some(Arc::new(return_key_projection(ctx.body, &target, &spec)?));
    }
    let source = if snapshot.is_retained() {
        snapshot_source(ctx.node, &snapshot, &target, &spec)?
    } else {
        plan_find(ctx.node, &snapshot, &target, &spec)?
    };
    drop(snapshot);
    let mut reply = first_batch(ctx.node, &spec, source, matches!(target, Target::Missing))?;
    with_at_cluster_time(&mut reply, at_cluster_time);
    read_concern::after_read(ctx, &rc, read_at).await?;
    Ok(reply)
}

/// `returnKey`: each result is the key of the index the plan reads, as mongod returns it — `{_id: ...}` when
/// the `_id` index serves the find (an `_id` lookup or sort, or a hint naming it), an empty document for a
/// collection scan (the engine has no other indexes to read).
fn return_key_projection(body: &Document, target: &Target, spec: &FindSpec) -> Result<Projection> {
    let hinted_id = match body.get("hint") {
        Some(Bson::String(name)) => name == "_id_",
        Some(Bson::Document(key)) => key.len() == 1 && key.contains_key("_id"),
        _ => false,
    };
    let by_id = matches!(target, Target::Collection(_))
        && (hinted_id
            || spec.filter.id_equality().is_some()
            || spec.sort.as_ref().and_then(SortSpec::id_only).is_some());
    let keys = if by_id {
        doc! {"_id": 1}
    } else {
        doc! {"_id": 0, "key": "$$REMOVE"}
    };
    Ok(Projection::parse(&keys)?)
}

/// A snapshot read's find: every match read from the snapshot's view now (later batches must not read a
/// newer state), then sorted.
fn snapshot_source(node: &Node, snapshot: &Snapshot, target: &Target, spec: &FindSpec) -> Result<CursorSource> {
    let mut docs = matching(node, snapshot, target, &spec.filter)?;
    if spec.sort.as_ref().and_then(SortSpec::natural) == Some(-1) {
        docs.reverse();
    }
    let source: Box<dyn DocStream> = Box::new(VecStream::new(docs));
    let stream: Box<dyn DocStream> = match &spec.sort {
        Some(sort) if !sort.is_empty() => Box::new(SortStream::new(
            source,
            sort.clone(),
            spec.limit.map(|l| spec.skip.saturating_add(l)),
            node.query_limits(spec.allow_disk_use),
        )),
        _ => source,
    };
    Ok(CursorSource::Stream {
        stream,
        projection: spec.projection.clone(),
    })
}

/// A snapshot read's reply reports the time it read at: in its cursor (find, aggregate) or at the top
/// (distinct).
fn with_at_cluster_time(reply: &mut Document, at: Option<bson::Timestamp>) {
    let Some(at) = at else { return };
    match reply.get_mut("cursor") {
        Some(Bson::Document(cursor)) => {
            cursor.insert("atClusterTime", at);
        }
        _ => {
            reply.insert("atClusterTime", at);
        }
    }
}

/// Where a find's documents come from: a resumable scan when natural order serves it (the oplog, or a
/// collection not queried by `_id`), otherwise a stream (an `_id` lookup, a reverse scan, a sort).
fn plan_find(node: &Node, snapshot: &Snapshot, target: &Target, spec: &FindSpec) -> Result<CursorSource> {
    if spec.tailable && !matches!(target, Target::Oplog | Target::Missing) {
        return Err(Error::bad_value(format!(
            "error processing query: ns={}: tailable cursor requested on non capped collection",
            spec.ns
        )));
    }
    let plan = plan_access(target, spec);
    let (filter, projection) = (spec.filter.clone(), spec.projection.clone());
    Ok(match (plan.access, target) {
        (FindAccess::ResumableScan, Target::Oplog) => CursorSource::Oplog {
            as_stored: projection.is_none() && filter_is_oplog_position(&spec.filter_doc),
            filter,
            projection,
            after: oplog_start(&spec.filter_doc),
            tailable: spec.tailable,
            await_data: spec.await_data,
        },
        (FindAccess::ResumableScan, Target::Collection(meta)) => CursorSource::Collection {
            meta: meta.clone(),
            filter,
            projection,
            after: None,
        },
        (access, _) => {
            let reverse = access == FindAccess::StreamedScan { backward: true };
            let source = sorted_source(node, snapshot, target, &filter, &spec.filter_doc, reverse)?;
            let stream: Box<dyn DocStream> = match &spec.sort {
                Some(sort) if plan.blocking_sort => {
                    let top = spec.limit.map(|l| spec.skip.saturating_add(l));
                    Box::new(SortStream::new(
                        source,
                        sort.clone(),
                        top,
                        node.query_limits(spec.allow_disk_use),
                    ))
                }
                _ => source,
            };
            CursorSource::Stream { stream, projection }
        }
    })
}

/// Runs a planned find up to its first batch; registers the cursor when more may follow.
fn first_batch(node: &Node, spec: &FindSpec, source: CursorSource, missing: bool) -> Result<Document> {
    let mut cursor = Cursor::new(spec.ns.clone(), source);
    cursor.remaining = spec.limit;
    cursor.skip = spec.skip;
    cursor.no_timeout = spec.no_cursor_timeout;
    let (docs, exhausted) =
        next_batch(node, &mut cursor, spec.batch_size).map_err(|e| executor_error(e, "during find command"))?;
    let id = if exhausted || spec.single_batch || missing {
        0
    } else {
        node.cursors.register(cursor)
    };
    Ok(doc! {"cursor": {"firstBatch": docs, "id": id, "ns": spec.ns.full()}})
}

/// Collects one reply batch: at most `cap` documents and 16 MiB of them (mongod's `BSONObjMaxUserSize`,
/// counted with its per-element overhead), except that the first document always goes in so every batch
/// makes progress. The reply envelope fits in the 16 KiB mongod allows above that. A batch also stops at
/// [`MAX_BATCH_MEMORY`] of decoded documents: 16 MiB of tiny nested documents can take twenty times that in
/// memory, and a reply smaller than asked for is always allowed.
struct Batch {
    docs: Vec<Document>,
    bytes: usize,
    memory: usize,
    cap: usize,
}

impl Batch {
    fn new(cap: usize) -> Batch {
        Batch {
            docs: Vec::new(),
            bytes: 0,
            memory: 0,
            cap,
        }
    }

    fn full(&self) -> bool {
        self.docs.len() >= self.cap || self.bytes >= MAX_BATCH_BYTES || self.memory >= MAX_BATCH_MEMORY
    }

    /// Adds `doc` if it fits, and says whether more may follow; a document that does not fit is given back
    /// for the next batch.
    fn offer(&mut self, doc: Document) -> std::result::Result<ControlFlow<()>, Document> {
        let size = doc.to_vec().map(|v| v.len()).unwrap_or(0) + PER_DOCUMENT_OVERHEAD;
        let memory = approx_doc_size(&doc);
        if !self.docs.is_empty()
            && (self.full() || self.bytes + size > MAX_BATCH_BYTES || self.memory + memory > MAX_BATCH_MEMORY)
        {
            return Err(doc);
        }
        self.bytes += size;
        self.memory += memory;
        self.docs.push(doc);
        Ok(if self.full() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }
}

/// Produces the next batch of a cursor; `true` when nothing more can come.
pub(super) fn next_batch(node: &Node, cursor: &mut Cursor, batch_size: usize) -> Result<(Vec<Document>, bool)> {
    let cap = cursor.remaining.map(|r| r.min(batch_size)).unwrap_or(batch_size);
    let mut batch = Batch::new(cap);
    // A document the previous batch had no room for comes first.
    if let Some(doc) = cursor.stash.take() {
        let _ = batch.offer(doc);
    }
    let skip = &mut cursor.skip;
    let stash = &mut cursor.stash;
    // The first projection failure (a result nested too deep) ends the batch and fails the command.
    let mut failure: Option<Error> = None;
    let mut keep = |doc: Document, filter: Option<&Filter>, projection: &Option<Arc<Projection>>, batch: &mut Batch| {
        if filter.is_some_and(|f| !f.matches(&doc)) {
            return ControlFlow::Continue(());
        }
        if *skip > 0 {
            *skip -= 1;
            return ControlFlow::Continue(());
        }
        match project(projection, doc) {
            Ok(projected) => batch.offer(projected).unwrap_or_else(|doc| {
                *stash = Some(doc);
                ControlFlow::Break(())
            }),
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        }
    };
    let exhausted = match &mut cursor.source {
        CursorSource::Buffered(buffer) => {
            while !batch.full() {
                match buffer.pop_front() {
                    Some(doc) => {
                        if let Err(doc) = batch.offer(doc) {
                            buffer.push_front(doc);
                            break;
                        }
                    }
                    None => break,
                }
            }
            buffer.is_empty()
        }
        CursorSource::Collection {
            meta,
            filter,
            projection,
            after,
        } => {
            if !batch.full() {
                let snapshot = node.storage.snapshot()?;
                let last = snapshot.scan(meta, after.as_deref(), |doc| {
                    keep(doc, Some(filter), projection, &mut batch)
                })?;
                if last.is_some() {
                    *after = last;
                }
            }
            !batch.full()
        }
        CursorSource::Oplog {
            filter,
            projection,
            after,
            tailable,
            ..
        } => {
            if !batch.full() {
                let snapshot = node.storage.snapshot()?;
                let mut last_key = *after;
                snapshot.scan_oplog(*after, false, |key, doc| {
                    last_key = Some(key);
                    keep(doc, Some(filter), projection, &mut batch)
                })?;
                *after = last_key;
            }
            !batch.full() && !*tailable
        }
        // Change streams batch on their own (`changestream::get_more`).
        CursorSource::ChangeStream(_) => return Err(Error::internal("change stream cursor read as a query")),
        CursorSource::Stream { stream, projection } => {
            let mut ended = false;
            while !batch.full() {
                let Some(doc) = stream.next_doc()? else {
                    ended = true;
                    break;
                };
                if keep(doc, None, projection, &mut batch).is_break() {
                    break;
                }
            }
            ended
        }
    };
    if let Some(err) = failure {
        return Err(err);
    }
    let exhausted = exhausted && cursor.stash.is_none();
    if let Some(remaining) = cursor.remaining.as_mut() {
        *remaining = remaining.saturating_sub(batch.docs.len());
    }
    let limit_reached = cursor.remaining == Some(0);
    Ok((batch.docs, exhausted || limit_reached))
}

pub async fn get_more(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let id = match body.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        Some(Bson::Int32(id)) => i64::from(*id),
        _ => return Err(Error::type_mismatch("getMore: cursor id must be a long")),
    };
    let coll = body
        .get_str("collection")
        .map_err(|_| Error::type_mismatch("getMore: 'collection' must be a string"))?;
    let ns = Namespace::new(&ctx.db, coll);
    let batch = batch_size(body, GET_MORE_DEFAULT_BATCH)?;
    let max_await = args::opt_i64(body, "maxTimeMS")?.unwrap_or(1000).max(0) as u64;
    Counters::bump(&ctx.node.counters.getmores, 1);
    let Some(mut cursor) = ctx.node.cursors.take(id) else {
        return Err(Error::new(code::CURSOR_NOT_FOUND, format!("cursor id {id} not found")));
    };
    if cursor.ns != ns {
        ctx.node.cursors.put_back(id, cursor);
        return Err(Error::new(
            (13, "Unauthorized"),
            format!("Requested getMore on namespace '{ns}', but cursor belongs to a different namespace"),
        ));
    }
    if matches!(cursor.source, CursorSource::ChangeStream(_)) {
        return crate::changestream::get_more(ctx, id, cursor, batch, Duration::from_millis(max_await)).await;
    }
    let await_data = matches!(
        cursor.source,
        CursorSource::Oplog {
            tailable: true,
            await_data: true,
            ..
        }
    );
    let deadline = tokio::time::Instant::now() + Duration::from_millis(max_await);
    let mut arrivals = OplogArrivals::new(ctx.node.storage.watch_positions());
    let (docs, exhausted) = loop {
        let (docs, exhausted) = next_get_more_batch(ctx.node, &mut cursor, batch)?;
        if !docs.is_empty() || exhausted || !await_data {
            break (docs, exhausted);
        }
        // awaitData: wait for new oplog entries (or the deadline), then look again.
        if !arrivals.wait_until(deadline).await {
            break (docs, exhausted);
        }
    };
    if let Some(last) = docs.last_oplog_key() {
        tracing::trace!(target: "write_path", ts = last, n = docs.len(), "getmore.reply");
    }
    let reply_id = if exhausted {
        0
    } else {
        ctx.node.cursors.put_back(id, cursor);
        id
    };
    match docs {
        GetMoreBatch::Documents(docs) => Ok(doc! {"cursor": {"nextBatch": docs, "id": reply_id, "ns": ns.full()}}),
        GetMoreBatch::Stored(entries) => {
            *ctx.stored_batch.lock().unwrap_or_else(PoisonError::into_inner) = Some(entries);
            Ok(doc! {"cursor": {"id": reply_id, "ns": ns.full()}})
        }
    }
}

/// One `getMore` batch: documents, or oplog entries as stored (spliced into the reply by
/// [`super::Reply::to_bson`]).
enum GetMoreBatch {
    Documents(Vec<Document>),
    Stored(StoredBatch),
}

impl GetMoreBatch {
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        match self {
            GetMoreBatch::Documents(docs) => docs.len(),
            GetMoreBatch::Stored(entries) => entries.len(),
        }
    }

    /// The oplog key of the batch's last document, when it is an oplog entry.
    fn last_oplog_key(&self) -> Option<u64> {
        match self {
            GetMoreBatch::Documents(docs) => docs
                .last()
                .and_then(|d| d.get_timestamp("ts").ok())
                .map(crate::storage::ts_to_u64),
            GetMoreBatch::Stored(entries) => entries.last_key(),
        }
    }
}

fn next_get_more_batch(node: &Node, cursor: &mut Cursor, batch_size: usize) -> Result<(GetMoreBatch, bool)> {
    if let Some((entries, exhausted)) = next_stored_batch(node, cursor, batch_size)? {
        return Ok((GetMoreBatch::Stored(entries), exhausted));
    }
    let (docs, exhausted) = next_batch(node, cursor, batch_size)?;
    Ok((GetMoreBatch::Documents(docs), exhausted))
}

/// The next batch of an oplog cursor that sends its entries as stored (see `CursorSource::Oplog::as_stored`),
/// with whether the cursor is exhausted; `None` for every other cursor, and for one that has a limit, a skip
/// or a held-over document to honour. The same batch limits apply as to [`next_batch`].
fn next_stored_batch(node: &Node, cursor: &mut Cursor, batch_size: usize) -> Result<Option<(StoredBatch, bool)>> {
    if cursor.remaining.is_some() || cursor.skip > 0 || cursor.stash.is_some() {
        return Ok(None);
    }
    let CursorSource::Oplog {
        as_stored: true,
        after,
        tailable,
        ..
    } = &mut cursor.source
    else {
        return Ok(None);
    };
    let snapshot = node.storage.snapshot()?;
    let mut entries = StoredBatch::default();
    let (mut full, mut failure) = (false, None);
    snapshot.scan_oplog_stored(*after, false, |key, bytes| {
        if !entries.is_empty() && entries.size() + bytes.len() + PER_DOCUMENT_OVERHEAD > MAX_BATCH_BYTES {
            full = true;
            return ControlFlow::Break(());
        }
        if let Err(err) = entries.push(key, bytes) {
            failure = Some(err);
            return ControlFlow::Break(());
        }
        *after = Some(key);
        full = entries.len() >= batch_size;
        if full {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(Some((entries, !full && !*tailable)))
}

pub fn kill_cursors(ctx: &Context<'_>) -> Result<Document> {
    let ids = args::opt_array(ctx.body, "cursors")?
        .ok_or_else(|| Error::failed_to_parse("killCursors: 'cursors' is required"))?;
    let (mut killed, mut not_found) = (Vec::new(), Vec::new());
    for id in ids {
        let Some(id) = bsonx::as_i64(id) else { continue };
        if ctx.node.cursors.kill(id) {
            killed.push(Bson::Int64(id))
        } else {
            not_found.push(Bson::Int64(id))
        }
    }
    Ok(doc! {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []})
}

pub async fn count(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let ns = args::namespace(body, &ctx.db)?;
    let collation = options::collation(body)?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    let query = args::opt_doc(body, "query")?.cloned().unwrap_or_default();
    let filter = Filter::parse_collated(&query, collation.as_ref())?;
    let skip = args::opt_i64(body, "skip")?.unwrap_or(0).max(0) as usize;
    let limit = args::opt_i64(body, "limit")?.unwrap_or(0).unsigned_abs() as usize;
    let snapshot = ctx.node.storage.snapshot()?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    check_hint(body, &target)?;
    let n = if query.is_empty()
        && let Target::Collection(meta) = &target
    {
        snapshot.collection_stats(meta)?.0 as usize
    } else {
        let mut n = 0usize;
        for_each_matching(ctx.node, &snapshot, &target, &filter, |_| n += 1)?;
        n
    };
    drop(snapshot);
    let mut n = n.saturating_sub(skip);
    if limit > 0 {
        n = n.min(limit);
    }
    read_concern::after_read(ctx, &rc, read_at).await?;
    Ok(doc! {"n": n as i64})
}

pub async fn distinct(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    let ns = args::namespace(body, &ctx.db)?;
    let key = body
        .get_str("key")
        .map_err(|_| Error::type_mismatch("distinct: 'key' must be a string"))?;
    let collation = options::collation(body)?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    let filter = Filter::parse_collated(
        args::opt_doc(body, "query")?.unwrap_or(&Document::new()),
        collation.as_ref(),
    )?;
    let (snapshot, at_cluster_time) = read_concern::read_view(ctx, &rc)?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    check_hint(body, &target)?;
    let mut seen = HashSet::new();
    let mut values = Vec::new();
    for_each_matching(ctx.node, &snapshot, &target, &filter, |doc| {
        let Some(value) = crate::query::path::lookup(&doc, key) else {
            return;
        };
        let items: Vec<&Bson> = match value {
            Bson::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            // Under a collation, values it deems equal are one value (the first met stands for them).
            let key = match &collation {
                Some(collation) => keystring::encode(&collation.key_value(item)),
                None => keystring::encode(item),
            };
            if seen.insert(key) {
                values.push(item.clone());
            }
        }
    })?;
    drop(snapshot);
    match &collation {
        Some(collation) => values.sort_by_cached_key(|v| keystring::encode(&collation.key_value(v))),
        None => values.sort_by(crate::query::compare::compare_bson),
    }
    read_concern::after_read(ctx, &rc, read_at).await?;
    let mut reply = doc! {"values": values};
    with_at_cluster_time(&mut reply, at_cluster_time);
    Ok(reply)
}

/// Under a non-simple collation an aggregation's leading `$match` and a `$sort` right after it are collated;
/// the stages after them must not compare strings (the pipeline's stages compare in binary order): others
/// are NotImplemented (238).
fn check_collated_stages(stages: &[Document]) -> Result<()> {
    const ORDER_FREE: &[&str] = &["$skip", "$limit", "$count", "$unset"];
    // A `$group` into one group (a constant `_id`) with `$sum`/`$avg`/`$count` compares nothing either: how
    // drivers count documents.
    let single_group_total = |stage: &Document| {
        stage.get_document("$group").is_ok_and(|group| {
            group.iter().all(|(name, value)| match (name.as_str(), value) {
                ("_id", id) => !matches!(id, Bson::String(_) | Bson::Document(_) | Bson::Array(_)),
                (_, Bson::Document(acc)) => acc.iter().all(|(op, arg)| {
                    matches!(op.as_str(), "$sum" | "$avg" | "$count")
                        && !matches!(arg, Bson::String(_) | Bson::Document(_) | Bson::Array(_))
                }),
                _ => false,
            })
        })
    };
    match stages
        .iter()
        .filter(|stage| !single_group_total(stage))
        .filter_map(|stage| stage.keys().next())
        .find(|name| !ORDER_FREE.contains(&name.as_str()))
    {
        None => Ok(()),
        Some(name) => Err(Error::new(
            (238, "NotImplemented"),
            format!(
                "{name} under a non-simple collation is not supported by the Faultline engine (only a leading $match and $sort, then {} and a $group of one total)",
                ORDER_FREE.join(", ")
            ),
        )),
    }
}

pub async fn aggregate(ctx: &Context<'_>) -> Result<Document> {
    let body = ctx.body;
    if body.get("explain").is_some_and(bsonx::truthy) {
        ctx.node.member.check_readable(ctx.secondary_ok)?;
        return super::explain::aggregate(ctx, body, super::explain::Verbosity::QueryPlanner);
    }
    if !matches!(body.get("aggregate"), Some(Bson::String(_))) {
        return super::db_aggregate::aggregate(ctx).await;
    }
    let ns = args::namespace(body, &ctx.db)?;
    let stages = args::command_variables(ctx)?.bind_stages(&pipeline_stages(body)?);
    if crate::changestream::is_change_stream(&stages) {
        let batch = change_stream_batch(body)?;
        return crate::changestream::aggregate(ctx, Some(&ns.coll), &stages, batch).await;
    }
    let out = super::out_stage::split(&stages, &ctx.db)?;
    let stages = out.as_ref().map_or(stages, |(before, _)| before.clone());
    let cursor_opts = args::opt_doc(body, "cursor")?;
    if cursor_opts.is_none() && !body.contains_key("explain") {
        return Err(Error::failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let batch = cursor_opts
        .map(|c| batch_size(c, DEFAULT_BATCH))
        .transpose()?
        .unwrap_or(DEFAULT_BATCH);
    let allow_disk_use = args::opt_bool(body, "allowDiskUse")?;
    let collation = options::collation(body)?;
    let rc = ReadConcern::for_command(ctx)?;
    read_concern::before_read(ctx, &rc).await?;
    Counters::bump(&ctx.node.counters.queries, 1);
    if out.is_some() && rc.at_cluster_time.is_some() {
        return Err(Error::new(
            code::INVALID_OPTIONS,
            "$out and $merge cannot read at a past atClusterTime",
        ));
    }
    let (snapshot, at_cluster_time) = read_concern::read_view(ctx, &rc)?;
    let read_at = snapshot.last_optime()?;
    let target = resolve(&snapshot, &ns)?;
    check_hint(body, &target)?;
    let (filter, rest) = match stages.first() {
        Some(first) if first.contains_key("$collStats") => (None, &stages[1..]),
        Some(first) if first.contains_key("$match") => {
            let filter = Filter::parse_collated(
                first
                    .get_document("$match")
                    .map_err(|_| Error::type_mismatch("$match must be an object"))?,
                collation.as_ref(),
            )?;
            (Some(filter), &stages[1..])
        }
        _ => (Some(Filter::parse(&Document::new())?), &stages[..]),
    };
    // Under a collation, a `$sort` right after the leading `$match` sorts by collation keys here.
    let (collated_sort, rest) = match (&collation, rest.first().map(|s| s.get("$sort"))) {
        (Some(collation), Some(Some(Bson::Document(spec)))) => {
            (Some(SortSpec::parse(spec)?.with_collation(Some(collation))), &rest[1..])
        }
        _ => (None, rest),
    };
    if collation.is_some() {
        check_collated_stages(rest)?;
    }
    let input: Box<dyn DocStream> = match filter {
        None => Box::new(VecStream::new(vec![coll_stats_doc(ctx, &snapshot, &target, &ns)?])),
        Some(filter) if snapshot.is_retained() => {
            Box::new(VecStream::new(matching(ctx.node, &snapshot, &target, &filter)?))
        }
        Some(filter) => sorted_source(ctx.node, &snapshot, &target, &Arc::new(filter), &Document::new(), false)?,
    };
    let input: Box<dyn DocStream> = match collated_sort {
        Some(sort) => Box::new(SortStream::new(
            input,
            sort,
            None,
            ctx.node.query_limits(allow_disk_use),
        )),
        None => input,
    };
    drop(snapshot);
    let stream = crate::query::pipeline::build(
        rest,
        input,
        ctx.node.clock().now(),
        &ctx.node.query_limits(allow_disk_use),
    )?;
    let mut cursor = Cursor::new(
        ns.clone(),
        CursorSource::Stream {
            stream,
            projection: None,
        },
    );
    if let Some((_, target)) = out {
        let mut output = Vec::new();
        loop {
            let (docs, exhausted) =
                next_batch(ctx.node, &mut cursor, usize::MAX).map_err(|e| executor_error(e, "during aggregation"))?;
            output.extend(docs);
            if exhausted {
                break;
            }
        }
        read_concern::after_read(ctx, &rc, read_at).await?;
        return super::out_stage::write(ctx, &ns, target, output).await;
    }
    let (docs, exhausted) =
        next_batch(ctx.node, &mut cursor, batch).map_err(|e| executor_error(e, "during aggregation"))?;
    let id = if exhausted {
        0
    } else {
        ctx.node.cursors.register(cursor)
    };
    read_concern::after_read(ctx, &rc, read_at).await?;
    let mut reply = doc! {"cursor": {"firstBatch": docs, "id": id, "ns": ns.full()}};
    with_at_cluster_time(&mut reply, at_cluster_time);
    Ok(reply)
}

/// The `$collStats` document (mongosh's `db.coll.stats()`).
fn coll_stats_doc(ctx: &Context<'_>, snapshot: &Snapshot, target: &Target, ns: &Namespace) -> Result<Document> {
    let (count, size, nindexes) = match target {
        Target::Collection(meta) => {
            let (count, size) = snapshot.collection_stats(meta)?;
            (count, size, meta.indexes.len())
        }
        Target::Oplog => {
            let (count, size) = snapshot.oplog_stats()?;
            (count, size, 0)
        }
        _ => {
            return Err(Error::new(
                code::NAMESPACE_NOT_FOUND,
                format!(
                    "Unable to retrieve storageStats in $collStats stage :: caused by :: Collection [{ns}] not found."
                ),
            ));
        }
    };
    let avg = size.checked_div(count).unwrap_or(0);
    let mut storage = doc! {"size": size as i64, "count": count as i64, "avgObjSize": avg as i64, "storageSize": size as i64,
    "nindexes": nindexes as i32, "totalIndexSize": 0i64, "capped": matches!(target, Target::Oplog)};
    if matches!(target, Target::Oplog) {
        storage.insert("maxSize", snapshot.oplog_max_bytes() as i64);
    }
    Ok(doc! {"ns": ns.full(), "host": "", "localTime": ctx.node.clock().now(), "storageStats": storage})
}

/// The first batch's size of a change stream's `aggregate` (its `cursor` option is required).
pub(super) fn change_stream_batch(body: &Document) -> Result<usize> {
    let cursor = args::opt_doc(body, "cursor")?.ok_or_else(|| {
        Error::failed_to_parse("The 'cursor' option is required, except for aggregate with the explain argument")
    })?;
    batch_size(cursor, DEFAULT_BATCH)
}

/// The `pipeline` of an `aggregate` command (required; every stage a document).
pub(super) fn pipeline_stages(body: &Document) -> Result<Vec<Document>> {
    args::opt_array(body, "pipeline")?
        .ok_or_else(|| Error::failed_to_parse("aggregate: 'pipeline' is required"))?
        .iter()
        .map(|s| {
            s.as_document()
                .cloned()
                .ok_or_else(|| Error::type_mismatch("each pipeline stage must be an object"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(id: i32, bytes: usize) -> Document {
        doc! {"_id": id, "pad": "x".repeat(bytes)}
    }

    fn size(doc: &Document) -> usize {
        doc.to_vec().map(|v| v.len()).unwrap_or(0)
    }

    /// Two 10 MB documents never share a batch: the second waits for the next one (the replication
    /// stall came from a 20 MB reply).
    #[test]
    fn a_batch_never_grows_past_16_mib() {
        let mut batch = Batch::new(1000);
        let mut stashed = None;
        for id in 0..2 {
            if let Err(doc) = batch.offer(padded(id, 10_000_000)) {
                stashed = Some(doc);
                break;
            }
        }
        let total: usize = batch.docs.iter().map(size).sum();
        assert_eq!(batch.docs.len(), 1);
        assert!(total <= 16 * 1024 * 1024, "{total}");
        assert_eq!(stashed.map(|d| d.get_i32("_id").unwrap_or(-1)), Some(1));
    }

    /// Documents of many tiny parts take many times their BSON size once decoded (a `$group` of `$push:
    /// "$$ROOT"`): a batch also stops at [`MAX_BATCH_MEMORY`] of decoded documents, so a getMore never holds
    /// hundreds of megabytes for a 16 MiB reply.
    #[test]
    fn a_batch_bounds_its_decoded_size_too() {
        let group = |id: i32| {
            let docs: Vec<Bson> = (0..1000)
                .map(|i| Bson::Document(doc! {"_id": i, "k": id, "v": i}))
                .collect();
            doc! {"_id": id, "d": docs}
        };
        let mut batch = Batch::new(10_000);
        let mut id = 0;
        while batch.offer(group(id)).is_ok_and(|more| more.is_continue()) {
            id += 1;
        }
        let decoded: usize = batch.docs.iter().map(approx_doc_size).sum();
        assert!(
            decoded <= MAX_BATCH_MEMORY + 1024 * 1024,
            "{decoded} bytes decoded in {} documents",
            batch.docs.len()
        );
        assert!(batch.docs.len() > 1);
    }

    /// The first document always goes in, whatever its size: every batch makes progress.
    #[test]
    fn the_first_document_always_fits() {
        let mut batch = Batch::new(1000);
        assert!(batch.offer(padded(0, 16 * 1024 * 1024 - 40)).is_ok());
        assert!(batch.offer(padded(1, 10)).is_err());
        let mut small = Batch::new(1000);
        for id in 0..100 {
            assert!(small.offer(padded(id, 100_000)).is_ok(), "document {id}");
        }
    }
}

//! `explain` (and `aggregate` with `explain: true`): the plan the engine runs for find, count, distinct and
//! aggregate, in mongod's explain shape, and with `executionStats` / `allPlansExecution` the counts of really
//! running it.
//!
//! A find is parsed by read.rs' [`FindSpec`] and planned by its [`plan_access`], the planner `find` runs, so
//! the plan shown is the plan run; count, distinct and an aggregation's leading `$match` are planned as a
//! find of their filter. A filter that pins `_id` reads the document by its key (`IDHACK` when `_id` is the
//! whole filter, else `FETCH` over an `IXSCAN` of `_id_`); anything else is a collection scan (`COLLSCAN`),
//! because the engine does not read secondary indexes. A sort the scan order does not serve is blocking
//! (`SORT`), skips and limits are stages of their own, a count without a filter reads the table's size
//! (`RECORD_STORE_FAST_COUNT`), and a missing collection is `EOF`. There is only ever one plan, so
//! `rejectedPlans` is empty.

use std::ops::ControlFlow;
use std::time::Instant;

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use super::read::{FindAccess, FindSpec, Target, matching, plan_access, resolve};
use crate::error::{Error, Result, code};
use crate::query::filter::Filter;
use crate::storage::{Namespace, Snapshot};

/// How much explain reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verbosity {
    QueryPlanner,
    ExecutionStats,
    AllPlansExecution,
}

impl Verbosity {
    /// The `verbosity` argument; mongod's default for the command is `allPlansExecution` (mongosh's
    /// `explain()` sends `queryPlanner` unless told otherwise).
    fn parse(value: Option<&Bson>) -> Result<Verbosity> {
        match value {
            None => Ok(Verbosity::AllPlansExecution),
            Some(Bson::String(s)) => match s.as_str() {
                "queryPlanner" => Ok(Verbosity::QueryPlanner),
                "executionStats" => Ok(Verbosity::ExecutionStats),
                "allPlansExecution" => Ok(Verbosity::AllPlansExecution),
                other => Err(Error::bad_value(format!(
                    "Enumeration value '{other}' for field 'verbosity' is not a valid value."
                ))),
            },
            Some(_) => Err(Error::type_mismatch(
                "BSON field 'explain.verbosity' is the wrong type, expected type 'string'",
            )),
        }
    }

    fn executes(self) -> bool {
        self != Verbosity::QueryPlanner
    }
}

/// The `explain` command.
pub async fn explain(ctx: &Context<'_>) -> Result<Document> {
    let inner = match ctx.body.get("explain") {
        Some(Bson::Document(inner)) => inner.clone(),
        _ => {
            return Err(Error::type_mismatch(
                "BSON field 'explain.explain' is the wrong type, expected type 'object'",
            ));
        }
    };
    let verbosity = Verbosity::parse(ctx.body.get("verbosity"))?;
    let name = inner
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| Error::failed_to_parse("explain: the command to explain is empty"))?;
    let mut command = inner.clone();
    if !command.contains_key("$db") {
        command.insert("$db", ctx.db.clone());
    }
    match name.as_str() {
        "find" | "count" | "distinct" | "aggregate" => {}
        "update" | "delete" | "findAndModify" | "findandmodify" => {
            return Err(Error::new(
                (115, "CommandNotSupported"),
                format!("explain of {name} is not supported by the Faultline engine yet"),
            ));
        }
        "insert" | "getMore" | "killCursors" | "listCollections" | "listIndexes" | "create" | "drop" => {
            return Err(Error::new(
                code::ILLEGAL_OPERATION,
                format!("Cannot explain cmd: {name}"),
            ));
        }
        other => {
            return Err(Error::new(
                code::COMMAND_NOT_FOUND,
                format!("Explain failed due to unknown command: {other}"),
            ));
        }
    }
    ctx.node.member.check_readable(ctx.secondary_ok)?;
    if name == "aggregate" {
        return aggregate(ctx, &command, verbosity);
    }
    let ns = args::namespace(&command, &ctx.db)?;
    let started = Instant::now();
    let snapshot = ctx.node.storage.snapshot()?;
    let target = resolve(&snapshot, &ns)?;
    let query = match name.as_str() {
        "find" => Query::find(&command, &ctx.db)?,
        "count" => Query::count(&command, &ctx.db)?,
        _ => Query::distinct(&command, &ctx.db)?,
    };
    let plan = query.plan(&target);
    let mut reply = doc! {"explainVersion": "1", "queryPlanner": planner(&ns, &query, &plan)};
    if verbosity.executes() {
        let run = query.execute(ctx, &snapshot, &target, &plan)?;
        reply.insert(
            "executionStats",
            execution_stats(&query, &plan, &run, started, verbosity),
        );
    }
    finish(ctx, reply, command)
}

/// `aggregate` with `explain` (the command's own `explain: true`, or inside `explain`).
pub(super) fn aggregate(ctx: &Context<'_>, command: &Document, verbosity: Verbosity) -> Result<Document> {
    let ns = args::namespace(command, &ctx.db)?;
    let stages = super::read::pipeline_stages(command)?;
    let mut command = command.clone();
    command.remove("explain");
    if stages.first().is_some_and(|s| s.contains_key("$collStats")) {
        let listed: Vec<Bson> = stages.iter().cloned().map(Bson::Document).collect();
        return finish(ctx, doc! {"explainVersion": "1", "stages": listed}, command);
    }
    let started = Instant::now();
    let snapshot = ctx.node.storage.snapshot()?;
    let target = resolve(&snapshot, &ns)?;
    let (filter, rest) = match stages.first() {
        Some(first) if first.contains_key("$match") => (
            first
                .get_document("$match")
                .map_err(|_| Error::type_mismatch("$match must be an object"))?
                .clone(),
            &stages[1..],
        ),
        _ => (Document::new(), &stages[..]),
    };
    let query = Query::with_filter(ns.clone(), filter)?;
    let plan = query.plan(&target);
    let run = if verbosity.executes() {
        Some(query.execute(ctx, &snapshot, &target, &plan)?)
    } else {
        None
    };
    drop(snapshot);
    // A pipeline that is only a $match is a find: mongod shows it in find's shape.
    if rest.is_empty() {
        let mut reply = doc! {"explainVersion": "1", "queryPlanner": planner(&ns, &query, &plan)};
        if let Some(run) = &run {
            reply.insert(
                "executionStats",
                execution_stats(&query, &plan, run, started, verbosity),
            );
        }
        return finish(ctx, reply, command);
    }
    let mut cursor = doc! {"queryPlanner": planner(&ns, &query, &plan)};
    let mut listed = Vec::new();
    if let Some(run) = &run {
        cursor.insert(
            "executionStats",
            execution_stats(&query, &plan, run, started, verbosity),
        );
    }
    listed.push(Bson::Document(doc! {"$cursor": cursor}));
    let input = run.map(|r| r.docs).unwrap_or_default();
    for (i, stage) in rest.iter().enumerate() {
        let mut entry = stage.clone();
        if verbosity.executes() {
            let stage_started = Instant::now();
            let out = crate::query::pipeline::run(&rest[..=i], input.clone(), ctx.node.clock().now())?;
            entry.insert("nReturned", out.len() as i64);
            entry.insert(
                "executionTimeMillisEstimate",
                stage_started.elapsed().as_millis() as i64,
            );
        }
        listed.push(Bson::Document(entry));
    }
    finish(ctx, doc! {"explainVersion": "1", "stages": listed}, command)
}

fn finish(ctx: &Context<'_>, mut reply: Document, command: Document) -> Result<Document> {
    reply.insert("command", command);
    reply.insert("serverInfo", server_info(ctx));
    reply.insert("ok", 1.0);
    Ok(reply)
}

fn server_info(ctx: &Context<'_>) -> Document {
    let hostname = crate::host::name();
    doc! {"host": hostname, "port": i32::from(ctx.node.options().port), "version": super::handshake::VERSION,
    "gitVersion": "faultline"}
}

/// What a find, count or distinct asks for: a find as read.rs parses it (count and distinct as a find of
/// their filter).
struct Query {
    spec: FindSpec,
    /// `count`: the plan ends in a COUNT stage (or a fast count without a filter).
    count: bool,
}

impl Query {
    /// A query with just a filter (distinct, an aggregation's leading `$match`).
    fn with_filter(ns: Namespace, filter_doc: Document) -> Result<Query> {
        Ok(Query {
            spec: FindSpec::with_filter(ns, filter_doc)?,
            count: false,
        })
    }

    fn find(body: &Document, db: &str) -> Result<Query> {
        Ok(Query {
            spec: FindSpec::parse(body, db, &args::variables(body, "let")?)?,
            count: false,
        })
    }

    fn count(body: &Document, db: &str) -> Result<Query> {
        let filter_doc = args::opt_doc(body, "query")?.cloned().unwrap_or_default();
        let mut spec = FindSpec::with_filter(args::namespace(body, db)?, filter_doc)?;
        spec.skip = args::opt_i64(body, "skip")?.unwrap_or(0).max(0) as usize;
        spec.limit = args::opt_i64(body, "limit")?
            .filter(|n| *n != 0)
            .map(|n| n.unsigned_abs() as usize);
        Ok(Query { spec, count: true })
    }

    fn distinct(body: &Document, db: &str) -> Result<Query> {
        body.get_str("key")
            .map_err(|_| Error::type_mismatch("distinct: 'key' must be a string"))?;
        let filter_doc = args::opt_doc(body, "query")?.cloned().unwrap_or_default();
        Query::with_filter(args::namespace(body, db)?, filter_doc)
    }

    /// The plan `find` runs for this query on `target` (a count without a filter reads the table's size).
    fn plan(&self, target: &Target) -> Plan {
        let spec = &self.spec;
        let planned = plan_access(target, spec);
        let access = match planned.access {
            FindAccess::Eof => Access::Eof,
            _ if self.count && spec.filter_doc.is_empty() && matches!(target, Target::Collection(_)) => {
                Access::FastCount
            }
            FindAccess::IdLookup => match spec.filter.id_equality() {
                Some(id) if spec.filter_doc.len() == 1 && is_plain_equality(spec.filter_doc.get("_id")) => {
                    Access::IdHack(id.clone())
                }
                Some(id) => Access::IdFetch(id.clone()),
                None => Access::CollScan { backward: false },
            },
            FindAccess::ResumableScan | FindAccess::Listed => Access::CollScan { backward: false },
            FindAccess::StreamedScan { backward } => Access::CollScan { backward },
        };
        Plan {
            access,
            blocking_sort: planned.blocking_sort,
        }
    }

    /// Runs the plan and counts what it examined.
    fn execute(&self, ctx: &Context<'_>, snapshot: &Snapshot, target: &Target, plan: &Plan) -> Result<Run> {
        let mut run = Run::default();
        let spec = &self.spec;
        let wanted = match (plan.blocking_sort, spec.limit) {
            (false, Some(limit)) if !self.count => Some(spec.skip.saturating_add(limit)),
            _ => None,
        };
        match (&plan.access, target) {
            (Access::Eof, _) => {}
            (Access::FastCount, Target::Collection(meta)) => {
                let (n, _) = snapshot.collection_stats(meta)?;
                run.fast_count = n;
            }
            (Access::IdHack(id) | Access::IdFetch(id), Target::Collection(meta)) => {
                run.keys_examined = 1;
                if let Some(doc) = snapshot.get_by_id(meta, id)? {
                    run.docs_examined = 1;
                    if spec.filter.matches(&doc) {
                        run.docs.push(doc);
                    }
                }
            }
            (Access::CollScan { backward }, Target::Collection(meta)) if !backward => {
                snapshot.scan(meta, None, |doc| {
                    run.docs_examined += 1;
                    if spec.filter.matches(&doc) {
                        run.docs.push(doc);
                        if wanted.is_some_and(|w| run.docs.len() >= w) {
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                })?;
            }
            _ => {
                // The oplog, the config and the other engine tables: read in natural order (a backward
                // scan reads everything and reverses it, as read.rs does).
                let all = matching(ctx.node, snapshot, target, &Filter::parse(&Document::new())?)?;
                let backward = matches!(plan.access, Access::CollScan { backward: true });
                let stop_at = wanted.filter(|_| !backward);
                for doc in all {
                    run.docs_examined += 1;
                    if spec.filter.matches(&doc) {
                        run.docs.push(doc);
                        if stop_at.is_some_and(|w| run.docs.len() >= w) {
                            break;
                        }
                    }
                }
                if backward {
                    run.docs.reverse();
                }
            }
        }
        run.scanned_returned = run.docs.len() as u64;
        if let Some(sort) = spec.sort.as_ref().filter(|_| plan.blocking_sort) {
            sort.sort(&mut run.docs);
        }
        let end = spec
            .limit
            .map(|l| spec.skip.saturating_add(l))
            .unwrap_or(usize::MAX)
            .min(run.docs.len());
        let start = spec.skip.min(end);
        run.docs = run.docs.drain(start..end).collect();
        Ok(run)
    }

    /// The winning plan's stages, top first: PROJECTION, LIMIT, SKIP, SORT, COUNT, then the access stage.
    fn stages(&self, plan: &Plan) -> Vec<Document> {
        let spec = &self.spec;
        let mut stages = Vec::new();
        if self.count {
            if !matches!(plan.access, Access::FastCount | Access::Eof) {
                stages.push(doc! {"stage": "COUNT"});
            }
        } else {
            if let Some(projection) = &spec.projection_doc {
                let simple = projection
                    .iter()
                    .all(|(k, v)| !k.contains('.') && !k.starts_with('$') && !matches!(v, Bson::Document(_)));
                let stage = if simple {
                    "PROJECTION_SIMPLE"
                } else {
                    "PROJECTION_DEFAULT"
                };
                stages.push(doc! {"stage": stage, "transformBy": projection.clone()});
            }
            let blocking_sort = spec.sort_doc.clone().filter(|_| plan.blocking_sort);
            match (blocking_sort, spec.limit) {
                (Some(sort), limit) => {
                    if spec.skip > 0 {
                        stages.push(doc! {"stage": "SKIP", "skipAmount": spec.skip as i64});
                    }
                    let mut stage =
                        doc! {"stage": "SORT", "sortPattern": sort, "memLimit": 104_857_600i64, "type": "simple"};
                    if let Some(limit) = limit {
                        stage.insert("limitAmount", spec.skip.saturating_add(limit) as i64);
                    }
                    stages.push(stage);
                }
                (None, limit) => {
                    if let Some(limit) = limit {
                        stages.push(doc! {"stage": "LIMIT", "limitAmount": limit as i64});
                    }
                    if spec.skip > 0 {
                        stages.push(doc! {"stage": "SKIP", "skipAmount": spec.skip as i64});
                    }
                }
            }
        }
        let rest = self.filter_without_id();
        stages.extend(match &plan.access {
            Access::Eof => vec![doc! {"stage": "EOF"}],
            Access::FastCount => vec![doc! {"stage": "RECORD_STORE_FAST_COUNT"}],
            Access::IdHack(_) => vec![doc! {"stage": "IDHACK"}],
            Access::IdFetch(id) => {
                let mut fetch = doc! {"stage": "FETCH"};
                if !rest.is_empty() {
                    fetch.insert("filter", parsed_query(&rest));
                }
                let bound = format!("[{}, {}]", shell_value(id), shell_value(id));
                vec![
                    fetch,
                    doc! {"stage": "IXSCAN", "keyPattern": {"_id": 1}, "indexName": "_id_", "isMultiKey": false,
                    "multiKeyPaths": {"_id": []}, "isUnique": true, "isSparse": false, "isPartial": false,
                    "indexVersion": 2, "direction": "forward", "indexBounds": {"_id": [bound]}},
                ]
            }
            Access::CollScan { backward } => {
                let mut scan = doc! {"stage": "COLLSCAN"};
                if !spec.filter_doc.is_empty() {
                    scan.insert("filter", parsed_query(&spec.filter_doc));
                }
                scan.insert("direction", if *backward { "backward" } else { "forward" });
                vec![scan]
            }
        });
        stages
    }

    /// The filter less its `_id` condition (what FETCH still checks after the key lookup).
    fn filter_without_id(&self) -> Document {
        let mut rest = self.spec.filter_doc.clone();
        rest.remove("_id");
        rest
    }
}

fn is_plain_equality(value: Option<&Bson>) -> bool {
    match value {
        Some(Bson::Document(d)) => !d.keys().any(|k| k.starts_with('$')),
        Some(_) => true,
        None => false,
    }
}

/// A value as the shell prints it, for index bounds (`[3, 3]`, `["a", "a"]`).
fn shell_value(value: &Bson) -> String {
    match value {
        Bson::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

enum Access {
    Eof,
    FastCount,
    IdHack(Bson),
    IdFetch(Bson),
    CollScan { backward: bool },
}

struct Plan {
    access: Access,
    /// A SORT stage runs on top of the access (see read.rs' `FindPlan`).
    blocking_sort: bool,
}

/// What running a plan produced and examined.
#[derive(Default)]
struct Run {
    docs: Vec<Document>,
    docs_examined: u64,
    keys_examined: u64,
    /// Documents the access stage passed up (before sort, skip and limit).
    scanned_returned: u64,
    fast_count: u64,
}

/// `queryPlanner`.
fn planner(ns: &Namespace, query: &Query, plan: &Plan) -> Document {
    doc! {
        "namespace": ns.full(),
        "indexFilterSet": false,
        "parsedQuery": parsed_query(&query.spec.filter_doc),
        "maxIndexedOrSolutionsReached": false,
        "maxIndexedAndSolutionsReached": false,
        "maxScansToExplodeReached": false,
        "winningPlan": nest(query.stages(plan), None),
        "rejectedPlans": [],
    }
}

/// Chains stages (top first) into mongod's `inputStage` nesting; with `stats`, each stage carries its
/// counts.
fn nest(stages: Vec<Document>, stats: Option<&[Document]>) -> Document {
    let mut nested: Option<Document> = None;
    for (i, mut stage) in stages.into_iter().enumerate().rev() {
        if let Some(stats) = stats
            && let Some(extra) = stats.get(i)
        {
            stage.extend(extra.clone());
        }
        if let Some(input) = nested.take() {
            stage.insert("inputStage", input);
        }
        nested = Some(stage);
    }
    nested.unwrap_or_else(|| doc! {"stage": "EOF"})
}

/// `executionStats`, with per-stage counts in `executionStages`.
fn execution_stats(query: &Query, plan: &Plan, run: &Run, started: Instant, verbosity: Verbosity) -> Document {
    let millis = started.elapsed().as_millis() as i64;
    let stages = query.stages(plan);
    let scanned = run.scanned_returned;
    let last = run.docs.len() as u64;
    let per_stage: Vec<Document> = stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let (returned, keys, docs) = match stage.get_str("stage").unwrap_or("") {
                "SKIP" if !plan.blocking_sort => (scanned.saturating_sub(query.spec.skip as u64), None, None),
                "SORT" => (
                    query
                        .spec
                        .limit
                        .map(|l| scanned.min(query.spec.skip.saturating_add(l) as u64))
                        .unwrap_or(scanned),
                    None,
                    None,
                ),
                "COUNT" | "EOF" | "RECORD_STORE_FAST_COUNT" => (0, None, None),
                "FETCH" | "COLLSCAN" => (scanned, None, Some(run.docs_examined)),
                "IXSCAN" => (run.docs_examined, Some(run.keys_examined), None),
                "IDHACK" => (scanned, Some(run.keys_examined), Some(run.docs_examined)),
                _ => (last, None, None),
            };
            let mut entry = doc! {
                "nReturned": returned as i64,
                "executionTimeMillisEstimate": if i == 0 { millis } else { 0 },
                "works": (docs.unwrap_or(returned) + 1) as i64,
                "advanced": returned as i64,
                "needTime": docs.unwrap_or(returned).saturating_sub(returned) as i64,
                "needYield": 0i64, "saveState": 0i64, "restoreState": 0i64, "isEOF": 1,
            };
            if let Some(keys) = keys {
                entry.insert("keysExamined", keys as i64);
            }
            if let Some(docs) = docs {
                entry.insert("docsExamined", docs as i64);
            }
            entry
        })
        .collect();
    let n_returned = if query.count { 0 } else { run.docs.len() as i64 };
    let mut stats = doc! {
        "executionSuccess": true,
        "nReturned": n_returned,
        "executionTimeMillis": millis,
        "totalKeysExamined": run.keys_examined as i64,
        "totalDocsExamined": run.docs_examined as i64,
        "executionStages": nest(stages, Some(&per_stage)),
    };
    if verbosity == Verbosity::AllPlansExecution {
        stats.insert("allPlansExecution", Vec::<Bson>::new());
    }
    stats
}

/// mongod's `parsedQuery`: each condition as `{path: {$op: value}}` (a bare value is `$eq`), several
/// conditions under `$and`; `$and`/`$or`/`$nor`/`$expr` are kept as given.
fn parsed_query(filter: &Document) -> Document {
    let mut parts: Vec<Document> = Vec::new();
    for (key, value) in filter {
        if key.starts_with('$') {
            parts.push(doc! {key.clone(): value.clone()});
            continue;
        }
        match value {
            Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                if ops.contains_key("$regex") {
                    parts.push(doc! {key.clone(): ops.clone()});
                    continue;
                }
                for (op, arg) in ops {
                    parts.push(doc! {key.clone(): {op.clone(): arg.clone()}});
                }
            }
            other => parts.push(doc! {key.clone(): {"$eq": other.clone()}}),
        }
    }
    match parts.len() {
        0 => Document::new(),
        1 => parts.remove(0),
        _ => doc! {"$and": parts.into_iter().map(Bson::Document).collect::<Vec<_>>()},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_query_spells_out_each_condition() {
        assert_eq!(parsed_query(&doc! {}), doc! {});
        assert_eq!(parsed_query(&doc! {"a": 1}), doc! {"a": {"$eq": 1}});
        assert_eq!(
            parsed_query(&doc! {"a": {"$gt": 1, "$lt": 5}, "b": "x"}),
            doc! {"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}, {"b": {"$eq": "x"}}]}
        );
        assert_eq!(
            parsed_query(&doc! {"s": {"$regex": "^a", "$options": "i"}}),
            doc! {"s": {"$regex": "^a", "$options": "i"}}
        );
        assert_eq!(
            parsed_query(&doc! {"$or": [{"a": 1}, {"b": 2}]}),
            doc! {"$or": [{"a": 1}, {"b": 2}]}
        );
        assert_eq!(parsed_query(&doc! {"d": {"x": 1}}), doc! {"d": {"$eq": {"x": 1}}});
    }

    #[test]
    fn plans_follow_read_rs() {
        let meta = crate::storage::CollectionMeta::new(Namespace::new("db", "c"), Document::new());
        let collection = Target::Collection(meta);
        let find = |body: Document| Query::find(&body, "db").expect("query");
        let top = |query: &Query, target: &Target| query.stages(&query.plan(target));
        let stage = |d: &Document| d.get_str("stage").expect("stage").to_string();
        let names = |stages: Vec<Document>| stages.iter().map(stage).collect::<Vec<_>>();
        assert_eq!(
            names(top(&find(doc! {"find": "c", "filter": {"_id": 1}}), &collection)),
            ["IDHACK"]
        );
        assert_eq!(
            names(top(
                &find(doc! {"find": "c", "filter": {"_id": {"$eq": 1}}}),
                &collection
            )),
            ["FETCH", "IXSCAN"]
        );
        assert_eq!(
            names(top(
                &find(
                    doc! {"find": "c", "filter": {"a": 1}, "sort": {"b": 1}, "skip": 2, "limit": 3, "projection": {"a": 1}}
                ),
                &collection
            )),
            ["PROJECTION_SIMPLE", "SKIP", "SORT", "COLLSCAN"]
        );
        assert_eq!(
            names(top(&find(doc! {"find": "c", "skip": 1, "limit": 1}), &collection)),
            ["LIMIT", "SKIP", "COLLSCAN"]
        );
        let backward = top(&find(doc! {"find": "c", "sort": {"$natural": -1}}), &collection);
        assert_eq!(backward[0].get_str("direction").expect("direction"), "backward");
        assert_eq!(names(top(&find(doc! {"find": "c"}), &Target::Missing)), ["EOF"]);
        let count = Query::count(&doc! {"count": "c"}, "db").expect("count");
        assert_eq!(names(top(&count, &collection)), ["RECORD_STORE_FAST_COUNT"]);
        let count = Query::count(&doc! {"count": "c", "query": {"a": 1}}, "db").expect("count");
        assert_eq!(names(top(&count, &collection)), ["COUNT", "COLLSCAN"]);
    }

    /// Explain describes the plan `find` runs: a sort on `_id` alone is served by the scan (forward, or
    /// backward when descending), so there is no blocking SORT stage; an engine table is listed in its own
    /// order whatever `$natural` asks.
    #[test]
    fn explain_shows_the_plan_find_runs() {
        let meta = crate::storage::CollectionMeta::new(Namespace::new("db", "c"), Document::new());
        let collection = Target::Collection(meta);
        let find = |body: Document| Query::find(&body, "db").expect("query");
        let top = |query: &Query, target: &Target| query.stages(&query.plan(target));
        let stage = |d: &Document| d.get_str("stage").expect("stage").to_string();
        let names = |stages: &[Document]| stages.iter().map(stage).collect::<Vec<_>>();
        let ascending = top(&find(doc! {"find": "c", "sort": {"_id": 1}, "limit": 2}), &collection);
        assert_eq!(names(&ascending), ["LIMIT", "COLLSCAN"]);
        assert_eq!(ascending[1].get_str("direction").expect("direction"), "forward");
        let descending = top(&find(doc! {"find": "c", "sort": {"_id": -1}}), &collection);
        assert_eq!(names(&descending), ["COLLSCAN"]);
        assert_eq!(descending[0].get_str("direction").expect("direction"), "backward");
        let oplog = top(&find(doc! {"find": "oplog.rs", "sort": {"_id": -1}}), &Target::Oplog);
        assert_eq!(names(&oplog), ["SORT", "COLLSCAN"]);
        let sessions = top(
            &find(doc! {"find": "transactions", "sort": {"$natural": -1}}),
            &Target::Sessions,
        );
        assert_eq!(sessions[0].get_str("direction").expect("direction"), "forward");
        assert!(
            Query::find(&doc! {"find": "c", "batchSize": -1}, "db").is_err(),
            "explain refuses what find refuses"
        );
    }
}

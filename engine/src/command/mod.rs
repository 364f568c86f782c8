//! Commands: dispatch on the body's first key, one module per command family.
//!
//! ```text
//! handshake  hello/isMaster, buildInfo, ping, getParameter, getLog, listCommands, ... (no data access)
//! catalog    listDatabases, listCollections, create, drop, renameCollection, dropDatabase, *Indexes, dbStats,
//!            collStats, dbHash
//! read       find, getMore, killCursors, count, distinct, aggregate
//! write      insert, update, delete, findAndModify (+ write concern, retryable writes)
//! replset    replSetInitiate, replSetGetStatus, replSetGetConfig, configureFailPoint; `$replData` on oplog reads
//! server_status  serverStatus and its sections
//! explain    explain of find, count, distinct and aggregate
//! current_op currentOp and the $currentOp stage (from the node's activity registry)
//! admin      profile (off only), usersInfo, rolesInfo (no users or roles)
//! ```
//!
//! Below them: `args` (reading arguments), `connection_info` (who sent the command), `cluster_time` (the
//! `operationTime` and `$clusterTime` every reply of a replica-set member carries), `options` (hint,
//! collation, min/max: checked, never silently ignored), `validator` (collection document validation). The connection layer
//! calls [`run`]; nothing here calls back up into it.

mod admin;
pub mod args;
mod catalog;
mod cluster_time;
mod coll_mod;
mod connection_info;
mod current_op;
mod db_aggregate;
mod explain;
mod handshake;
mod local_sessions;
mod merge_stage;
mod options;
mod out_stage;
mod read;
mod read_concern;
mod replset;
mod reply;
mod rw_defaults;
mod scan;
mod server_status;
mod validation_details;
mod validator;
mod write;

use bson::{Bson, Document};

pub use cluster_time::{ClusterClock, carried as carried_cluster_time, signed as signed_cluster_time};
pub use connection_info::ConnectionInfo;
pub use handshake::{MAX_WIRE_VERSION, VERSION, build_info};
pub use local_sessions::LocalSessions;
pub use reply::{Reply, StoredBatch};
pub use write::WritesInFlight;

use crate::error::{Error, Result, code};
use crate::node::{Counters, Node, OpClass};

/// One command as it arrived.
pub struct Invocation<'a> {
    pub body: Document,
    /// Set by OP_QUERY's SecondaryOk flag; for OP_MSG it comes from `$readPreference`.
    pub secondary_ok: Option<bool>,
    pub conn: &'a ConnectionInfo,
    /// The command came as OP_QUERY (legacy handshake): `ismaster` instead of `isWritablePrimary`.
    pub legacy: bool,
}

/// What a command implementation gets.
pub struct Context<'a> {
    pub node: &'a Node,
    pub body: &'a Document,
    pub db: String,
    pub name: String,
    pub secondary_ok: bool,
    pub conn: &'a ConnectionInfo,
    pub legacy: bool,
    /// What the command read at or wrote, for the reply's `operationTime`.
    pub operation_time: &'a cluster_time::OperationTime,
    /// An oplog batch served as stored (`getMore` on the oplog): [`run`] splices it into the reply's cursor.
    pub stored_batch: std::sync::Mutex<Option<StoredBatch>>,
}

/// Runs a command and returns its reply (errors included, as MongoDB shapes them). The command is listed by
/// `currentOp` while it runs, and its latency is counted in `serverStatus.opLatencies`.
pub async fn run(node: &Node, invocation: Invocation<'_>) -> Reply {
    Counters::bump(&node.counters.commands, 1);
    let started = std::time::Instant::now();
    let Invocation {
        body,
        secondary_ok,
        conn,
        legacy,
    } = invocation;
    // Shared with the activity registry (`currentOp`), which would otherwise need a copy of every command.
    let body = std::sync::Arc::new(body);
    let name = body.keys().next().map(String::as_str).unwrap_or("");
    let class = op_class(name);
    // Long polls (awaitable hello) would swamp the latency of real work: they are left out.
    let counted = !(matches!(name, "hello" | "isMaster" | "ismaster") && body.contains_key("maxAwaitTimeMS"));
    if matches!(name, "hello" | "isMaster" | "ismaster")
        && let Ok(client) = body.get_document("client")
    {
        node.activity.set_metadata(conn.id, client);
    }
    let db = body.get_str("$db").unwrap_or("");
    let _in_flight = node.activity.begin(conn.id, db, body.clone());
    let retryable_write = body.contains_key("txnNumber") && !body.contains_key("autocommit");
    cluster_time::gossip_in(node, &body);
    local_sessions::observe(&node.local_sessions, name, &body, node.clock().now());
    let operation_time = cluster_time::OperationTime::default();
    let arrival = Arrival {
        secondary_ok,
        conn,
        legacy,
    };
    let result = match prepare(node, &body, arrival, &operation_time) {
        Ok(ctx) => dispatch(&ctx).await.map(|reply| {
            let reply = crate::shardsvr::filter_orphans(&ctx, reply);
            match ctx
                .stored_batch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
            {
                Some(batch) => Reply::with_stored_batch(reply, batch),
                None => Reply::from(reply),
            }
        }),
        Err(err) => Err(err),
    };
    if counted {
        node.counters
            .record_latency(class, started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
    }
    match result {
        Ok(mut reply) => {
            if !reply.contains_key("ok") {
                reply.insert("ok", 1.0);
            }
            if retryable_write {
                label_write_concern_error(&mut reply);
            }
            cluster_time::append(node, &mut reply, &operation_time);
            reply
        }
        Err(mut err) => {
            if retryable_write && err.is_retryable() && !err.labels.contains(&"RetryableWriteError") {
                err.labels.push("RetryableWriteError");
            }
            let asserts = if err.code == code::INTERNAL_ERROR.0 {
                &node.counters.asserts_regular
            } else {
                &node.counters.asserts_user
            };
            Counters::bump(asserts, 1);
            tracing::debug!(command = name, error = %err, "command failed");
            if !conn.speaks_hello() {
                err.message = legacy_not_primary_message(err.code, &err.message);
            }
            let mut reply = err.to_reply();
            cluster_time::append(node, &mut reply, &operation_time);
            Reply::from(reply)
        }
    }
}

/// The `opLatencies` class of a command: reads, writes, or other commands.
fn op_class(name: &str) -> OpClass {
    match name {
        "find" | "getMore" | "count" | "distinct" | "aggregate" => OpClass::Reads,
        "insert" | "update" | "delete" | "findAndModify" | "findandmodify" => OpClass::Writes,
        _ => OpClass::Commands,
    }
}

/// How a command arrived, besides its body.
struct Arrival<'a> {
    secondary_ok: Option<bool>,
    conn: &'a ConnectionInfo,
    legacy: bool,
}

fn prepare<'a>(
    node: &'a Node,
    body: &'a Document,
    arrival: Arrival<'a>,
    operation_time: &'a cluster_time::OperationTime,
) -> Result<Context<'a>> {
    let name = body
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| Error::failed_to_parse("empty command document"))?;
    let db = args::database(body)?;
    if body.contains_key("startTransaction") || body.contains_key("autocommit") {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "multi-document transactions are not supported by the Faultline engine yet",
        ));
    }
    read_concern::check_snapshot_support(&name, body)?;
    let secondary_ok = arrival
        .secondary_ok
        .unwrap_or_else(|| read_preference_allows_secondary(body));
    Ok(Context {
        node,
        body,
        db,
        name,
        secondary_ok,
        conn: arrival.conn,
        legacy: arrival.legacy,
        operation_time,
        stored_batch: std::sync::Mutex::new(None),
    })
}

/// A `$readPreference` other than `primary` lets a secondary serve the read.
fn read_preference_allows_secondary(body: &Document) -> bool {
    match body.get_document("$readPreference") {
        Ok(pref) => pref.get_str("mode").map(|m| m != "primary").unwrap_or(false),
        Err(_) => false,
    }
}

/// The wording of not-primary errors for clients that did not say `helloOk` (mongod does the same): old
/// drivers recognise these conditions by the text "not master", and the codes stay as they are.
fn legacy_not_primary_message(code: i32, message: &str) -> String {
    match code {
        10107 => message.replacen("not primary", "not master", 1),
        13435 => message
            .replacen("not primary", "not master", 1)
            .replacen("secondaryOk", "slaveOk", 1),
        13436 => "not master or secondary; cannot currently read from this replSet member".to_string(),
        _ => message.to_string(),
    }
}

/// Retryable writes whose write concern failed with a retryable code carry the label too.
fn label_write_concern_error(reply: &mut Document) {
    let retryable = reply
        .get_document("writeConcernError")
        .ok()
        .and_then(|e| e.get("code").and_then(Bson::as_i32))
        .is_some_and(|c| crate::error::RETRYABLE_CODES.contains(&c));
    if retryable {
        reply.insert("errorLabels", vec![Bson::String("RetryableWriteError".into())]);
    }
}

async fn dispatch(ctx: &Context<'_>) -> Result<Document> {
    let _versioned = crate::shardsvr::check_shard_version(ctx).await?;
    if let Some(reply) = crate::shardsvr::command(ctx).await {
        return reply;
    }
    match ctx.name.as_str() {
        "hello" | "isMaster" | "ismaster" => handshake::hello(ctx).await,
        "ping" | "endSessions" | "refreshSessions" | "killSessions" | "killAllSessions" | "logout" | "resetError" => {
            Ok(Document::new())
        }
        "buildInfo" | "buildinfo" => Ok(handshake::build_info()),
        "getLastError" | "getlasterror" => Ok(handshake::get_last_error(ctx)),
        "getParameter" => handshake::get_parameter(ctx),
        "getLog" => handshake::get_log(ctx),
        "connectionStatus" => Ok(handshake::connection_status()),
        "whatsmyuri" => Ok(handshake::whats_my_uri(ctx)),
        "hostInfo" => Ok(handshake::host_info(ctx)),
        "getCmdLineOpts" => Ok(handshake::cmd_line_opts(ctx)),
        "serverStatus" => Ok(server_status::server_status(ctx)),
        "listCommands" => Ok(handshake::list_commands()),
        "startSession" => {
            let reply = handshake::start_session();
            if let Some(id) = reply.get_document("id").ok().and_then(|id| id.get("id")) {
                ctx.node.local_sessions.touch(id, ctx.node.clock().now());
            }
            Ok(reply)
        }
        "getFreeMonitoringStatus" => Ok(bson::doc! {"state": "disabled"}),
        "currentOp" => current_op::command(ctx),
        "profile" => admin::profile(ctx),
        "usersInfo" => admin::users_info(ctx),
        "rolesInfo" => admin::roles_info(ctx),
        "listDatabases" => catalog::list_databases(ctx),
        "listCollections" => catalog::list_collections(ctx),
        "create" => catalog::create(ctx).await,
        "drop" => catalog::drop_collection(ctx).await,
        "renameCollection" => catalog::rename_collection(ctx).await,
        "collMod" => coll_mod::coll_mod(ctx).await,
        "dropDatabase" => catalog::drop_database(ctx).await,
        "createIndexes" => catalog::create_indexes(ctx).await,
        "listIndexes" => catalog::list_indexes(ctx),
        "dropIndexes" | "deleteIndexes" => catalog::drop_indexes(ctx).await,
        "dbStats" => catalog::db_stats(ctx),
        "collStats" => catalog::coll_stats(ctx),
        "dbHash" | "dbhash" => catalog::db_hash(ctx),
        "explain" => explain::explain(ctx).await,
        "find" => replset::with_repl_data(ctx, read::find(ctx).await),
        "getMore" => replset::with_repl_data(ctx, read::get_more(ctx).await),
        "killCursors" => read::kill_cursors(ctx),
        "count" => read::count(ctx).await,
        "distinct" => read::distinct(ctx).await,
        "aggregate" => read::aggregate(ctx).await,
        "insert" => write::insert(ctx).await,
        "update" => write::update(ctx).await,
        "delete" => write::delete(ctx).await,
        "findAndModify" | "findandmodify" => write::find_and_modify(ctx).await,
        "replSetInitiate" => replset::initiate(ctx).await,
        "replSetGetStatus" => replset::get_status(ctx),
        "replSetGetConfig" => replset::get_config(ctx),
        "replSetReconfig" => replset::reconfig(ctx).await,
        "replSetStepDown" => replset::step_down(ctx).await,
        "replSetFreeze" => replset::freeze(ctx).await,
        "replSetSyncFrom" => replset::sync_from(ctx).await,
        "replSetGetRBID" => Ok(bson::doc! {"rbid": ctx.node.member.rbid()}),
        "replSetResizeOplog" => replset::resize_oplog(ctx).await,
        "replSetHeartbeat" => ctx.node.member.on_heartbeat(ctx.body).await,
        "replSetRequestVotes" => ctx.node.member.on_request_votes(ctx.body).await,
        "replSetUpdatePosition" => ctx.node.member.on_update_position(ctx.body).await,
        "replSetStepUp" => ctx.node.member.on_step_up(ctx.body).await,
        // Test commands, as mongod has them only with `enableTestCommands` (on unless set to 0).
        "configureFailPoint" | "listFailPoints" if !ctx.node.options().enable_test_commands() => Err(Error::new(
            code::COMMAND_NOT_FOUND,
            format!("no such command: '{}'", ctx.name),
        )),
        "configureFailPoint" => replset::configure_fail_point(ctx),
        "getDefaultRWConcern" => rw_defaults::get(ctx),
        "setDefaultRWConcern" => rw_defaults::set(ctx).await,
        "listFailPoints" => Ok(bson::doc! {"failPoints": ctx.node.failpoints.list()}),
        "commitTransaction" | "abortTransaction" => Err(Error::new(
            code::NO_SUCH_TRANSACTION,
            "multi-document transactions are not supported by the Faultline engine yet",
        )),
        other => Err(Error::new(
            code::COMMAND_NOT_FOUND,
            format!("no such command: '{other}'"),
        )),
    }
}

impl Context<'_> {
    /// Fails unless this command may be run by an admin-only path (`admin` database).
    pub fn require_admin(&self) -> Result<()> {
        if self.db != "admin" {
            return Err(Error::new(
                (13, "Unauthorized"),
                format!("{} may only be run against the admin database.", self.name),
            ));
        }
        Ok(())
    }
}

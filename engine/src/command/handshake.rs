//! Commands that describe the server: the hello family and the introspection commands drivers and mongosh
//! send at connect time.

use std::time::Duration;

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use crate::bsonx;
use crate::error::{Error, Result};
use crate::wire;

/// The MongoDB version this engine presents itself as (wire version 21 is 7.0).
pub const VERSION: &str = "7.0.0";
pub const MAX_WIRE_VERSION: i32 = 21;

/// `hello` / `isMaster`: the handshake, with awaitable `topologyVersion` + `maxAwaitTimeMS`.
pub async fn hello(ctx: &Context<'_>) -> Result<Document> {
    let member = &ctx.node.member;
    let client_tv = args::opt_doc(ctx.body, "topologyVersion")?;
    let max_await = args::opt_i64(ctx.body, "maxAwaitTimeMS")?;
    match (client_tv, max_await) {
        (Some(tv), Some(ms)) => {
            if ms < 0 {
                return Err(Error::bad_value("maxAwaitTimeMS must be a non-negative integer"));
            }
            let process_id = tv
                .get_object_id("processId")
                .map_err(|_| Error::type_mismatch("topologyVersion.processId must be an ObjectId"))?;
            let counter = tv
                .get("counter")
                .and_then(bsonx::as_i64)
                .ok_or_else(|| Error::type_mismatch("topologyVersion.counter must be a number"))?;
            member
                .wait_topology_change(process_id, counter, Duration::from_millis(ms as u64))
                .await;
        }
        (None, None) => {}
        _ => {
            return Err(Error::bad_value(
                "topologyVersion and maxAwaitTimeMS must be given together",
            ));
        }
    }
    let legacy_name = ctx.name != "hello";
    let mut reply = doc! {};
    let hello_ok = ctx.body.get("helloOk").is_some_and(bsonx::truthy);
    if hello_ok {
        reply.insert("helloOk", true);
    }
    if hello_ok || !legacy_name {
        ctx.conn.hello_ok.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    reply.extend(member.hello_fields(legacy_name));
    reply.extend(doc! {
        "maxBsonObjectSize": wire::MAX_BSON_OBJECT_SIZE as i32,
        "maxMessageSizeBytes": wire::MAX_MESSAGE_SIZE as i32,
        "maxWriteBatchSize": 100_000,
        "localTime": ctx.node.clock().now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": ctx.conn.id,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": false,
    });
    Ok(reply)
}

pub fn build_info() -> Document {
    doc! {
        "version": VERSION,
        "gitVersion": "faultline",
        "versionArray": [7, 0, 0, 0],
        "modules": [],
        "allocator": "system",
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": wire::MAX_BSON_OBJECT_SIZE as i32,
        "storageEngines": ["redb"],
        "openssl": {"running": "disabled"},
        "buildEnvironment": {"target_os": std::env::consts::OS, "target_arch": std::env::consts::ARCH},
    }
}

/// `getParameter`: `featureCompatibilityVersion`, `logLevel`, `quiet`, `enableTestCommands`,
/// `cursorTimeoutMillis`, `*` (all), and every `--setParameter` given at start-up (fail points as given);
/// unknown names fail.
pub fn get_parameter(ctx: &Context<'_>) -> Result<Document> {
    let options = ctx.node.options();
    let mut known = doc! {
        "featureCompatibilityVersion": {"version": "7.0"},
        "logLevel": i32::try_from(options.verbosity).unwrap_or(i32::MAX),
        "quiet": options.quiet,
    };
    for (name, value) in &options.set_parameters {
        known.insert(name.clone(), value.clone());
    }
    // Typed, as mongod reports them, whether set or default.
    known.insert("enableTestCommands", options.enable_test_commands());
    known.insert(
        "cursorTimeoutMillis",
        i64::try_from(options.cursor_timeout().as_millis()).unwrap_or(i64::MAX),
    );
    if ctx.body.get("getParameter").and_then(|v| v.as_str()) == Some("*") {
        return Ok(known);
    }
    let mut reply = Document::new();
    for (key, _) in ctx.body.iter().skip(1) {
        if key.starts_with('$') || matches!(key.as_str(), "lsid" | "comment" | "apiVersion") {
            continue;
        }
        if let Some(value) = known.get(key) {
            reply.insert(key.clone(), value.clone());
        }
    }
    if reply.is_empty() {
        return Err(Error::bad_value("no option found to get"));
    }
    Ok(reply)
}

pub fn get_log(ctx: &Context<'_>) -> Result<Document> {
    match ctx.body.get("getLog") {
        Some(Bson::String(s)) if s == "*" => Ok(doc! {"names": ["global", "startupWarnings"]}),
        Some(Bson::String(s)) if s == "global" || s == "startupWarnings" => {
            Ok(doc! {"totalLinesWritten": 0, "log": []})
        }
        Some(Bson::String(s)) => Err(Error::bad_value(format!("no RamLog named: {s}"))),
        _ => Err(Error::type_mismatch("Argument to getLog must be of type String")),
    }
}

/// `getLastError`: legacy drivers (the 3.x Java driver) send it while setting up a connection, to learn its
/// id. Every write here is acknowledged by its own reply, so there is never a pending error to report.
pub fn get_last_error(ctx: &Context<'_>) -> Document {
    doc! {"connectionId": ctx.conn.id, "n": 0, "syncMillis": 0, "writtenTo": Bson::Null, "err": Bson::Null}
}

pub fn connection_status() -> Document {
    doc! {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}}
}

pub fn whats_my_uri(ctx: &Context<'_>) -> Document {
    doc! {"you": ctx.conn.peer.to_string()}
}

pub fn host_info(ctx: &Context<'_>) -> Document {
    let hostname = crate::host::name();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as i32)
        .unwrap_or(1);
    doc! {
        "system": {"currentTime": ctx.node.clock().now(), "hostname": hostname, "cpuAddrSize": 64, "numCores": cores,
                   "cpuArch": std::env::consts::ARCH},
        "os": {"type": std::env::consts::OS},
        "extra": {},
    }
}

pub fn cmd_line_opts(ctx: &Context<'_>) -> Document {
    let options = ctx.node.options();
    let argv: Vec<Bson> = options.argv.iter().map(|a| Bson::String(a.clone())).collect();
    doc! {"argv": argv, "parsed": options.parsed_document()}
}

/// `listCommands`: every command the engine dispatches (legacy lower-case aliases aside).
pub fn list_commands() -> Document {
    let names = [
        "abortTransaction",
        "aggregate",
        "buildInfo",
        "collMod",
        "collStats",
        "commitTransaction",
        "configureFailPoint",
        "connectionStatus",
        "count",
        "create",
        "createIndexes",
        "currentOp",
        "dbHash",
        "dbStats",
        "delete",
        "distinct",
        "drop",
        "dropDatabase",
        "dropIndexes",
        "endSessions",
        "explain",
        "find",
        "findAndModify",
        "getCmdLineOpts",
        "getFreeMonitoringStatus",
        "getLog",
        "getMore",
        "getParameter",
        "hello",
        "hostInfo",
        "insert",
        "isMaster",
        "killAllSessions",
        "killCursors",
        "killSessions",
        "listCollections",
        "listCommands",
        "listDatabases",
        "listFailPoints",
        "listIndexes",
        "logout",
        "ping",
        "profile",
        "refreshSessions",
        "renameCollection",
        "replSetFreeze",
        "replSetGetConfig",
        "replSetGetRBID",
        "replSetGetStatus",
        "replSetHeartbeat",
        "replSetInitiate",
        "replSetReconfig",
        "replSetRequestVotes",
        "replSetStepDown",
        "replSetStepUp",
        "replSetSyncFrom",
        "replSetUpdatePosition",
        "resetError",
        "rolesInfo",
        "serverStatus",
        "startSession",
        "update",
        "usersInfo",
        "whatsmyuri",
    ];
    let commands: Document = names
        .iter()
        .map(|n| (n.to_string(), Bson::Document(doc! {"help": ""})))
        .collect();
    doc! {"commands": commands}
}

pub fn start_session() -> Document {
    let uuid = bson::Uuid::new();
    doc! {"id": {"id": uuid}, "timeoutMinutes": 30}
}

//! The router's commands: dispatch on the body's first key. The handshake and introspection commands are
//! answered here (as mongos answers them: `hello` with `msg: "isdbgrid"` and no set name, so drivers see a
//! sharded topology); cluster commands are in `cluster`, CRUD and everything else that touches data in
//! `route`. Commands on the `config` database go to the config servers; replication commands do not exist
//! on a router (CommandNotFound, as on mongos).

use bson::{Bson, Document, doc};

use super::{Router, cluster, distribution, route};
use crate::command::{carried_cluster_time, signed_cluster_time};
use crate::error::{Error, Result, code};
use crate::wire;

/// Runs one command and returns its reply (errors in MongoDB's shape).
///
/// Cluster time, as mongos gossips it: a client's `$clusterTime` advances the router's clock (and is not
/// forwarded as such: the shard clients send the router's clock with every request); the shards' own
/// `$clusterTime` and `operationTime` are replaced by the router's clock, which is at least the time of
/// every operation this command made on a shard, so a causally consistent session's next read through any
/// router waits for it.
pub async fn run(router: &Router, connection: i64, mut body: Document, legacy: bool) -> Document {
    if let Some(ts) = carried_cluster_time(&body) {
        router.cluster_time.advance(ts);
    }
    body.remove("$clusterTime");
    let name = body.keys().next().cloned().unwrap_or_default();
    let result = match body.get_str("$db") {
        Ok(db) => {
            let db = db.to_string();
            dispatch(router, connection, &name, &db, &body, legacy).await
        }
        Err(_) => Err(Error::failed_to_parse(
            "BSON field '$db' is missing but a required field",
        )),
    };
    match result {
        Ok(mut reply) => {
            if !reply.contains_key("ok") {
                reply.insert("ok", 1.0);
            }
            stamp_cluster_time(router, reply)
        }
        Err(err) => {
            tracing::debug!(command = %name, error = %err, "command failed");
            stamp_cluster_time(router, err.to_reply())
        }
    }
}

/// Puts the router's cluster time in a reply as `$clusterTime` and `operationTime`, in place of a shard's.
fn stamp_cluster_time(router: &Router, mut reply: Document) -> Document {
    reply.remove("$clusterTime");
    reply.remove("operationTime");
    if let Some(ts) = router.cluster_time.gossiped() {
        reply.insert("operationTime", ts);
        reply.insert("$clusterTime", signed_cluster_time(ts));
    }
    reply
}

async fn dispatch(
    router: &Router,
    connection: i64,
    name: &str,
    db: &str,
    body: &Document,
    legacy: bool,
) -> Result<Document> {
    match name {
        "hello" | "isMaster" | "ismaster" => Ok(hello(connection, name != "hello" || legacy, body)),
        "ping" | "endSessions" | "refreshSessions" | "killSessions" | "killAllSessions" | "logout" => {
            Ok(Document::new())
        }
        "isdbgrid" => Ok(doc! {"isdbgrid": 1, "hostname": crate::host::name()}),
        "buildInfo" | "buildinfo" => Ok(crate::command::build_info()),
        "getCmdLineOpts" => Ok(doc! {
            "argv": router.options.argv.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
            "parsed": router.options.parsed_document(),
        }),
        "getParameter" => Ok(doc! {"featureCompatibilityVersion": {"version": "7.0"}}),
        "getLog" => Ok(doc! {"totalLinesWritten": 0, "log": []}),
        "connectionStatus" => Ok(doc! {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}}),
        "whatsmyuri" => Ok(doc! {"you": "127.0.0.1:0"}),
        "getFreeMonitoringStatus" => Ok(doc! {"state": "disabled"}),
        "serverStatus" => Ok(doc! {
            "host": router.options.self_host(),
            "version": crate::command::VERSION,
            "process": "mongos",
            "uptime": router.started.elapsed().as_secs_f64(),
            "localTime": bson::DateTime::now(),
            "shardingStatistics": {
                "countStaleConfigErrors": router.stale_retries.load(std::sync::atomic::Ordering::Relaxed) as i64,
            },
        }),
        "addShard" | "listShards" | "enableSharding" | "enablesharding" | "shardCollection" | "shardcollection"
        | "getShardMap" | "split" | "moveChunk" | "movechunk" | "moveRange" | "removeShard" | "removeshard"
        | "flushRouterConfig" | "flushrouterconfig" | "balancerStatus" | "balancerStart" | "balancerStop"
        | "movePrimary" | "moveprimary" => {
            require_admin(name, db)?;
            cluster::run(router, name, body).await
        }
        "listDatabases" => cluster::list_databases(router).await,
        "configureFailPoint" => {
            require_admin(name, db)?;
            let point = body
                .get_str(name)
                .map_err(|_| Error::type_mismatch("configureFailPoint takes a fail point name"))?;
            if point != crate::failpoint::ROUTER_IGNORES_STALE_CONFIG {
                return Err(Error::bad_value(format!(
                    "{point} is not a fail point of the router (it has {})",
                    crate::failpoint::ROUTER_IGNORES_STALE_CONFIG
                )));
            }
            router.failpoints.configure(point, body)
        }
        "replSetInitiate"
        | "replSetGetStatus"
        | "replSetGetConfig"
        | "replSetReconfig"
        | "replSetStepDown"
        | "replSetFreeze"
        | "replSetHeartbeat"
        | "replSetRequestVotes"
        | "replSetUpdatePosition" => Err(Error::new(code::COMMAND_NOT_FOUND, format!("no such cmd: {name}"))),
        "startTransaction" | "commitTransaction" | "abortTransaction" => Err(Error::new(
            code::ILLEGAL_OPERATION,
            "multi-document transactions are not supported by the Faultline router yet",
        )),
        "aggregate" if db == "admin" => distribution::admin_aggregate(router, body).await,
        _ if db == "config" => route::to_config_servers(router, body).await,
        _ if db == "admin" => Err(Error::new(code::COMMAND_NOT_FOUND, format!("no such cmd: {name}"))),
        _ => route::run(router, name, db, body).await,
    }
}

/// `hello` as mongos answers it.
fn hello(connection: i64, legacy: bool, body: &Document) -> Document {
    let mut reply = Document::new();
    if body.get("helloOk").is_some_and(crate::bsonx::truthy) {
        reply.insert("helloOk", true);
    }
    reply.insert(if legacy { "ismaster" } else { "isWritablePrimary" }, true);
    reply.extend(doc! {
        "msg": "isdbgrid",
        "maxBsonObjectSize": wire::MAX_BSON_OBJECT_SIZE as i32,
        "maxMessageSizeBytes": wire::MAX_MESSAGE_SIZE as i32,
        "maxWriteBatchSize": 100_000,
        "localTime": bson::DateTime::now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": connection,
        "minWireVersion": 0,
        "maxWireVersion": crate::command::MAX_WIRE_VERSION,
        "readOnly": false,
    });
    reply
}

/// Cluster commands run on `admin` only, as on mongos.
fn require_admin(name: &str, db: &str) -> Result<()> {
    if db != "admin" {
        return Err(Error::new(
            (13, "Unauthorized"),
            format!("{name} may only be run against the admin database."),
        ));
    }
    Ok(())
}

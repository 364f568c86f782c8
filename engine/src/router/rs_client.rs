//! A client of one replica set (the config servers, or a shard), as a router or a shard member needs it:
//! find the primary from a seed list, keep a few connections to it, run a command there, and follow the
//! primary when it moves.
//!
//! [`ReplicaSetClient::run`] returns the primary's reply whatever its `ok` (the router passes shard errors
//! on to its client as they are), retrying only where the command cannot have run or must go elsewhere:
//! a connection that failed before a reply, and "not primary" answers. Those retries are bounded by
//! [`RETRY_WINDOW`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{Bson, Document, doc};

use crate::command::{ClusterClock, carried_cluster_time, signed_cluster_time};
use crate::error::{Error, Result};
use crate::shard::code;
use crate::wire::client::{ClientError, Connection};

/// How long a command may keep looking for a primary before it fails.
pub const RETRY_WINDOW: Duration = Duration::from_secs(30);
/// One exchange's deadline (a shard's part of a scatter-gather find may take a while).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle connections kept per replica set.
const POOL_SIZE: usize = 16;

/// Codes a member answers before running the command: ask the new primary.
const NOT_RUN_CODES: &[i32] = &[10107, 13435, 13436];
/// Codes that may come after the command ran (interrupted by a step-down or shutdown): asked again only
/// when running it twice is harmless (see [`retry_safe`]).
const INTERRUPTED_CODES: &[i32] = &[11600, 11602, 189, 91];

/// Whether a command may run twice without harm: reads, and retryable writes (a session's `txnNumber`
/// makes the member run each statement at most once).
fn retry_safe(body: &Document) -> bool {
    body.contains_key("txnNumber")
        || body.keys().next().is_some_and(|name| {
            matches!(
                name.as_str(),
                "find"
                    | "count"
                    | "distinct"
                    | "listCollections"
                    | "listIndexes"
                    | "listDatabases"
                    | "hello"
                    | "isMaster"
                    | "ping"
                    | "buildInfo"
                    | "getCmdLineOpts"
                    | "dbStats"
                    | "collStats"
                    | "dbHash"
                    | "_flushRoutingTableCacheUpdates"
            )
        })
        || (body.get_str("aggregate").is_ok() && !aggregate_writes(body))
}

/// Whether a pipeline ends in `$out` or `$merge`.
fn aggregate_writes(body: &Document) -> bool {
    body.get_array("pipeline").is_ok_and(|stages| {
        stages
            .iter()
            .filter_map(Bson::as_document)
            .any(|s| s.contains_key("$out") || s.contains_key("$merge"))
    })
}

/// A seed list as written in `config.shards.host` or `--configdb`: `set/h1:p1,h2:p2` or `h1:p1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedList {
    pub set_name: Option<String>,
    pub hosts: Vec<String>,
}

impl SeedList {
    /// Parses `set/h1:p1,h2:p2` (or a bare `h:p` list); hosts without a port get 27017.
    pub fn parse(text: &str) -> Result<SeedList> {
        let (set_name, hosts) = match text.split_once('/') {
            Some((name, hosts)) => (Some(name.to_string()), hosts),
            None => (None, text),
        };
        if set_name.as_deref().is_some_and(str::is_empty) {
            return Err(Error::bad_value(format!("'{text}': the replica set name is empty")));
        }
        let hosts: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_string()
                } else {
                    format!("{h}:27017")
                }
            })
            .collect();
        if hosts.is_empty() {
            return Err(Error::bad_value(format!("'{text}' names no host")));
        }
        Ok(SeedList { set_name, hosts })
    }
}

impl std::fmt::Display for SeedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.set_name {
            Some(name) => write!(f, "{name}/{}", self.hosts.join(",")),
            None => write!(f, "{}", self.hosts.join(",")),
        }
    }
}

/// One replica set's primary, found and followed.
pub struct ReplicaSetClient {
    /// The cluster time this client gossips: sent with every command, advanced by every reply (a router's
    /// clients share the router's clock).
    clock: Arc<ClusterClock>,
    seeds: Mutex<SeedList>,
    primary: Mutex<Option<String>>,
    idle: Mutex<Vec<(String, Connection)>>,
}

impl ReplicaSetClient {
    pub fn new(seeds: SeedList, clock: Arc<ClusterClock>) -> ReplicaSetClient {
        ReplicaSetClient {
            clock,
            seeds: Mutex::new(seeds),
            primary: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The cluster time this client gossips.
    pub fn clock(&self) -> &Arc<ClusterClock> {
        &self.clock
    }

    /// The seed list as last learned (hosts from the members' `hello` replace the ones given).
    pub fn seeds(&self) -> SeedList {
        lock(&self.seeds).clone()
    }

    /// Runs `body` on the primary and returns its reply (ok or not), following the primary for up to
    /// [`RETRY_WINDOW`]. A command that may have run when its exchange failed or was interrupted is sent
    /// again only if that is harmless ([`retry_safe`]); otherwise the failure is returned (HostUnreachable,
    /// or the member's reply) and the client decides, as with mongos.
    pub async fn run(&self, body: &Document) -> Result<Document> {
        let deadline = tokio::time::Instant::now() + RETRY_WINDOW;
        let mut pause = Duration::from_millis(20);
        let safe = retry_safe(body);
        loop {
            let failure = match self.primary().await {
                Ok(primary) => match self.exchange(&primary, body).await {
                    Ok(reply) => {
                        let code = reply.get("code").and_then(crate::bsonx::as_i64).unwrap_or(0) as i32;
                        let again = NOT_RUN_CODES.contains(&code) || (safe && INTERRUPTED_CODES.contains(&code));
                        if crate::wire::client::reply_ok(&reply) || !again {
                            return Ok(reply);
                        }
                        format!("{primary} is not primary any more")
                    }
                    Err(err @ (ClientError::Connect { .. } | ClientError::Poisoned)) => format!("{primary}: {err}"),
                    Err(err) if safe => format!("{primary}: {err}"),
                    Err(err) => {
                        self.forget_primary();
                        return Err(Error::new(
                            code::HOST_UNREACHABLE,
                            format!(
                                "lost the connection to {primary} while it ran the command, which may or may not have run: {err}"
                            ),
                        ));
                    }
                },
                Err(err) => err.message,
            };
            self.forget_primary();
            if tokio::time::Instant::now() >= deadline {
                let set = self.seeds();
                return Err(Error::new(
                    code::FAILED_TO_SATISFY_READ_PREFERENCE,
                    format!(
                        "Could not find host matching read preference {{ mode: \"primary\" }} for set {set}: {failure}"
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Forgets the primary and the idle connections to it (a failed one is likely not the only one).
    fn forget_primary(&self) {
        if let Some(primary) = lock(&self.primary).take() {
            lock(&self.idle).retain(|(host, _)| *host != primary);
        }
    }

    /// [`ReplicaSetClient::run`], with an `ok: 0` reply as an error.
    pub async fn command(&self, body: &Document) -> Result<Document> {
        let reply = self.run(body).await?;
        if crate::wire::client::reply_ok(&reply) {
            Ok(reply)
        } else {
            Err(error_of_reply(&reply))
        }
    }

    /// The primary's address, asking the seeds when it is not known.
    async fn primary(&self) -> Result<String> {
        if let Some(primary) = lock(&self.primary).clone() {
            return Ok(primary);
        }
        let seeds = self.seeds();
        let mut reasons = Vec::new();
        for host in &seeds.hosts {
            match hello(host).await {
                Ok(reply) => {
                    if let Some(expected) = &seeds.set_name
                        && reply.get_str("setName").ok() != Some(expected.as_str())
                    {
                        reasons.push(format!("{host} is not a member of {expected}"));
                        continue;
                    }
                    if let Ok(hosts) = reply.get_array("hosts") {
                        let learned: Vec<String> = hosts.iter().filter_map(|h| h.as_str().map(String::from)).collect();
                        if !learned.is_empty() {
                            lock(&self.seeds).hosts = learned;
                        }
                    }
                    let writable = reply.get_bool("isWritablePrimary").unwrap_or(false);
                    if writable {
                        *lock(&self.primary) = Some(host.clone());
                        return Ok(host.clone());
                    }
                    if let Ok(primary) = reply.get_str("primary") {
                        reasons.push(format!("{host} says the primary is {primary}"));
                    } else {
                        reasons.push(format!("{host} knows no primary"));
                    }
                }
                Err(err) => reasons.push(format!("{host}: {err}")),
            }
        }
        Err(Error::new(
            code::FAILED_TO_SATISFY_READ_PREFERENCE,
            format!("no primary found for {seeds}: {}", reasons.join("; ")),
        ))
    }

    async fn exchange(&self, host: &str, body: &Document) -> std::result::Result<Document, ClientError> {
        let pooled = {
            let mut idle = lock(&self.idle);
            idle.iter().position(|(h, _)| h == host).map(|i| idle.swap_remove(i).1)
        };
        let mut connection = match pooled {
            Some(connection) => connection,
            None => Connection::connect(host, CONNECT_TIMEOUT).await?,
        };
        let reply = match self.clock.gossiped() {
            Some(ts) if !body.contains_key("$clusterTime") => {
                let mut gossiping = body.clone();
                gossiping.insert("$clusterTime", signed_cluster_time(ts));
                connection.round_trip(&gossiping, EXCHANGE_TIMEOUT).await?
            }
            _ => connection.round_trip(body, EXCHANGE_TIMEOUT).await?,
        };
        if let Some(ts) = carried_cluster_time(&reply) {
            self.clock.advance(ts);
        }
        let mut idle = lock(&self.idle);
        if idle.len() < POOL_SIZE {
            idle.push((host.to_string(), connection));
        }
        Ok(reply)
    }
}

/// `hello` on one host, on a fresh connection.
pub async fn hello(host: &str) -> std::result::Result<Document, ClientError> {
    let mut connection = Connection::connect(host, CONNECT_TIMEOUT).await?;
    connection
        .command(&doc! {"hello": 1, "$db": "admin"}, Duration::from_secs(5))
        .await
}

/// An `ok: 0` reply as the engine's error (its code, name and message kept).
pub fn error_of_reply(reply: &Document) -> Error {
    let code = reply.get("code").and_then(crate::bsonx::as_i64).unwrap_or(8) as i32;
    let message = reply.get_str("errmsg").unwrap_or("command failed").to_string();
    let mut extra = reply.clone();
    for key in ["ok", "code", "codeName", "errmsg"] {
        extra.remove(key);
    }
    let name = static_code_name(code);
    Error::new((code, name), message).with_extra(extra)
}

/// The code name of a code the router may pass on (the engine's error type holds static names).
fn static_code_name(code: i32) -> &'static str {
    use crate::error::code as engine;
    use crate::shard::code as shard;
    let known = [
        engine::BAD_VALUE,
        engine::FAILED_TO_PARSE,
        engine::TYPE_MISMATCH,
        engine::ILLEGAL_OPERATION,
        engine::NAMESPACE_NOT_FOUND,
        engine::CURSOR_NOT_FOUND,
        engine::NAMESPACE_EXISTS,
        engine::COMMAND_NOT_FOUND,
        engine::WRITE_CONCERN_TIMEOUT,
        engine::INVALID_OPTIONS,
        engine::INVALID_NAMESPACE,
        engine::NOT_WRITABLE_PRIMARY,
        engine::DUPLICATE_KEY,
        shard::HOST_UNREACHABLE,
        shard::SHARD_KEY_NOT_FOUND,
        shard::SHARD_NOT_FOUND,
        shard::OPERATION_FAILED,
        shard::STALE_CONFIG,
    ];
    known
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
        .unwrap_or("UnknownError")
}

/// Every document `filter` matches in `db.coll` on the primary, read with majority read concern, in `sort`
/// order.
pub async fn find_all(
    client: &ReplicaSetClient,
    db: &str,
    coll: &str,
    filter: Document,
    sort: Option<Document>,
) -> Result<Vec<Document>> {
    let mut find = doc! {"find": coll, "filter": filter, "batchSize": 10_000_i32,
    "readConcern": {"level": "majority"}, "$db": db};
    if let Some(sort) = sort {
        find.insert("sort", sort);
    }
    let mut reply = client.command(&find).await?;
    let mut out = Vec::new();
    loop {
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| Error::internal(format!("find on {db}.{coll} answered without a cursor")))?;
        let batch = cursor
            .get_array("firstBatch")
            .or_else(|_| cursor.get_array("nextBatch"))
            .map_err(|_| Error::internal(format!("find on {db}.{coll} answered without a batch")))?;
        out.extend(batch.iter().filter_map(|d| d.as_document().cloned()));
        let id = cursor.get_i64("id").unwrap_or(0);
        if id == 0 {
            return Ok(out);
        }
        reply = client
            .command(&doc! {"getMore": id, "collection": coll, "batchSize": 10_000_i32, "$db": db})
            .await?;
    }
}

/// Runs a write command with `w: "majority"` on the primary; a write error or write-concern error is an
/// error. Returns the reply.
pub async fn write_majority(client: &ReplicaSetClient, mut body: Document) -> Result<Document> {
    body.insert("writeConcern", doc! {"w": "majority", "wtimeout": 30_000_i32});
    let reply = client.command(&body).await?;
    if let Ok(errors) = reply.get_array("writeErrors")
        && let Some(Bson::Document(first)) = errors.first()
    {
        return Err(error_of_reply(first));
    }
    if let Ok(error) = reply.get_document("writeConcernError") {
        return Err(error_of_reply(error));
    }
    Ok(reply)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_parse_with_and_without_a_set_name() {
        let seeds = SeedList::parse("cfg/a:1,b:2").expect("valid");
        assert_eq!(seeds.set_name.as_deref(), Some("cfg"));
        assert_eq!(seeds.hosts, vec!["a:1", "b:2"]);
        assert_eq!(seeds.to_string(), "cfg/a:1,b:2");
        assert_eq!(SeedList::parse("h").expect("valid").hosts, vec!["h:27017"]);
        assert!(SeedList::parse("/a:1").is_err());
        assert!(SeedList::parse("cfg/").is_err());
    }
}

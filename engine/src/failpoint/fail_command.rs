//! MongoDB's test fail points around one client command, as drivers' tests configure them:
//!
//! - `failCommand`: for commands named in `data.failCommands` (optionally only from clients whose handshake
//!   named `data.appName`, only on `data.namespace`): block for `blockTimeMS` when `blockConnection`, then
//!   close the connection without running the command (`closeConnection`), or answer with `errorCode`
//!   without running it, or run it and put `writeConcernError` in its reply. `errorLabels` replaces the labels
//!   the reply would carry. Replication's own commands (on `local`, `replSet*`) are left alone unless
//!   `failInternalCommands` is true.
//! - `failGetMoreAfterCursorCheckout`: a `getMore` fails with `errorCode`.
//! - `maxTimeAlwaysTimeOut`: a command with `maxTimeMS` fails with MaxTimeMSExpired.
//! - `onPrimaryTransactionalWrite`: a retryable write that executes (not a retry the session's history
//!   answers) fails before commit with `failBeforeCommitExceptionCode`, and/or its connection is closed
//!   instead of the reply (`closeConnection`, true unless set false).
//!
//! The connection layer calls [`around_command`] with the command and a way to run it.

use std::future::Future;
use std::time::Duration;

use bson::{Bson, Document, doc};

use super::{
    FAIL_COMMAND, FAIL_GET_MORE_AFTER_CURSOR_CHECKOUT, MAX_TIME_ALWAYS_TIME_OUT, ON_PRIMARY_TRANSACTIONAL_WRITE,
};
use crate::command::{ConnectionInfo, Reply};
use crate::error::{Error, RETRYABLE_CODES, Result};
use crate::node::Node;

/// Error message of a command failed by `failCommand` (mongod's wording).
const FAIL_COMMAND_MESSAGE: &str = "Failing command via 'failCommand' failpoint";

/// Checks `failCommand`'s data when it is configured, so a bad spec is refused by `configureFailPoint`.
pub fn check_data(data: &Document) -> Result<()> {
    match data.get("failCommands") {
        Some(Bson::Array(names)) if names.iter().all(|n| matches!(n, Bson::String(_))) => {}
        Some(_) => {
            return Err(Error::type_mismatch(
                "failCommand: data.failCommands must be an array of strings",
            ));
        }
        None => return Err(Error::bad_value("failCommand: data.failCommands is required")),
    }
    for key in ["closeConnection", "blockConnection", "failInternalCommands"] {
        if data.get(key).is_some_and(|v| !matches!(v, Bson::Boolean(_))) {
            return Err(Error::type_mismatch(format!(
                "failCommand: data.{key} must be a boolean"
            )));
        }
    }
    for key in ["errorCode", "blockTimeMS"] {
        if data.get(key).is_some_and(|v| crate::bsonx::as_i64(v).is_none()) {
            return Err(Error::type_mismatch(format!(
                "failCommand: data.{key} must be a number"
            )));
        }
    }
    if data.get_bool("blockConnection").unwrap_or(false) && !data.contains_key("blockTimeMS") {
        return Err(Error::bad_value(
            "failCommand: data.blockTimeMS is required with blockConnection",
        ));
    }
    if data
        .get("writeConcernError")
        .is_some_and(|v| !matches!(v, Bson::Document(_)))
    {
        return Err(Error::type_mismatch(
            "failCommand: data.writeConcernError must be a document",
        ));
    }
    if data
        .get("errorLabels")
        .is_some_and(|v| !matches!(v, Bson::Array(labels) if labels.iter().all(|l| matches!(l, Bson::String(_)))))
    {
        return Err(Error::type_mismatch(
            "failCommand: data.errorLabels must be an array of strings",
        ));
    }
    for key in ["appName", "namespace"] {
        if data.get(key).is_some_and(|v| !matches!(v, Bson::String(_))) {
            return Err(Error::type_mismatch(format!(
                "failCommand: data.{key} must be a string"
            )));
        }
    }
    Ok(())
}

/// Runs one client command under the test fail points; `run` executes the command itself. Returns the reply
/// to send, or `None` when the connection must be closed without one.
pub async fn around_command<F, Fut>(node: &Node, conn: &ConnectionInfo, body: Document, run: F) -> Option<Reply>
where
    F: FnOnce(Document) -> Fut,
    Fut: Future<Output = Reply>,
{
    let points = &node.failpoints;
    if !points.commands_armed() {
        return Some(run(body).await);
    }
    let mut command = CommandFacts::of(&body);
    command.change_stream = opens_or_continues_change_stream(node, &body);
    if let Some(data) = points.hit_if(FAIL_COMMAND, |data| {
        command.is_failed_by(data, || app_name(node, conn, &body))
    }) {
        return fail_command(&data, &command, body, run).await;
    }
    // Replication's own getMores (members tailing this one's oplog) do not use it up.
    if command.name == "getMore"
        && !command.internal
        && let Some(data) = points.hit(FAIL_GET_MORE_AFTER_CURSOR_CHECKOUT)
    {
        let code = data.get("errorCode").and_then(crate::bsonx::as_i64).unwrap_or(1);
        let mut reply = error_reply(
            code,
            "getMore failed via 'failGetMoreAfterCursorCheckout' failpoint",
            None,
            &command,
        );
        // The error is raised inside the getMore, so mongod labels it as it labels the getMore's own errors
        // (`failCommand` errors are returned as configured, without the label).
        if command.change_stream && i32::try_from(code).is_ok_and(|c| crate::changestream::RESUMABLE_CODES.contains(&c))
        {
            reply.insert("errorLabels", [crate::changestream::RESUMABLE_LABEL]);
        }
        return Some(reply);
    }
    if body.contains_key("maxTimeMS") && points.hit(MAX_TIME_ALWAYS_TIME_OUT).is_some() {
        return Some(error_reply(50, "operation exceeded time limit", None, &command));
    }
    if command.retryable_write
        && command.is_write()
        && points.is_on(ON_PRIMARY_TRANSACTIONAL_WRITE)
        && !already_executed(node, &body)
        && let Some(data) = points.hit(ON_PRIMARY_TRANSACTIONAL_WRITE)
    {
        let close = data.get_bool("closeConnection").unwrap_or(true);
        if let Some(code) = data.get("failBeforeCommitExceptionCode").and_then(crate::bsonx::as_i64) {
            return (!close).then(|| error_reply(code, "onPrimaryTransactionalWrite fail point", None, &command));
        }
        let reply = run(body).await;
        return (!close).then_some(reply);
    }
    Some(run(body).await)
}

/// Whether a retryable write is a retry of one this member already executed (its session's record is at this
/// transaction number): mongod evaluates `onPrimaryTransactionalWrite` only where a write really executes, so
/// a retry answered from the session's history passes it by.
fn already_executed(node: &Node, body: &Document) -> bool {
    let (Ok(lsid), Some(txn_number)) = (
        body.get_document("lsid"),
        body.get("txnNumber").and_then(crate::bsonx::as_i64),
    ) else {
        return false;
    };
    let Ok(records) = node.storage.snapshot().and_then(|s| s.sessions()) else {
        return false;
    };
    records
        .0
        .iter()
        .any(|r| r.get_document("lsid").ok() == Some(lsid) && r.get_i64("txnNumber").ok() == Some(txn_number))
}

/// What `failCommand` does once it fired for this command.
async fn fail_command<F, Fut>(data: &Document, command: &CommandFacts, body: Document, run: F) -> Option<Reply>
where
    F: FnOnce(Document) -> Fut,
    Fut: Future<Output = Reply>,
{
    if data.get_bool("blockConnection").unwrap_or(false) {
        let millis = data.get("blockTimeMS").and_then(crate::bsonx::as_i64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(u64::try_from(millis).unwrap_or(0))).await;
    }
    if data.get_bool("closeConnection").unwrap_or(false) {
        return None;
    }
    let labels = data.get_array("errorLabels").ok();
    if let Some(code) = data.get("errorCode").and_then(crate::bsonx::as_i64) {
        return Some(error_reply(code, FAIL_COMMAND_MESSAGE, labels, command));
    }
    let mut reply = run(body).await;
    if let Ok(write_concern_error) = data.get_document("writeConcernError") {
        reply.insert("writeConcernError", write_concern_error.clone());
        let code = write_concern_error.get("code").and_then(crate::bsonx::as_i64);
        reply.remove("errorLabels");
        let labels = match labels {
            Some(labels) => labels.clone(),
            None if command.retryable_write && code.is_some_and(is_retryable) => {
                vec![Bson::String("RetryableWriteError".into())]
            }
            None => Vec::new(),
        };
        if !labels.is_empty() {
            reply.insert("errorLabels", labels);
        }
    } else if let Some(labels) = labels {
        reply.remove("errorLabels");
        if !labels.is_empty() {
            reply.insert("errorLabels", labels.clone());
        }
    }
    Some(reply)
}

fn is_retryable(code: i64) -> bool {
    i32::try_from(code).is_ok_and(|c| RETRYABLE_CODES.contains(&c))
}

/// A command error reply with `code` and its name. Labels: `labels` when the fail point names them, else
/// RetryableWriteError for a retryable write failing with a retryable code (what mongod would add).
fn error_reply(code: i64, message: &str, labels: Option<&Vec<Bson>>, command: &CommandFacts) -> Reply {
    let code = i32::try_from(code).unwrap_or(1);
    let mut reply = doc! {"ok": 0.0, "errmsg": message, "code": code, "codeName": code_name(code)};
    let labels = match labels {
        Some(labels) => labels.clone(),
        None if command.retryable_write && is_retryable(i64::from(code)) => {
            vec![Bson::String("RetryableWriteError".into())]
        }
        None => Vec::new(),
    };
    if !labels.is_empty() {
        reply.insert("errorLabels", labels);
    }
    Reply::from(reply)
}

/// Whether `body` is an `aggregate` whose pipeline starts with `$changeStream`, or a `getMore` on a change
/// stream cursor.
fn opens_or_continues_change_stream(node: &Node, body: &Document) -> bool {
    match body.keys().next().map(String::as_str) {
        Some("aggregate") => body
            .get_array("pipeline")
            .ok()
            .and_then(|stages| stages.first())
            .and_then(Bson::as_document)
            .is_some_and(|first| first.contains_key("$changeStream")),
        Some("getMore") => body
            .get("getMore")
            .and_then(crate::bsonx::as_i64)
            .is_some_and(|id| node.cursors.is_change_stream(id)),
        _ => false,
    }
}

/// What the fail points look at in a command.
struct CommandFacts {
    /// The command's name, with the hello family's legacy spelling `ismaster` as `isMaster`.
    name: String,
    /// `db.collection` for commands on a collection, else `db`.
    namespace: String,
    /// Replication's own traffic between members.
    internal: bool,
    /// A retryable write: `txnNumber` outside a transaction.
    retryable_write: bool,
    /// An `aggregate` opening a change stream or a `getMore` on one: resumable errors raised inside it are
    /// labelled `ResumableChangeStreamError`.
    change_stream: bool,
}

impl CommandFacts {
    fn of(body: &Document) -> CommandFacts {
        let first = body.iter().next();
        let raw_name = first.map(|(k, _)| k.as_str()).unwrap_or("");
        let name = if raw_name == "ismaster" { "isMaster" } else { raw_name };
        let db = body.get_str("$db").unwrap_or("");
        let namespace = match first.map(|(_, v)| v) {
            Some(Bson::String(coll)) if !coll.is_empty() => format!("{db}.{coll}"),
            _ => db.to_string(),
        };
        CommandFacts {
            name: name.to_string(),
            namespace,
            internal: db == "local" || name.starts_with("replSet"),
            retryable_write: body.contains_key("txnNumber") && !body.contains_key("autocommit"),
            change_stream: false,
        }
    }

    fn is_write(&self) -> bool {
        matches!(
            self.name.as_str(),
            "insert" | "update" | "delete" | "findAndModify" | "findandmodify"
        )
    }

    /// Whether `failCommand` with this data applies to this command (the client's name is read only when the
    /// data names one).
    fn is_failed_by(&self, data: &Document, app_name: impl FnOnce() -> Option<String>) -> bool {
        let named = data
            .get_array("failCommands")
            .is_ok_and(|names| names.iter().any(|n| n.as_str() == Some(self.name.as_str())));
        if !named || (self.internal && !data.get_bool("failInternalCommands").unwrap_or(false)) {
            return false;
        }
        if let Ok(namespace) = data.get_str("namespace")
            && namespace != self.namespace
        {
            return false;
        }
        match data.get_str("appName") {
            Ok(wanted) => app_name().as_deref() == Some(wanted),
            Err(_) => true,
        }
    }
}

/// The application name the connection's client gave in its handshake (`client.application.name`); for a
/// handshake itself, the name it carries.
fn app_name(node: &Node, conn: &ConnectionInfo, body: &Document) -> Option<String> {
    let named = |client: &Document| {
        client
            .get_document("application")
            .ok()
            .and_then(|a| a.get_str("name").ok())
            .map(str::to_string)
    };
    if let Ok(client) = body.get_document("client") {
        return named(client);
    }
    let (clients, _) = node.activity.snapshot();
    clients.get(&conn.id)?.metadata.as_ref().and_then(named)
}

/// MongoDB's name for an error code (the codes drivers' tests use), `Location<code>` for others as mongod does.
fn code_name(code: i32) -> String {
    let name = match code {
        1 => "InternalError",
        2 => "BadValue",
        6 => "HostUnreachable",
        7 => "HostNotFound",
        8 => "UnknownError",
        9 => "FailedToParse",
        11 => "UserNotFound",
        13 => "Unauthorized",
        18 => "AuthenticationFailed",
        20 => "IllegalOperation",
        24 => "LockTimeout",
        26 => "NamespaceNotFound",
        43 => "CursorNotFound",
        46 => "LockBusy",
        50 => "MaxTimeMSExpired",
        59 => "CommandNotFound",
        63 => "StaleShardVersion",
        64 => "WriteConcernFailed",
        79 => "UnknownReplWriteConcern",
        89 => "NetworkTimeout",
        91 => "ShutdownInProgress",
        100 => "UnsatisfiableWriteConcern",
        112 => "WriteConflict",
        133 => "FailedToSatisfyReadPreference",
        134 => "ReadConcernMajorityNotAvailableYet",
        136 => "CappedPositionLost",
        150 => "StaleEpoch",
        175 => "QueryPlanKilled",
        189 => "PrimarySteppedDown",
        216 => "ElectionInProgress",
        234 => "RetryChangeStream",
        237 => "CursorKilled",
        251 => "NoSuchTransaction",
        262 => "ExceededTimeLimit",
        280 => "ChangeStreamFatalError",
        286 => "ChangeStreamHistoryLost",
        9001 => "SocketException",
        10107 => "NotWritablePrimary",
        11000 => "DuplicateKey",
        11600 => "InterruptedAtShutdown",
        11601 => "Interrupted",
        11602 => "InterruptedDueToReplStateChange",
        13388 => "StaleConfig",
        13435 => "NotPrimaryNoSecondaryOk",
        13436 => "NotPrimaryOrSecondary",
        _ => return format!("Location{code}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failpoint::FailPoints;

    fn facts(body: Document) -> CommandFacts {
        CommandFacts::of(&body)
    }

    #[test]
    fn fail_command_applies_to_named_commands_apps_and_namespaces_only() {
        let data = doc! {"failCommands": ["insert", "isMaster"], "appName": "app", "namespace": "db.c"};
        let insert = facts(doc! {"insert": "c", "$db": "db"});
        assert!(insert.is_failed_by(&data, || Some("app".into())));
        assert!(!insert.is_failed_by(&data, || Some("other".into())));
        assert!(!insert.is_failed_by(&data, || None));
        let elsewhere = facts(doc! {"insert": "d", "$db": "db"});
        assert!(!elsewhere.is_failed_by(&data, || Some("app".into())));
        let find = facts(doc! {"find": "c", "$db": "db"});
        assert!(!find.is_failed_by(&data, || Some("app".into())));
        let legacy_hello = facts(doc! {"ismaster": 1, "$db": "admin"});
        let any_namespace = doc! {"failCommands": ["isMaster"]};
        assert!(legacy_hello.is_failed_by(&any_namespace, || None));
    }

    #[test]
    fn replication_traffic_is_failed_only_when_asked() {
        let oplog = facts(doc! {"find": "oplog.rs", "$db": "local"});
        assert!(!oplog.is_failed_by(&doc! {"failCommands": ["find"]}, || None));
        assert!(oplog.is_failed_by(&doc! {"failCommands": ["find"], "failInternalCommands": true}, || None));
    }

    #[test]
    fn error_replies_carry_the_code_name_and_labels() {
        let write = facts(doc! {"insert": "c", "$db": "db", "txnNumber": 1_i64});
        let reply = error_reply(91, FAIL_COMMAND_MESSAGE, None, &write);
        assert_eq!(reply.get_str("codeName").ok(), Some("ShutdownInProgress"));
        assert_eq!(reply.get_array("errorLabels").ok().map(Vec::len), Some(1));
        let read = facts(doc! {"find": "c", "$db": "db"});
        assert!(!error_reply(91, FAIL_COMMAND_MESSAGE, None, &read).contains_key("errorLabels"));
        let none: Vec<Bson> = Vec::new();
        assert!(!error_reply(91, FAIL_COMMAND_MESSAGE, Some(&none), &write).contains_key("errorLabels"));
        assert_eq!(
            error_reply(12345, "x", None, &read).get_str("codeName").ok(),
            Some("Location12345")
        );
    }

    #[test]
    fn skip_lets_chances_pass_and_misses_do_not_count() {
        let points = FailPoints::default();
        points
            .configure(
                FAIL_COMMAND,
                &doc! {"mode": {"skip": 2}, "data": {"failCommands": ["find"]}},
            )
            .expect("configure");
        let fired: Vec<bool> = (0..4)
            .map(|_| points.hit_if(FAIL_COMMAND, |_| true).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, true]);
        points
            .configure(
                FAIL_COMMAND,
                &doc! {"mode": {"times": 1}, "data": {"failCommands": ["find"]}},
            )
            .expect("configure");
        assert!(points.hit_if(FAIL_COMMAND, |_| false).is_none(), "a miss does not fire");
        assert!(
            points.hit_if(FAIL_COMMAND, |_| true).is_some(),
            "nor does it use up times"
        );
        assert!(points.hit_if(FAIL_COMMAND, |_| true).is_none());
    }

    #[test]
    fn commands_pass_without_the_lock_until_a_command_fail_point_is_on() {
        let points = FailPoints::default();
        assert!(!points.commands_armed());
        points
            .configure(crate::failpoint::SKIP_ROLLBACK, &doc! {"mode": "alwaysOn"})
            .expect("configure");
        assert!(!points.commands_armed(), "other fail points do not arm it");
        points
            .configure(MAX_TIME_ALWAYS_TIME_OUT, &doc! {"mode": {"times": 1}})
            .expect("configure");
        assert!(points.commands_armed());
        points
            .configure(MAX_TIME_ALWAYS_TIME_OUT, &doc! {"mode": "off"})
            .expect("configure");
        assert!(!points.commands_armed());
    }

    #[test]
    fn bad_fail_command_data_is_refused() {
        let points = FailPoints::default();
        for data in [
            doc! {},
            doc! {"failCommands": "find"},
            doc! {"failCommands": ["find"], "errorCode": "x"},
            doc! {"failCommands": ["find"], "blockConnection": true},
            doc! {"failCommands": ["find"], "closeConnection": 1},
            doc! {"failCommands": ["find"], "errorLabels": [1]},
        ] {
            let spec = doc! {"mode": "alwaysOn", "data": data.clone()};
            assert!(points.configure(FAIL_COMMAND, &spec).is_err(), "accepted {data}");
        }
        assert!(points.configure(FAIL_COMMAND, &doc! {"mode": "off"}).is_ok());
        assert!(
            points
                .configure(
                    FAIL_COMMAND,
                    &doc! {"mode": {"times": 1, "skip": 1}, "data": {"failCommands": ["find"]}}
                )
                .is_err(),
            "times and skip are exclusive"
        );
    }
}

//! `currentOp` and the `$currentOp` aggregation stage (mongosh's `db.currentOp()` sends
//! `{aggregate: 1, pipeline: [{$currentOp: {...}}, {$match: ...}]}` to admin): the commands in flight on
//! every connection, from the node's activity registry, with mongod's fields; with `idleConnections`, the
//! connections that run nothing too. The engine has no users, so `allUsers` changes nothing.

use std::time::Instant;

use bson::{Bson, Document, doc};

use super::Context;
use crate::error::{Error, Result, code};
use crate::node::{ClientInfo, InFlight};
use crate::query::filter::Filter;

/// The `$currentOp` options mongod accepts (all booleans).
const OPTIONS: [&str; 8] = [
    "allUsers",
    "idleConnections",
    "idleCursors",
    "idleSessions",
    "localOps",
    "truncateOps",
    "backtrace",
    "targetAllNodes",
];

/// The documents a leading `$currentOp` stage produces; the rest of the pipeline runs on them.
pub fn stage_output(ctx: &Context<'_>, spec: &Bson) -> Result<Vec<Document>> {
    if ctx.db != "admin" || !matches!(ctx.body.get("aggregate"), Some(b) if b.as_str().is_none()) {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            "$currentOp must be run against the 'admin' database with {aggregate: 1}",
        ));
    }
    let Bson::Document(spec) = spec else {
        return Err(Error::failed_to_parse(format!(
            "$currentOp options must be specified in an object, but found: {}",
            type_name(spec)
        )));
    };
    let mut idle = false;
    for (key, value) in spec {
        if !OPTIONS.contains(&key.as_str()) {
            return Err(Error::failed_to_parse(format!(
                "Unrecognized option '{key}' in $currentOp stage."
            )));
        }
        let Bson::Boolean(on) = value else {
            return Err(Error::failed_to_parse(format!(
                "The '{key}' parameter of the $currentOp stage must be a boolean value, but found: {}",
                type_name(value)
            )));
        };
        if key == "idleConnections" {
            idle = *on;
        }
    }
    Ok(operations(ctx, idle))
}

/// The `currentOp` command: `{currentOp: 1, $all?, $ownOps?, <filter on the operation documents>}`.
pub fn command(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let all = ctx.body.get("$all").is_some_and(crate::bsonx::truthy);
    let mut filter = Document::new();
    for (key, value) in ctx.body.iter().skip(1) {
        let generic = matches!(
            key.as_str(),
            "$all"
                | "$ownOps"
                | "$truncateOps"
                | "lsid"
                | "comment"
                | "apiVersion"
                | "apiStrict"
                | "apiDeprecationErrors"
        );
        // Other `$` fields are the command's envelope ($db, $readPreference, ...), except the operators.
        let envelope = key.starts_with('$') && !matches!(key.as_str(), "$and" | "$or" | "$nor" | "$expr");
        if !generic && !envelope {
            filter.insert(key.clone(), value.clone());
        }
    }
    let filter = Filter::parse(&filter)?;
    let inprog: Vec<Bson> = operations(ctx, all)
        .into_iter()
        .filter(|op| filter.matches(op))
        .map(Bson::Document)
        .collect();
    Ok(doc! {"inprog": inprog})
}

/// Every operation in flight (and, with `idle`, every connection running nothing), oldest first.
fn operations(ctx: &Context<'_>, idle: bool) -> Vec<Document> {
    let (clients, mut ops) = ctx.node.activity.snapshot();
    ops.sort_by_key(|op| op.opid);
    let host = format!("{}:{}", crate::host::name(), ctx.node.options().port);
    let now = Instant::now();
    let time = current_op_time(ctx.node.clock());
    let mut out: Vec<Document> = ops
        .iter()
        .map(|op| active_entry(&host, op, clients.get(&op.conn), now, &time))
        .collect();
    if idle {
        let mut idle_ids: Vec<&i64> = clients
            .keys()
            .filter(|id| !ops.iter().any(|op| op.conn == **id))
            .collect();
        idle_ids.sort();
        for id in idle_ids {
            let mut entry = connection_fields(&host, *id, clients.get(id));
            entry.insert("active", false);
            entry.insert("currentOpTime", time.as_str());
            out.push(entry);
        }
    }
    out
}

fn connection_fields(host: &str, conn: i64, client: Option<&ClientInfo>) -> Document {
    let mut entry = doc! {"type": "op", "host": host, "desc": format!("conn{conn}"), "connectionId": conn};
    if let Some(client) = client {
        entry.insert("client", client.peer.to_string());
        if let Some(metadata) = &client.metadata {
            if let Ok(app) = metadata.get_document("application")
                && let Ok(name) = app.get_str("name")
            {
                entry.insert("appName", name);
            }
            entry.insert("clientMetadata", metadata.clone());
        }
    }
    entry
}

/// The command as `currentOp` shows it: without an insert's documents or an update's or delete's statements
/// (mongod does not show them either).
fn shown_command(command: &Document) -> Document {
    command
        .iter()
        .filter(|(k, v)| !(matches!(k.as_str(), "documents" | "updates" | "deletes") && matches!(v, Bson::Array(_))))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `time` is `currentOpTime`: the member's wall clock as the listing was taken.
fn active_entry(host: &str, op: &InFlight, client: Option<&ClientInfo>, now: Instant, time: &str) -> Document {
    let running = now.saturating_duration_since(op.started);
    let mut entry = connection_fields(host, op.conn, client);
    let name = op.command.keys().next().map(String::as_str).unwrap_or("");
    entry.insert("active", true);
    entry.insert("currentOpTime", time);
    entry.insert("opid", (op.opid & 0x7fff_ffff) as i32);
    if let Some(lsid) = op.command.get("lsid") {
        entry.insert("lsid", lsid.clone());
    }
    entry.insert("secs_running", running.as_secs() as i64);
    entry.insert("microsecs_running", running.as_micros() as i64);
    entry.insert("op", op_kind(name));
    entry.insert("ns", namespace(op));
    entry.insert("command", shown_command(&op.command));
    entry.insert("numYields", 0);
    entry.insert("locks", Document::new());
    entry.insert("waitingForLock", false);
    entry
}

/// mongod's `op` field.
fn op_kind(name: &str) -> &'static str {
    match name {
        "find" => "query",
        "getMore" => "getmore",
        "insert" => "insert",
        "update" => "update",
        "delete" => "remove",
        _ => "command",
    }
}

/// The namespace an operation works on: the collection for commands that name one, else `<db>.$cmd`.
fn namespace(op: &InFlight) -> String {
    let mut fields = op.command.iter();
    let (name, value) = match fields.next() {
        Some(first) => first,
        None => return format!("{}.$cmd", op.db),
    };
    let names_collection = matches!(
        name.as_str(),
        "find"
            | "insert"
            | "update"
            | "delete"
            | "findAndModify"
            | "aggregate"
            | "count"
            | "distinct"
            | "create"
            | "collMod"
            | "drop"
            | "createIndexes"
            | "dropIndexes"
            | "listIndexes"
            | "collStats"
    );
    match (name.as_str(), value) {
        ("getMore", _) => match op.command.get_str("collection") {
            Ok(coll) => format!("{}.{coll}", op.db),
            Err(_) => format!("{}.$cmd", op.db),
        },
        (_, Bson::String(coll)) if names_collection => format!("{}.{coll}", op.db),
        _ => format!("{}.$cmd", op.db),
    }
}

fn current_op_time(clock: &crate::clock::Clock) -> String {
    clock.now().try_to_rfc3339_string().unwrap_or_default()
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        _ => "a non-boolean value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_shown_without_its_statements() {
        let insert = doc! {"insert": "c", "documents": [{"_id": 1}], "ordered": true, "lsid": {"id": 1}, "$db": "d"};
        assert_eq!(
            shown_command(&insert),
            doc! {"insert": "c", "ordered": true, "lsid": {"id": 1}, "$db": "d"}
        );
        let update = doc! {"update": "c", "updates": [{"q": {}, "u": {}}], "$db": "d"};
        assert_eq!(shown_command(&update), doc! {"update": "c", "$db": "d"});
        // Only the statement arrays: a find's filter named `documents` stays.
        let find = doc! {"find": "c", "filter": {"documents": 1}, "$db": "d"};
        assert_eq!(shown_command(&find), find);
    }
}

//! One client connection: read a frame, decode it, run the command, write the reply; repeat.
//!
//! Framing errors close the connection (the byte stream can't be trusted any more); content errors get an
//! error reply and the connection goes on. Nothing a client sends can panic the server or stall other
//! connections.
//!
//! Two request shapes get more than one reply or a different reply shape:
//!
//! - an awaitable `hello` (with `topologyVersion` and `maxAwaitTimeMS`) sent with OP_MSG's `exhaustAllowed`
//!   flag starts the streaming monitoring protocol: every reply carries `moreToCome`, and the server keeps
//!   answering the same request (each time with the topology version it last sent) until the client closes
//!   the connection or a reply is an error;
//! - OP_QUERY on `<db>.$cmd` (old drivers, e.g. the 3.x Java driver's `isMaster`, `buildinfo` and
//!   `getlasterror`) runs through the normal command path and is answered with an OP_REPLY.
//!
//! Every command runs inside [`fail_command::around_command`], where MongoDB's test fail points
//! (`failCommand`, ...) may block it, fail it, close the connection or change its reply.

use std::net::SocketAddr;
use std::sync::Arc;

use bson::{Bson, Document, doc};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::command::{self, ConnectionInfo, Invocation, Reply};
use crate::failpoint::fail_command;
use crate::node::Node;
use crate::wire::{self, Request};

pub async fn serve(stream: TcpStream, peer: SocketAddr, id: i64, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let info = Arc::new(ConnectionInfo::new(id, peer));
    tracing::debug!(conn = id, %peer, "connection accepted");
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut next_reply_id: i32 = 1;
    loop {
        let frame = tokio::select! {
            _ = crate::shutdown::stopped(&mut stop) => break,
            frame = wire::read_frame(&mut reader, wire::MAX_MESSAGE_SIZE) => frame,
        };
        let (header, body) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(conn = id, error = %err, "closing connection: bad frame");
                break;
            }
        };
        next_reply_id = next_reply_id.wrapping_add(1);
        node.counters.note_request(16 + body.len());
        let reply = match wire::decode_request(&header, &body) {
            Ok(Request::Msg(msg)) => {
                let more_to_come = msg.more_to_come();
                if msg.exhaust_allowed() && is_awaitable_hello(&msg.body) {
                    stream_hello(
                        &node,
                        &info,
                        msg.body,
                        header.request_id,
                        &mut next_reply_id,
                        &mut writer,
                        &mut stop,
                    )
                    .await;
                    break;
                }
                let run = |body| run_command(&node, &info, body, None, false);
                let Some(reply) = fail_command::around_command(&node, &info, msg.body, run).await else {
                    break;
                };
                if more_to_come {
                    // An unacknowledged (w:0) write: no reply; a failure on a non-primary closes the connection.
                    if reply.get("code").and_then(Bson::as_i32) == Some(10107) {
                        break;
                    }
                    continue;
                }
                wire::encode_msg_reply_bson(next_reply_id, header.request_id, reply.to_bson())
            }
            Ok(Request::Query(query)) => {
                match legacy_query(&node, &info, *query, next_reply_id, header.request_id).await {
                    Some(reply) => reply,
                    None => break,
                }
            }
            Err(err) => match wire::error_response(&header, &body, &err, next_reply_id) {
                wire::ErrorAction::Reply(bytes) => {
                    tracing::debug!(conn = id, error = %err, "bad message; answered with an error");
                    bytes
                }
                wire::ErrorAction::Ignore => continue,
                wire::ErrorAction::Close => {
                    tracing::debug!(conn = id, error = %err, "closing connection: bad message");
                    break;
                }
            },
        };
        node.counters.note_reply(reply.len());
        if writer.write_all(&reply).await.is_err() || writer.flush().await.is_err() {
            break;
        }
    }
    tracing::debug!(conn = id, "connection closed");
}

/// Runs one command: client queries (see [`is_client_query`]) on the node's query runtime, everything else
/// here on the server's runtime, which serves connections and replication.
async fn run_command(
    node: &Arc<Node>,
    info: &Arc<ConnectionInfo>,
    body: Document,
    secondary_ok: Option<bool>,
    legacy: bool,
) -> Reply {
    if is_client_query(&body)
        && let Some(queries) = node.queries.handle()
    {
        let (node, info) = (node.clone(), info.clone());
        let task = queries.spawn(async move {
            let invocation = Invocation {
                body,
                secondary_ok,
                conn: &info,
                legacy,
            };
            command::run(&node, invocation).await
        });
        return match task.await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::error!(error = %err, "query task failed");
                Reply::from(crate::error::Error::internal(format!("query failed: {err}")).to_reply())
            }
        };
    }
    let invocation = Invocation {
        body,
        secondary_ok,
        conn: info,
        legacy,
    };
    command::run(node, invocation).await
}

/// Commands whose cost a client controls (scans, sorts, pipelines, hashes over data). Reads of `local`
/// (the oplog fetches that replicate) stay on the server's runtime so that client load never delays them.
fn is_client_query(body: &Document) -> bool {
    let heavy = body.keys().next().is_some_and(|name| {
        matches!(
            name.as_str(),
            "find"
                | "getMore"
                | "aggregate"
                | "count"
                | "distinct"
                | "dbHash"
                | "dbhash"
                | "explain"
                | "collStats"
                | "dbStats"
                | "validate"
        )
    });
    heavy && body.get_str("$db").ok() != Some("local")
}

/// An awaitable `hello`: it names the topology version the client has and how long to wait for a change.
fn is_awaitable_hello(body: &Document) -> bool {
    let is_hello = body
        .keys()
        .next()
        .is_some_and(|name| matches!(name.as_str(), "hello" | "isMaster" | "ismaster"));
    is_hello && body.contains_key("topologyVersion") && body.contains_key("maxAwaitTimeMS")
}

/// The streaming `hello` protocol: answer with `moreToCome` and keep answering, each reply a response to the
/// previous one and each wait starting from the topology version last sent, until the client goes away, the
/// member shuts down, or a reply is an error (which ends the stream without `moreToCome`, as mongod does).
async fn stream_hello<W: tokio::io::AsyncWrite + Unpin>(
    node: &Node,
    info: &ConnectionInfo,
    mut body: Document,
    first_request_id: i32,
    next_reply_id: &mut i32,
    writer: &mut W,
    stop: &mut watch::Receiver<bool>,
) {
    let mut response_to = first_request_id;
    loop {
        let run = |body| {
            let invocation = Invocation {
                body,
                secondary_ok: None,
                conn: info,
                legacy: false,
            };
            command::run(node, invocation)
        };
        let reply = tokio::select! {
            _ = crate::shutdown::stopped(stop) => return,
            reply = fail_command::around_command(node, info, body.clone(), run) => match reply {
                Some(reply) => reply,
                None => return,
            },
        };
        let ok = reply
            .get("ok")
            .and_then(|v| v.as_f64().or_else(|| v.as_i32().map(f64::from)))
            == Some(1.0);
        let flags = if ok { wire::msg_flags::MORE_TO_COME } else { 0 };
        let bytes = wire::try_encode_msg(*next_reply_id, response_to, flags, &reply)
            .unwrap_or_else(|_| wire::encode_msg_reply(*next_reply_id, response_to, &reply));
        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() || !ok {
            return;
        }
        response_to = *next_reply_id;
        *next_reply_id = next_reply_id.wrapping_add(1);
        match reply.get_document("topologyVersion") {
            Ok(tv) => {
                body.insert("topologyVersion", tv.clone());
            }
            Err(_) => return,
        }
    }
}

/// OP_QUERY on `<db>.$cmd`: the command runs as any other and the reply is an OP_REPLY (`None`: close the
/// connection instead). Queries on collections (OP_QUERY finds, removed in MongoDB 5.1) are refused with 352
/// UnsupportedOpQueryCommand.
async fn legacy_query(
    node: &Arc<Node>,
    info: &Arc<ConnectionInfo>,
    query: wire::OpQuery,
    reply_id: i32,
    response_to: i32,
) -> Option<Vec<u8>> {
    let name = query.query.keys().next().cloned().unwrap_or_default();
    if !query.is_command() || name.is_empty() {
        let err = doc! {"$err": format!("Unsupported OP_QUERY command: {name}. The client driver may require an upgrade."),
        "code": 352, "codeName": "UnsupportedOpQueryCommand", "ok": 0.0};
        return Some(wire::encode_op_reply(
            reply_id,
            response_to,
            wire::reply_flags::QUERY_FAILURE,
            &err,
        ));
    }
    let mut body: Document = query.query.clone();
    body.insert("$db", query.database().to_string());
    if let Some(pref) = &query.read_preference {
        body.insert("$readPreference", pref.clone());
    }
    let secondary_ok = query.secondary_ok() || query.read_preference.as_ref().is_some_and(allows_secondary);
    let run = |body| run_command(node, info, body, Some(secondary_ok), true);
    let reply = fail_command::around_command(node, info, body, run).await?;
    Some(wire::encode_op_reply(
        reply_id,
        response_to,
        wire::reply_flags::AWAIT_CAPABLE,
        &reply.into_document(),
    ))
}

fn allows_secondary(pref: &Document) -> bool {
    pref.get_str("mode").is_ok_and(|mode| mode != "primary")
}

//! One client connection: read a frame, decode it, run the command, write the reply; repeat.
//!
//! Framing errors close the connection (the byte stream can't be trusted any more); content errors get an
//! error reply and the connection goes on. Nothing a client sends can panic the server or stall other
//! connections.

use std::net::SocketAddr;
use std::sync::Arc;

use bson::{Bson, Document, doc};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::command::{self, Invocation};
use crate::node::Node;
use crate::wire::{self, Request};

/// Who is on the other end, for `whatsmyuri`, `connectionStatus` and logs.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub id: i64,
    pub peer: SocketAddr,
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, id: i64, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let info = ConnectionInfo { id, peer };
    tracing::debug!(conn = id, %peer, "connection accepted");
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut next_reply_id: i32 = 1;
    loop {
        let frame = tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
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
                let invocation = Invocation {
                    body: msg.body,
                    secondary_ok: None,
                    conn: &info,
                    legacy: false,
                };
                let reply = command::run(&node, invocation).await;
                if more_to_come {
                    // An unacknowledged (w:0) write: no reply; a failure on a non-primary closes the connection.
                    if reply.get("code").and_then(Bson::as_i32) == Some(10107) {
                        break;
                    }
                    continue;
                }
                wire::encode_msg_reply(next_reply_id, header.request_id, &reply)
            }
            Ok(Request::Query(query)) => legacy_query(&node, &info, *query, next_reply_id, header.request_id).await,
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

/// OP_QUERY is accepted only for the handshake on `*.$cmd` (what the Node driver and mongosh send first).
async fn legacy_query(
    node: &Node,
    info: &ConnectionInfo,
    query: wire::OpQuery,
    reply_id: i32,
    response_to: i32,
) -> Vec<u8> {
    let name = query.query.keys().next().cloned().unwrap_or_default();
    let allowed =
        query.full_collection_name.ends_with(".$cmd") && matches!(name.as_str(), "hello" | "isMaster" | "ismaster");
    if !allowed {
        let err = doc! {"$err": format!("Unsupported OP_QUERY command: {name}. The client driver may require an upgrade."),
        "code": 352, "codeName": "UnsupportedOpQueryCommand", "ok": 0.0};
        return wire::encode_op_reply(reply_id, response_to, 2, &err);
    }
    let db = query.full_collection_name.trim_end_matches(".$cmd").to_string();
    let mut body: Document = query.query.clone();
    body.insert("$db", db);
    let invocation = Invocation {
        body,
        secondary_ok: Some(query.secondary_ok()),
        conn: info,
        legacy: true,
    };
    let reply = command::run(node, invocation).await;
    wire::encode_op_reply(reply_id, response_to, 8, &reply)
}

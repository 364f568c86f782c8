//! A minimal admin client for health checks: one OP_MSG command on a fresh connection, with a deadline.
//!
//! The harness uses it (not the driver) to watch members, because it must work against members that are
//! paused, half started or partitioned, and must never block longer than asked.

use std::time::Duration;

use bson::{Document, doc};
use faultline_engine::wire::{OpMsg, read_frame, try_encode_msg};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Replies larger than this are refused.
const MAX_REPLY: usize = 48_000_000;

/// Why an admin command got no usable reply.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad reply: {0}")]
    Protocol(String),
    #[error("command failed: {0}")]
    Command(String),
}

/// Runs `body` against the member at `127.0.0.1:port` and returns the reply body (whether or not `ok` is 1).
/// The command runs in the database `body`'s `$db` names, or in `admin` when it names none.
pub async fn command(port: u16, mut body: Document, timeout: Duration) -> Result<Document, AdminError> {
    if !body.contains_key("$db") {
        body.insert("$db", "admin");
    }
    tokio::time::timeout(timeout, exchange(port, &body))
        .await
        .map_err(|_| AdminError::Timeout(timeout))?
}

/// Like [`command`], but an `ok: 0` reply is an error carrying the server's message.
pub async fn command_ok(port: u16, body: Document, timeout: Duration) -> Result<Document, AdminError> {
    let reply = command(port, body, timeout).await?;
    if reply_ok(&reply) {
        Ok(reply)
    } else {
        Err(AdminError::Command(format!(
            "{} (code {})",
            reply.get_str("errmsg").unwrap_or("no message"),
            reply.get("code").map(ToString::to_string).unwrap_or_default()
        )))
    }
}

/// Whether a reply has `ok: 1` (in any numeric type).
pub fn reply_ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(bson::Bson::Double(v)) => *v == 1.0,
        Some(bson::Bson::Int32(v)) => *v == 1,
        Some(bson::Bson::Int64(v)) => *v == 1,
        Some(bson::Bson::Boolean(b)) => *b,
        _ => false,
    }
}

/// `hello` against one member.
pub async fn hello(port: u16, timeout: Duration) -> Result<Document, AdminError> {
    command(port, doc! {"hello": 1}, timeout).await
}

async fn exchange(port: u16, body: &Document) -> Result<Document, AdminError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let bytes = try_encode_msg(1, 0, 0, body).map_err(|e| AdminError::Protocol(e.to_string()))?;
    stream.write_all(&bytes).await?;
    let (header, reply) = read_frame(&mut stream, MAX_REPLY)
        .await
        .map_err(|e| AdminError::Protocol(e.to_string()))?
        .ok_or_else(|| AdminError::Protocol("connection closed before the reply".into()))?;
    let msg = OpMsg::decode(&header, &reply).map_err(|e| AdminError::Protocol(e.to_string()))?;
    Ok(msg.body)
}

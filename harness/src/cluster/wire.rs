//! Admin commands for health checks: one OP_MSG command on a fresh connection, with a deadline, over the
//! engine's wire client ([`faultline_engine::wire::client`]).
//!
//! The harness uses it (not the driver) to watch members, because it must work against members that are
//! paused, half started or partitioned, and must never block longer than asked.

use std::time::{Duration, Instant};

use bson::{Document, doc};
pub use faultline_engine::wire::client::reply_ok;
use faultline_engine::wire::client::{ClientError, Connection};
use thiserror::Error;

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

impl AdminError {
    /// The client's error, with the whole command's deadline on a timeout.
    fn from_client(err: ClientError, timeout: Duration) -> AdminError {
        match err {
            ClientError::Timeout(_) => AdminError::Timeout(timeout),
            ClientError::Io(err) => AdminError::Io(err),
            ClientError::Connect { reason, .. } => AdminError::Io(std::io::Error::other(reason)),
            ClientError::Command { code, message, .. } => AdminError::Command(format!("{message} (code {code})")),
            other => AdminError::Protocol(other.to_string()),
        }
    }
}

/// Runs `body` against the member at `127.0.0.1:port` and returns the reply body (whether or not `ok` is 1).
/// The command runs in the database `body`'s `$db` names, or in `admin` when it names none.
pub async fn command(port: u16, mut body: Document, timeout: Duration) -> Result<Document, AdminError> {
    if !body.contains_key("$db") {
        body.insert("$db", "admin");
    }
    let started = Instant::now();
    let fail = |err| AdminError::from_client(err, timeout);
    let mut conn = Connection::connect(&format!("127.0.0.1:{port}"), timeout)
        .await
        .map_err(fail)?;
    let left = timeout.saturating_sub(started.elapsed());
    conn.round_trip(&body, left).await.map_err(fail)
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

/// `hello` against one member.
pub async fn hello(port: u16, timeout: Duration) -> Result<Document, AdminError> {
    command(port, doc! {"hello": 1}, timeout).await
}

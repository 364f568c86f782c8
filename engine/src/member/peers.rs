//! Talking to other members: a small OP_MSG client and the peer route table.
//!
//! The route table lets the harness put a fault proxy on every member-to-member link: a member told
//! `--peer-route HOST=ADDR` dials `ADDR` whenever it needs member `HOST` (as written in the config).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::Document;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::wire::{self, Request};

fn network_error(message: impl Into<String>) -> Error {
    Error::new((6, "HostUnreachable"), message)
}

/// One connection to a member, used for one command at a time.
pub struct PeerConnection {
    stream: BufReader<TcpStream>,
    next_id: i32,
}

impl PeerConnection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<PeerConnection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| network_error(format!("connecting to {addr} timed out")))?
            .map_err(|e| network_error(format!("cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream: BufReader::new(stream),
            next_id: 1,
        })
    }

    /// Sends a command and waits for its reply (an `ok: 0` reply is returned as an error).
    pub async fn command(&mut self, body: &Document, timeout: Duration) -> Result<Document> {
        self.next_id = self.next_id.wrapping_add(1);
        let bytes = wire::try_encode_msg(self.next_id, 0, 0, body).map_err(|e| Error::bad_value(e.to_string()))?;
        let exchange = async {
            self.stream
                .get_mut()
                .write_all(&bytes)
                .await
                .map_err(|e| network_error(format!("send: {e}")))?;
            let frame = wire::read_frame(&mut self.stream, wire::MAX_MESSAGE_SIZE)
                .await
                .map_err(|e| network_error(format!("receive: {e}")))?
                .ok_or_else(|| network_error("connection closed by peer"))?;
            match wire::decode_request(&frame.0, &frame.1) {
                Ok(Request::Msg(msg)) => Ok(msg.body),
                Ok(Request::Query(_)) => Err(network_error("unexpected OP_QUERY reply")),
                Err(_) => wire::OpMsg::decode(&frame.0, &frame.1)
                    .map(|m| m.body)
                    .map_err(|e| network_error(format!("bad reply: {e}"))),
            }
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| network_error("command timed out"))??;
        if reply.get_f64("ok").ok() == Some(0.0) || reply.get_i32("ok").ok() == Some(0) {
            let code = reply.get_i32("code").unwrap_or(8);
            let message = reply.get_str("errmsg").unwrap_or("command failed").to_string();
            return Err(Error::new((code, "RemoteCommandFailed"), message).with_extra(reply));
        }
        Ok(reply)
    }
}

/// Where to reach each member, and a pool of idle connections per (member, purpose).
pub struct Peers {
    routes: HashMap<String, String>,
    idle: Mutex<HashMap<(String, &'static str), Vec<PeerConnection>>>,
}

impl Peers {
    pub fn new(routes: HashMap<String, String>) -> Peers {
        Peers {
            routes,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The address to dial for a member host.
    pub fn address(&self, host: &str) -> String {
        self.routes.get(host).cloned().unwrap_or_else(|| host.to_string())
    }

    /// Runs one command on `host`, reusing an idle connection for the same purpose when there is one.
    pub async fn command(
        &self,
        host: &str,
        purpose: &'static str,
        body: &Document,
        timeout: Duration,
    ) -> Result<Document> {
        let key = (host.to_string(), purpose);
        let pooled = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.get_mut(&key).and_then(Vec::pop));
        let mut conn = match pooled {
            Some(conn) => conn,
            None => PeerConnection::connect(&self.address(host), timeout).await?,
        };
        let result = conn.command(body, timeout).await;
        let reusable = match &result {
            Ok(_) => true,
            Err(err) => err.extra.is_some(), // a server error reply: the connection itself is fine
        };
        if reusable && let Ok(mut idle) = self.idle.lock() {
            idle.entry(key).or_default().push(conn);
        }
        result
    }

    /// A dedicated connection (the oplog fetcher keeps one for its tailable cursor).
    pub async fn connect(&self, host: &str, timeout: Duration) -> Result<PeerConnection> {
        PeerConnection::connect(&self.address(host), timeout).await
    }
}

pub type SharedPeers = Arc<Peers>;

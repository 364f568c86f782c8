//! Talking to other members: connections over the wire client ([`crate::wire::client`]) and the peer route
//! table.
//!
//! The route table lets the harness put a fault proxy on every member-to-member link: a member told
//! `--peer-route HOST=ADDR` dials `ADDR` whenever it needs member `HOST` (as written in the config).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::Document;

use crate::error::{Error, Result};
use crate::wire::client::{ClientError, Connection};

/// A client failure as the member sees it: a server's error reply keeps its code and the whole reply (as
/// `extra`); everything else means the member could not be reached.
impl From<ClientError> for Error {
    fn from(err: ClientError) -> Error {
        peer_error(err)
    }
}

fn peer_error(err: ClientError) -> Error {
    match err {
        ClientError::Command { code, message, reply } => {
            Error::new((code, "RemoteCommandFailed"), message).with_extra(*reply)
        }
        ClientError::Encode(message) => Error::bad_value(message),
        ClientError::Connect { addr, reason } => network_error(format!("cannot connect to {addr}: {reason}")),
        ClientError::Timeout(_) => network_error("command timed out"),
        other => network_error(other.to_string()),
    }
}

fn network_error(message: impl Into<String>) -> Error {
    Error::new((6, "HostUnreachable"), message)
}

/// One connection to a member, used for one command at a time.
pub struct PeerConnection {
    conn: Connection,
}

impl PeerConnection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<PeerConnection> {
        let conn = Connection::connect(addr, timeout).await.map_err(|err| match err {
            ClientError::Timeout(_) => network_error(format!("connecting to {addr} timed out")),
            other => peer_error(other),
        })?;
        Ok(PeerConnection { conn })
    }

    /// Sends a command and waits for its reply (an `ok: 0` reply is returned as an error).
    pub async fn command(&mut self, body: &Document, timeout: Duration) -> Result<Document> {
        self.conn.command(body, timeout).await.map_err(peer_error)
    }

    /// Sends a command that gets no reply (`moreToCome`).
    pub async fn send(&mut self, body: &Document, timeout: Duration) -> Result<()> {
        self.conn.send(body, timeout).await.map_err(peer_error)
    }

    /// [`PeerConnection::command`], with the reply as raw BSON.
    pub async fn raw_command(&mut self, body: &Document, timeout: Duration) -> Result<bson::raw::RawDocumentBuf> {
        self.conn.raw_command(body, timeout).await.map_err(peer_error)
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
        let mut conn = match self.take_idle(&key) {
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

    /// Sends one command to `host` that gets no reply (`moreToCome`), on an idle connection for the same
    /// purpose when there is one (an idle connection the member closed is replaced, once); a connection that
    /// failed is dropped. Done once the message is written: whether the member ran it is not known.
    pub async fn send(&self, host: &str, purpose: &'static str, body: &Document, timeout: Duration) -> Result<()> {
        let key = (host.to_string(), purpose);
        let conn = match self.take_idle(&key) {
            Some(mut conn) => match conn.send(body, timeout).await {
                Ok(()) => conn,
                // The idle connection failed (the member restarted and closed it, or the link broke or timed
                // out): dial again once.
                Err(_) => self.sent_on_new_connection(host, body, timeout).await?,
            },
            None => self.sent_on_new_connection(host, body, timeout).await?,
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(key).or_default().push(conn);
        }
        Ok(())
    }

    /// An idle connection for (member, purpose), if there is one.
    fn take_idle(&self, key: &(String, &'static str)) -> Option<PeerConnection> {
        self.idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.get_mut(key).and_then(Vec::pop))
    }

    async fn sent_on_new_connection(&self, host: &str, body: &Document, timeout: Duration) -> Result<PeerConnection> {
        let mut conn = PeerConnection::connect(&self.address(host), timeout).await?;
        conn.send(body, timeout).await?;
        Ok(conn)
    }

    /// A dedicated connection (the oplog fetcher keeps one for its tailable cursor).
    pub async fn connect(&self, host: &str, timeout: Duration) -> Result<PeerConnection> {
        PeerConnection::connect(&self.address(host), timeout).await
    }
}

pub type SharedPeers = Arc<Peers>;

//! The one OP_MSG client of the workspace: a [`Connection`] that runs one command at a time, and an
//! [`OplogTail`] that follows a member's oplog over any [`CommandChannel`] (a [`Connection`], or a member's
//! channel to a peer, which in the in-process simulation never touches a socket).
//!
//! Members use it to talk to each other (heartbeats, votes, initial sync, the oplog fetcher), and the harness
//! uses it to watch and administer members and to time oplog arrivals: it works against members that are
//! paused, half started or partitioned, and never waits longer than asked.
//!
//! A connection whose exchange did not finish (a timeout, an I/O error, a dropped future) may have a reply
//! still in flight, so it is *poisoned*: every later call fails at once with [`ClientError::Poisoned`] and the
//! owner dials again. Dropping a pending call is therefore always safe, which is how tails are cancelled.
//!
//! A process may install *dial routes* once ([`install_dial_routes`]): every [`Connection::connect`] to a
//! routed `host:port` dials the route's address instead. `faultline node` and `faultline mongos` install
//! their `--peer-route` table so, so that the harness's fault proxies sit on every link of a sharded cluster
//! (a shard's connections to the config servers, a router's to the shards and config servers), not only on
//! replica-set member links.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use bson::{Bson, Document, doc};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{MAX_MESSAGE_SIZE, OpMsg, WireError, op_code, read_frame, try_encode_msg};
use crate::bsonx;

/// Why a command got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be reached (refused or unresolvable).
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The connection or the exchange did not finish within the deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Sending or receiving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection before replying.
    #[error("connection closed by peer")]
    Closed,
    /// The command could not be encoded (too large, or not serialisable); nothing was sent.
    #[error("cannot encode the command: {0}")]
    Encode(String),
    /// The reply could not be read as an OP_MSG answering the command.
    #[error("protocol: {0}")]
    Protocol(String),
    /// An earlier exchange on this connection did not finish; the connection cannot be used any more.
    #[error("connection unusable after an unfinished exchange")]
    Poisoned,
    /// The server answered `ok: 0`.
    #[error("command failed: {message} (code {code})")]
    Command {
        code: i32,
        message: String,
        /// The whole error reply.
        reply: Box<Document>,
    },
}

impl ClientError {
    /// Whether the server answered (with an error): the connection itself is still fine.
    pub fn is_command_error(&self) -> bool {
        matches!(self, ClientError::Command { .. })
    }

    fn command(reply: Document) -> ClientError {
        let code = reply.get("code").and_then(bsonx::as_i64).unwrap_or(8) as i32;
        let message = reply.get_str("errmsg").unwrap_or("command failed").to_string();
        ClientError::Command {
            code,
            message,
            reply: Box::new(reply),
        }
    }
}

impl From<WireError> for ClientError {
    fn from(err: WireError) -> ClientError {
        match err {
            WireError::Io(err) => ClientError::Io(err),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

/// Whether a reply has `ok: 1` (in any numeric type, or `true`).
pub fn reply_ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        Some(Bson::Boolean(b)) => *b,
        _ => false,
    }
}

/// [`reply_ok`] of a raw reply.
fn raw_reply_ok(reply: &RawDocument) -> bool {
    match reply.get("ok") {
        Ok(Some(RawBsonRef::Double(v))) => v == 1.0,
        Ok(Some(RawBsonRef::Int32(v))) => v == 1,
        Ok(Some(RawBsonRef::Int64(v))) => v == 1,
        Ok(Some(RawBsonRef::Boolean(b))) => b,
        _ => false,
    }
}

/// The process's dial routes: `host:port` as named → `host:port` to dial.
static DIAL_ROUTES: OnceLock<BTreeMap<String, String>> = OnceLock::new();

/// Installs the process's dial routes (the first call wins; an empty table installs nothing).
pub fn install_dial_routes(routes: BTreeMap<String, String>) {
    if !routes.is_empty() {
        let _ = DIAL_ROUTES.set(routes);
    }
}

/// Where to dial `addr`: its route, or itself.
pub fn dial_address(addr: &str) -> &str {
    DIAL_ROUTES
        .get()
        .and_then(|routes| routes.get(addr))
        .map_or(addr, String::as_str)
}

/// One connection to a server, used for one command at a time.
pub struct Connection {
    stream: BufReader<TcpStream>,
    next_request: i32,
    poisoned: bool,
}

impl Connection {
    /// Dials `addr` (`host:port`) within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(dial_address(addr)))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|e| ClientError::Connect {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
            next_request: 0,
            poisoned: false,
        })
    }

    /// Sends `body` and returns the reply body whatever its `ok`, within `timeout`.
    pub async fn round_trip(&mut self, body: &Document, timeout: Duration) -> Result<Document, ClientError> {
        let reply = self.raw_round_trip(body, timeout).await?;
        crate::bsonx::to_document(&reply).map_err(|e| ClientError::Protocol(format!("reply: {e}")))
    }

    /// [`Connection::round_trip`], with the reply left as the raw BSON it came as (checked, not converted).
    pub async fn raw_round_trip(&mut self, body: &Document, timeout: Duration) -> Result<RawDocumentBuf, ClientError> {
        if self.poisoned {
            return Err(ClientError::Poisoned);
        }
        self.next_request = self.next_request.wrapping_add(1);
        let request_id = self.next_request;
        let bytes = try_encode_msg(request_id, 0, 0, body).map_err(|e| ClientError::Encode(e.to_string()))?;
        // Set until the reply is in: a timeout, an error or a dropped future leaves the stream out of step.
        self.poisoned = true;
        let reply = tokio::time::timeout(timeout, self.exchange(&bytes, request_id))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        self.poisoned = false;
        Ok(reply)
    }

    /// Sends `body` and returns the reply body; an `ok: 0` reply is [`ClientError::Command`].
    pub async fn command(&mut self, body: &Document, timeout: Duration) -> Result<Document, ClientError> {
        let reply = self.round_trip(body, timeout).await?;
        if reply_ok(&reply) {
            Ok(reply)
        } else {
            Err(ClientError::command(reply))
        }
    }

    /// [`Connection::command`], with the reply left as raw BSON.
    pub async fn raw_command(&mut self, body: &Document, timeout: Duration) -> Result<RawDocumentBuf, ClientError> {
        let reply = self.raw_round_trip(body, timeout).await?;
        if raw_reply_ok(&reply) {
            return Ok(reply);
        }
        match crate::bsonx::to_document(&reply) {
            Ok(reply) => Err(ClientError::command(reply)),
            Err(e) => Err(ClientError::Protocol(format!("error reply: {e}"))),
        }
    }

    /// Sends `body` as a one-way message (OP_MSG `moreToCome`: the server runs it and sends no reply) within
    /// `timeout`. Done when the bytes are written; a failure or a timeout poisons the connection. Use a
    /// connection for one-way messages only: a connection with anything to read counts as closed.
    pub async fn send(&mut self, body: &Document, timeout: Duration) -> Result<(), ClientError> {
        if self.poisoned {
            return Err(ClientError::Poisoned);
        }
        // A server sends nothing on a connection used only one way: anything to read is its close (a member
        // that restarted), which a write would not report until the write after it.
        match self.stream.get_ref().try_read(&mut [0u8; 1]) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                self.poisoned = true;
                return Err(ClientError::Closed);
            }
        }
        self.next_request = self.next_request.wrapping_add(1);
        let bytes = try_encode_msg(self.next_request, 0, super::msg_flags::MORE_TO_COME, body)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        self.poisoned = true;
        tokio::time::timeout(timeout, self.stream.get_mut().write_all(&bytes))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        self.poisoned = false;
        Ok(())
    }

    /// Whether an unfinished exchange made this connection unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    async fn exchange(&mut self, request: &[u8], request_id: i32) -> Result<RawDocumentBuf, ClientError> {
        self.stream.get_mut().write_all(request).await?;
        let (header, payload) = read_frame(&mut self.stream, MAX_MESSAGE_SIZE)
            .await?
            .ok_or(ClientError::Closed)?;
        if header.op_code != op_code::OP_MSG {
            return Err(ClientError::Protocol(format!(
                "reply has opcode {}, not OP_MSG",
                header.op_code
            )));
        }
        if header.response_to != request_id {
            return Err(ClientError::Protocol(format!(
                "reply answers request {}, not {request_id}",
                header.response_to
            )));
        }
        Ok(OpMsg::decode_raw_reply(&header, &payload)?.1)
    }
}

/// A channel that runs one command at a time on one server: what an [`OplogTail`] needs underneath.
///
/// [`Connection`] is one; the member's peer channels (TCP, or the simulation's in-process delivery) are
/// adapted to it in `member::network`.
pub trait CommandChannel: Send {
    /// How the channel reports failures; the tail's own (a reply it cannot read, a closed cursor) convert.
    type Error: From<ClientError>;

    /// Sends `body` and returns its reply within `timeout`, as the raw BSON it came as (checked as a decoded
    /// reply is, not converted); an `ok: 0` reply is an error.
    fn raw_command<'a>(
        &'a mut self,
        body: &'a Document,
        timeout: Duration,
    ) -> impl Future<Output = Result<RawDocumentBuf, Self::Error>> + Send + 'a;
}

impl CommandChannel for Connection {
    type Error = ClientError;

    fn raw_command<'a>(
        &'a mut self,
        body: &'a Document,
        timeout: Duration,
    ) -> impl Future<Output = Result<RawDocumentBuf, ClientError>> + Send + 'a {
        Connection::raw_command(self, body, timeout)
    }
}

/// What an [`OplogTail`] reads: `local.oplog.rs` from a secondary-preferred read, tailable and awaitData.
#[derive(Debug, Clone)]
pub struct TailSpec {
    /// The `find` filter (e.g. `{ts: {$gte: T}}`).
    pub filter: Document,
    /// The `find` projection, if any.
    pub projection: Option<Document>,
    /// Entries per batch (`batchSize` of `find` and `getMore`).
    pub batch_size: i32,
    /// How long the source may hold a `getMore` open waiting for entries (`maxTimeMS`).
    pub await_time: Duration,
    /// Ask for the source's replication metadata (`$replData`) with every batch.
    pub repl_metadata: bool,
    /// Deadline of one exchange besides [`TailSpec::await_time`] (a `getMore` gets both).
    pub round_trip: Duration,
}

impl TailSpec {
    /// Every entry matching `filter`, in batches of 1000, each `getMore` held up to 500 ms, no metadata.
    pub fn new(filter: Document) -> TailSpec {
        TailSpec {
            filter,
            projection: None,
            batch_size: 1000,
            await_time: Duration::from_millis(500),
            repl_metadata: false,
            round_trip: Duration::from_secs(3),
        }
    }

    fn find(&self) -> Document {
        let mut find = doc! {
            "find": "oplog.rs", "filter": self.filter.clone(), "tailable": true, "awaitData": true,
            "batchSize": self.batch_size, "$readPreference": {"mode": "secondaryPreferred"},
        };
        if let Some(projection) = &self.projection {
            find.insert("projection", projection.clone());
        }
        self.with_metadata(find)
    }

    fn get_more(&self, cursor_id: i64) -> Document {
        let await_ms = i64::try_from(self.await_time.as_millis()).unwrap_or(i64::MAX);
        self.with_metadata(doc! {
            "getMore": cursor_id, "collection": "oplog.rs", "batchSize": self.batch_size, "maxTimeMS": await_ms,
        })
    }

    fn with_metadata(&self, mut body: Document) -> Document {
        if self.repl_metadata {
            body.insert("$replData", 1);
        }
        body.insert("$db", "local");
        body
    }
}

/// One batch of oplog entries and the metadata that came with it.
#[derive(Debug, Clone, Default)]
pub struct OplogBatch {
    /// The entries, in oplog order, as the source sent them (empty when nothing arrived within the await
    /// time).
    pub entries: Vec<RawDocumentBuf>,
    /// The source's `$replData` (term, commit point, newest entry, rollback id, primary), when asked for.
    pub repl_data: Option<Document>,
    /// The source's `$oplogQueryData`, when it sends one.
    pub oplog_query_data: Option<Document>,
}

impl OplogBatch {
    /// The source's rollback id, from `$replData`.
    pub fn rollback_id(&self) -> Option<i32> {
        self.repl_data.as_ref()?.get_i32("rbid").ok()
    }

    /// Takes a batch out of a `find` (`firstBatch`) or `getMore` (`nextBatch`) reply; returns the cursor id.
    /// Only the metadata is converted into documents; the entries stay as they came.
    fn from_reply(reply: &RawDocument, field: &str) -> Result<(i64, OplogBatch), ClientError> {
        let protocol = |what: String| ClientError::Protocol(what);
        let cursor = reply
            .get_document("cursor")
            .map_err(|_| protocol("reply without a cursor".into()))?;
        let cursor_id = cursor.get_i64("id").unwrap_or(0);
        let batch = cursor
            .get_array(field)
            .map_err(|_| protocol(format!("reply without {field}")))?;
        let mut entries = Vec::new();
        for entry in batch {
            let entry = entry.map_err(|e| protocol(format!("{field}: {e}")))?;
            if let RawBsonRef::Document(entry) = entry {
                entries.push(entry.to_owned());
            }
        }
        let metadata = |key: &str| {
            reply
                .get_document(key)
                .ok()
                .map(crate::bsonx::to_document)
                .transpose()
                .map_err(|e| protocol(format!("{key}: {e}")))
        };
        let batch = OplogBatch {
            entries,
            repl_data: metadata("$replData")?,
            oplog_query_data: metadata("$oplogQueryData")?,
        };
        Ok((cursor_id, batch))
    }
}

/// A tailable, awaitData cursor on a member's oplog over a channel of its own (a [`Connection`] unless
/// another [`CommandChannel`] is given).
///
/// [`OplogTail::open`] runs the `find` and returns the first batch; each [`OplogTail::next_batch`] is a
/// `getMore` that the source holds until it has new entries or [`TailSpec::await_time`] passes. Cancel a
/// tail by dropping it, or a pending call (a [`Connection`] is then poisoned; see the module header).
pub struct OplogTail<C: CommandChannel = Connection> {
    channel: C,
    spec: TailSpec,
    cursor_id: i64,
}

impl<C: CommandChannel> OplogTail<C> {
    /// Opens the cursor over `channel` and returns the tail and its first batch.
    pub async fn open(mut channel: C, spec: TailSpec) -> Result<(OplogTail<C>, OplogBatch), C::Error> {
        let reply = channel.raw_command(&spec.find(), spec.round_trip).await?;
        let (cursor_id, batch) = OplogBatch::from_reply(&reply, "firstBatch")?;
        Ok((
            OplogTail {
                channel,
                spec,
                cursor_id,
            },
            batch,
        ))
    }

    /// The next batch; [`ClientError::Closed`] once the source closed the cursor.
    pub async fn next_batch(&mut self) -> Result<OplogBatch, C::Error> {
        if self.cursor_id == 0 {
            return Err(ClientError::Closed.into());
        }
        let timeout = self.spec.round_trip + self.spec.await_time;
        let reply = self
            .channel
            .raw_command(&self.spec.get_more(self.cursor_id), timeout)
            .await?;
        let (cursor_id, batch) = OplogBatch::from_reply(&reply, "nextBatch")?;
        self.cursor_id = cursor_id;
        Ok(batch)
    }

    /// Whether the source still holds the cursor open.
    pub fn is_open(&self) -> bool {
        self.cursor_id != 0
    }

    /// The channel, for other commands between batches (e.g. reading the source's oldest entry).
    pub fn channel(&mut self) -> &mut C {
        &mut self.channel
    }
}

#[cfg(test)]
mod tests;

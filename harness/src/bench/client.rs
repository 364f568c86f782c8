//! Who sends a benchmark's inserts: the official Rust driver, or raw OP_MSG connections.
//!
//! `--client wire` takes the driver out, to tell the database's time from the driver's: a [`WireWriter`] is
//! one connection to the primary (or a router) that sends the `insert` command a driver would send (the
//! documents, `ordered`, `writeConcern`, an `lsid` of its own) and reads the reply, with nothing in between,
//! as pgbench drives PostgreSQL through libpq. `bench throughput` gives each closed-loop client one;
//! `bench replication-lag`'s open-loop load takes an idle one from a [`WirePool`] for each write.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bson::{Document, doc};
use faultline_engine::wire::client::Connection;
use serde::Serialize;

/// Who sends a benchmark's inserts.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// The official Rust driver.
    Driver,
    /// Raw OP_MSG connections.
    Wire,
}

impl ClientKind {
    /// The flag's value: `driver` or `wire`.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Driver => "driver",
            ClientKind::Wire => "wire",
        }
    }
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One raw connection that inserts documents as a driver's `insert` command does.
pub struct WireWriter {
    conn: Connection,
    /// `writeConcern` of every insert.
    concern: Document,
    /// The logical session every insert names (a driver's implicit session).
    lsid: Document,
}

impl WireWriter {
    /// Connects to `addr`; every insert asks for `concern`.
    pub async fn connect(addr: &str, concern: Document) -> anyhow::Result<WireWriter> {
        let conn = Connection::connect(addr, CONNECT_TIMEOUT).await?;
        Ok(WireWriter {
            conn,
            concern,
            lsid: doc! {"id": bson::Uuid::new()},
        })
    }

    /// Inserts `document` into `db.collection` within `timeout`; whether the reply acknowledged it (`ok`, no
    /// write error, no write-concern error). A timeout leaves the connection poisoned: every later insert on
    /// it fails at once.
    pub async fn insert(&mut self, db: &str, collection: &str, document: Document, timeout: Duration) -> bool {
        let command = doc! {
            "insert": collection,
            "documents": [document],
            "ordered": true,
            "writeConcern": self.concern.clone(),
            "lsid": self.lsid.clone(),
            "$db": db,
        };
        match self.conn.raw_command(&command, timeout).await {
            Ok(reply) => ["writeErrors", "writeConcernError"]
                .iter()
                .all(|key| matches!(reply.get(key), Ok(None))),
            Err(_) => false,
        }
    }

    /// Whether an unfinished exchange made the connection unusable.
    pub fn is_poisoned(&self) -> bool {
        self.conn.is_poisoned()
    }
}

/// Raw connections to one server for an open-loop load: a write waits for an idle connection (as a driver
/// waits for one of its pool's), uses it, and gives it back. A connection an unfinished exchange poisoned is
/// replaced by a new one when next needed, so the pool never holds more than its size.
pub struct WirePool {
    addr: String,
    concern: Document,
    idle: Mutex<Vec<WireWriter>>,
    /// One permit per connection of the pool.
    permits: tokio::sync::Semaphore,
}

impl WirePool {
    /// A pool of `size` connections to `addr`, all opened now (so that no write pays for one, and a burst
    /// of writes cannot overflow the server's accept queue).
    pub async fn open(addr: String, concern: Document, size: usize) -> anyhow::Result<WirePool> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(WireWriter::connect(&addr, concern.clone()).await?);
        }
        Ok(WirePool {
            addr,
            concern,
            idle: Mutex::new(idle),
            permits: tokio::sync::Semaphore::new(size),
        })
    }

    /// Inserts `document` on an idle connection, waiting for one if all are busy; whether it was
    /// acknowledged.
    pub async fn insert(&self, db: &str, collection: &str, document: Document, timeout: Duration) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut writer = match idle {
            Some(writer) => writer,
            None => match WireWriter::connect(&self.addr, self.concern.clone()).await {
                Ok(writer) => writer,
                Err(_) => return false,
            },
        };
        let acknowledged = writer.insert(db, collection, document, timeout).await;
        if !writer.is_poisoned() {
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(writer);
        }
        acknowledged
    }
}

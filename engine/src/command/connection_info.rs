//! Who is on the other end of a connection, as the commands see it (`whatsmyuri`, `connectionStatus`,
//! `currentOp`, the wording of not-primary errors).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Who is on the other end, for `whatsmyuri`, `connectionStatus` and logs.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub id: i64,
    pub peer: SocketAddr,
    /// The client said `helloOk: true` (or sent `hello`) in its handshake: it understands "not primary" in
    /// error messages. Older clients are answered "not master", the text they match on.
    pub hello_ok: AtomicBool,
}

impl ConnectionInfo {
    pub fn new(id: i64, peer: SocketAddr) -> ConnectionInfo {
        ConnectionInfo {
            id,
            peer,
            hello_ok: AtomicBool::new(false),
        }
    }

    /// Whether not-primary errors should use the modern wording.
    pub fn speaks_hello(&self) -> bool {
        self.hello_ok.load(Ordering::Relaxed)
    }
}

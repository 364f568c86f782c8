//! Causal consistency's two times, as a replica-set member reports them in every reply.
//!
//! ```text
//! $clusterTime    the member's logical clock: the newest of its own oplog's last timestamp and every
//!                 `$clusterTime` a client (or peer) gossiped to it; sent back with an unsigned signature
//!                 (`hash`: 20 zero bytes, `keyId`: 0), as mongod signs it when no keys exist
//! operationTime   the optime of the last operation the command read at or wrote (its snapshot's optime for
//!                 a read, its oplog entry's for a write); otherwise this member's last applied optime
//! ```
//!
//! A member that is not in a replica set (no config yet) sends neither, as a standalone mongod does not.

use std::sync::atomic::{AtomicU64, Ordering};

use bson::{Bson, Document, Timestamp, doc};

use crate::node::Node;
use crate::storage::{ts_from_u64, ts_to_u64};

/// A member's logical clock, advanced by gossip; its reading is never below the member's own last optime.
#[derive(Default)]
pub struct ClusterClock(AtomicU64);

impl ClusterClock {
    /// Moves the clock forward to `ts` (never back).
    pub fn advance(&self, ts: Timestamp) {
        self.0.fetch_max(ts_to_u64(ts), Ordering::AcqRel);
    }

    /// The newest cluster time gossiped so far, if any (a router's whole clock: it has no oplog).
    pub fn gossiped(&self) -> Option<Timestamp> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            raw => Some(ts_from_u64(raw)),
        }
    }

    /// The newest cluster time: gossiped, or the member's own `last_applied`, whichever is newer.
    pub fn now(&self, last_applied: Timestamp) -> Timestamp {
        ts_from_u64(self.0.load(Ordering::Acquire).max(ts_to_u64(last_applied)))
    }
}

/// The optime a command read at or wrote, recorded while it runs (the newest one wins).
#[derive(Default)]
pub struct OperationTime(AtomicU64);

impl OperationTime {
    pub fn note(&self, ts: Timestamp) {
        self.0.fetch_max(ts_to_u64(ts), Ordering::AcqRel);
    }

    fn get(&self) -> Option<Timestamp> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            raw => Some(ts_from_u64(raw)),
        }
    }
}

/// The member's current cluster time.
pub fn current(node: &Node) -> Timestamp {
    node.cluster_time.now(node.storage.positions().last_written.ts)
}

/// Takes in the `$clusterTime` a command carries (a malformed one is ignored: without keys nothing is
/// verified).
pub fn gossip_in(node: &Node, body: &Document) {
    if let Some(ts) = carried(body) {
        node.cluster_time.advance(ts);
    }
}

/// The cluster time a command or reply carries in `$clusterTime`, if any.
pub fn carried(body: &Document) -> Option<Timestamp> {
    match body.get_document("$clusterTime").ok()?.get("clusterTime") {
        Some(Bson::Timestamp(ts)) => Some(*ts),
        _ => None,
    }
}

/// Adds `operationTime` and `$clusterTime` to a reply of a replica-set member.
pub fn append(node: &Node, reply: &mut Document, operation_time: &OperationTime) {
    if node.member.role().config.is_none() {
        return;
    }
    let last_applied = node.storage.positions().last_written.ts;
    let operation = operation_time.get().unwrap_or(last_applied);
    let cluster = node.cluster_time.now(last_applied.max(operation));
    reply.insert("operationTime", operation);
    reply.insert("$clusterTime", signed(cluster));
}

/// A cluster time with mongod's signature for a deployment without keys.
pub fn signed(ts: Timestamp) -> Document {
    let hash = bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: vec![0; 20],
    };
    doc! {"clusterTime": ts, "signature": {"hash": hash, "keyId": 0i64}}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    #[test]
    fn the_clock_only_moves_forward_and_never_lags_the_oplog() {
        let clock = ClusterClock::default();
        assert_eq!(clock.now(ts(5, 1)), ts(5, 1));
        clock.advance(ts(9, 2));
        clock.advance(ts(7, 1));
        assert_eq!(clock.now(ts(5, 1)), ts(9, 2));
        assert_eq!(clock.now(ts(10, 1)), ts(10, 1));
    }

    #[test]
    fn the_newest_operation_time_wins() {
        let op = OperationTime::default();
        assert_eq!(op.get(), None);
        op.note(ts(3, 4));
        op.note(ts(3, 1));
        assert_eq!(op.get(), Some(ts(3, 4)));
    }
}

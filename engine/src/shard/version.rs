//! Chunk versions: which incarnation of a collection (epoch + timestamp) and which change of its chunks
//! (major.minor) a router or shard believes in.
//!
//! MongoDB's rules: a split bumps the minor version, a migration the major version (and the donor's remaining
//! chunk), so the collection version (the highest chunk version) and each shard's version (the highest
//! version of the chunks it owns) only grow. Versions of different incarnations (a dropped and re-sharded
//! collection has a new epoch and timestamp) are not comparable: either side is simply stale. The wire form
//! (`shardVersion` in a request to a shard, `vReceived`/`vWanted` in StaleConfig) is
//! `{e: epoch, t: timestamp, v: Timestamp(major, minor)}`; an unsharded collection's version is all zeros.

use std::cmp::Ordering;

use bson::oid::ObjectId;
use bson::{Bson, Document, Timestamp, doc};

/// A chunk, shard or collection version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkVersion {
    pub epoch: ObjectId,
    pub timestamp: Timestamp,
    pub major: u32,
    pub minor: u32,
}

impl ChunkVersion {
    /// The version of an unsharded collection (all zeros).
    pub fn unsharded() -> ChunkVersion {
        ChunkVersion {
            epoch: ObjectId::from_bytes([0; 12]),
            timestamp: Timestamp { time: 0, increment: 0 },
            major: 0,
            minor: 0,
        }
    }

    pub fn is_unsharded(&self) -> bool {
        *self == ChunkVersion::unsharded()
    }

    /// Whether both name the same incarnation of the collection.
    pub fn same_collection(&self, other: &ChunkVersion) -> bool {
        self.epoch == other.epoch && self.timestamp == other.timestamp
    }

    /// Orders versions of one incarnation; `None` across incarnations.
    pub fn compare(&self, other: &ChunkVersion) -> Option<Ordering> {
        self.same_collection(other)
            .then(|| (self.major, self.minor).cmp(&(other.major, other.minor)))
    }

    /// Whether `self` is strictly older than `other` (same incarnation, lower major.minor).
    pub fn is_older_than(&self, other: &ChunkVersion) -> bool {
        self.compare(other) == Some(Ordering::Less)
    }

    /// The wire form `{e, t, v}`.
    pub fn to_document(&self) -> Document {
        doc! {
            "e": self.epoch,
            "t": self.timestamp,
            "v": Timestamp { time: self.major, increment: self.minor },
        }
    }

    /// Reads the wire form; `None` when a field is missing or of the wrong type.
    pub fn from_document(doc: &Document) -> Option<ChunkVersion> {
        let epoch = doc.get_object_id("e").ok()?;
        let timestamp = doc.get_timestamp("t").ok()?;
        let v = doc.get_timestamp("v").ok()?;
        Some(ChunkVersion {
            epoch,
            timestamp,
            major: v.time,
            minor: v.increment,
        })
    }

    /// Reads a `shardVersion` argument (a document in the wire form).
    pub fn from_bson(value: &Bson) -> Option<ChunkVersion> {
        match value {
            Bson::Document(doc) => ChunkVersion::from_document(doc),
            _ => None,
        }
    }
}

impl std::fmt::Display for ChunkVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}|{}||{}||Timestamp({}, {})",
            self.major, self.minor, self.epoch, self.timestamp.time, self.timestamp.increment
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(epoch: u8, major: u32, minor: u32) -> ChunkVersion {
        ChunkVersion {
            epoch: ObjectId::from_bytes([epoch; 12]),
            timestamp: Timestamp {
                time: u32::from(epoch),
                increment: 1,
            },
            major,
            minor,
        }
    }

    #[test]
    fn versions_order_within_one_incarnation_only() {
        assert!(version(1, 1, 0).is_older_than(&version(1, 1, 1)));
        assert!(version(1, 1, 9).is_older_than(&version(1, 2, 0)));
        assert!(!version(1, 2, 0).is_older_than(&version(1, 2, 0)));
        assert_eq!(version(1, 5, 0).compare(&version(2, 1, 0)), None);
        assert!(!version(1, 1, 0).is_older_than(&version(2, 9, 0)));
    }

    #[test]
    fn the_wire_form_round_trips() {
        let v = version(3, 7, 2);
        assert_eq!(ChunkVersion::from_document(&v.to_document()), Some(v));
        assert!(ChunkVersion::unsharded().is_unsharded());
        assert_eq!(ChunkVersion::from_document(&doc! {"e": 1}), None);
    }
}

//! One chunk: the key range [min, max) of one collection that one shard owns, with its version, and its
//! `config.chunks` document: `{_id, uuid, min, max, shard, lastmod: Timestamp(major, minor),
//! onCurrentShardSince, history: [{validAfter, shard}]}` (MongoDB 5.0+ names the collection by uuid).

use bson::oid::ObjectId;
use bson::{Binary, Bson, Document, Timestamp, doc};

use super::value::ShardKeyValue;

/// A chunk's place in its collection's history of changes (`lastmod`: major.minor).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lastmod {
    pub major: u32,
    pub minor: u32,
}

impl Lastmod {
    pub fn to_timestamp(self) -> Timestamp {
        Timestamp {
            time: self.major,
            increment: self.minor,
        }
    }
}

/// A chunk of a sharded collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub id: ObjectId,
    pub min: ShardKeyValue,
    pub max: ShardKeyValue,
    pub shard: String,
    pub lastmod: Lastmod,
}

impl Chunk {
    /// Whether `key` lies in [min, max).
    pub fn contains(&self, key: &ShardKeyValue) -> bool {
        self.min <= *key && *key < self.max
    }

    /// The `config.chunks` document, with the pattern's field `names`, for the collection `uuid`, written at
    /// cluster time `now`.
    pub fn to_document(&self, names: &[&str], uuid: &Binary, now: Timestamp) -> Document {
        doc! {
            "_id": self.id,
            "uuid": Bson::Binary(uuid.clone()),
            "min": self.min.to_document(names),
            "max": self.max.to_document(names),
            "shard": &self.shard,
            "lastmod": self.lastmod.to_timestamp(),
            "onCurrentShardSince": now,
            "history": [{"validAfter": now, "shard": &self.shard}],
        }
    }

    /// Reads a `config.chunks` document; `None` when it is not one for a key with `names`.
    pub fn from_document(doc: &Document, names: &[&str]) -> Option<Chunk> {
        let lastmod = doc.get_timestamp("lastmod").ok()?;
        Some(Chunk {
            id: doc.get_object_id("_id").ok()?,
            min: ShardKeyValue::from_document(doc.get_document("min").ok()?, names)?,
            max: ShardKeyValue::from_document(doc.get_document("max").ok()?, names)?,
            shard: doc.get_str("shard").ok()?.to_string(),
            lastmod: Lastmod {
                major: lastmod.time,
                minor: lastmod.increment,
            },
        })
    }
}

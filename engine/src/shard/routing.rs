//! A collection's routing table: its chunks in key order, checked to tile MinKey..MaxKey exactly, with the
//! lookups routing needs (key → chunk, range → chunks) and the versions StaleConfig compares.

use std::collections::BTreeSet;

use bson::oid::ObjectId;
use bson::{Binary, Timestamp};

use super::chunk::Chunk;
use super::key::ShardKeyPattern;
use super::target::Target;
use super::value::ShardKeyValue;
use super::version::ChunkVersion;
use crate::error::{Error, Result};

/// The chunks of one incarnation of a sharded collection.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    pub namespace: String,
    pub pattern: ShardKeyPattern,
    pub uuid: Binary,
    pub epoch: ObjectId,
    pub timestamp: Timestamp,
    /// Sorted by `min`; adjacent chunks meet (`chunks[i].max == chunks[i + 1].min`).
    chunks: Vec<Chunk>,
}

impl RoutingTable {
    /// Builds a table from chunks in any order; fails unless they tile MinKey..MaxKey without gaps or
    /// overlaps and each chunk is non-empty.
    pub fn new(
        namespace: String,
        pattern: ShardKeyPattern,
        uuid: Binary,
        epoch: ObjectId,
        timestamp: Timestamp,
        mut chunks: Vec<Chunk>,
    ) -> Result<RoutingTable> {
        chunks.sort_by(|a, b| a.min.cmp(&b.min));
        let broken = |why: String| Error::internal(format!("the chunks of {namespace} are inconsistent: {why}"));
        let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
            return Err(broken("no chunks".into()));
        };
        if first.min != pattern.global_min() {
            return Err(broken(format!(
                "the first chunk starts at {:?}, not MinKey",
                first.min.0
            )));
        }
        if last.max != pattern.global_max() {
            return Err(broken(format!("the last chunk ends at {:?}, not MaxKey", last.max.0)));
        }
        for chunk in &chunks {
            if chunk.min >= chunk.max {
                return Err(broken(format!("chunk {} is empty or reversed", chunk.id)));
            }
        }
        for pair in chunks.windows(2) {
            if pair[0].max != pair[1].min {
                return Err(broken(format!(
                    "chunk {} ends at {:?} but the next starts at {:?}",
                    pair[0].id, pair[0].max.0, pair[1].min.0
                )));
            }
        }
        Ok(RoutingTable {
            namespace,
            pattern,
            uuid,
            epoch,
            timestamp,
            chunks,
        })
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The chunk holding `key` (always one: the chunks tile the key space).
    pub fn chunk_for(&self, key: &ShardKeyValue) -> &Chunk {
        let after = self.chunks.partition_point(|c| c.min <= *key);
        &self.chunks[after.saturating_sub(1)]
    }

    /// The chunks that may hold keys in [low, high] (both inclusive), in key order.
    pub fn chunks_overlapping(&self, low: &ShardKeyValue, high: &ShardKeyValue) -> &[Chunk] {
        if high < low {
            return &[];
        }
        let start = self.chunks.partition_point(|c| c.max <= *low);
        let end = self.chunks.partition_point(|c| c.min <= *high);
        &self.chunks[start..end.max(start)]
    }

    /// The collection version: the highest chunk version.
    pub fn collection_version(&self) -> ChunkVersion {
        let top = self.chunks.iter().map(|c| c.lastmod).max().unwrap_or_default();
        self.version(top.major, top.minor)
    }

    /// A shard's version: the highest version of the chunks it owns (0.0 of this incarnation if none).
    pub fn shard_version(&self, shard: &str) -> ChunkVersion {
        let top = self
            .chunks
            .iter()
            .filter(|c| c.shard == shard)
            .map(|c| c.lastmod)
            .max()
            .unwrap_or_default();
        self.version(top.major, top.minor)
    }

    /// The chunks a query with this target may touch, in key order.
    pub fn chunks_for(&self, target: &Target) -> &[Chunk] {
        match target {
            Target::Key(key) => {
                let index = self.chunks.partition_point(|c| c.min <= *key).saturating_sub(1);
                &self.chunks[index..=index]
            }
            Target::Range { low, high } => self.chunks_overlapping(low, high),
            Target::Everything => &self.chunks,
        }
    }

    /// The shards owning at least one chunk.
    pub fn shards(&self) -> BTreeSet<String> {
        self.chunks.iter().map(|c| c.shard.clone()).collect()
    }

    fn version(&self, major: u32, minor: u32) -> ChunkVersion {
        ChunkVersion {
            epoch: self.epoch,
            timestamp: self.timestamp,
            major,
            minor,
        }
    }
}

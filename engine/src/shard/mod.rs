//! Sharding's pure core: what a sharded collection *is*, with no I/O, shared by the router (`router/`), the
//! shard members' version check (`shardsvr/`) and, next, migrations and the balancer.
//!
//! ```text
//! key       ShardKeyPattern: range fields ({a: 1}), compound ({a: 1, b: 1}), one hashed field ({a: "hashed"});
//!           parsing with MongoDB's rules and extracting a document's key (a missing field is null, as in
//!           MongoDB 4.4+; an array is refused)
//! hash      MongoDB's hashed-index value: md5 over seed 0, the canonical type and the value, first 8 bytes
//!           little-endian as an i64
//! value     ShardKeyValue: a key or a chunk bound as the values of the pattern's fields, in MongoDB's order
//!           (MinKey < ... < MaxKey), and its document form ({a: 5})
//! version   ChunkVersion: (epoch, timestamp) names one incarnation of a collection, (major, minor) orders its
//!           chunk changes; versions of different incarnations are not comparable
//! chunk     Chunk: [min, max) on one shard with its lastmod, and config.chunks' document shape
//! routing   RoutingTable: the chunks of one collection, checked to cover MinKey..MaxKey without gaps or
//!           overlaps; key → chunk, range → chunks, the collection's and each shard's version
//! target    which part of the key space a query filter can touch (an exact key, a range, or everything)
//! split     the initial chunks of shardCollection: one chunk on the primary shard for range keys, evenly
//!           spaced hashed split points spread over the shards for hashed keys
//! ```
//!
//! Boundaries. Everything here is a value: the router builds [`RoutingTable`]s from `config.collections` and
//! `config.chunks` documents it read, and asks them where a document or a filter goes; a shard member builds
//! the same table and compares the version a request carries with its own ([`ChunkVersion`]). Migrations
//! (issue 16) change a table only through new chunk documents with higher versions, never in place, so a
//! router or shard holding an old table can always tell that it is old.

mod chunk;
mod hash;
mod key;
mod routing;
mod split;
mod target;
mod value;
mod version;

pub use chunk::{Chunk, Lastmod};
pub use hash::hash64;
pub use key::{KeyField, KeyKind, ShardKeyPattern};
pub use routing::RoutingTable;
pub use split::{hashed_split_points, initial_chunks};
pub use target::{Target, target_filter};
pub use value::ShardKeyValue;
pub use version::ChunkVersion;

/// MongoDB's error codes of sharding, with their code names (as [`crate::error::code`] has the others).
pub mod code {
    pub const HOST_UNREACHABLE: (i32, &str) = (6, "HostUnreachable");
    pub const SHARD_KEY_NOT_FOUND: (i32, &str) = (61, "ShardKeyNotFound");
    pub const SHARDING_STATE_NOT_INITIALIZED: (i32, &str) = (62, "ShardingStateNotInitialized");
    pub const SHARD_NOT_FOUND: (i32, &str) = (70, "ShardNotFound");
    pub const OPERATION_FAILED: (i32, &str) = (96, "OperationFailed");
    pub const CONFLICTING_OPERATION_IN_PROGRESS: (i32, &str) = (117, "ConflictingOperationInProgress");
    pub const NAMESPACE_NOT_SHARDED: (i32, &str) = (118, "NamespaceNotSharded");
    pub const FAILED_TO_SATISFY_READ_PREFERENCE: (i32, &str) = (133, "FailedToSatisfyReadPreference");
    pub const STALE_DB_VERSION: (i32, &str) = (249, "StaleDbVersion");
    pub const STALE_CONFIG: (i32, &str) = (13388, "StaleConfig");
}

#[cfg(test)]
mod proptests;

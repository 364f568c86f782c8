//! faultline-engine — the bundled database: a MongoDB-wire-compatible replica-set member.
//!
//! Layout, from the socket down:
//!
//! ```text
//! server       listeners, one task per connection, shutdown
//! connection   read frame → decode → run command → write reply
//!   wire/      framing: header, OP_MSG, OP_QUERY/OP_REPLY, limits (never panics on network bytes); the OP_MSG client
//!   command/   one module per command family; dispatch on the body's first key
//!   query/     filter matching, update operators, projection, sort, aggregation stages (pure)
//!   cursor     open cursors for getMore (resumable scans and pipelines, tailable oplog; idle expiry)
//!   storage/   redb: collections, indexes, the oplog, replication metadata; group commit
//! depth        the BSON nesting limits (MongoDB's 200 / 180) and iterative walks that check them
//! node         one member's shared state: storage, member role, cursors, fail points
//! member       the replica-set role at run time (async shell around repl/)
//!   repl/      replica-set types and decision logic (pure)
//! options      mongod's flags and YAML config keys
//! spill        temporary files for blocking query stages under allowDiskUse
//! failpoint    named switches that make the engine misbehave on purpose
//! clock        the member's wall clock (skewable by a fail point)
//! bsonx        BSON number and truthiness rules every layer reads values with
//! host         this machine's host name
//! shutdown     the stop signal of listeners and connections
//! router/      `faultline mongos`: the query router of a sharded cluster (metadata cache, cluster commands, routing)
//! shard/       sharding's pure core: shard keys, hashed values, chunks, versions, routing tables
//! shardsvr/    a shard member's version check (StaleConfig) and its identity
//! sim/         in-process simulation of several real members over a faulty simulated network
//! ```
pub mod balancer;
pub mod bsonx;
pub mod changestream;
pub mod clock;
pub mod command;
pub mod config_file;
pub mod connection;
pub mod cursor;
pub mod depth;
pub mod error;
pub mod failpoint;
pub mod host;
pub mod member;
pub mod migration;
pub mod node;
pub mod options;
pub mod query;
pub mod repl;
pub mod router;
pub mod server;
pub mod shard;
pub mod shardsvr;
pub mod shutdown;
pub mod sim;
pub mod spill;
pub mod storage;
pub mod tasks;
pub mod wire;
pub mod workers;

pub use error::{Error, Result};
pub use options::NodeOptions;

//! faultline-engine — the bundled database: a MongoDB-wire-compatible replica-set member.
//!
//! Layout, from the socket down:
//!
//! ```text
//! server      accept loop, one task per connection, shutdown
//!   wire/     framing: header, OP_MSG, OP_QUERY/OP_REPLY, limits (never panics on network bytes)
//!   command/  one module per command family; dispatch on the body's first key
//!   query/    filter matching, update operators, projection, sort, aggregation stages (pure)
//!   storage/  redb: collections, indexes, the oplog, replication metadata; group commit
//!   repl/     replica-set state: member state, config, terms, optimes
//! ```
pub mod query;
pub mod repl;
pub mod wire;

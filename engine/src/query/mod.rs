//! The query language on BSON documents: filters, update operators, projection, sort, aggregation.
//!
//! Everything here is pure: functions over `bson::Document` / `bson::Bson`, no I/O, no clock reads (callers pass
//! `now`), except that blocking pipeline stages write temporary runs through [`crate::spill`] when a command
//! allows disk use. Bad input yields a [`QueryError`] carrying MongoDB's error code; nothing panics on any input.
//!
//! ```text
//! compare     BSON total order across types, numeric equality (1 == 1.0 == 1i64)
//! path        dotted paths: strict lookup, set (creating parents), unset
//! expr        aggregation expressions ("$field", literals, $add, $cond, ...) shared by $project, $group, $expr
//! filter      find / update / delete filters: parse once, match many
//! update      update documents: replacement or operators ($set, $inc, $push, ...)
//! projection  find projections and $project
//! sort        sort specifications
//! pipeline    aggregation pipelines ($match, $group, $unwind, ...)
//! variables   user variables (`let`): evaluated once, bound into filters' $expr and pipeline stages
//! ```
mod error;
mod numeric;
mod regex;
mod traverse;

#[cfg(test)]
mod deep_tests;
#[cfg(test)]
pub(crate) mod test_support;

pub mod collation;
pub mod compare;
pub mod expr;
pub mod filter;
pub mod path;
pub mod pipeline;
pub mod projection;
pub mod sort;
pub mod update;
pub mod variables;

pub use error::QueryError;

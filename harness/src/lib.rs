//! The harness as a library: the support that every `faultline` subcommand shares.
//!
//! The subcommands themselves live in the binary (`main.rs`); they reach shared support here instead of
//! borrowing it from one another. The run directory's layout and records belong to
//! [`faultline_reports::run_dir`], one crate down, so that the reports read what the harness writes.

pub mod support;

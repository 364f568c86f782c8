//! End-to-end tests of one `faultline node` member, driven by the official MongoDB Rust driver and by raw
//! wire messages. Every test starts its own member process on a free port with its own data directory.

mod t10_handshake;
mod t20_crud;
mod t30_cursors_and_catalog;
mod t40_sessions_and_oplog;
mod t50_crash;
mod t60_malformed;
mod t70_query_memory;
mod t70_startup_options;
mod t75_deep_documents;
mod t78_command_fuzzer;
mod t80_introspection;
mod t85_cluster_time;
mod t85_fail_command;
mod t86_positional_updates;
mod t87_pipeline_updates_and_let;
mod t88_ddl_write_concern;
mod t89_checked_options;
mod t90_db_aggregate;
mod t91_coll_mod;
mod t92_out_stage;
mod t93_change_streams;
mod t93_spec_misc;
mod t94_merge_stage;
mod t95_snapshot_reads;

use std::path::Path;

use faultline_tests::NodeProcess;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

/// A started and initiated one-member set, and a driver client connected to it.
pub async fn primary() -> anyhow::Result<(NodeProcess, mongodb::Client)> {
    let node = NodeProcess::start(bin(), &[]).await?;
    node.initiate().await?;
    let client = node.client().await?;
    Ok((node, client))
}

/// The error code of a driver error, wherever the driver put it.
pub fn error_code(err: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match err.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        ErrorKind::InsertMany(e) => e.write_errors.as_ref().and_then(|w| w.first()).map(|w| w.code),
        _ => None,
    }
}

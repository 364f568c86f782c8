//! The capped oplog at run time: its maximum size, fixed when the oplog is created, and the background task
//! that truncates its oldest entries.
//!
//! ```text
//! start ──► stored maxSize? ──yes──► use it (a changed --oplogSize does not resize an existing oplog)
//!                 └─no──► --oplogSize / replication.oplogSizeMB MB, else 5 % of free disk in [990 MB, 50 GB]
//!                         → stored (local metadata), as mongod fixes the size when it creates the oplog
//!
//! every 200 ms: bytes > maxSize? → limit = ReplMachine::oplog_truncation_limit(oldest entry)
//!                                → Storage::truncate_oplog(limit): oldest entries first, never the limit or newer
//! ```
//!
//! The task runs beside client writes (never inside one); each truncation batch is one storage transaction.
//! `replSetResizeOplog` changes the stored maximum size at run time.

use std::sync::Arc;
use std::time::Duration;

use bson::doc;

use super::Member;
use crate::error::{Error, Result, code};
use crate::options::NodeOptions;
use crate::repl::OpTime;
use crate::storage::Storage;

/// Where the oplog's maximum size is kept once the oplog exists.
const META_OPLOG: &str = "oplog.options";
/// How often the oplog's size is checked (an O(1) comparison).
const CHECK_EVERY: Duration = Duration::from_millis(200);
const MIB: u64 = 1024 * 1024;
/// `replSetResizeOplog`'s bounds, in MB: 990 MB to 1 PB.
const RESIZE_MIN_MB: f64 = 990.0;
const RESIZE_MAX_MB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Sets the oplog's maximum size at start-up (see the module docs) and returns it in bytes.
pub(super) async fn init_max_size(storage: &Storage, options: &NodeOptions) -> Result<u64> {
    let stored = storage
        .read_meta(META_OPLOG)?
        .and_then(|d| d.get_i64("maxSize").ok())
        .filter(|size| *size > 0)
        .map(|size| size as u64);
    let bytes = match stored {
        Some(bytes) => {
            if let Some(mb) = options.oplog_size_mb
                && mb.saturating_mul(MIB) != bytes
            {
                tracing::warn!(
                    oplog_size_mb = mb,
                    max_size_bytes = bytes,
                    "--oplogSize only sizes a new oplog: the existing oplog keeps its maximum size (use replSetResizeOplog)"
                );
            }
            bytes
        }
        None => {
            let bytes = match options.oplog_size_mb {
                Some(mb) => mb.saturating_mul(MIB),
                None => crate::storage::default_max_bytes(&options.dbpath),
            };
            let stored = doc! {"maxSize": bytes as i64};
            storage.write(true, move |w| w.put_meta(META_OPLOG, &stored)).await??;
            bytes
        }
    };
    storage.set_oplog_max_bytes(bytes);
    tracing::info!(max_size_mb = bytes as f64 / MIB as f64, "oplog maximum size");
    Ok(bytes)
}

impl Member {
    /// Starts the background task that keeps the oplog under its maximum size.
    pub(super) fn spawn_oplog_truncation(&self) {
        let me = self.arc();
        self.tasks.spawn(async move { me.truncation_loop().await });
    }

    async fn truncation_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(CHECK_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(err) = self.truncate_oplog_once().await {
                tracing::warn!(error = %err, "oplog truncation failed");
            }
        }
    }

    async fn truncate_oplog_once(&self) -> Result<()> {
        let usage = self.storage.oplog_usage();
        if usage.bytes <= usage.max_bytes || self.syncer.is_syncing() {
            return Ok(());
        }
        let Some(oldest) = self.storage.oldest_oplog_timestamp()? else {
            return Ok(());
        };
        let limit = self.oplog_truncation_limit(OpTime { ts: oldest, term: -1 });
        if limit.is_null() {
            return Ok(());
        }
        let removed = self.storage.truncate_oplog(limit.ts).await?;
        if removed.entries > 0 {
            let after = self.storage.oplog_usage();
            tracing::debug!(
                entries = removed.entries,
                bytes = removed.bytes,
                size = after.bytes,
                max_size = after.max_bytes,
                "truncated the oldest oplog entries"
            );
        }
        Ok(())
    }

    /// How far the oplog may be truncated now (the machine's rule; before initiation, what is durable).
    fn oplog_truncation_limit(&self, oldest: OpTime) -> OpTime {
        let from_machine = match self.machine.lock() {
            Ok(slot) => slot.as_ref().map(|m| m.oplog_truncation_limit(oldest)),
            Err(_) => return OpTime::null(),
        };
        from_machine.unwrap_or_else(|| self.storage.positions().last_durable)
    }

    /// `replSetResizeOplog {size: <MB>}`: a new maximum size, 990 MB to 1 PB, kept across restarts.
    pub async fn resize_oplog(&self, size_mb: f64) -> Result<u64> {
        let bound = if size_mb < RESIZE_MIN_MB {
            Some(format!(">= {RESIZE_MIN_MB}"))
        } else if size_mb > RESIZE_MAX_MB {
            Some(format!("<= {RESIZE_MAX_MB}"))
        } else {
            None
        };
        if let Some(bound) = bound {
            return Err(Error::new(
                code::BAD_VALUE,
                format!("BSON field 'replSetResizeOplog.size' value must be {bound}, actual value '{size_mb}'"),
            ));
        }
        let bytes = (size_mb * MIB as f64) as u64;
        let stored = doc! {"maxSize": bytes as i64};
        self.storage
            .write(true, move |w| w.put_meta(META_OPLOG, &stored))
            .await??;
        self.storage.set_oplog_max_bytes(bytes);
        tracing::info!(size_mb, "replSetResizeOplog success");
        Ok(bytes)
    }
}

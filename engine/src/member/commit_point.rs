//! The majority commit point kept across restarts (`local` metadata `replset.commitPoint`).
//!
//! The machine reports each advance (`Action::CommitPointAdvanced`); a background task writes the newest one,
//! coalescing advances that arrive while a write is in flight and writing at most every [`PERSIST_EVERY`], so
//! the write path pays nothing per write. The write is not fsync'd on its own: it commits in order after the
//! oplog entries it covers, so a crash never leaves a stored commit point ahead of the stored oplog. On start
//! the stored point seeds `MachineStart.commit_point` (the machine caps it at the applied optime).

use std::time::Duration;

use tokio::sync::watch;

use super::META_COMMIT_POINT;
use crate::repl::OpTime;
use crate::storage::Storage;

/// At most one commit-point write per this period. Each write is a storage transaction of its own, and the
/// writer is the write path: measured with 16 MiB documents, writes every 100 ms slowed replication enough to
/// depose the primary, so the stored point lags (a lower bound of the true one, which is all a restart needs).
const PERSIST_EVERY: Duration = if cfg!(test) {
    Duration::from_millis(20)
} else {
    Duration::from_secs(10)
};

/// Records commit-point advances and persists them in the background.
pub(super) struct CommitPointRecorder {
    latest: watch::Sender<OpTime>,
}

impl CommitPointRecorder {
    /// Starts the persisting task (it ends when the recorder is dropped).
    pub(super) fn start(storage: Storage) -> CommitPointRecorder {
        let stored = stored_commit_point(&storage);
        let (latest, mut rx) = watch::channel(stored);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let optime = *rx.borrow_and_update();
                let doc = optime.to_document();
                match storage.write(false, move |w| w.put_meta(META_COMMIT_POINT, &doc)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) | Err(err) => tracing::warn!(error = %err, "could not persist the commit point"),
                }
                tokio::time::sleep(PERSIST_EVERY).await;
            }
        });
        CommitPointRecorder { latest }
    }

    /// The machine's commit point moved to `optime` (it only moves forward).
    pub(super) fn record(&self, optime: OpTime) {
        self.latest.send_if_modified(|current| {
            let newer = optime > *current;
            *current = (*current).max(optime);
            newer
        });
    }
}

/// The commit point stored by an earlier run (null before any).
pub(super) fn stored_commit_point(storage: &Storage) -> OpTime {
    storage
        .read_meta(META_COMMIT_POINT)
        .ok()
        .flatten()
        .and_then(|doc| OpTime::from_document(&doc).ok())
        .unwrap_or_else(OpTime::null)
}

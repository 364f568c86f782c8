//! Point-in-time views for snapshot reads (`readConcern: {level: "snapshot", atClusterTime}`).
//!
//! A redb read transaction is a snapshot of one commit. A snapshot read without `atClusterTime` reads the
//! current commit and *retains* it under its read timestamp (the newest oplog entry it holds) for
//! [`HISTORY_WINDOW`] (mongod's `minSnapshotHistoryWindowInSeconds`, 300 s), at most [`MAX_RETAINED`] of
//! them. A read at a past timestamp `T` is served by the newest retained view at or before `T` when no oplog
//! entry lies between the two (so the view *is* the state at `T`); otherwise the engine has no history for
//! `T` and answers SnapshotTooOld (239), as mongod does for a time outside its window. This covers what the
//! drivers do — later reads of a snapshot session at the time its first read returned — but not an arbitrary
//! past time. A retained view keeps the pages it reads from being reused, so the file may grow while one is
//! held.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::Timestamp;

use super::oplog::ts_to_u64;
use super::{OplogEntry, Snapshot};
use crate::error::{Error, Result};
use crate::repl::OpTime;

/// How long a retained view stays available (mongod's default `minSnapshotHistoryWindowInSeconds`).
pub const HISTORY_WINDOW: Duration = Duration::from_secs(300);
/// The most views retained at once; the oldest goes first.
pub const MAX_RETAINED: usize = 32;

struct Retained {
    /// The newest oplog entry the view holds (its time, and its term to recognise it after a rollback).
    optime: OpTime,
    ts: Timestamp,
    taken: Instant,
    snapshot: Arc<Snapshot>,
}

/// The retained views, oldest first.
#[derive(Default)]
pub struct SnapshotHistory {
    retained: Mutex<VecDeque<Retained>>,
}

impl SnapshotHistory {
    /// The view a snapshot read at `at` reads (`None`: now, retained for later reads), and its timestamp.
    /// `current` is a fresh snapshot of the newest commit.
    pub fn view_at(&self, current: Snapshot, at: Option<Timestamp>) -> Result<(Arc<Snapshot>, Timestamp)> {
        let newest = current.last_optime()?;
        let now = newest.ts;
        let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        retained.retain(|r| r.taken.elapsed() < HISTORY_WINDOW);
        match at {
            Some(at) if at > now => Err(Error::new(
                (246, "SnapshotUnavailable"),
                format!(
                    "Read timestamp {} is newer than this member's newest applied timestamp {}",
                    show(at),
                    show(now)
                ),
            )),
            Some(at) if at < now => {
                let candidate = retained.iter().rev().find(|r| r.ts <= at);
                let Some(candidate) = candidate else {
                    return Err(too_old(at));
                };
                // The candidate is the state at `at` only if its newest entry is still in the oplog (not
                // rolled back since) and nothing was written between them.
                let since = ts_to_u64(candidate.ts);
                let mut entries = Vec::new();
                current.scan_oplog(Some(since.saturating_sub(1)), false, |key, entry| {
                    entries.push((key, OplogEntry::optime_of(&entry)));
                    if entries.len() == 2 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
                let kept = since == 0 || entries.first() == Some(&(since, Some(candidate.optime)));
                let next = entries.iter().map(|(key, _)| key).find(|key| **key > since);
                if !kept || next.is_some_and(|key| *key <= ts_to_u64(at)) {
                    return Err(too_old(at));
                }
                Ok((candidate.snapshot.clone(), at))
            }
            _ => {
                let snapshot = Arc::new(current);
                if retained.back().is_none_or(|r| r.ts != now) {
                    retained.push_back(Retained {
                        optime: newest,
                        ts: now,
                        taken: Instant::now(),
                        snapshot: snapshot.clone(),
                    });
                    while retained.len() > MAX_RETAINED {
                        retained.pop_front();
                    }
                }
                Ok((snapshot, now))
            }
        }
    }
}

fn too_old(at: Timestamp) -> Error {
    Error::new(
        (239, "SnapshotTooOld"),
        format!(
            "Read timestamp {} is older than the oldest available timestamp: this member keeps the state only at the times of earlier snapshot reads, for {} s",
            show(at),
            HISTORY_WINDOW.as_secs()
        ),
    )
}

fn show(ts: Timestamp) -> String {
    format!("Timestamp({}, {})", ts.time, ts.increment)
}

#[cfg(test)]
mod tests {
    use bson::{Bson, doc};

    use crate::storage::{Namespace, Storage};

    fn code(result: crate::error::Result<impl Sized>) -> Option<i32> {
        result.err().map(|e| e.code)
    }

    #[tokio::test]
    async fn past_times_are_served_from_kept_views_only_when_nothing_came_between() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let ns = Namespace::new("db", "c");
        let write = |x: i32| {
            let ns = ns.clone();
            let storage = storage.clone();
            async move {
                storage
                    .write(false, move |w| {
                        let meta = w.ensure_collection(&ns)?;
                        match w.get_by_id(&meta, &Bson::Int32(1))? {
                            Some(before) => w.replace(&meta, &before, doc! {"_id": 1, "x": x}, None),
                            None => w.insert(&meta, doc! {"_id": 1, "x": x}, None),
                        }
                    })
                    .await
                    .expect("the job ran")
                    .expect("written");
            }
        };
        let x_in = |snapshot: &crate::storage::Snapshot| {
            let meta = snapshot.collection(&ns).expect("catalog").expect("collection");
            snapshot
                .get_by_id(&meta, &Bson::Int32(1))
                .expect("read")
                .expect("doc")
                .get_i32("x")
                .expect("x")
        };
        write(1).await;
        let before_any_view = storage.snapshot().expect("snapshot").last_optime().expect("optime").ts;
        write(2).await;
        let (view, at) = storage.snapshot_at(None).expect("now");
        assert_eq!(x_in(&view), 2);
        write(3).await;

        // The kept view answers for its own time, and the current state for now.
        let (again, same) = storage.snapshot_at(Some(at)).expect("kept view");
        assert_eq!((x_in(&again), same), (2, at));
        let newest = storage.snapshot().expect("snapshot");
        let now_at = newest.last_optime().expect("optime").ts;
        assert_eq!(x_in(&newest), 3);
        // A time after a later write is not the kept view's state, and nothing else was kept: no history.
        write(4).await;
        assert_eq!(code(storage.snapshot_at(Some(now_at))), Some(239));
        // Before any kept view: no history.
        assert_eq!(code(storage.snapshot_at(Some(before_any_view))), Some(239));
        // After the newest write: unavailable.
        let now_at = storage.snapshot().expect("snapshot").last_optime().expect("optime").ts;
        let future = bson::Timestamp {
            time: now_at.time + 60,
            increment: 1,
        };
        assert_eq!(code(storage.snapshot_at(Some(future))), Some(246));
        storage.shutdown();
    }
}

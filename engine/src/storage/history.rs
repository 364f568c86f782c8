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

use super::Snapshot;
use super::oplog::ts_to_u64;
use crate::error::{Error, Result};

/// How long a retained view stays available (mongod's default `minSnapshotHistoryWindowInSeconds`).
pub const HISTORY_WINDOW: Duration = Duration::from_secs(300);
/// The most views retained at once; the oldest goes first.
pub const MAX_RETAINED: usize = 32;

struct Retained {
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
        let now = current.last_optime()?.ts;
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
                // The candidate is the state at `at` only if nothing was written between them.
                let mut next = None;
                current.scan_oplog(Some(ts_to_u64(candidate.ts)), false, |key, _| {
                    next = Some(key);
                    ControlFlow::Break(())
                })?;
                if next.is_some_and(|key| key <= ts_to_u64(at)) {
                    return Err(too_old(at));
                }
                Ok((candidate.snapshot.clone(), at))
            }
            _ => {
                let snapshot = Arc::new(current);
                if retained.back().is_none_or(|r| r.ts != now) {
                    retained.push_back(Retained {
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

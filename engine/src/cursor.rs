//! Open cursors: what `find`, `aggregate` and `listCollections` leave for `getMore` to continue.
//!
//! A cursor holds a position, never a whole result: the last `_id` key of a collection scan, the last
//! timestamp of an oplog scan (which is how tailable cursors on `local.oplog.rs` work), or a pipeline of
//! [`DocStream`]s whose only documents are those a blocking stage (`$sort`, `$group`) holds within its memory
//! limit or has spilled to disk. Small catalog listings are held as a list. Resumed scans read a fresh
//! snapshot, like a MongoDB cursor that yields.
//!
//! Idle cursors are closed by a timer task ([`CursorRegistry::run_reaper`]) after `cursorTimeoutMillis`
//! (10 minutes by default), looking every `clientCursorMonitorFrequencySecs`; a cursor opened with
//! `noCursorTimeout` is left alone. A getMore on a closed cursor answers 43 CursorNotFound.
//!
//! A getMore on a tailable awaitData cursor over the oplog that finds nothing waits for the next entry
//! ([`OplogArrivals`]): only the newest written entry moving wakes it, not the durable position, which moves
//! once per group commit and would otherwise wake every tailing fetcher for an empty rescan.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use bson::Document;

use crate::query::filter::Filter;
use crate::query::pipeline::DocStream;
use crate::query::projection::Projection;
use crate::storage::{CollectionMeta, Namespace, OpTime, Positions};

/// mongod's `cursorTimeoutMillis` default.
pub const DEFAULT_CURSOR_TIMEOUT: Duration = Duration::from_secs(600);

/// Where a cursor continues from.
pub enum CursorSource {
    /// The remaining documents of a small materialised result (catalog listings).
    Buffered(VecDeque<Document>),
    /// A collection scan in `_id` order.
    Collection {
        meta: CollectionMeta,
        filter: Arc<Filter>,
        projection: Option<Arc<Projection>>,
        after: Option<Vec<u8>>,
    },
    /// An oplog scan in timestamp order; `tailable` cursors stay open at the end.
    Oplog {
        filter: Arc<Filter>,
        projection: Option<Arc<Projection>>,
        after: Option<u64>,
        tailable: bool,
        await_data: bool,
        /// The filter asks only what the position `after` already ensures (a `ts` lower bound, or nothing),
        /// and there is no projection: `getMore` sends the entries as stored (a member's oplog fetcher).
        as_stored: bool,
    },
    /// A change stream: its position in the oplog (`changestream/`).
    ChangeStream(Box<crate::changestream::ChangeStream>),
    /// A pipeline of streams (sorted finds, aggregations); the projection applies to what it yields.
    Stream {
        stream: Box<dyn DocStream>,
        projection: Option<Arc<Projection>>,
    },
}

pub struct Cursor {
    pub ns: Namespace,
    pub source: CursorSource,
    /// Documents still allowed by the query's `limit`, if any.
    pub remaining: Option<usize>,
    /// Matching documents still to skip before the first one returned.
    pub skip: usize,
    /// A document the last batch had no room for (batches stay under 16 MiB): the next batch starts with it.
    pub stash: Option<Document>,
    /// `noCursorTimeout`: never closed for being idle.
    pub no_timeout: bool,
    pub last_used: Instant,
}

impl Cursor {
    pub fn new(ns: Namespace, source: CursorSource) -> Cursor {
        Cursor {
            ns,
            source,
            remaining: None,
            skip: 0,
            stash: None,
            no_timeout: false,
            last_used: Instant::now(),
        }
    }

    /// Releases what only a running command may hold (storage snapshots) before the cursor waits.
    fn park(&mut self) {
        if let CursorSource::Stream { stream, .. } = &mut self.source {
            stream.park();
        }
    }
}

/// The member's open cursors, by id.
pub struct CursorRegistry {
    cursors: Mutex<HashMap<i64, Cursor>>,
    /// `cursorTimeoutMillis`.
    timeout_ms: AtomicU64,
    /// `clientCursorMonitorFrequencySecs`.
    monitor_secs: AtomicU64,
}

impl Default for CursorRegistry {
    fn default() -> CursorRegistry {
        CursorRegistry::new(DEFAULT_CURSOR_TIMEOUT, Duration::from_secs(4))
    }
}

impl CursorRegistry {
    pub fn new(timeout: Duration, monitor_every: Duration) -> CursorRegistry {
        CursorRegistry {
            cursors: Mutex::new(HashMap::new()),
            timeout_ms: AtomicU64::new(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            monitor_secs: AtomicU64::new(monitor_every.as_secs().max(1)),
        }
    }

    /// Sets `cursorTimeoutMillis`.
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Registers a cursor and returns its id (never 0, which means "exhausted").
    pub fn register(&self, mut cursor: Cursor) -> i64 {
        cursor.park();
        cursor.last_used = Instant::now();
        let Ok(mut cursors) = self.cursors.lock() else { return 0 };
        loop {
            let id = (rand::random::<u64>() >> 2) as i64;
            if id != 0 && !cursors.contains_key(&id) {
                cursors.insert(id, cursor);
                return id;
            }
        }
    }

    /// Takes a cursor out while a getMore runs on it; `put_back` returns it. A timed-out cursor is not
    /// found.
    /// Whether cursor `id` is open on a change stream (its errors are labelled `ResumableChangeStreamError`).
    pub fn is_change_stream(&self, id: i64) -> bool {
        self.cursors.lock().is_ok_and(|cursors| {
            matches!(
                cursors.get(&id),
                Some(Cursor {
                    source: CursorSource::ChangeStream(_),
                    ..
                })
            )
        })
    }

    pub fn take(&self, id: i64) -> Option<Cursor> {
        let cursor = self.cursors.lock().ok()?.remove(&id)?;
        (cursor.no_timeout || cursor.last_used.elapsed() < self.timeout()).then_some(cursor)
    }

    pub fn put_back(&self, id: i64, mut cursor: Cursor) {
        cursor.park();
        cursor.last_used = Instant::now();
        if let Ok(mut cursors) = self.cursors.lock() {
            cursors.insert(id, cursor);
        }
    }

    pub fn kill(&self, id: i64) -> bool {
        let removed = self.cursors.lock().ok().and_then(|mut c| c.remove(&id));
        removed.is_some()
    }

    pub fn open_count(&self) -> usize {
        self.cursors.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Closes the cursors idle for longer than `cursorTimeoutMillis` (except `noCursorTimeout` ones); returns
    /// how many. Their buffers and spilled runs are released outside the lock.
    pub fn reap(&self) -> usize {
        let timeout = self.timeout();
        let expired: Vec<Cursor> = match self.cursors.lock() {
            Ok(mut cursors) => {
                let ids: Vec<i64> = cursors
                    .iter()
                    .filter(|(_, c)| !c.no_timeout && c.last_used.elapsed() >= timeout)
                    .map(|(id, _)| *id)
                    .collect();
                ids.iter().filter_map(|id| cursors.remove(id)).collect()
            }
            Err(_) => Vec::new(),
        };
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                timeout_ms = timeout.as_millis() as u64,
                "closed idle cursors"
            );
        }
        expired.len()
    }

    /// The timer task: reaps idle cursors every `clientCursorMonitorFrequencySecs` (sooner when the timeout
    /// is shorter than that) until the registry is dropped.
    pub async fn run_reaper(registry: Weak<CursorRegistry>) {
        loop {
            let pause = match registry.upgrade() {
                Some(registry) => {
                    registry.reap();
                    let every = Duration::from_secs(registry.monitor_secs.load(Ordering::Relaxed));
                    every.min(registry.timeout() / 2).max(Duration::from_millis(50))
                }
                None => return,
            };
            tokio::time::sleep(pause).await;
        }
    }
}

/// The wait of a tailable awaitData getMore on the oplog: new entries written after the one last seen.
pub struct OplogArrivals {
    positions: watch::Receiver<Positions>,
    seen: OpTime,
}

impl OplogArrivals {
    /// Starts watching from the newest entry written now: call it before scanning, so that an entry written
    /// during the scan still ends the next wait.
    pub fn new(mut positions: watch::Receiver<Positions>) -> Self {
        let seen = positions.borrow_and_update().last_written;
        Self { positions, seen }
    }

    /// Waits until the newest written entry differs from the one last seen (new entries, or a rollback that
    /// truncated the oplog) or `deadline` passes; true if entries moved. The durable position alone never
    /// ends the wait.
    pub async fn wait_until(&mut self, deadline: Instant) -> bool {
        let seen = self.seen;
        let moved = tokio::time::timeout_at(deadline, self.positions.wait_for(|p| p.last_written != seen)).await;
        match moved {
            Ok(Ok(positions)) => {
                self.seen = positions.last_written;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u32, durable_secs: u32) -> Positions {
        Positions {
            last_written: OpTime::new(secs, 0, 1),
            last_durable: OpTime::new(durable_secs, 0, 1),
            last_written_wall_ms: 0,
            last_durable_wall_ms: 0,
            synced_ahead: None,
        }
    }

    /// Time is paused: a wait that ends at its deadline returns at once, without sleeping.
    #[tokio::test(start_paused = true)]
    async fn oplog_waiters_wake_for_new_entries_only() {
        let (sender, receiver) = watch::channel(at(5, 4));
        let mut arrivals = OplogArrivals::new(receiver);
        sender.send_replace(at(5, 5));
        let deadline = Instant::now() + Duration::from_millis(500);
        assert!(
            !arrivals.wait_until(deadline).await,
            "woken by the durable position alone"
        );
        assert_eq!(Instant::now(), deadline);
        sender.send_replace(at(6, 5));
        let deadline = Instant::now() + Duration::from_millis(500);
        assert!(arrivals.wait_until(deadline).await, "a new entry must wake the waiter");
        assert!(Instant::now() < deadline);
        sender.send_replace(at(3, 3));
        assert!(
            arrivals.wait_until(deadline).await,
            "a truncated oplog must wake the waiter"
        );
        drop(sender);
        assert!(!arrivals.wait_until(deadline).await, "the writer is gone");
    }

    fn cursor(no_timeout: bool) -> Cursor {
        let mut cursor = Cursor::new(Namespace::new("db", "c"), CursorSource::Buffered(VecDeque::new()));
        cursor.no_timeout = no_timeout;
        cursor
    }

    #[test]
    fn idle_cursors_expire_unless_no_cursor_timeout() {
        let registry = CursorRegistry::new(Duration::from_millis(0), Duration::from_secs(1));
        let idle = registry.register(cursor(false));
        let pinned = registry.register(cursor(true));
        assert_eq!(registry.reap(), 1);
        assert!(registry.take(idle).is_none());
        assert!(registry.take(pinned).is_some());
        registry.set_timeout(Duration::from_secs(600));
        let fresh = registry.register(cursor(false));
        assert_eq!(registry.reap(), 0);
        assert!(registry.take(fresh).is_some());
    }
}

//! Open cursors: what `find`, `aggregate` and `listCollections` leave for `getMore` to continue.
//!
//! A cursor either holds the rest of a materialised result (sorted finds, aggregations, listings) or a
//! position to resume a scan from: the last `_id` key of a collection scan, or the last timestamp of an
//! oplog scan (which is how tailable cursors on `local.oplog.rs` work). Resumed scans read a fresh snapshot,
//! like a MongoDB cursor that yields. A cursor left idle for `cursorTimeoutMillis` (ten minutes unless set at
//! start-up) is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::Document;

use crate::query::filter::Filter;
use crate::query::projection::Projection;
use crate::storage::{CollectionMeta, Namespace};

/// Cursors idle for longer than this are closed (mongod's `cursorTimeoutMillis` default; the
/// `cursorTimeoutMillis` start-up parameter changes it).
pub const CURSOR_IDLE_TIMEOUT: Duration = Duration::from_millis(crate::options::DEFAULT_CURSOR_TIMEOUT_MILLIS);

/// Where a cursor continues from.
pub enum CursorSource {
    /// The remaining documents of a materialised result.
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
    },
}

pub struct Cursor {
    pub ns: Namespace,
    pub source: CursorSource,
    /// Documents still allowed by the query's `limit`, if any.
    pub remaining: Option<usize>,
    /// Matching documents still to skip before the first one returned.
    pub skip: usize,
    pub last_used: Instant,
}

/// The member's open cursors, by id. A cursor idle for longer than the idle timeout is gone: `getMore` no
/// longer finds it, and it is dropped when the next cursor is registered.
pub struct CursorRegistry {
    cursors: Mutex<HashMap<i64, Cursor>>,
    idle_timeout: Duration,
}

impl Default for CursorRegistry {
    fn default() -> CursorRegistry {
        CursorRegistry::new(CURSOR_IDLE_TIMEOUT)
    }
}

impl CursorRegistry {
    /// A registry whose cursors time out after `idle_timeout` without use (`cursorTimeoutMillis`).
    pub fn new(idle_timeout: Duration) -> CursorRegistry {
        CursorRegistry {
            cursors: Mutex::new(HashMap::new()),
            idle_timeout,
        }
    }

    /// Registers a cursor and returns its id (never 0, which means "exhausted").
    pub fn register(&self, cursor: Cursor) -> i64 {
        let Ok(mut cursors) = self.cursors.lock() else { return 0 };
        let timeout = self.idle_timeout;
        cursors.retain(|_, c| c.last_used.elapsed() < timeout);
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
    pub fn take(&self, id: i64) -> Option<Cursor> {
        let cursor = self.cursors.lock().ok()?.remove(&id)?;
        (cursor.last_used.elapsed() < self.idle_timeout).then_some(cursor)
    }

    pub fn put_back(&self, id: i64, mut cursor: Cursor) {
        cursor.last_used = Instant::now();
        if let Ok(mut cursors) = self.cursors.lock() {
            cursors.insert(id, cursor);
        }
    }

    pub fn kill(&self, id: i64) -> bool {
        self.cursors
            .lock()
            .map(|mut c| c.remove(&id).is_some())
            .unwrap_or(false)
    }

    pub fn open_count(&self) -> usize {
        self.cursors.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_for(idle: Duration) -> Cursor {
        Cursor {
            ns: Namespace::new("test", "c"),
            source: CursorSource::Buffered(VecDeque::new()),
            remaining: None,
            skip: 0,
            last_used: Instant::now().checked_sub(idle).expect("a past instant"),
        }
    }

    #[test]
    fn cursors_idle_past_the_timeout_are_gone() {
        let registry = CursorRegistry::new(Duration::from_secs(60));
        let stale = registry.register(idle_for(Duration::from_secs(61)));
        let fresh = registry.register(idle_for(Duration::from_secs(1)));
        assert!(registry.take(stale).is_none(), "a timed-out cursor is not found");
        assert!(registry.take(fresh).is_some());
        let default = CursorRegistry::default();
        let id = default.register(idle_for(Duration::from_secs(61)));
        assert!(default.take(id).is_some(), "the default timeout is ten minutes");
    }
}

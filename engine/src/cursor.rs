//! Open cursors: what `find`, `aggregate` and `listCollections` leave for `getMore` to continue.
//!
//! A cursor either holds the rest of a materialised result (sorted finds, aggregations, listings) or a
//! position to resume a scan from: the last `_id` key of a collection scan, or the last timestamp of an
//! oplog scan (which is how tailable cursors on `local.oplog.rs` work). Resumed scans read a fresh snapshot,
//! like a MongoDB cursor that yields.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::Document;

use crate::query::filter::Filter;
use crate::query::projection::Projection;
use crate::storage::{CollectionMeta, Namespace};

/// Cursors idle for longer than this are closed (mongod's `cursorTimeoutMillis` default).
pub const CURSOR_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// A document the last batch had no room for (batches stay under 16 MiB): the next batch starts with it.
    pub stash: Option<Document>,
    pub last_used: Instant,
}

/// The member's open cursors, by id.
#[derive(Default)]
pub struct CursorRegistry {
    cursors: Mutex<HashMap<i64, Cursor>>,
}

impl CursorRegistry {
    /// Registers a cursor and returns its id (never 0, which means "exhausted").
    pub fn register(&self, cursor: Cursor) -> i64 {
        let Ok(mut cursors) = self.cursors.lock() else { return 0 };
        cursors.retain(|_, c| c.last_used.elapsed() < CURSOR_IDLE_TIMEOUT);
        loop {
            let id = (rand::random::<u64>() >> 2) as i64;
            if id != 0 && !cursors.contains_key(&id) {
                cursors.insert(id, cursor);
                return id;
            }
        }
    }

    /// Takes a cursor out while a getMore runs on it; `put_back` returns it.
    pub fn take(&self, id: i64) -> Option<Cursor> {
        self.cursors.lock().ok()?.remove(&id)
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

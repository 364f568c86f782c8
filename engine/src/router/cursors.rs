//! Cursors on the router. A query one shard answered keeps its cursor there: the router hands the client an
//! id of its own and passes each `getMore` on ([`RouterCursor::Remote`]). A scatter-gather query is merged on
//! the router (sorted, skipped, limited) and the rest of the result served from here in batches
//! ([`RouterCursor::Merged`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bson::Document;

use super::catalog::ShardEntry;

/// One open cursor.
pub enum RouterCursor {
    /// A shard's cursor.
    Remote {
        shard: Arc<ShardEntry>,
        db: String,
        collection: String,
        id: i64,
    },
    /// The rest of a merged result.
    Merged { ns: String, rest: VecDeque<Document> },
}

/// The router's open cursors by the ids it gave clients.
#[derive(Default)]
pub struct Cursors {
    open: Mutex<HashMap<i64, RouterCursor>>,
}

impl Cursors {
    /// Registers a cursor and returns its id (positive, never 0).
    pub fn open(&self, cursor: RouterCursor) -> i64 {
        let mut open = lock(&self.open);
        loop {
            let id = (rand::random::<u64>() >> 2) as i64;
            if id != 0 && !open.contains_key(&id) {
                open.insert(id, cursor);
                return id;
            }
        }
    }

    /// Takes a cursor out for a `getMore` (put it back with [`Cursors::put_back`] if it stays open).
    pub fn take(&self, id: i64) -> Option<RouterCursor> {
        lock(&self.open).remove(&id)
    }

    pub fn put_back(&self, id: i64, cursor: RouterCursor) {
        lock(&self.open).insert(id, cursor);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

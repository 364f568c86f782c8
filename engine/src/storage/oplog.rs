//! The oplog (`local.oplog.rs`): entry format, timestamps, and the allocator of new optimes.
//!
//! Entries follow MongoDB's format (compat reference §5): `{op, ns, ui, o, o2?, ts, t, v: 2, wall, lsid?,
//! txnNumber?, stmtId?}`. Updates are logged as a `$v: 2` diff of top-level fields computed from the pre- and
//! post-images, so every entry is idempotent: `$inc` and `$push` appear as the values they produced.

use bson::{Bson, Document, Timestamp, doc};

pub use crate::repl::OpTime;

/// Packs a timestamp into the oplog table's key; the order of keys is the order of timestamps.
pub fn ts_to_u64(ts: Timestamp) -> u64 {
    (u64::from(ts.time) << 32) | u64::from(ts.increment)
}

pub fn ts_from_u64(key: u64) -> Timestamp {
    Timestamp {
        time: (key >> 32) as u32,
        increment: key as u32,
    }
}

/// Namespaced helpers over oplog entry documents.
pub struct OplogEntry;

impl OplogEntry {
    /// The optime `{ts, t}` of an entry.
    pub fn optime_of(entry: &Document) -> Option<OpTime> {
        let ts = entry.get_timestamp("ts").ok()?;
        let term = match entry.get("t") {
            Some(Bson::Int64(t)) => *t,
            Some(Bson::Int32(t)) => i64::from(*t),
            _ => -1,
        };
        Some(OpTime { ts, term })
    }

    /// The `$v: 2` diff that turns `before` into `after`, on top-level fields: `u` updated or inserted
    /// fields, `d` deleted fields.
    pub fn update_diff(before: &Document, after: &Document) -> Document {
        let mut updated = Document::new();
        let mut deleted = Document::new();
        for (key, value) in after {
            if before.get(key) != Some(value) {
                updated.insert(key.clone(), value.clone());
            }
        }
        for key in before.keys() {
            if !after.contains_key(key) {
                deleted.insert(key.clone(), false);
            }
        }
        let mut diff = Document::new();
        if !deleted.is_empty() {
            diff.insert("d", deleted);
        }
        if !updated.is_empty() {
            diff.insert("u", updated);
        }
        doc! {"$v": 2, "diff": diff}
    }

    /// Applies a `$v: 2` top-level diff (as written by [`update_diff`](Self::update_diff)) to a document.
    pub fn apply_diff(target: &mut Document, update: &Document) -> bool {
        let Ok(diff) = update.get_document("diff") else {
            return false;
        };
        if let Ok(deleted) = diff.get_document("d") {
            for key in deleted.keys() {
                target.remove(key);
            }
        }
        for section in ["u", "i"] {
            if let Ok(fields) = diff.get_document(section) {
                for (key, value) in fields {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        true
    }
}

/// What an oplog entry is about; the allocator adds `ts`, `t`, `v` and `wall`.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub op: &'static str,
    pub ns: String,
    pub ui: Option<Bson>,
    pub o: Document,
    pub o2: Option<Document>,
    pub session: Option<Document>,
}

impl NewEntry {
    pub fn into_document(self, optime: OpTime, wall: bson::DateTime) -> Document {
        let mut entry = doc! {"op": self.op, "ns": self.ns};
        if let Some(ui) = self.ui {
            entry.insert("ui", ui);
        }
        entry.insert("o", self.o);
        if let Some(o2) = self.o2 {
            entry.insert("o2", o2);
        }
        entry.insert("ts", optime.ts);
        entry.insert("t", optime.term);
        entry.insert("v", 2i64);
        entry.insert("wall", wall);
        if let Some(session) = self.session {
            entry.extend(session);
        }
        entry
    }
}

/// Hands out strictly increasing timestamps: wall-clock seconds, with an increment within a second.
#[derive(Debug, Clone)]
pub struct TimestampAllocator {
    last: Timestamp,
}

impl TimestampAllocator {
    pub fn new(last: Timestamp) -> TimestampAllocator {
        TimestampAllocator { last }
    }

    /// Never hands out a timestamp at or below `ts` (an entry applied from another member).
    pub fn observe(&mut self, ts: Timestamp) {
        if ts_to_u64(ts) > ts_to_u64(self.last) {
            self.last = ts;
        }
    }

    pub fn next(&mut self, now_secs: u32) -> Timestamp {
        let next = if now_secs > self.last.time {
            Timestamp {
                time: now_secs,
                increment: 1,
            }
        } else if self.last.increment == u32::MAX {
            Timestamp {
                time: self.last.time + 1,
                increment: 1,
            }
        } else {
            Timestamp {
                time: self.last.time,
                increment: self.last.increment + 1,
            }
        };
        self.last = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_strictly_increase_even_when_the_clock_goes_back() {
        let mut alloc = TimestampAllocator::new(Timestamp {
            time: 100,
            increment: 7,
        });
        let a = alloc.next(50);
        let b = alloc.next(100);
        let c = alloc.next(101);
        assert!(
            ts_to_u64(a)
                > ts_to_u64(Timestamp {
                    time: 100,
                    increment: 7
                })
        );
        assert!(ts_to_u64(b) > ts_to_u64(a));
        assert_eq!(
            c,
            Timestamp {
                time: 101,
                increment: 1
            }
        );
        assert_eq!(ts_from_u64(ts_to_u64(c)), c);
    }

    #[test]
    fn diff_round_trips() {
        let before = doc! {"_id": 1, "a": 1, "b": [1, 2], "gone": true};
        let after = doc! {"_id": 1, "a": 2, "b": [1, 2, 3], "new": "x"};
        let diff = OplogEntry::update_diff(&before, &after);
        let mut replay = before.clone();
        OplogEntry::apply_diff(&mut replay, &diff);
        assert_eq!(replay.get("a"), after.get("a"));
        assert_eq!(replay.get("b"), after.get("b"));
        assert_eq!(replay.get("new"), after.get("new"));
        assert!(!replay.contains_key("gone"));
        // Applying twice is harmless (idempotency).
        OplogEntry::apply_diff(&mut replay, &diff);
        assert!(!replay.contains_key("gone"));
        assert_eq!(replay.get("a"), Some(&Bson::Int32(2)));
    }
}

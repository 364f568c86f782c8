//! The oplog (`local.oplog.rs`): its table keys, the entries a primary writes, and the allocator of new
//! optimes. Reading entries back is [`oplog_entry`](super::oplog_entry)'s job.

use bson::{Bson, Document, Timestamp, doc};

use super::oplog_entry::OpKind;

pub use crate::repl::OpTime;

/// Packs a timestamp into the oplog table's key; the order of keys is the order of timestamps.
pub fn ts_to_u64(ts: Timestamp) -> u64 {
    (u64::from(ts.time) << 32) | u64::from(ts.increment)
}

/// The key a forward oplog scan starts after, to read the entries at `ts` and later (`inclusive`) or strictly
/// later.
pub fn scan_after(ts: Timestamp, inclusive: bool) -> u64 {
    let key = ts_to_u64(ts);
    if inclusive { key.saturating_sub(1) } else { key }
}

pub fn ts_from_u64(key: u64) -> Timestamp {
    Timestamp {
        time: (key >> 32) as u32,
        increment: key as u32,
    }
}

/// What an oplog entry is about; the allocator adds `ts`, `t`, `v` and `wall`.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub op: OpKind,
    pub ns: String,
    pub ui: Option<Bson>,
    pub o: Document,
    pub o2: Option<Document>,
    pub session: Option<Document>,
}

impl NewEntry {
    pub fn into_document(self, optime: OpTime, wall: bson::DateTime) -> Document {
        let mut entry = doc! {"op": self.op.code(), "ns": self.ns};
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
        if ts > self.last {
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
}

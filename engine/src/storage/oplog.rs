//! The oplog (`local.oplog.rs`): its table keys, the entries a primary writes, and the allocator of new
//! optimes. Reading entries back is [`oplog_entry`](super::oplog_entry)'s job.

use bson::raw::{CStr, RawBson, RawDocument, RawDocumentBuf, cstr};
use bson::{Bson, Document, Timestamp};

use crate::depth::MAX_BSON_DEPTH;
use crate::error::{Error, Result};

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
    /// The entry as the oplog stores it, `{op, ns, ui?, o, o2?, ts, t, v: 2, wall, <session fields>}`, built
    /// as bytes. `encoded_o` is `o` already encoded by the caller (an insert's document, just written to its
    /// collection), which is copied in as it is rather than encoded a second time. Documents encoded here are
    /// held to [`MAX_BSON_DEPTH`] inside the entry.
    pub fn encode(
        &self,
        optime: OpTime,
        wall: bson::DateTime,
        encoded_o: Option<&RawDocument>,
    ) -> Result<RawDocumentBuf> {
        let nested = |doc: &Document| -> Result<RawDocumentBuf> {
            let bytes = super::encode(doc, MAX_BSON_DEPTH - 1, || {
                format!("oplog entry exceeds {MAX_BSON_DEPTH} levels of nesting")
            })?;
            RawDocumentBuf::from_bytes(bytes).map_err(|e| Error::internal(format!("oplog entry: {e}")))
        };
        let value = |v: &Bson| -> Result<RawBson> {
            RawBson::try_from(v.clone()).map_err(|e| Error::internal(format!("oplog entry: {e}")))
        };
        let mut entry = RawDocumentBuf::new();
        entry.append(cstr!("op"), self.op.code());
        entry.append(cstr!("ns"), self.ns.as_str());
        if let Some(ui) = &self.ui {
            entry.append(cstr!("ui"), value(ui)?);
        }
        match encoded_o {
            Some(o) => entry.append(cstr!("o"), o),
            None => entry.append(cstr!("o"), nested(&self.o)?),
        }
        if let Some(o2) = &self.o2 {
            entry.append(cstr!("o2"), nested(o2)?);
        }
        entry.append(cstr!("ts"), optime.ts);
        entry.append(cstr!("t"), optime.term);
        entry.append(cstr!("v"), 2i64);
        entry.append(cstr!("wall"), wall);
        if let Some(session) = &self.session {
            for (key, v) in session {
                let key: &CStr = key
                    .as_str()
                    .try_into()
                    .map_err(|e| Error::internal(format!("oplog entry field {key:?}: {e}")))?;
                entry.append(key, value(v)?);
            }
        }
        Ok(entry)
    }

    /// The entry as a document: what [`NewEntry::encode`] writes, for tests to compare against.
    #[cfg(test)]
    pub fn into_document(self, optime: OpTime, wall: bson::DateTime) -> Document {
        let mut entry = bson::doc! {"op": self.op.code(), "ns": self.ns};
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
    use bson::doc;

    use super::*;

    #[test]
    fn an_entry_encodes_to_the_bytes_of_its_document_whether_o_comes_encoded_or_not() {
        let uuid = Bson::from(bson::Uuid::from_bytes([3; 16]));
        let session =
            doc! {"lsid": {"id": uuid.clone()}, "txnNumber": 2i64, "stmtId": 1, "needsRetryImage": "preImage"};
        let entries = [
            NewEntry {
                op: OpKind::Insert,
                ns: "db.c".into(),
                ui: Some(uuid.clone()),
                o: doc! {"_id": 1, "a": [1, {"b": null}], "s": "x"},
                o2: None,
                session: Some(session),
            },
            NewEntry {
                op: OpKind::Update,
                ns: "db.c".into(),
                ui: Some(uuid.clone()),
                o: doc! {"$v": 2, "diff": {"u": {"a": 2}}},
                o2: Some(doc! {"_id": 1}),
                session: None,
            },
            NewEntry {
                op: OpKind::Command,
                ns: "db.$cmd".into(),
                ui: None,
                o: doc! {"create": "c"},
                o2: None,
                session: None,
            },
            NewEntry {
                op: OpKind::Noop,
                ns: String::new(),
                ui: None,
                o: doc! {},
                o2: None,
                session: None,
            },
        ];
        let optime = OpTime::new(12, 3, 4);
        let wall = bson::DateTime::from_millis(1_700_000_000_000);
        for entry in entries {
            let expected = entry.clone().into_document(optime, wall).to_vec().expect("encodes");
            let built = entry.encode(optime, wall, None).expect("encodes");
            assert_eq!(built.as_bytes(), expected.as_slice(), "{:?}", entry.op);
            let o = RawDocumentBuf::try_from(&entry.o).expect("encodes");
            let spliced = entry.encode(optime, wall, Some(&o)).expect("encodes");
            assert_eq!(spliced.as_bytes(), expected.as_slice(), "{:?} with o encoded", entry.op);
        }
    }

    #[test]
    fn an_entry_whose_document_nests_past_the_limit_is_refused() {
        let mut o = doc! {"leaf": 1};
        for _ in 0..MAX_BSON_DEPTH {
            o = doc! {"a": o};
        }
        let entry = NewEntry {
            op: OpKind::Noop,
            ns: String::new(),
            ui: None,
            o,
            o2: None,
            session: None,
        };
        let refused = entry.encode(OpTime::new(1, 1, 1), bson::DateTime::from_millis(0), None);
        assert!(refused.is_err());
    }

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

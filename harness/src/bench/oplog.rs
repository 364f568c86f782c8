//! Watching one member's oplog: the engine's oplog tail ([`faultline_engine::wire::client::OplogTail`]) over
//! one persistent connection, noting the moment each benchmark write's entry arrives.
//!
//! The member holds each `getMore` until a new entry is in its oplog (or `maxTimeMS` passes) and replies at
//! once, so the arrival time is when the entry became readable on that member plus one loopback reply. The
//! tail asks for every entry as stored, the way a secondary's fetcher does (the member sends their bytes
//! without decoding, filtering or projecting them), and picks the benchmark's inserts itself: the observer
//! costs the member as little as it can. After
//! a connection error (the member was killed, paused or restarted) the tail reopens after the last entry it
//! saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bson::doc;
use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use faultline_engine::storage::OpKind;
use faultline_engine::wire::client::{Connection, OplogBatch, OplogTail, TailSpec};
use tokio::sync::watch;

/// How long the member may hold a `getMore` open waiting for new entries.
const AWAIT: Duration = Duration::from_millis(500);
/// Deadline of one round trip besides the await time; past it the connection is presumed dead.
const ROUND_TRIP: Duration = Duration::from_millis(2500);
/// Entries per batch.
const BATCH: i32 = 10_000;

/// Opens a tail on the member at `port` for every entry after `after` (all when None), as stored; returns it
/// and its first batch.
pub async fn open(port: u16, after: Option<bson::Timestamp>) -> anyhow::Result<(OplogTail, OplogBatch)> {
    let conn = Connection::connect(&format!("127.0.0.1:{port}"), ROUND_TRIP + AWAIT).await?;
    let filter = match after {
        Some(ts) => doc! {"ts": {"$gt": ts}},
        None => doc! {},
    };
    let spec = TailSpec {
        batch_size: BATCH,
        await_time: AWAIT,
        round_trip: ROUND_TRIP,
        ..TailSpec::new(filter)
    };
    Ok(OplogTail::open(conn, spec).await?)
}

/// The written document's `_id`, if `entry` is an insert into `ns` (the benchmark's writes: an entry's `o._id`
/// is the written document's only for those) and the `_id` is a non-negative integer (what the benchmark
/// writes).
pub fn insert_id(entry: &RawDocument, ns: &str) -> Option<u64> {
    if entry.get_str("ns").ok()? != ns || entry.get_str("op").ok()? != OpKind::Insert.code() {
        return None;
    }
    let id = entry.get_document("o").ok()?.get("_id").ok()??;
    match id {
        RawBsonRef::Int64(v) => u64::try_from(v).ok(),
        RawBsonRef::Int32(v) => u64::try_from(v).ok(),
        _ => None,
    }
}

/// Where a tail records arrivals: `arrivals[id]` = ns since `started` + 1 (0: not seen yet).
#[derive(Clone)]
pub struct ArrivalLog {
    pub started: Instant,
    pub arrivals: Arc<Vec<AtomicU64>>,
    /// Entries seen so far (for progress lines).
    pub seen: Arc<AtomicU64>,
}

impl ArrivalLog {
    /// Room for ids `0..capacity`.
    pub fn new(started: Instant, capacity: usize) -> ArrivalLog {
        ArrivalLog {
            started,
            arrivals: Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect()),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Notes that the inserts into `ns` in `batch` arrived now (the first arrival of an id wins).
    pub fn note(&self, batch: &[RawDocumentBuf], ns: &str) {
        let now = self.started.elapsed().as_nanos() as u64 + 1;
        for id in batch.iter().filter_map(|entry| insert_id(entry, ns)) {
            let Some(slot) = usize::try_from(id).ok().and_then(|i| self.arrivals.get(i)) else {
                continue;
            };
            if slot
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.seen.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The arrival of `id` in ns since the start, if seen.
    pub fn arrival(&self, id: usize) -> Option<u64> {
        let raw = self.arrivals.get(id)?.load(Ordering::Relaxed);
        raw.checked_sub(1)
    }
}

/// Tails the oplog of the member at `port` for namespace `ns` into `log` until `stop` turns true,
/// reconnecting (every 100 ms) while the member is unreachable.
pub async fn tail(port: u16, ns: String, log: ArrivalLog, mut stop: watch::Receiver<bool>) {
    let mut last_ts: Option<bson::Timestamp> = None;
    while !*stop.borrow() {
        let session = tail_once(port, &ns, &log, &mut last_ts);
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::debug!(port, "oplog tail: {e:#}");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn tail_once(port: u16, ns: &str, log: &ArrivalLog, last_ts: &mut Option<bson::Timestamp>) -> anyhow::Result<()> {
    let (mut tail, mut batch) = open(port, *last_ts).await?;
    loop {
        log.note(&batch.entries, ns);
        if let Some(ts) = batch.entries.last().and_then(|e| e.get_timestamp("ts").ok()) {
            *last_ts = Some(ts);
        }
        batch = tail.next_batch().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_keep_the_first_sighting_and_ignore_foreign_ids() {
        let log = ArrivalLog::new(Instant::now(), 3);
        let insert = |id: bson::Bson| doc! {"ns": "db.c", "op": "i", "o": {"_id": id}};
        let entries: Vec<RawDocumentBuf> = [
            insert(bson::Bson::Int64(1)),
            insert(bson::Bson::String("text".into())),
            insert(bson::Bson::Int64(7)),
            insert(bson::Bson::Int64(-1)),
            doc! {"ns": "db.other", "op": "i", "o": {"_id": 2i64}},
            doc! {"ns": "db.c", "op": "d", "o": {"_id": 2i64}},
            doc! {"ns": "", "op": "n", "o": {"msg": "periodic noop"}},
        ]
        .iter()
        .map(|entry| RawDocumentBuf::try_from(entry).expect("encodes"))
        .collect();
        log.note(&entries, "db.c");
        let first = log.arrival(1).expect("seen");
        log.note(&entries[..1], "db.c");
        assert_eq!(log.arrival(1), Some(first));
        assert_eq!(log.arrival(0), None);
        assert_eq!(
            log.arrival(2),
            None,
            "another namespace's insert, and a delete, are not the benchmark's writes"
        );
        assert_eq!(log.arrival(7), None);
        assert_eq!(log.seen.load(Ordering::Relaxed), 1);
    }
}

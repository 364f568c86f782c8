//! Watching one member's oplog: a tailable, awaitData cursor on `local.oplog.rs` over one persistent
//! connection, noting the moment each benchmark write's entry arrives.
//!
//! The member holds each `getMore` until a new entry is in its oplog (or `maxTimeMS` passes) and replies at
//! once, so the arrival time is when the entry became readable on that member plus one loopback reply. After
//! a connection error (the member was killed, paused or restarted) the tail reopens after the last entry it
//! saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bson::{Bson, Document, doc};
use faultline_engine::storage::OpKind;
use faultline_engine::wire::{OpMsg, read_frame, try_encode_msg};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long the member may hold a `getMore` open waiting for new entries.
const AWAIT_MS: i64 = 500;
/// Deadline of one round trip (longer than [`AWAIT_MS`]); past it the connection is presumed dead.
const ROUND_TRIP: Duration = Duration::from_secs(3);
/// Replies larger than this are refused.
const MAX_REPLY: usize = 48_000_000;
/// Entries per batch.
const BATCH: i32 = 10_000;

/// An open tailable cursor on one member's oplog, restricted to one namespace.
pub struct OplogCursor {
    stream: TcpStream,
    cursor_id: i64,
    next_request: i32,
}

impl OplogCursor {
    /// Opens the cursor on the member at `port` for entries of namespace `ns` after `after` (all when None);
    /// returns it and its first batch.
    pub async fn open(
        port: u16,
        ns: &str,
        after: Option<bson::Timestamp>,
    ) -> anyhow::Result<(OplogCursor, Vec<Document>)> {
        let stream = tokio::time::timeout(ROUND_TRIP, TcpStream::connect(("127.0.0.1", port)))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let mut cursor = OplogCursor {
            stream,
            cursor_id: 0,
            next_request: 1,
        };
        // Only inserts: the benchmark's writes (an entry's `o._id` is the written document's only for those).
        let mut filter = doc! {"ns": ns, "op": OpKind::Insert.code()};
        if let Some(ts) = after {
            filter.insert("ts", doc! {"$gt": ts});
        }
        let find = doc! {
            "find": "oplog.rs", "filter": filter, "projection": {"ts": 1, "o._id": 1},
            "tailable": true, "awaitData": true, "batchSize": BATCH,
            "$readPreference": {"mode": "secondaryPreferred"}, "$db": "local",
        };
        let batch = cursor.exchange(find, "firstBatch").await?;
        Ok((cursor, batch))
    }

    /// The next batch (empty when nothing arrived within the await time).
    pub async fn next_batch(&mut self) -> anyhow::Result<Vec<Document>> {
        if self.cursor_id == 0 {
            bail!("the member closed the oplog cursor");
        }
        let more = doc! {
            "getMore": self.cursor_id, "collection": "oplog.rs", "batchSize": BATCH, "maxTimeMS": AWAIT_MS,
            "$db": "local",
        };
        self.exchange(more, "nextBatch").await
    }

    async fn exchange(&mut self, body: Document, field: &str) -> anyhow::Result<Vec<Document>> {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let bytes = try_encode_msg(request, 0, 0, &body)?;
        let reply = tokio::time::timeout(ROUND_TRIP, async {
            self.stream.write_all(&bytes).await?;
            let frame = read_frame(&mut self.stream, MAX_REPLY).await?;
            let (header, payload) = frame.context("connection closed")?;
            anyhow::Ok(OpMsg::decode(&header, &payload)?.body)
        })
        .await
        .context("oplog read timed out")??;
        if !crate::cluster::wire::reply_ok(&reply) {
            bail!("oplog read failed: {}", reply.get_str("errmsg").unwrap_or("no message"));
        }
        let cursor = reply.get_document("cursor").context("reply without cursor")?;
        self.cursor_id = cursor.get_i64("id").unwrap_or(0);
        let batch = cursor.get_array(field).context("reply without a batch")?;
        Ok(batch.iter().filter_map(Bson::as_document).cloned().collect())
    }
}

/// An insert entry's `_id`, if it is a non-negative integer (what the benchmark writes).
pub fn entry_id(entry: &Document) -> Option<u64> {
    let id = entry.get_document("o").ok()?.get("_id")?;
    match id {
        Bson::Int64(v) => u64::try_from(*v).ok(),
        Bson::Int32(v) => u64::try_from(*v).ok(),
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

    /// Notes that the entries in `batch` arrived now (the first arrival of an id wins).
    pub fn note(&self, batch: &[Document]) {
        let now = self.started.elapsed().as_nanos() as u64 + 1;
        for id in batch.iter().filter_map(entry_id) {
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
    let (mut cursor, mut batch) = OplogCursor::open(port, ns, *last_ts).await?;
    loop {
        log.note(&batch);
        if let Some(ts) = batch.last().and_then(|e| e.get_timestamp("ts").ok()) {
            *last_ts = Some(ts);
        }
        batch = cursor.next_batch().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_keep_the_first_sighting_and_ignore_foreign_ids() {
        let log = ArrivalLog::new(Instant::now(), 3);
        let entries = vec![
            doc! {"o": {"_id": 1i64}},
            doc! {"o": {"_id": "text"}},
            doc! {"o": {"_id": 7i64}},
            doc! {"o": {"_id": -1i64}},
            doc! {"op": "n"},
        ];
        log.note(&entries);
        let first = log.arrival(1).expect("seen");
        log.note(&entries[..1]);
        assert_eq!(log.arrival(1), Some(first));
        assert_eq!(log.arrival(0), None);
        assert_eq!(log.arrival(7), None);
        assert_eq!(log.seen.load(Ordering::Relaxed), 1);
    }
}
